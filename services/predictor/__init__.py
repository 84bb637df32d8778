"""kfchain's predictor: a ``kserve.Model`` on ``kserve.ModelServer``, serving the selected iris model fast.

Run it with ``python -m services.predictor`` (settings: :class:`services.predictor.settings.PredictorSettings`,
``KFCHAIN_PREDICTOR_PORT`` 8080, ``KFCHAIN_MODEL_NAME`` iris, ``KFCHAIN_HOME``). It serves the version
marked current in the serving store (``$KFCHAIN_HOME/serving/<model>/current.json``, see
:mod:`services.predictor.store`) and reports not-ready (503) until a version has been rolled out.

Model-dir mode (``KFCHAIN_PREDICTOR_MODEL_DIR`` or ``--model_dir``; KServe's ``/mnt/models`` under the
``kfchain-predictor`` ServingRuntime) serves the one ``model.joblib`` in that directory instead, as the
version ``KFCHAIN_MODEL_VERSION`` names (else the last segment of ``STORAGE_URI``, else ``unknown``);
it fails at start if the file is missing, and answers 409 to requests to load or activate another version.

V1 (KServe) — ``POST /v1/models/iris:predict``::

    request   {"instances": [[sepal_length, sepal_width, petal_length, petal_width], ...],
               "probabilities": true}                      # optional, default false
    response  {"predictions": [0, 1], "species": ["setosa", "versicolor"],
               "model_name": "iris", "model_version": "v2",
               "probabilities": [[p_setosa, p_versicolor, p_virginica], ...]}   # only when asked
    header    x-kfchain-model-version: v2

V2 (Open Inference Protocol) — ``POST /v2/models/iris/infer``::

    request   {"id": "optional", "inputs": [{"name": "input-0", "shape": [n, 4], "datatype": "FP32",
               "data": [5.1, 3.5, 1.4, 0.2, ...]}],          # flat row-major, or a list of rows
               "outputs": [{"name": "predict"}]}             # optional: which outputs to return
    response  {"model_name": "iris", "model_version": "v2", "id": "...", "outputs": [
               {"name": "predict", "shape": [n], "datatype": "INT64", "data": [0, ...]},
               {"name": "species", "shape": [n], "datatype": "BYTES", "data": ["setosa", ...]},
               {"name": "probabilities", "shape": [n, 3], "datatype": "FP64", "data": [...]}]}

Classes ``0, 1, 2`` are ``setosa, versicolor, virginica``. Bad input (not JSON, not exactly 4 finite
numbers per instance, more than ``KFCHAIN_PREDICTOR_MAX_BATCH`` (1000) instances, a body over
``KFCHAIN_PREDICTOR_MAX_BODY_BYTES`` (1 MiB)) is answered 400 with ``{"error": "instance 3: ...",
"instance": 3}`` (``instance`` only when one row is at fault); an unknown model 404; no version yet 503.

Everything else is kserve's own: ``/v2/health/live``, ``/v2/models/iris/ready`` and ``/v1/models/iris``
(readiness: use these, kserve's ``/v2/health/ready`` is always true), ``/v2/models/iris`` (metadata),
``/metrics`` (includes ``kfchain_predictor_requests_total`` and ``kfchain_predictor_request_seconds``),
``POST /v2/repository/models/iris/load`` (serve what ``current.json`` says). The rollout endpoints
used by :mod:`services.rollout.local` are described in :mod:`services.predictor.app`.

Predictions are identical to scikit-learn's (``Pipeline.predict``/``predict_proba``); scaler + KNN
models get a numpy fast path (:mod:`services.predictor.fastknn`), other classifiers are served by
scikit-learn itself.
"""
