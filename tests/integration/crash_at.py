"""Run the terraops CLI and die like ``kill -9`` around the registry's alias write.

Fault injection from outside the library: this launcher wraps
``ModelRegistry.set_alias`` in the child process only, so ``src/`` holds no
test hook. ``before`` dies after the lifecycle journalled its intent and just
before the alias moves; ``after`` dies once the alias moved, before the journal
row is marked committed. ``os._exit`` skips every ``finally`` and ``atexit``,
as a SIGKILL would.

Kept next to the real SIGKILLs of ``test_faults.py``: those land at random
points and rarely inside these two windows (milliseconds wide), which this
launcher hits every time.

    python crash_at.py before|after terraops-args...
"""

from __future__ import annotations

import os
import sys
from typing import Any

from terraops.adapters.registry import ModelRegistry
from terraops.cli.main import app

CRASH_EXIT_CODE = 9


def main() -> None:
    when, args = sys.argv[1], sys.argv[2:]
    original = ModelRegistry.set_alias

    def set_alias_then_die(self: ModelRegistry, *a: Any, **kw: Any) -> None:
        if when == "before":
            os._exit(CRASH_EXIT_CODE)
        original(self, *a, **kw)
        os._exit(CRASH_EXIT_CODE)

    ModelRegistry.set_alias = set_alias_then_die  # type: ignore[method-assign]
    app(args, prog_name="terraops")


if __name__ == "__main__":
    main()
