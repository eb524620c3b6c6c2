"""Service definitions. ``get_service(name)`` is the one lookup everything uses."""

from __future__ import annotations

from terraops.errors import ServiceNotFoundError
from terraops.services.base import ServiceDefinition


def all_services() -> dict[str, ServiceDefinition]:
    """Every known service, by name (import here keeps definitions independent)."""
    from terraops.services.uhi import UHI

    services = {UHI.name: UHI}
    try:
        from terraops.services.flood import FLOOD
    except ImportError:  # flood arrives in its own issue
        return services
    services[FLOOD.name] = FLOOD
    return services


def get_service(name: str) -> ServiceDefinition:
    services = all_services()
    if name not in services:
        raise ServiceNotFoundError(
            f"unknown service {name!r}", hint=f"known services: {', '.join(sorted(services))}"
        )
    return services[name]


__all__ = ["ServiceDefinition", "all_services", "get_service"]
