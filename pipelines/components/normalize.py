"""normalize: stratified train/test split (fixed seed) and a scaler fitted on the training split only."""

from kfp.dsl import Dataset, Input, Model, Output

from pipelines.components.common import component


@component
def normalize(
    dataset: Input[Dataset],
    train: Output[Dataset],
    test: Output[Dataset],
    scaler: Output[Model],
    scaler_kind: str = "standard",
    test_size: float = 0.2,
    seed: int = 42,
):
    """Split the data and fit ``scaler_kind`` (standard or minmax) on the training rows.

    ``scaler`` is JSON (``pipelines.model.scaler_params``), turned into the scikit-learn scaler by
    train: numpy alone fits it, so this task skips the ~2 s import of pandas and scikit-learn.
    """
    import json

    from pipelines import model as iris
    from pipelines.components.report import reporting

    with reporting("normalize", scaler=scaler_kind) as info:
        rows = iris.read_dataset(dataset.path)
        train_rows, test_rows = iris.split(rows, test_size=test_size, seed=seed)
        params = iris.scaler_params(scaler_kind, train_rows)
        iris.write_csv(train_rows, train.path)
        iris.write_csv(test_rows, test.path)
        with open(scaler.path, "w", encoding="utf-8") as handle:
            json.dump(params, handle)
        scaler.metadata.update({"kind": scaler_kind, "fitted_on_rows": len(train_rows), "format": "json"})
        info.update(train_rows=len(train_rows), test_rows=len(test_rows))
