"""The champion each server process serves, swapped without dropping a request.

A :class:`ModelHolder` holds one immutable :class:`LoadedModel` per service.
A request reads ``holder.current`` once and uses that object for everything
(prediction, version in the body and headers), so a swap — one reference
assignment, atomic under the GIL — can never mix two versions in one response.

The :class:`ChampionWatcher` runs in a background thread (never on the event
loop): every ``poll_interval_s`` it asks the registry where ``champion``
points; on a change it fetches, loads and warms the new version *before*
swapping it in. When the registry is unreachable it keeps serving the last good
model, and at start-up it falls back to the last champion recorded in the local
model cache (one small pointer file per service), so a registry outage neither
stops a running server nor prevents a restart.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from terraops.domain.promotion import CHALLENGER, CHAMPION
from terraops.errors import RegistryUnavailableError
from terraops.services.base import ServiceDefinition

log = logging.getLogger("terraops.serving")

RegistryStatus = Literal["ok", "unreachable", "unknown"]


class ServingRegistry(Protocol):
    """What the watcher needs from the registry (``ModelRegistry`` has it)."""

    def get_aliases(self, service: str) -> dict[str, int]: ...

    def fetch_model(self, service: str, version: int) -> Path: ...


Loader = Callable[[Path, ServiceDefinition], Any]


@dataclass(frozen=True)
class LoadedModel:
    """One loaded, warmed model version; never mutated after creation."""

    service: str
    name: str
    version: int
    alias: str
    predictor: Any
    feature_names: tuple[str, ...]
    source: Literal["registry", "cache"]
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def ref(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "alias": self.alias}

    @property
    def headers(self) -> dict[str, str]:
        return {
            "X-Model-Name": self.name,
            "X-Model-Version": str(self.version),
            "X-Model-Alias": self.alias,
        }


class ModelHolder:
    """The current champion of one service; ``current`` is swapped by reference."""

    def __init__(self, definition: ServiceDefinition) -> None:
        self.definition = definition
        self.current: LoadedModel | None = None
        self.aliases: dict[str, int | None] = {}
        self.last_error: str | None = None
        #: Called after every swap (metrics count reloads); must be quick and not raise.
        self.on_swap: list[Callable[[LoadedModel], None]] = []

    def swap(self, model: LoadedModel) -> None:
        self.current = model
        for listener in self.on_swap:
            listener(model)


class ChampionWatcher:
    """Keeps every holder on the registry's champion; see the module docstring."""

    def __init__(
        self,
        holders: dict[str, ModelHolder],
        registry: ServingRegistry,
        loader: Loader,
        *,
        cache_dir: Path,
        poll_interval_s: float,
    ) -> None:
        self.holders = holders
        self.registry = registry
        self.loader = loader
        self.cache_dir = cache_dir
        self.poll_interval_s = poll_interval_s
        self.registry_status: RegistryStatus = "unknown"
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bad_versions: dict[str, int] = {}

    # ----- one service ----------------------------------------------------------
    def refresh(self, service: str) -> LoadedModel | None:
        """Follow the registry's champion for ``service`` now (blocking; thread-safe)."""
        holder = self.holders[service]
        with self._refresh_lock:
            try:
                snapshot = self.registry.get_aliases(service)
            except RegistryUnavailableError as exc:
                self._mark_unreachable(exc)
                return holder.current
            self.registry_status = "ok"
            holder.aliases = {a: snapshot.get(a) for a in (CHAMPION, CHALLENGER)}
            version = snapshot.get(CHAMPION)
            current = holder.current
            if version is None or (current is not None and current.version == version):
                return current
            if self._bad_versions.get(service) == version:
                return current  # already failed to load; wait for the alias to move
            return self._load_from_registry(holder, version)

    def _load_from_registry(self, holder: ModelHolder, version: int) -> LoadedModel | None:
        service = holder.definition.name
        try:
            path = self.registry.fetch_model(service, version)
            predictor = self.loader(path, holder.definition)
        except RegistryUnavailableError as exc:
            self._mark_unreachable(exc)
            return holder.current
        except Exception as exc:  # a bad artifact must never take the server down
            self._bad_versions[service] = version
            holder.last_error = f"v{version} could not be loaded: {exc}"
            log.error("%s: keeping the current model; %s", service, holder.last_error)
            return holder.current
        model = self._make(holder.definition, version, predictor, "registry")
        holder.swap(model)
        holder.last_error = None
        self._write_pointer(service, version, path)
        log.info("%s: now serving v%s", service, version)
        return model

    def _make(
        self, definition: ServiceDefinition, version: int, predictor: Any, source: Any
    ) -> LoadedModel:
        return LoadedModel(
            service=definition.name,
            name=definition.name,  # the registered model is named after its service
            version=version,
            alias=CHAMPION,
            predictor=predictor,
            feature_names=tuple(predictor.feature_names),
            source=source,
        )

    def _mark_unreachable(self, exc: Exception) -> None:
        if self.registry_status != "unreachable":
            log.warning("registry unreachable, serving the last good models: %s", exc)
        self.registry_status = "unreachable"

    # ----- local pointer to the last good champion ------------------------------
    def _pointer_path(self, service: str) -> Path:
        return self.cache_dir / service / "champion.json"

    def _write_pointer(self, service: str, version: int, path: Path) -> None:
        """Atomically remember the last champion this host loaded (for cold starts)."""
        pointer = self._pointer_path(service)
        pointer.parent.mkdir(parents=True, exist_ok=True)
        tmp = pointer.with_name(f".champion.{os.getpid()}.{threading.get_ident()}.tmp")
        payload = {"version": version, "path": str(path), "saved_at": datetime.now(UTC).isoformat()}
        tmp.write_text(json.dumps(payload))
        os.replace(tmp, pointer)

    def load_from_cache(self, service: str) -> LoadedModel | None:
        """Serve the last champion this host loaded, without the registry."""
        holder = self.holders[service]
        try:
            pointer = json.loads(self._pointer_path(service).read_text())
            predictor = self.loader(Path(pointer["path"]), holder.definition)
        except FileNotFoundError:
            return None
        except Exception as exc:
            holder.last_error = f"cached champion unusable: {exc}"
            log.error("%s: %s", service, holder.last_error)
            return None
        model = self._make(holder.definition, int(pointer["version"]), predictor, "cache")
        holder.swap(model)
        log.warning("%s: registry unreachable, serving cached v%s", service, model.version)
        return model

    # ----- all services, in the background ---------------------------------------
    def poll_once(self) -> None:
        for service, holder in self.holders.items():
            self.refresh(service)
            if holder.current is None and self.registry_status == "unreachable":
                self.load_from_cache(service)

    def start(self) -> None:
        """Initial load (blocking), then poll in a daemon thread."""
        self.poll_once()
        self._thread = threading.Thread(target=self._run, name="champion-watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            try:
                self.poll_once()
            except Exception:  # keep polling whatever happens
                log.exception("champion watcher poll failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
