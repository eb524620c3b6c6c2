"""The tile baseline: bare TiTiler, a minimal ``titiler.core`` app.

One ``TilerFactory`` mounted at ``/cog`` with TiTiler's own error handlers,
nothing else — what the TiTiler documentation starts from. It serves
``/cog/tiles/WebMercatorQuad/{z}/{x}/{y}.png?url=...&colormap_name=...&rescale=lo,hi``
on the same uvicorn stack as terraops, so the ratio terraops/TiTiler measures
only what terraops adds around the same rio-tiler render (catalogue lookup,
lineage headers, ETag, the tile cache).

Benchmark use only: ``url=`` reads any path the process can reach, which is
exactly what terraops' catalogue-backed tiles refuse.
"""

from __future__ import annotations

import os
import sys

from fastapi import FastAPI
from titiler.core.errors import DEFAULT_STATUS_CODES, add_exception_handlers
from titiler.core.factory import TilerFactory


def create_titiler_app() -> FastAPI:
    # Optional: the GIL switch interval terraops' serving processes use (see
    # terraops.api.app), to tell that setting apart from the rest of terraops.
    interval = os.environ.get("BENCH_SWITCH_INTERVAL_S")
    if interval:
        sys.setswitchinterval(float(interval))
    app = FastAPI(title="bare TiTiler (benchmark baseline)")
    cog = TilerFactory(router_prefix="/cog")
    app.include_router(cog.router, prefix="/cog")
    add_exception_handlers(app, DEFAULT_STATUS_CODES)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
