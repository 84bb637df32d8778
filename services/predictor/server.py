"""Run the predictor: a ``kserve.ModelServer`` whose HTTP app is fronted by :class:`PredictorApp`."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading

import uvloop
from kserve import ModelServer
from kserve.model_repository import ModelRepository
from kserve.protocol.rest.server import RESTServer

from services.predictor.app import PredictorApp
from services.predictor.model import IrisModel, ModelLoadError
from services.predictor.settings import PredictorSettings
from services.predictor.store import ModelDirectory, ServingStore

log = logging.getLogger(__name__)


class ServingStoreRepository(ModelRepository):
    """KServe model repository whose ``load`` verb serves the version marked current in the store.

    ``POST /v2/repository/models/<name>/load`` therefore re-reads ``current.json`` and swaps to it
    without a restart; ``.../unload`` takes the model out of service (404 until loaded again).
    In model-dir mode ``load`` brings back the directory's one version.
    """

    def __init__(self, model: IrisModel):
        root = model.model_dir.path if model.model_dir is not None else model.store.root
        super().__init__(models_dir=str(root))
        self.model = model

    async def load(self, name: str) -> bool:
        if name != self.model.name:
            raise ModelLoadError(f"this predictor serves {self.model.name!r}, not {name!r}")
        await self.model.reload_current()
        self.update(self.model)
        return True


def build_model(settings: PredictorSettings) -> IrisModel:
    """The model object, loaded with the current version if one was rolled out (else not ready).

    In model-dir mode a model that cannot be loaded raises :class:`ModelLoadError` naming the path:
    that revision has nothing else to serve, so it must fail at start (KServe marks it failed).
    """
    directory = (
        ModelDirectory(settings.model_dir, settings.model_version) if settings.model_dir is not None else None
    )
    model = IrisModel(
        settings.model_name,
        ServingStore(settings.serving_dir),
        species=settings.species,
        cache_size=settings.cache_size,
        max_batch=settings.max_batch,
        model_dir=directory,
    )
    if directory is not None:
        model.load()
        if settings.model_version_source == "default":
            log.warning(
                "model-dir mode without a version: set KFCHAIN_MODEL_VERSION (the deployer does); "
                "answers say model_version %r",
                settings.model_version,
            )
        return model
    try:
        model.load()
    except (ModelLoadError, ValueError) as error:
        # Serve not-ready rather than crash: the next rollout can still load a good version.
        log.error("cannot serve the current version of %s: %s", settings.model_name, error)
    return model


def _warm_imports() -> None:
    """Import what unpickling a kfchain model needs, so the first rollout does not pay ~2 s for it."""
    import sklearn.neighbors  # noqa: F401
    import sklearn.pipeline  # noqa: F401
    import sklearn.preprocessing  # noqa: F401


def serve(settings: PredictorSettings) -> None:
    """Start the HTTP server and block until SIGTERM/SIGINT."""
    model = build_model(settings)
    if model.current is None:
        # In the background: readiness is not delayed, and a rollout that comes early just waits on
        # the import lock. Only when nothing was loaded: a load at start imports the same modules, and
        # two threads importing them at once can fail with a _DeadlockError.
        threading.Thread(target=_warm_imports, name="warm-imports", daemon=True).start()
    repository = ServingStoreRepository(model)
    server = ModelServer(
        http_port=settings.port,
        registered_models=repository,
        enable_grpc=False,  # its default port 8081 is the frontend's
        enable_latency_logging=False,
    )
    server.register_model(model)  # registered even when not ready, so readiness reports 503
    rest = RESTServer(
        "kserve.model_server:app",
        server.dataplane,
        server.model_repository_extension,
        settings.port,
        grace_period=5,
    )
    rest.create_application()
    from kserve.model_server import app as kserve_app

    rest.config.app = PredictorApp(model, kserve_app, settings, registry=repository)
    rest.config.host = settings.host
    rest.config.access_log = settings.access_log
    if not settings.access_log:
        # uvicorn's protocol logs whenever "uvicorn.access" has handlers; kserve installed some.
        access = logging.getLogger("uvicorn.access")
        access.handlers.clear()
        access.propagate = False
    log.info(
        "predictor for %s on %s (serving %s, %s, fast path %s)",
        settings.model_name,
        settings.url,
        model.current.version if model.current else "nothing yet",
        f"model-dir mode: {settings.model_dir}, version from {settings.model_version_source}"
        if settings.model_dir is not None
        else f"store mode: {settings.serving_dir}",
        "on" if settings.fast_path else "off",
    )
    # Everything imported so far (kserve, sklearn, numpy: ~240 MB of objects) lives as long as the
    # process; keeping it out of the garbage collector's generations removes the periodic full
    # scans that otherwise show up as p99 spikes under load.
    gc.collect()
    gc.freeze()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(rest._server.serve())
