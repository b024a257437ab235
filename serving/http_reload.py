"""The champions and feature snapshot one worker scores with: loaded and checked together at start-up and on
``/reload``. Workers share no memory, so the one that takes ``/reload`` touches a marker file beside the
snapshot and the others load the new set in the background on their next request, serving the old meanwhile."""

from __future__ import annotations

import json
import logging
import threading

from serving.champions import Models
from serving.config import ServingConfig
from serving.http_errors import public
from serving.http_health import HEALTH, NOT_READY
from serving.http_log import log
from serving.models import load_models
from serving.schema import LIFECYCLE_COLUMNS
from serving.store import SQLiteStore

errors = logging.getLogger(__name__)


class Champions:
    """What this worker scores with (``store``, ``models``), or why it cannot (``unready``); its health is the
    one the Gate reports."""

    def __init__(self, config: ServingConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._marker = config.store_path.with_name(config.store_path.name + ".reload")
        self._generation = self._marker_time()
        self._reloading = False
        self.store: SQLiteStore | None = None
        self.models: Models | None = None
        self.unready = None
        HEALTH["check"] = self.health

    @property
    def unready(self) -> str | None:
        """Why there is nothing to score with (None: ready); shared with the Gate of this worker."""
        return NOT_READY.get("reason")

    @unready.setter
    def unready(self, reason: str | None) -> None:
        if reason is None:
            NOT_READY.pop("reason", None)
        else:
            NOT_READY["reason"] = reason

    def not_ready(self) -> str:
        """The 503 message while nothing is loaded."""
        return f"not ready: {self.unready or 'the models are not loaded'}"

    def health(self) -> tuple[str | None, str | None]:
        """(why this worker cannot score, why it answers from an older snapshot); None when all is well."""
        if self.unready or self.models is None or self.store is None:
            return self.unready or "the models are not loaded", None
        self.store.refresh()
        return self.store.broken, self.store.problem

    def start(self) -> None:
        """The first load: any fault leaves the service up but not ready (with the reason), never in a crash loop."""
        try:
            self.store, self.models = self.load()
        except Exception as exc:
            errors.error("not ready: %s", exc)
            self.unready = public(exc)

    def load(self) -> tuple[SQLiteStore, Models]:
        """A checked snapshot and the champions that fit it; raises ModelError or StoreError saying why not."""
        store = SQLiteStore(self.config.store_path)
        models = load_models(self.config)
        self._check(models, store.columns)
        store.accept = lambda columns: self._check(models, columns)  # a refreshed snapshot must fit them too
        return store, models

    def _check(self, models: Models, columns: list[str]) -> None:
        snapshot = [c for c in columns if c not in LIFECYCLE_COLUMNS]
        models.check_features(snapshot, source=f"the feature snapshot {self.config.store_path.name}")

    def swap(self, store: SQLiteStore, models: Models) -> None:
        """Score with a new set from now on and tell the other workers to follow."""
        self.store, self.models, self.unready = store, models, None
        try:
            self._marker.parent.mkdir(parents=True, exist_ok=True)
            self._marker.write_text(json.dumps(models.versions))
        except OSError as exc:
            errors.error("could not tell the other workers (%s): they keep their models", exc)
        self._generation = self._marker_time()
        log.info("reloaded %s", models.versions)

    def _marker_time(self) -> int:
        try:
            return self._marker.stat().st_mtime_ns
        except OSError:
            return 0

    def follow(self) -> None:
        """Another worker took /reload: load the new champions in the background, keep serving the old."""
        stamp = self._marker_time()
        if stamp == self._generation or self._reloading:
            return
        with self._lock:
            if self._reloading:
                return
            self._reloading = True

        def work():
            try:
                self.store, self.models = self.load()
                self.unready = None
                log.info("followed a reload: %s", self.models.versions)
            except Exception as exc:  # keep serving the models we have
                kept = self.models.versions if self.models is not None else self.unready
                errors.error("reload failed (%s); keeping %s", exc, kept)
            finally:
                self._generation, self._reloading = stamp, False

        threading.Thread(target=work, daemon=True).start()
