"""The baseline: a bare FastAPI endpoint that echoes the same JSON body.

It runs on the same stack as terraops (uvicorn + uvloop + httptools, async
endpoint), so the ratio terraops/echo measures only what terraops adds:
validation, the model call and the response.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request


def create_echo_app() -> FastAPI:
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> Any:
        return await request.json()

    return app
