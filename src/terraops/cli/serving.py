"""``terraops serve``: the prediction API under uvicorn."""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path
from typing import Annotated, cast

import typer

from terraops.cli.common import console, settings_from
from terraops.settings import Settings


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to bind (0.0.0.0 for all).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Serve the champions of the configured services (hot-swapped on promotion).

    Every worker builds its settings from the same TERRAOPS_ environment
    (uvicorn factory ``terraops.api.app:create_app_from_env``) and follows the
    registry's champion on its own. ``/metrics`` sums every worker: the workers
    write their samples under ``PROMETHEUS_MULTIPROC_DIR`` (default
    ``<home>/run/metrics-<port>``, emptied here at start).
    """
    import os

    import uvicorn

    from terraops.adapters.cache_cleanup import remove_orphaned_temporaries
    from terraops.api.app import configure_process_for_serving, served_services
    from terraops.api.observability import MULTIPROC_ENV, prepare_multiprocess_dir

    settings = settings_from(ctx)
    configure_process_for_serving(settings)  # inherited by the worker processes
    # Before prometheus-client is imported anywhere: it picks its mode at import.
    metrics_dir = os.environ.get(MULTIPROC_ENV) or str(
        settings.home_dir / "run" / f"metrics-{port}"
    )
    os.environ[MULTIPROC_ENV] = str(prepare_multiprocess_dir(Path(metrics_dir)))
    for debris in remove_orphaned_temporaries(settings.model_cache_dir):
        console.print(f"removed an interrupted download {debris.path} ({debris.reason})")
    console.print(
        f"serving {', '.join(served_services(settings)) or 'no services'} on "
        f"http://{host}:{port} with {workers} worker(s); home {settings.home_dir}"
    )
    from terraops.pipelines.monitoring.slo import start_schedule

    if start_schedule(settings) is not None:  # TERRAOPS_SLO_CHECK_INTERVAL_S > 0
        console.print(
            f"SLO check every {settings.slo_check_interval_s:g} s over {settings.slo_window}"
            + (", rolling back on breach" if settings.slo_rollback_on_breach else "")
        )
    from terraops.pipelines.monitoring.drift_schedule import start_drift_schedule

    if start_drift_schedule(settings) is not None:  # TERRAOPS_DRIFT_CHECK_INTERVAL_S set
        console.print(
            f"drift check of the prediction log every {settings.drift_check_interval_s:g} s "
            f"over {settings.drift_window}"
        )
    uvicorn.run(
        "terraops.api.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
        http=header_limited_protocol(settings),
    )


def header_limited_protocol(settings: Settings) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with ``TERRAOPS_MAX_HEADER_KB`` and
    ``TERRAOPS_HEADER_TIMEOUT_S`` (see ``terraops.api.header_limits``).

    A ``functools.partial`` of a module-level class: uvicorn only calls it to
    build a protocol per connection, and it pickles into the worker processes.
    """
    from terraops.api.header_limits import HeaderLimitedHttpToolsProtocol

    protocol = partial(
        HeaderLimitedHttpToolsProtocol,
        max_header_bytes=int(settings.max_header_kb * 1024),
        header_timeout_s=settings.header_timeout_s,
    )
    return cast("type[asyncio.Protocol]", protocol)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
