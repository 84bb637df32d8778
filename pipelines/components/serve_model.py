"""serve_model: copy the chosen model.joblib to the serving store / model PVC, verify the copy, mark it
selected. The model is not loaded here: whoever serves it loads and probes it before it takes traffic
(the local predictor's rollout, KServe's canary), with the serving side's own scikit-learn."""

from kfp.dsl import Input, Model

from pipelines.components.common import component


@component
def serve_model(
    model: Input[Model],
    model_name: str,
    model_version: str,
    k: int,
    sha256: str,
    registry_uri: str,
    serving_root: str,
    serving_uri_prefix: str = "",
) -> str:
    """Copy to ``<serving_root>/<model_name>/<model_version>/model.joblib``; return the serving URI.

    ``sha256`` is the digest recorded when the model was trained (empty: not recorded, not checked).
    ``serving_uri_prefix`` (e.g. ``pvc://model-pvc``) names the store as KServe sees it; empty means
    the local directory (``file://...``).
    """
    import os

    from pipelines.components.report import reporting
    from pipelines.model import copy_verified
    from pipelines.registry import open_registry

    with reporting("serve_model", k=k) as info:
        target_dir = os.path.join(serving_root, model_name, model_version)
        digest = copy_verified(
            os.path.join(model.path, "model.joblib"), os.path.join(target_dir, "model.joblib"), sha256
        )
        if serving_uri_prefix:
            serving_uri = f"{serving_uri_prefix.rstrip('/')}/{model_name}/{model_version}"
        else:
            serving_uri = "file://" + os.path.abspath(target_dir)
        open_registry(registry_uri).mark_selected(model_name, model_version, k, serving_uri)
        info.update(serving_uri=serving_uri, sha256=digest[:12])
    return serving_uri
