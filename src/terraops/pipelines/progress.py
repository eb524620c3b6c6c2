"""Progress for long pipeline steps: a rich status line on stderr, or nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Console


class status_line:
    """Rich status line on stderr while a pipeline works (no-op when off).

    ``say(message)`` updates the line to "<title>: <message>".
    """

    def __init__(self, enabled: bool, title: str) -> None:
        self.enabled = enabled
        self.title = title
        self._status: Any = None

    def __enter__(self) -> Callable[[str], None]:
        if not self.enabled:
            return lambda _msg: None
        self._status = Console(stderr=True).status(self.title)
        self._status.__enter__()
        return lambda msg: self._status.update(f"{self.title}: {msg}")

    def __exit__(self, *exc: object) -> None:
        if self._status is not None:
            self._status.__exit__(*exc)
