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
    """Split the data and fit ``scaler_kind`` (standard or minmax) on the training rows."""
    import joblib
    import pandas as pd

    from pipelines import model as iris
    from pipelines.components.report import reporting

    with reporting("normalize", scaler=scaler_kind) as info:
        fitted = iris.make_scaler(scaler_kind)
        frame = iris.validate_frame(pd.read_csv(dataset.path))
        train_rows, test_rows = iris.split(frame, test_size=test_size, seed=seed)
        fitted.fit(train_rows[list(iris.FEATURES)].to_numpy())
        train_rows.to_csv(train.path, index=False)
        test_rows.to_csv(test.path, index=False)
        joblib.dump(fitted, scaler.path)
        scaler.metadata.update({"kind": scaler_kind, "fitted_on_rows": len(train_rows)})
        info.update(train_rows=len(train_rows), test_rows=len(test_rows))
