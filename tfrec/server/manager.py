"""The model manager: keeps, for every configured model, the versions its policy wants loaded, and resolves a
request's ModelSpec to one of them.

Each poll (every `poll_interval_s`, and once synchronously at start) lists `<base_path>/<integer>/` directories
and, per model:
- loads each version the policy wants that is not loaded: load the SavedModel → replay its warm-up records →
  swap it into the model's version map (the map is replaced, never mutated, so a request in flight keeps the
  version it resolved, and no request ever sees a half-loaded one);
- unloads the versions the policy no longer wants (requests already holding them finish normally);
- when a version fails to load it is recorded (GetModelStatus: END with the error) and left out of the policy, so
  the previously served version stays; it is retried only once its directory changes (files, sizes, times).
A base path that does not exist (e.g. a network mount that went away) keeps the versions already loaded.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

import grpc
import tensorflow as tf
from tensorflow_serving.apis import get_model_status_pb2, model_pb2

from tfrec.server.config import ModelServerConfig, check_model_server_config
from tfrec.server.errors import as_serving_error, not_found
from tfrec.server.policy import ModelConfig, allowed_versions, versions_on_disk
from tfrec.server.servable import Servable
from tfrec.server.warmup import run_warmup

log = logging.getLogger(__name__)
State = get_model_status_pb2.ModelVersionStatus.State


@dataclasses.dataclass(frozen=True)
class VersionStatus:
    """What GetModelStatus reports for a version: a ModelVersionStatus.State and an error (OK when none)."""

    state: int
    error_code: grpc.StatusCode = grpc.StatusCode.OK
    error_message: str = ""


def directory_fingerprint(path: str) -> Tuple:
    """(relative path, size, mtime) of every file under a version directory: a failed version is retried only when
    this changes."""
    entries = []
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            try:
                stat = os.stat(full)
            except OSError:
                continue
            entries.append((os.path.relpath(full, path), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(entries))


class _Model:
    def __init__(self, config: ModelConfig):
        self.config = config
        self.versions: Dict[int, Servable] = {}  # replaced on every change (copy-on-write)
        self.status: Dict[int, VersionStatus] = {}
        self.failed: Dict[int, Tuple] = {}  # version → fingerprint of the directory that failed to load
        self.missing_warned = False


Loader = Callable[[str, int, str], Servable]


class ModelManager:
    """Loads, swaps and unloads model versions by policy (see the module docstring); thread-safe."""

    def __init__(self, config: ModelServerConfig, poll_interval_s: float = 1.0, warmup: bool = True,
                 loader: Loader = Servable, on_load: Optional[Callable[[str, int, bool, float], None]] = None):
        check_model_server_config(config, "model server config")
        self.poll_interval_s = float(poll_interval_s)
        self._warmup, self._loader, self._on_load = warmup, loader, on_load
        self._lock = threading.Lock()  # guards self._models and each model's version map
        self._poll_lock = threading.Lock()  # one poll pass (or reload) at a time
        self._models: Dict[str, _Model] = {m.name: _Model(m) for m in config.model_config_list.config}
        self._stopped = threading.Event()
        self._thread: Optional[threading.Thread] = None

    # -- lifecycle --------------------------------------------------------------------------------------------------
    def start(self) -> "ModelManager":
        """Loads what the policies want now (blocking, like TF Serving's start-up), then polls in the background
        every poll_interval_s (not at all when it is 0)."""
        self.poll_once()
        if self.poll_interval_s > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._poll_loop, name="tfrec-model-poller", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stops polling (loaded versions stay usable until the manager is dropped)."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _poll_loop(self) -> None:
        while not self._stopped.wait(self.poll_interval_s):
            try:
                self.poll_once()
            except Exception:  # never let the poller die
                log.exception("model poll failed")

    def poll_once(self) -> None:
        """One pass over every model's base path (see the module docstring)."""
        with self._poll_lock:
            for model in list(self._models.values()):
                self._sync(model)

    def reload_config(self, config: ModelServerConfig, source: str = "ReloadConfigRequest") -> None:
        """Serves a new model list: new models (or models whose base_path changed) are loaded before they become
        visible, removed models are dropped, kept models follow their new policy and labels. ConfigError when
        the config is not servable (nothing changes then)."""
        check_model_server_config(config, source)
        with self._poll_lock:
            current, models = dict(self._models), {}
            for mc in config.model_config_list.config:
                old = current.get(mc.name)
                if old is not None and old.config.base_path == mc.base_path:
                    models[mc.name] = old
                else:
                    models[mc.name] = _Model(mc)
                    self._sync(models[mc.name])  # load before it is visible
            with self._lock:
                self._models = models
                for mc in config.model_config_list.config:
                    models[mc.name].config = mc
            for name, model in models.items():
                if current.get(name) is model:
                    self._sync(model)

    # -- loading ----------------------------------------------------------------------------------------------------
    def _sync(self, model: _Model) -> None:
        base = model.config.base_path
        try:
            if not os.path.isdir(base):
                if not model.missing_warned:
                    log.warning("model %s: base path %s does not exist", model.config.name, base)
                model.missing_warned = True
                return
            model.missing_warned = False
            on_disk = versions_on_disk(base)
            for version, fingerprint in list(model.failed.items()):
                if version not in on_disk or directory_fingerprint(on_disk[version]) != fingerprint:
                    del model.failed[version]  # changed or gone: may be retried
            while True:  # a failed load leaves the policy to pick another version, e.g. the previous one
                wanted = allowed_versions(model.config, [v for v in on_disk if v not in model.failed])
                missing = sorted(wanted - set(model.versions))
                if not missing or self._stopped.is_set():
                    break
                for version in missing:
                    self._load(model, version, on_disk[version])
            for version in sorted(set(model.versions) - wanted):
                self._unload(model, version)
        except Exception:
            log.exception("model %s: polling %s failed", model.config.name, base)

    def _load(self, model: _Model, version: int, path: str) -> None:
        name = model.config.name
        fingerprint = directory_fingerprint(path)
        model.status[version] = VersionStatus(State.LOADING)
        start = time.monotonic()
        try:
            servable = self._loader(name, version, path)
            if self._warmup:
                run_warmup(servable)
        except Exception as exc:
            model.failed[version] = fingerprint
            message = f"loading {path} failed: {type(exc).__name__}: {exc}"
            code = as_serving_error(exc).code if isinstance(exc, tf.errors.OpError) else grpc.StatusCode.UNKNOWN
            model.status[version] = VersionStatus(State.END, code, message)
            log.error("model %s version %d: %s", name, version, message)
            self._report(name, version, False, time.monotonic() - start)
            return
        with self._lock:
            model.versions = {**model.versions, version: servable}
        model.status[version] = VersionStatus(State.AVAILABLE)
        log.info("model %s version %d is available (%.2fs)", name, version, time.monotonic() - start)
        self._report(name, version, True, time.monotonic() - start)

    def _unload(self, model: _Model, version: int) -> None:
        model.status[version] = VersionStatus(State.UNLOADING)
        with self._lock:
            model.versions = {v: s for v, s in model.versions.items() if v != version}
        model.status[version] = VersionStatus(State.END)
        log.info("model %s version %d unloaded", model.config.name, version)

    def _report(self, name: str, version: int, ok: bool, seconds: float) -> None:
        if self._on_load is not None:
            try:
                self._on_load(name, version, ok, seconds)
            except Exception:
                log.exception("on_load callback failed")

    # -- queries ----------------------------------------------------------------------------------------------------
    def _model(self, name: str) -> _Model:
        with self._lock:
            model = self._models.get(name)
        if model is None:
            raise not_found(f"Servable not found for request: Latest({name}): no model named {name!r} "
                            f"(serving {sorted(self._models)})")
        return model

    def resolve(self, spec: model_pb2.ModelSpec) -> Servable:
        """The loaded version a ModelSpec asks for: `version`, else `version_label`, else the latest; NOT_FOUND
        when the model, version or label is unknown or the version is not loaded."""
        model = self._model(spec.name)
        with self._lock:
            versions, labels = model.versions, dict(model.config.version_labels)
        which = spec.WhichOneof("version_choice")
        if which == "version":
            servable = versions.get(spec.version.value)
            if servable is None:
                raise not_found(f"Servable not found for request: Specific({spec.name}, {spec.version.value}); "
                                f"loaded versions: {sorted(versions)}")
            return servable
        if which == "version_label":
            label = spec.version_label
            if label not in labels:
                raise not_found(f"Unrecognized servable version label: {label!r} for model {spec.name} "
                                f"(labels: {sorted(labels)})")
            servable = versions.get(labels[label])
            if servable is None:
                raise not_found(f"version label {label!r} of model {spec.name} points to version {labels[label]}, "
                                f"which is not loaded (loaded: {sorted(versions)})")
            return servable
        if not versions:
            raise not_found(f"Servable not found for request: Latest({spec.name}): no version is loaded")
        return versions[max(versions)]

    def version_statuses(self, name: str, version: Optional[int] = None) -> List[Tuple[int, VersionStatus]]:
        """(version, status) of every version the manager has seen for a model (newest first), or of one version;
        NOT_FOUND for an unknown model or version."""
        model = self._model(name)
        statuses = dict(model.status)
        if version is not None:
            if version not in statuses:
                raise not_found(f"Could not find version {version} of model {name}")
            return [(version, statuses[version])]
        return sorted(statuses.items(), reverse=True)

    def has_model(self, name: str) -> bool:
        """Whether `name` is a configured model."""
        with self._lock:
            return name in self._models

    def loaded(self) -> Dict[str, List[int]]:
        """Model name → loaded versions (ascending)."""
        with self._lock:
            return {name: sorted(m.versions) for name, m in self._models.items()}
