"""The champion or version N: the one lookup every command and card uses.

Commands that act on a registered model (``card``, ``predict-raster``,
``evaluate-real``, ``monitor drift``, ``feedback score``, ``segment predict``,
``promote --challenger``) take an optional ``--version N`` and otherwise use
an alias. Resolving that pair is written here once, so every command refuses a
missing alias the same way (:class:`~terraops.errors.ModelNotFoundError`, with
the command's own words for what it needed the model for and what to do).
"""

from __future__ import annotations

from typing import Protocol

from terraops.adapters.model_versions import ModelVersionInfo
from terraops.domain.promotion import CHAMPION
from terraops.errors import ModelNotFoundError

DEFAULT_HINT = "promote a version or pass --version N"


class AliasRegistry(Protocol):
    """What the lookup needs from the registry (``ModelRegistry`` has it)."""

    def get_alias(self, service: str, alias: str) -> int | None: ...

    def get_version(self, service: str, version: int) -> ModelVersionInfo: ...


def resolve_version_number(
    registry: AliasRegistry,
    service: str,
    version: int | None,
    alias: str = CHAMPION,
    *,
    purpose: str = "",
    hint: str = DEFAULT_HINT,
) -> int:
    """``version`` when given, else the version ``alias`` points at.

    Raises ``ModelNotFoundError("<service> has no <alias>[ <purpose>]", hint)``
    when the alias is not set; ``purpose`` says what the model was wanted for
    (e.g. ``"to compare against"``). Does not check that ``version`` exists:
    the caller's next registry call does, with the registry's own message.
    """
    if version is not None:
        return version
    found = registry.get_alias(service, alias)
    if found is None:
        wanted = f" {purpose}" if purpose else ""
        raise ModelNotFoundError(f"{service} has no {alias}{wanted}", hint=hint)
    return int(found)


def resolve_version(
    registry: AliasRegistry,
    service: str,
    version: int | None,
    alias: str = CHAMPION,
    *,
    purpose: str = "",
    hint: str = DEFAULT_HINT,
) -> ModelVersionInfo:
    """The registered version :func:`resolve_version_number` names, with its run's record."""
    number = resolve_version_number(registry, service, version, alias, purpose=purpose, hint=hint)
    return registry.get_version(service, number)


__all__ = ["DEFAULT_HINT", "AliasRegistry", "resolve_version", "resolve_version_number"]
