"""Service definitions. ``get_service(name)`` is the one lookup everything uses."""

from __future__ import annotations

from terraops.errors import ServiceNotFoundError
from terraops.services.base import ServiceDefinition
from terraops.services.flood import FLOOD
from terraops.services.uhi import UHI


def all_services() -> dict[str, ServiceDefinition]:
    """Every known service, by name. Adding a service is adding its module here."""
    return {service.name: service for service in (UHI, FLOOD)}


def get_service(name: str) -> ServiceDefinition:
    services = all_services()
    if name not in services:
        raise ServiceNotFoundError(
            f"unknown service {name!r}", hint=f"known services: {', '.join(sorted(services))}"
        )
    return services[name]


__all__ = ["ServiceDefinition", "all_services", "get_service"]
