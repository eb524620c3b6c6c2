"""``terraops serve``: the prediction API under uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

from terraops.cli.common import console, get_settings


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind (0.0.0.0 for all).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Serve the champions of the configured services (hot-swapped on promotion).

    Every worker builds its settings from the same TERRAOPS_ environment
    (uvicorn factory ``terraops.api.app:create_app_from_env``) and follows the
    registry's champion on its own.
    """
    import uvicorn

    from terraops.api.app import configure_process_for_serving, served_services

    settings = get_settings()
    configure_process_for_serving(settings)  # inherited by the worker processes
    console.print(
        f"serving {', '.join(served_services(settings)) or 'no services'} on "
        f"http://{host}:{port} with {workers} worker(s); home {settings.home_dir}"
    )
    uvicorn.run(
        "terraops.api.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
