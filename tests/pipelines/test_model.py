"""The model logic the components call: data validation, K lists, training, the selection rule."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipelines import model as iris
from pipelines.registry import ModelRecord


def test_bundled_iris_trains_a_pipeline_that_takes_raw_centimetres() -> None:
    frame = iris.load_bundled_iris()
    train, test = iris.split(frame)
    scaler = iris.make_scaler("minmax").fit(train[list(iris.FEATURES)].to_numpy())
    model, accuracy, cv_accuracy = iris.train_candidate(train, test, scaler, k=5)
    assert accuracy >= 0.9 and cv_accuracy >= 0.9
    # a typical versicolor flower in centimetres (the seed served it as setosa)
    assert model.predict([[5.9, 2.8, 4.3, 1.3]]).tolist() == [1]
    assert (model.predict(frame[list(iris.FEATURES)].to_numpy()) == frame[iris.LABEL]).mean() >= 0.9


def test_split_is_stratified_and_reproducible() -> None:
    frame = iris.load_bundled_iris()
    first, _ = iris.split(frame)
    again, test = iris.split(frame)
    assert first.equals(again)
    assert test[iris.LABEL].value_counts().to_dict() == {0: 10, 1: 10, 2: 10}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1,x,5", "'x' is not an integer"),
        ("0,3", "between 1 and 100"),
        ("3,3", "given twice"),
        ("", "not an integer"),
    ],
)
def test_bad_k_lists_name_the_bad_value(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        iris.parse_k_values(text)


def test_csv_with_species_names_is_accepted_and_hashed(tmp_path) -> None:
    frame = iris.load_bundled_iris()
    named = frame.assign(species=frame[iris.LABEL].map(dict(enumerate(iris.CLASS_NAMES))))
    path = tmp_path / "iris.csv"
    named.to_csv(path, index=False)
    loaded = iris.read_source(str(path))
    assert loaded[iris.LABEL].tolist() == frame[iris.LABEL].tolist()
    assert iris.content_hash(loaded) == iris.content_hash(frame)


def test_bundled_rows_match_scikit_learn_and_pandas_byte_for_byte(tmp_path) -> None:
    # fetch reads the bundled copy without scikit-learn/pandas; the data, CSV and hash must not change
    from sklearn.datasets import load_iris

    bunch = load_iris()
    frame = pd.DataFrame(bunch.data, columns=list(iris.FEATURES)).assign(species=bunch.target.astype(int))
    rows = iris.bundled_iris_rows()
    assert iris.load_bundled_iris().equals(frame)
    assert iris.content_hash(rows) == iris.content_hash(frame)
    iris.write_csv(rows, str(tmp_path / "rows.csv"))
    frame.to_csv(tmp_path / "frame.csv", index=False)
    assert (tmp_path / "rows.csv").read_bytes() == (tmp_path / "frame.csv").read_bytes()


def test_csv_with_missing_column_is_rejected_with_the_column_name(tmp_path) -> None:
    path = tmp_path / "bad.csv"
    iris.load_bundled_iris().drop(columns=["petal_width"]).to_csv(path, index=False)
    with pytest.raises(iris.DatasetError, match="petal_width"):
        iris.read_source(str(path))


def test_unknown_species_is_rejected() -> None:
    frame = pd.DataFrame(
        {**{f: [1.0] * 15 for f in iris.FEATURES}, "species": ["setosa"] * 5 + ["rose"] * 10}
    )
    with pytest.raises(iris.DatasetError, match="rose"):
        iris.validate_frame(frame)


def _record(k: int, accuracy: float, cv: float) -> ModelRecord:
    return ModelRecord("iris", "v1", k, accuracy, f"/m/{k}", cv_accuracy=cv)


def test_selection_rule_prefers_accuracy_then_cv_then_smaller_k() -> None:
    assert iris.choose_best([_record(1, 0.9, 0.99), _record(3, 0.95, 0.5)]).k == 3
    assert iris.choose_best([_record(1, 0.95, 0.90), _record(9, 0.95, 0.96)]).k == 9
    assert iris.choose_best([_record(7, 0.95, 0.96), _record(5, 0.95, 0.96)]).k == 5


def test_copy_verified_serves_the_bytes_that_were_trained(tmp_path: Path) -> None:
    source = tmp_path / "trained" / "model.joblib"
    source.parent.mkdir()
    source.write_bytes(b"model bytes")
    target = tmp_path / "serving" / "iris" / "v1" / "model.joblib"
    digest = iris.copy_verified(source, target, iris.file_sha256(source))
    assert target.read_bytes() == b"model bytes" and digest == iris.file_sha256(target)
    assert [p.name for p in target.parent.iterdir()] == ["model.joblib"]  # no temporary file left


def test_copy_verified_refuses_a_model_changed_since_training(tmp_path: Path) -> None:
    source = tmp_path / "model.joblib"
    source.write_bytes(b"trained")
    recorded = iris.file_sha256(source)
    source.write_bytes(b"tampered")
    target = tmp_path / "serving" / "model.joblib"
    target.parent.mkdir()
    target.write_bytes(b"the version serving now")
    with pytest.raises(ValueError, match=rf"changed since it was trained.*registered {recorded[:12]}"):
        iris.copy_verified(source, target, recorded)
    assert target.read_bytes() == b"the version serving now"
    assert [p.name for p in target.parent.iterdir()] == ["model.joblib"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        iris.copy_verified(tmp_path / "gone.joblib", target)
