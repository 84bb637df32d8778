"""train: one Pipeline(scaler + KNN) per K, saved as model.joblib, with held-out and CV accuracy."""

from kfp.dsl import Dataset, Input, Metrics, Model, Output

from pipelines.components.common import component


@component
def train(
    train: Input[Dataset],
    test: Input[Dataset],
    scaler: Input[Model],
    model: Output[Model],
    metrics: Output[Metrics],
    k: int = 5,
    cv_folds: int = 5,
    seed: int = 42,
):
    """Fit KNN(k) behind the training-split scaler; the artifact takes raw centimetre features."""
    import json
    import os

    import joblib

    from pipelines import model as iris
    from pipelines.components.report import reporting

    with reporting("train", k=k) as info:
        with open(scaler.path, encoding="utf-8") as handle:
            fitted_scaler = iris.scaler_from_params(json.load(handle))
        pipeline, accuracy, cv_accuracy = iris.train_candidate(
            iris.read_dataset(train.path),
            iris.read_dataset(test.path),
            fitted_scaler,
            k,
            cv_folds=cv_folds,
            seed=seed,
        )
        os.makedirs(model.path, exist_ok=True)
        model_file = os.path.join(model.path, "model.joblib")
        joblib.dump(pipeline, model_file)
        model.metadata.update(
            {
                "k": k,
                "sha256": iris.file_sha256(model_file),
                "accuracy": accuracy,
                "cv_accuracy": cv_accuracy,
                "framework": "sklearn",
                "file": "model.joblib",
            }
        )
        metrics.log_metric("accuracy", accuracy)
        metrics.log_metric("cv_accuracy", cv_accuracy)
        metrics.log_metric("k", k)
        info.update(accuracy=round(accuracy, 4), cv_accuracy=round(cv_accuracy, 4))
