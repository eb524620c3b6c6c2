"""Domain errors: raised by the library, mapped to HTTP statuses in one table
(``terraops.api.errors``) and to exit codes in the CLI.

Each error carries a message that says what was wrong and, where useful, a
``hint`` that says how to fix it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T")


class TerraopsError(Exception):
    """Base of every error terraops raises on purpose."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class InvalidInputError(TerraopsError):
    """The caller's input is wrong (bad argument, bad file, bad value)."""


class InvalidScenarioError(InvalidInputError):
    """A what-if scenario file is wrong; names the feature (by index) and the field.

    Raised before anything is computed or written, so a bad scenario never
    leaves a half-made layer behind.
    """

    def __init__(
        self,
        message: str,
        *,
        feature_index: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = f"feature {feature_index}" if feature_index is not None else "scenario"
        if field:
            where += f", field {field!r}"
        super().__init__(f"{where}: {message}", hint=hint)
        self.feature_index = feature_index
        self.field = field


class PayloadTooLargeError(InvalidInputError):
    """An upload is larger than the configured limit."""


class UnsupportedMediaError(InvalidInputError):
    """An upload is not in a format the endpoint reads (e.g. not a GeoTIFF)."""


class NotFoundError(TerraopsError):
    """A named thing (scene, service, model version, layer) does not exist."""


class ServiceNotFoundError(NotFoundError):
    pass


class ModelNotFoundError(NotFoundError):
    """No such registered model / version / alias."""


class OutsideBoundsError(NotFoundError):
    """A map tile or point lies outside a layer's extent (there is nothing to show)."""


class ModelNotReadyError(TerraopsError):
    """The server has no champion loaded for a service yet."""


class PromotionRefusedError(TerraopsError):
    """A promotion gate refused the candidate; the champion is untouched."""

    def __init__(self, message: str, *, reasons: list[str], hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.reasons = reasons


class NothingToRollBackError(TerraopsError):
    """There is no earlier champion to restore."""


class ConflictError(TerraopsError):
    """Another operation holds the lock or the state changed underneath."""


class RegistryUnavailableError(TerraopsError):
    """The model registry (MLflow) cannot be reached."""


class StorageError(TerraopsError):
    """A folder terraops must write (its home, an output) is full or read-only."""


class ExtraNotInstalledError(TerraopsError):
    """An optional part (a pip extra, e.g. ``segment``) is used but not installed here."""


class AuthError(TerraopsError):
    """Missing or wrong credentials."""


class AdminDisabledError(TerraopsError):
    """No admin token is configured, so admin endpoints are off."""


class FeedbackDisabledError(AdminDisabledError):
    """Neither a feedback token nor an admin token is configured, so feedback is refused."""


class RateLimitedError(TerraopsError):
    """A client sent more requests than its rate allows; it may retry after a delay."""

    def __init__(self, message: str, *, retry_after_s: float, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retry_after_s = retry_after_s


def lookup_by_error_class(
    table: Mapping[type[TerraopsError], T], exc: TerraopsError, default: T
) -> T:
    """The entry of the most specific class of ``exc`` in ``table``.

    Entry points map errors to HTTP statuses and exit codes with this, so a
    subclass inherits its parent's mapping unless the table names it.
    """
    for cls in type(exc).__mro__:
        if cls in table:
            return table[cls]
    return default
