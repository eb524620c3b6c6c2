"""The champion each server process serves, swapped without dropping a request.

One mechanism for every served model, tabular predictors and the segmenter
alike: a :class:`ModelHolder` per service, kept on the registry's champion by
one :class:`ChampionWatcher`. What a holder holds is whatever its loader makes
of the fetched model folder (a verified LightGBM predictor, or the segmenter's
bundle whose engines load on first use).

A :class:`ModelHolder` holds one immutable :class:`LoadedModel` per service.
A request reads ``holder.current`` once and uses that object for everything
(prediction, version in the body and headers), so a swap — one reference
assignment, atomic under the GIL — can never mix two versions in one response.

The :class:`ChampionWatcher` runs in a background thread (never on the event
loop): every ``poll_interval_s`` it asks the registry where ``champion``
points; on a change it fetches, loads and verifies the new version *before*
swapping it in, while requests go on with the old one. When the registry is
unreachable it keeps serving the last good model, and at start-up it falls
back to the last champion recorded in the local model cache (one small pointer
file per service), so a registry outage neither stops a running server nor
prevents a restart.

A swap asks as little of the serving process as it can, because every second
of loading is Python work that competes with the requests for the interpreter
(a 2-core machine under load turned a half-second load into request stalls):

- the model swapped out stays loaded, so a rollback to it, or a flip back and
  forth, is a reference assignment with no fetch and no load;
- what only ``?explain=true`` needs (``prepare``, e.g. the TreeSHAP tables) is
  built *after* the swap, in a thread of its own; before :meth:`ChampionWatcher.start`
  returns (no request served yet) it is built at once.

A holder can also be followed *on demand* (:meth:`ChampionWatcher.follow_on_demand`):
the registry is not asked about it until its first request
(:meth:`ChampionWatcher.ensure`), which loads the champion at once when none
is loaded; from then on the background poll follows it like the others. The
segmenter is followed so: a server that never segments never downloads it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Generic, Literal, Protocol

from typing_extensions import TypeVar

from terraops.adapters import atomic
from terraops.domain.promotion import CHALLENGER, CHAMPION
from terraops.errors import RegistryUnavailableError
from terraops.services.base import ServiceDefinition

log = logging.getLogger("terraops.serving")

RegistryStatus = Literal["ok", "unreachable", "unknown"]


class ServingRegistry(Protocol):
    """What the watcher needs from the registry (``ModelRegistry`` has it)."""

    def get_aliases(self, service: str) -> dict[str, int]: ...

    def fetch_model(self, service: str, version: int) -> Path: ...

    def get_version(self, service: str, version: int) -> Any:
        """The version's record (its ``run_id`` names the segmenter's lineage)."""
        ...


class LazyRegistry:
    """A :class:`ServingRegistry` built on its first call.

    Why: building the MLflow client costs seconds of imports, and an app whose
    only followed model is on demand must not pay them until it is asked.
    """

    def __init__(self, make: Callable[[], Any]) -> None:
        self._registry = cache(make)

    def get_aliases(self, service: str) -> dict[str, int]:
        result: dict[str, int] = self._registry().get_aliases(service)
        return result

    def fetch_model(self, service: str, version: int) -> Path:
        return Path(self._registry().fetch_model(service, version))

    def get_version(self, service: str, version: int) -> Any:
        return self._registry().get_version(service, version)


class Named(Protocol):
    """What a holder needs of the thing it serves: the registered model's name."""

    @property
    def name(self) -> str: ...


#: The definition a holder serves: a tabular service by default, or segmentation.
DefinitionT = TypeVar("DefinitionT", bound=Named, default=ServiceDefinition)

Loader = Callable[[Path, Any], Any]
"""Makes the served object from a fetched model folder and the holder's definition;
raises when the version must not be served (the watcher keeps the last good one)."""

Preparer = Callable[[Any], None]
"""Builds, on a served object, what only some requests need (explanation tables);
run once the object serves. May be slow; must not change what it predicts."""


def _now() -> datetime:
    return datetime.now(UTC)


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
    loaded_at: datetime = field(default_factory=_now)

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


