# mypy: disable-error-code="valid-type,call-arg,arg-type"
# (KFP reads the inline NamedTuple(...) return annotation; mypy cannot type it)
"""select_model: the best registered candidate of one version (rule in ``pipelines.model.choose_best``),
if it is good enough to serve."""

from typing import NamedTuple

from pipelines.components.common import component


@component
def select_model(
    model_name: str, model_version: str, registry_uri: str, min_accuracy: float = 0.9
) -> NamedTuple("Choice", k=int, accuracy=float, cv_accuracy=float, uri=str, sha256=str):
    """Highest accuracy, then higher CV accuracy, then smaller K; no candidates, or a best candidate
    whose held-out accuracy is below ``min_accuracy``, fails the run."""
    from collections import namedtuple

    from pipelines.components.report import reporting
    from pipelines.model import choose_best
    from pipelines.registry import NotRegisteredError, open_registry

    with reporting("select_model", version=model_version) as info:
        records = open_registry(registry_uri).models(model_name, model_version)
        if not records:
            raise NotRegisteredError(
                f"no models registered for {model_name!r} version {model_version!r}; train it first"
                f" (python -m pipelines.submit training --version {model_version})"
            )
        best = choose_best(records)
        if best.accuracy < min_accuracy:
            raise ValueError(
                f"the best model of {model_name!r} version {model_version!r} (k={best.k}) has a held-out"
                f" accuracy of {best.accuracy:.1%}, below min_accuracy {min_accuracy:.1%}; nothing was served"
            )
        info.update(k=best.k, accuracy=best.accuracy, candidates=len(records))
    return namedtuple("Choice", ["k", "accuracy", "cv_accuracy", "uri", "sha256"])(
        best.k,
        best.accuracy,
        best.cv_accuracy if best.cv_accuracy is not None else -1.0,
        best.uri,
        str(best.params.get("sha256", "")),
    )
