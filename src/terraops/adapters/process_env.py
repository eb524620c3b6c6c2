"""Process-wide switches of third-party libraries, set once by each entry point.

MLflow and Great Expectations read some of their behaviour from environment
variables on every call. Changing ``os.environ`` while other threads run
MLflow calls races with them, so library code never writes it: the entry
points (the CLI, the API's app factory) apply these defaults once, before any
work starts, and a value the user exported wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

PROCESS_ENV_DEFAULTS: Mapping[str, str] = MappingProxyType(
    {
        # A per-file download/upload progress bar on stderr is noise in server logs
        # and in a command's output.
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        # With a tracking server MLflow prints "View run at <url>" on stdout when a run
        # ends, which would corrupt the CLI's machine-readable output (`--json`).
        "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
        # Data-quality checks run offline: no usage statistics leave the machine.
        "GX_ANALYTICS_ENABLED": "False",
        # MLflow 3 sends usage telemetry from a background thread; terraops runs
        # offline and on closed networks, and sends nothing anywhere by default.
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
)
"""Environment defaults of every terraops process (applied with ``setdefault``)."""
