"""serve_model: copy the chosen model.joblib to the serving store / model PVC, check it, mark it selected."""

from kfp.dsl import Input, Model

from pipelines.components.common import component


@component
def serve_model(
    model: Input[Model],
    model_name: str,
    model_version: str,
    k: int,
    registry_uri: str,
    serving_root: str,
    serving_uri_prefix: str = "",
    min_accuracy: float = 0.9,
) -> str:
    """Copy to ``<serving_root>/<model_name>/<model_version>/model.joblib``; return the serving URI.

    ``serving_uri_prefix`` (e.g. ``pvc://model-pvc``) names the store as KServe sees it; empty means
    the local directory (``file://...``).
    """
    import os
    import shutil
    import tempfile

    import joblib

    from pipelines.components.report import reporting
    from pipelines.model import check_model
    from pipelines.registry import open_registry

    with reporting("serve_model", k=k) as info:
        source = os.path.join(model.path, "model.joblib")
        target_dir = os.path.join(serving_root, model_name, model_version)
        os.makedirs(target_dir, exist_ok=True)
        # Copy then rename: a predictor never sees half a file.
        handle, partial = tempfile.mkstemp(dir=target_dir, suffix=".part")
        os.close(handle)
        shutil.copyfile(source, partial)
        accuracy = check_model(joblib.load(partial))
        if accuracy < min_accuracy:
            os.unlink(partial)
            raise ValueError(
                f"the selected model (k={k}) classifies only {accuracy:.1%} of the iris rows; below {min_accuracy:.0%}"
            )
        os.replace(partial, os.path.join(target_dir, "model.joblib"))
        if serving_uri_prefix:
            serving_uri = f"{serving_uri_prefix.rstrip('/')}/{model_name}/{model_version}"
        else:
            serving_uri = "file://" + os.path.abspath(target_dir)
        open_registry(registry_uri).mark_selected(model_name, model_version, k, serving_uri)
        info.update(serving_uri=serving_uri, iris_accuracy=round(accuracy, 4))
    return serving_uri
