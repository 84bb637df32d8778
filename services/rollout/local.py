"""Local rollout: hot-swap a model version inside the running predictor with no failed request.

Steps for ``rollout(model, version, serving_uri)``:

1. Make sure ``$KFCHAIN_HOME/serving/<model>/<version>/model.joblib`` exists (copy it there from
   ``serving_uri`` if that points elsewhere: a path, ``file://`` URI or ``pvc://model-pvc/<model>/<version>``).
2. Ask the predictor to load it *beside* the current version (``POST /kfchain/v1/models/<m>/versions/<v>/load``).
3. Check it answers: a V1 predict on that version with one row per species must return 3 well-formed answers.
4. Write ``current.json`` atomically (so a predictor restart serves the new version), then switch the
   predictor over in one step (``POST /kfchain/v1/models/<m>/activate``). The previous version stays
   loaded for rollback. If the switch fails the pointer is put back.

Any failure raises :class:`RolloutFailed` naming the version still serving, which never stopped.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

from events.envvars import env_seconds
from events.settings import kfchain_home
from services.predictor.store import MODEL_FILE, ServingStore, check_name
from services.rollout.base import RolloutFailed, RolloutOutcome

# One row per species; a loaded version must answer all three before it gets traffic.
PROBE_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.1, 2.8, 4.7, 1.2], [6.9, 3.1, 5.4, 2.1]]


@dataclass(frozen=True)
class LocalRolloutSettings:
    """Where the predictor and the serving store are."""

    home: Path = Path(".kfchain")
    predictor_url: str = "http://127.0.0.1:8080"
    timeout_s: float = 60.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LocalRolloutSettings:
        """Read ``KFCHAIN_HOME``, ``KFCHAIN_PREDICTOR_URL`` and ``KFCHAIN_ROLLOUT_TIMEOUT`` (seconds)."""
        env = os.environ if env is None else env
        return cls(
            home=kfchain_home(env),
            predictor_url=(env.get("KFCHAIN_PREDICTOR_URL") or "http://127.0.0.1:8080").rstrip("/"),
            timeout_s=env_seconds(env, "KFCHAIN_ROLLOUT_TIMEOUT", 60.0),
        )


class LocalRollout:
    """:class:`services.rollout.base.RolloutBackend` for the local predictor process."""

    def __init__(self, settings: LocalRolloutSettings, client: httpx.Client | None = None):
        self.settings = settings
        self.store = ServingStore(settings.home / "serving")
        self.client = client or httpx.Client(base_url=settings.predictor_url, timeout=settings.timeout_s)
        self._lock = threading.Lock()  # one rollout at a time per backend

    def current_version(self, model_name: str) -> str | None:
        """The version the serving store marks current (what the predictor serves after a restart)."""
        pointer = self.store.read_pointer(model_name)
        return pointer.current if pointer else None

    def rollout(self, model_name: str, model_version: str, serving_uri: str) -> RolloutOutcome:
        """Load, check and switch to ``model_version``; see the module docstring for the steps."""
        with self._lock:
            return self._rollout(model_name, model_version, serving_uri)

    def _rollout(self, model_name: str, model_version: str, serving_uri: str) -> RolloutOutcome:
        serving = self._serving_now(model_name)
        try:
            check_name("model name", model_name)
            check_name("model version", model_version)
        except ValueError as error:
            raise RolloutFailed(str(error), serving) from None
        endpoint = f"{self.settings.predictor_url}/v1/models/{model_name}:predict"
        pointer = self.store.read_pointer(model_name)
        if serving == model_version and pointer is not None and pointer.current == model_version:
            return RolloutOutcome(endpoint, 100, pointer.previous, unchanged=True)

        self._place_model_file(model_name, model_version, serving_uri, serving)
        admin = f"/kfchain/v1/models/{model_name}"
        self._call("POST", f"{admin}/versions/{model_version}/load", serving, f"load {model_version}")
        answer = self._call(
            "POST",
            f"{admin}/versions/{model_version}:predict",
            serving,
            f"probe {model_version}",
            json={"instances": PROBE_ROWS, "probabilities": True},
        )
        self._check_probe(answer, model_version, serving)

        previous = serving
        old_pointer = pointer
        self.store.write_pointer(model_name, model_version, previous)
        try:
            self._call(
                "POST",
                f"{admin}/activate",
                serving,
                f"switch to {model_version}",
                json={"version": model_version},
            )
        except RolloutFailed:
            if old_pointer is None:
                self.store.pointer_path(model_name).unlink(missing_ok=True)
            else:
                self.store.write_pointer(model_name, old_pointer.current, old_pointer.previous)
            raise
        return RolloutOutcome(endpoint, 100, previous)

    # -- steps ----------------------------------------------------------------------------------
    def _serving_now(self, model_name: str) -> str | None:
        """The version the predictor is answering with (falls back to the store's pointer if it is down)."""
        try:
            response = self.client.get(f"/kfchain/v1/models/{model_name}")
            if response.status_code == 200:
                return response.json().get("current")
        except httpx.HTTPError:
            pass
        return self.current_version(model_name)

    def _place_model_file(
        self, model_name: str, model_version: str, serving_uri: str, serving: str | None
    ) -> None:
        target = self.store.model_path(model_name, model_version)
        source = self._resolve(serving_uri, model_name, model_version)
        if source is None or source.resolve() == target.resolve():
            if not target.is_file():
                raise RolloutFailed(
                    f"{target} does not exist and serving_uri {serving_uri!r} names no other file", serving
                )
            return
        if not source.is_file():
            raise RolloutFailed(f"serving_uri {serving_uri!r}: {source} does not exist", serving)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".model-", dir=target.parent)
        os.close(fd)
        try:
            shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _resolve(self, serving_uri: str, model_name: str, model_version: str) -> Path | None:
        """The local file ``serving_uri`` names, or None for "already in the serving store"."""
        if not serving_uri:
            return None
        parsed = urlparse(serving_uri)
        if parsed.scheme == "pvc":
            # pvc://<claim>/<model>/<version>: the serving store stands in for every claim.
            path = self.store.root / parsed.path.lstrip("/")
        elif parsed.scheme == "file":
            path = Path(parsed.path)
        elif parsed.scheme in ("", None) or len(parsed.scheme) == 1:  # plain path (or a Windows drive)
            path = Path(serving_uri)
        else:
            raise RolloutFailed(
                f"serving_uri {serving_uri!r}: the local backend reads files only (a path, file:// or pvc://)",
                self._serving_now(model_name),
            )
        return path / MODEL_FILE if path.is_dir() or not path.suffix else path

    def _call(self, method: str, path: str, serving: str | None, what: str, json: Any = None) -> dict:
        try:
            response = self.client.request(method, path, json=json)
        except httpx.HTTPError as error:
            raise RolloutFailed(
                f"{what}: predictor at {self.settings.predictor_url} did not answer ({type(error).__name__}: {error}); "
                "start it with `python -m services.predictor`",
                serving,
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = {"error": response.text[:300]}
        if response.status_code != 200:
            raise RolloutFailed(
                f"{what}: predictor answered {response.status_code}: {body.get('error', body)}", serving
            )
        return body

    def _check_probe(self, answer: dict, model_version: str, serving: str | None) -> None:
        predictions = answer.get("predictions")
        species = answer.get("species")
        if (
            answer.get("model_version") != model_version
            or not isinstance(predictions, list)
            or len(predictions) != len(PROBE_ROWS)
            or not isinstance(species, list)
            or not all(isinstance(s, str) and s for s in species)
        ):
            raise RolloutFailed(f"probe {model_version}: malformed answer {answer!r:.300}", serving)