class ModelHolder(Generic[DefinitionT]):
    """The current champion of one service; ``current`` is swapped by reference.

    ``loader`` overrides the watcher's for this holder (the segmenter's bundle
    is not a tabular predictor).
    """

    def __init__(self, definition: DefinitionT, loader: Loader | None = None) -> None:
        self.definition = definition
        self.loader = loader
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
        holders: dict[str, ModelHolder[Any]],
        registry: ServingRegistry,
        loader: Loader,
        *,
        cache_dir: Path,
        poll_interval_s: float,
        prepare: Preparer | None = None,
    ) -> None:
        self.holders = dict(holders)  # on-demand holders join this copy, not the caller's
        self.registry = registry
        self.loader = loader
        self.prepare = prepare
        self.cache_dir = cache_dir
        self.poll_interval_s = poll_interval_s
        self.registry_status: RegistryStatus = "unknown"
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bad_versions: dict[str, int] = {}
        self._not_asked_yet: set[str] = set()
        #: Per service, the folder of the version served now and the model swapped
        #: out last (with its folder): a rollback to it loads nothing.
        self._paths: dict[str, Path] = {}
        self._retired: dict[str, tuple[LoadedModel, Path]] = {}
        #: Until :meth:`start` returns, ``prepare`` runs at once (nothing is served yet).
        self._serving = False

    # ----- on-demand holders ------------------------------------------------------
    def follow_on_demand(self, holder: ModelHolder[Any]) -> None:
        """Follow ``holder`` too, from its first :meth:`ensure` on (call before :meth:`start`)."""
        service = holder.definition.name
        self.holders[service] = holder
        self._not_asked_yet.add(service)

    def ensure(self, service: str) -> LoadedModel | None:
        """The model ``service`` serves now; loads the champion at once when none is loaded.

        Blocking (call it off the event loop). Starts the background following of
        an on-demand holder. With nothing loaded, a registry outage raises
        :class:`~terraops.errors.RegistryUnavailableError` (the caller's 503).
        """
        self._not_asked_yet.discard(service)
        current = self.holders[service].current
        if current is not None:
            return current
        return self.refresh(service, strict=True)

    # ----- one service ----------------------------------------------------------
    def refresh(self, service: str, *, strict: bool = False) -> LoadedModel | None:
        """Follow the registry's champion for ``service`` now (blocking; thread-safe).

        ``strict``: an unreachable registry raises when nothing is loaded
        (otherwise the last good model, or ``None``, is returned).
        """
        holder = self.holders[service]
        with self._refresh_lock:
            try:
                snapshot = self.registry.get_aliases(service)
            except RegistryUnavailableError as exc:
                self._mark_unreachable(exc)
                if strict and holder.current is None:
                    raise
                return holder.current
            self.registry_status = "ok"
            holder.aliases = {a: snapshot.get(a) for a in (CHAMPION, CHALLENGER)}
            version = snapshot.get(CHAMPION)
            current = holder.current
            if version is None or (current is not None and current.version == version):
                return current
            if self._bad_versions.get(service) == version:
                return current  # already failed to load; wait for the alias to move
            retired = self._retired.get(service)
            if retired is not None and retired[0].version == version:
                return self._swap_in(holder, replace(retired[0], loaded_at=_now()), retired[1])
            return self._load_from_registry(holder, version, strict)

    def _load_from_registry(
        self, holder: ModelHolder[Any], version: int, strict: bool
    ) -> LoadedModel | None:
        service = holder.definition.name
        try:
            path = self.registry.fetch_model(service, version)
            predictor = (holder.loader or self.loader)(path, holder.definition)
        except RegistryUnavailableError as exc:
            self._mark_unreachable(exc)
            if strict and holder.current is None:
                raise
            return holder.current
        except Exception as exc:  # a bad artifact must never take the server down
            self._bad_versions[service] = version
            holder.last_error = f"v{version} could not be loaded: {exc}"
            log.error("%s: keeping the current model; %s", service, holder.last_error)
            return holder.current
        model = self._make(holder.definition, version, predictor, "registry")
        self._swap_in(holder, model, path)
        self._prepare(model)
        return model

    def _swap_in(self, holder: ModelHolder[Any], model: LoadedModel, path: Path) -> LoadedModel:
        """Serve ``model`` (fetched to ``path``); keep the one it replaces for a rollback."""
        service = holder.definition.name
        previous, previous_path = holder.current, self._paths.get(service)
        holder.swap(model)
        holder.last_error = None
        self._paths[service] = path
        if previous is not None and previous_path and previous.version != model.version:
            self._retired[service] = (previous, previous_path)
        self._write_pointer(service, model.version, path)
        log.info("%s: now serving v%s", service, model.version)
        return model

    def _prepare(self, model: LoadedModel) -> None:
        """Run ``prepare`` on a model that serves now: at once before :meth:`start`
        returns, else in a thread of its own (the swap never waits for it)."""
        if self.prepare is None:
            return
        if not self._serving:
            self._prepare_quietly(model)
            return
        name = f"prepare-{model.service}-v{model.version}"
        worker = threading.Thread(target=self._prepare_quietly, args=(model,), name=name)
        worker.daemon = True
        worker.start()

    def _prepare_quietly(self, model: LoadedModel) -> None:
        assert self.prepare is not None
        try:
            self.prepare(model.predictor)
        except Exception:  # the model serves; only its first explanation pays instead
            log.exception("%s v%s: preparing explanations failed", model.service, model.version)

    def _make(self, definition: Named, version: int, predictor: Any, source: Any) -> LoadedModel:
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
        payload = {"version": version, "path": str(path), "saved_at": datetime.now(UTC).isoformat()}
        atomic.atomic_write_text(self._pointer_path(service), json.dumps(payload), parents=True)

    def load_from_cache(self, service: str) -> LoadedModel | None:
        """Serve the last champion this host loaded, without the registry."""
        holder = self.holders[service]
        try:
            pointer = json.loads(self._pointer_path(service).read_text())
            predictor = (holder.loader or self.loader)(Path(pointer["path"]), holder.definition)
        except FileNotFoundError:
            return None
        except Exception as exc:
            holder.last_error = f"cached champion unusable: {exc}"
            log.error("%s: %s", service, holder.last_error)
            return None
        model = self._make(holder.definition, int(pointer["version"]), predictor, "cache")
        holder.swap(model)
        self._paths[service] = Path(pointer["path"])
        self._prepare(model)
        log.warning("%s: registry unreachable, serving cached v%s", service, model.version)
        return model

    # ----- all services, in the background ---------------------------------------
    def poll_once(self) -> None:
        for service, holder in list(self.holders.items()):
            if service in self._not_asked_yet:
                continue
            self.refresh(service)
            if holder.current is None and self.registry_status == "unreachable":
                self.load_from_cache(service)

    def start(self) -> None:
        """Initial load (blocking, explanations prepared), then poll in a daemon thread."""
        self.poll_once()
        self._serving = True
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
