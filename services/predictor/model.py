"""The served model: one ``kserve.Model`` holding the current version, the previous one and a staged one.

A version is loaded *beside* the current one (:meth:`IrisModel.stage`), checked, then made current
with one reference assignment on the event loop (:meth:`IrisModel.activate`): requests already
running finish on the version they started with, the next request sees the new one, none fail.

In model-dir mode (a :class:`~services.predictor.store.ModelDirectory`, KServe's ``/mnt/models``) the
model serves that one version for its whole life: KServe rolls out a new version as a new revision.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from kserve import Model
from kserve.errors import InvalidInput, ModelNotReady
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
from prometheus_client import Gauge

from services.predictor.fastknn import FastKnn, compile_fast_knn
from services.predictor.protocol import InvalidRequest, PredictRequest, encode_v1, parse_v1, v2_response
from services.predictor.store import ModelDirectory, ServingStore

log = logging.getLogger(__name__)

# Batches at least this large are computed in a worker thread so the event loop keeps serving.
THREAD_BATCH = 64


class ModelLoadError(RuntimeError):
    """A version could not be loaded; the message says which file and why."""


class FixedVersionError(RuntimeError):
    """Model-dir mode was asked to load or activate another version; the message says why it cannot."""

    def __init__(self, directory: ModelDirectory, asked: str):
        super().__init__(
            f"this predictor runs in model-dir mode: it serves only version {directory.version!r} from "
            f"{directory.path}, so it cannot load or activate {asked!r}; roll out another version by "
            "changing the InferenceService's storageUri (a new revision), or run it in store mode "
            "(unset KFCHAIN_PREDICTOR_MODEL_DIR)"
        )
        self.directory = directory
        self.asked = asked


@dataclass
class Prediction:
    """Answers for a batch: class labels, species names, probabilities (rows of n_classes)."""

    classes: list[Any]
    species: list[str]
    probabilities: list[list[float]]


@dataclass
class LoadedVersion:
    """One model version in memory, with its fast path (if recognised) and a small row cache."""

    version: str
    estimator: Any
    fast: FastKnn | None
    species_names: tuple[str, ...]
    cache_size: int
    classes: list[Any] = field(default_factory=list)
    _cache: dict[tuple[float, ...], tuple[int, list[float]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.classes = [c.item() if hasattr(c, "item") else c for c in self.estimator.classes_]

    def species_of(self, label: Any) -> str:
        if isinstance(label, int) and 0 <= label < len(self.species_names):
            return self.species_names[label]
        return str(label)

    def predict(self, rows: list[list[float]]) -> Prediction:
        """Predict ``rows`` exactly as ``estimator.predict``/``predict_proba`` would (see fastknn)."""
        answers: list[tuple[int, list[float]] | None]
        answers = [self._predict_one(rows[0])] if len(rows) == 1 else self._predict_many(rows)
        missing = [i for i, answer in enumerate(answers) if answer is None]
        if missing:
            proba = self.estimator.predict_proba(np.asarray([rows[i] for i in missing], dtype=np.float64))
            labels = self.estimator.predict(np.asarray([rows[i] for i in missing], dtype=np.float64))
            index_of = {c: i for i, c in enumerate(self.classes)}
            for i, p, label in zip(missing, proba.tolist(), labels.tolist(), strict=True):
                answers[i] = (index_of[label], p)
                self._remember(rows[i], answers[i])  # type: ignore[arg-type]
        classes = [self.classes[a[0]] for a in answers]  # type: ignore[index]
        return Prediction(
            classes=classes,
            species=[self.species_of(c) for c in classes],
            probabilities=[a[1] for a in answers],  # type: ignore[index]
        )

    def _predict_one(self, row: list[float]) -> tuple[int, list[float]] | None:
        key = tuple(row)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        if self.fast is None:
            return None
        answer = self.fast.predict_one(row)
        if answer is not None:
            self._remember(row, answer)
        return answer

    def _predict_many(self, rows: list[list[float]]) -> list[tuple[int, list[float]] | None]:
        if self.fast is None:
            return [None] * len(rows)
        proba, undecided = self.fast.predict_proba(np.asarray(rows, dtype=np.float64))
        best = np.argmax(proba, axis=1).tolist()
        proba_rows = proba.tolist()
        return [None if undecided[i] else (best[i], proba_rows[i]) for i in range(len(rows))]

    def _remember(self, row: list[float], answer: tuple[int, list[float]]) -> None:
        if self.cache_size <= 0:
            return
        if len(self._cache) >= self.cache_size:
            self._cache.clear()  # cheap bound; hot rows come back within a few requests
        self._cache[tuple(row)] = answer


def load_version(path: Path, version: str, species: tuple[str, ...], cache_size: int) -> LoadedVersion:
    """Load ``model.joblib`` at ``path`` and check it is a classifier that takes 4 features."""
    if not path.is_file():
        raise ModelLoadError(
            f"{path} does not exist; copy the version's model.joblib there before rolling it out"
        )
    try:
        estimator = joblib.load(path)
    except Exception as error:  # a truncated or foreign file: any unpickling error
        raise ModelLoadError(
            f"{path} is not a loadable joblib model ({type(error).__name__}: {error})"
        ) from None
    if (
        not hasattr(estimator, "predict")
        or not hasattr(estimator, "predict_proba")
        or not hasattr(estimator, "classes_")
    ):
        raise ModelLoadError(
            f"{path} holds a {type(estimator).__name__}, not a fitted scikit-learn classifier"
        )
    n_features = getattr(estimator, "n_features_in_", 4)
    if n_features != 4:
        raise ModelLoadError(
            f"{path} expects {n_features} features; kfchain serves models trained on 4 iris features"
        )
    fast = compile_fast_knn(estimator)
    if fast is None:
        log.info(
            "version %s (%s) has no fast path; scikit-learn serves it", version, type(estimator).__name__
        )
    loaded = LoadedVersion(version, estimator, fast, species, cache_size)
    loaded.predict([[5.1, 3.5, 1.4, 0.2]])  # fail at load time, not on the first request
    return loaded


MODEL_INFO = Gauge(
    "kfchain_predictor_model_info",
    "1 for the model version this predictor serves now (label model_version), 0 for versions it served before",
    ["model_name", "model_version"],
)


class IrisModel(Model):
    """``kserve.Model`` serving the current version of one model from the serving store."""

    def __init__(
        self,
        name: str,
        store: ServingStore,
        species: tuple[str, ...],
        cache_size: int,
        max_batch: int,
        model_dir: ModelDirectory | None = None,
    ):
        super().__init__(name, return_response_headers=True)
        self.store = store
        self.model_dir = model_dir  # set: model-dir mode, one fixed version; None: the serving store
        self.species = species
        self.cache_size = cache_size
        self.max_batch = max_batch
        self.current: LoadedVersion | None = None
        self.previous: LoadedVersion | None = None
        self.staged: dict[str, LoadedVersion] = {}
        self.ready = False

    # -- lifecycle -------------------------------------------------------------------------------
    def load(self) -> bool:
        """Serve the version marked current in the serving store; not ready if there is none yet.

        In model-dir mode, serve the directory's model.joblib or raise :class:`ModelLoadError`."""
        if self.model_dir is not None:
            self._serve(self._load_directory(self.model_dir))
            self.ready = True
            return True
        pointer = self.store.read_pointer(self.name)
        if pointer is None:
            log.warning("no version of %s rolled out yet under %s; not ready", self.name, self.store.root)
            return False
        self._serve(self._load(pointer.current))
        self.ready = True
        return True

    def _serve(self, loaded: LoadedVersion) -> None:
        """Make ``loaded`` current (one assignment) and say so in the metrics."""
        if self.current is not None:
            MODEL_INFO.labels(self.name, self.current.version).set(0)
        self.current = loaded
        MODEL_INFO.labels(self.name, loaded.version).set(1)

    def _load_directory(self, directory: ModelDirectory) -> LoadedVersion:
        if not directory.path.is_dir():
            raise ModelLoadError(
                f"model directory {directory.path} does not exist (KFCHAIN_PREDICTOR_MODEL_DIR or --model_dir); "
                "on KServe it is /mnt/models, where the storageUri is mounted"
            )
        try:
            return load_version(directory.model_path, directory.version, self.species, self.cache_size)
        except ModelLoadError as error:
            raise ModelLoadError(
                f"model-dir mode: {error} (the storageUri must name a folder holding {directory.model_path.name})"
            ) from None

    def _load(self, version: str) -> LoadedVersion:
        return load_version(self.store.model_path(self.name, version), version, self.species, self.cache_size)

    async def stage(self, version: str) -> LoadedVersion:
        """Load ``version`` beside the current one (in a thread: joblib and a warm-up predict)."""
        if self.current is not None and self.current.version == version:
            return self.current
        if self.model_dir is not None:
            raise FixedVersionError(self.model_dir, version)
        loaded = await asyncio.to_thread(self._load, version)
        self.staged = {version: loaded}  # keep only the newest candidate
        return loaded

    def loaded(self, version: str) -> LoadedVersion | None:
        """The in-memory version ``version`` (current, previous or staged), if any."""
        for candidate in (self.current, self.previous, self.staged.get(version)):
            if candidate is not None and candidate.version == version:
                return candidate
        return None

    def activate(self, version: str) -> tuple[str, str | None]:
        """Make a loaded version current in one step; returns (current, previous)."""
        target = self.loaded(version)
        if target is None and self.model_dir is not None:
            raise FixedVersionError(self.model_dir, version)
        if target is None:
            raise KeyError(version)
        if self.current is not target:
            self.previous = self.current
            self._serve(target)
        self.staged.pop(version, None)
        self.ready = True
        return target.version, self.previous.version if self.previous else None

    async def reload_current(self) -> None:
        """Serve whatever the serving store's pointer says (the KServe repository ``load`` verb).

        In model-dir mode there is nothing else to serve: (re)load the directory's version."""
        if self.model_dir is not None:
            if self.current is None:
                self._serve(await asyncio.to_thread(self._load_directory, self.model_dir))
            self.ready = True
            return
        pointer = self.store.read_pointer(self.name)
        if pointer is None:
            raise ModelLoadError(f"no version of {self.name} is marked current under {self.store.root}")
        await self.stage(pointer.current)
        self.activate(pointer.current)

    # -- kserve's generic path (used when the fast path is off, and by kserve's gRPC/V2 plumbing) --
    def predict(
        self,
        payload: Any,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> Any:
        current = self.current
        if current is None:
            raise ModelNotReady(self.name, "no version has been rolled out yet")
        try:
            if isinstance(payload, InferRequest):
                request = _v2_request_from_infer(payload, self.max_batch)
            else:
                request = parse_v1(payload, self.max_batch)
        except InvalidRequest as error:
            raise InvalidInput(str(error)) from None
        result = current.predict(request.rows)
        if response_headers is not None:
            response_headers["x-kfchain-model-version"] = current.version
        probabilities = result.probabilities if request.probabilities else None
        if isinstance(payload, InferRequest):
            body = v2_response(
                self.name, current.version, request, result.classes, result.species, probabilities
            )
            return InferResponse(
                response_id=payload.id or "",
                model_name=self.name,
                model_version=current.version,
                infer_outputs=[
                    InferOutput(name=o["name"], shape=o["shape"], datatype=o["datatype"], data=o["data"])
                    for o in body["outputs"]
                ],
            )
        import orjson

        return orjson.loads(
            encode_v1(self.name, current.version, result.classes, result.species, probabilities)
        )


def _v2_request_from_infer(payload: InferRequest, max_batch: int) -> PredictRequest:
    from services.predictor.protocol import parse_v2

    inputs = []
    for tensor in payload.inputs:
        data = tensor.data.tolist() if hasattr(tensor.data, "tolist") else tensor.data
        inputs.append(
            {"name": tensor.name, "shape": list(tensor.shape), "datatype": tensor.datatype, "data": data}
        )
    outputs = [{"name": o.name} for o in payload.request_outputs] if payload.request_outputs else None
    body: dict[str, Any] = {"inputs": inputs, "id": payload.id}
    if outputs:
        body["outputs"] = outputs
    return parse_v2(body, max_batch)
