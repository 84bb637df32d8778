"""The model logic the components call: data validation, split, scaler, K lists, training, the selection rule."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from pipelines import model as iris
from pipelines.registry import ModelRecord
from services.predictor.fastknn import compile_fast_knn
from tests.services.test_predictor_fastpath import QUERIES, load_version_from

ROOT = Path(__file__).resolve().parents[2]


def test_bundled_iris_trains_a_pipeline_that_takes_raw_centimetres() -> None:
    rows = iris.bundled_iris_rows()
    train, test = iris.split(rows)
    scaler = iris.scaler_from_params(iris.scaler_params("minmax", train))
    model, accuracy, cv_accuracy = iris.train_candidate(train, test, scaler, k=5)
    assert accuracy >= 0.9 and cv_accuracy >= 0.9
    # a typical versicolor flower in centimetres (the seed served it as setosa)
    assert model.predict([[5.9, 2.8, 4.3, 1.3]]).tolist() == [1]
    features, labels = iris.features_and_labels(rows)
    assert (model.predict(features) == labels).mean() >= 0.9


def _tagged_iris() -> list[iris.Row]:
    # iris has duplicate rows; a unique sepal length per row makes "which row went where" checkable
    return [(float(i), row[1], row[2], row[3], row[4]) for i, row in enumerate(iris.bundled_iris_rows())]


def test_split_is_stratified_reproducible_disjoint_and_complete() -> None:
    rows = _tagged_iris()
    train, test = iris.split(rows)
    assert iris.split(rows) == (train, test)
    assert Counter(row[-1] for row in test) == {0: 10, 1: 10, 2: 10}
    assert Counter(row[-1] for row in train) == {0: 40, 1: 40, 2: 40}
    assert not set(train) & set(test) and sorted(train + test) == sorted(rows)
    assert train == sorted(train) and test == sorted(test)  # both keep the input order
    assert iris.split(rows, seed=7)[1] != test  # the seed chooses the rows
    _, small_test = iris.split(rows[:5] + rows[50:55] + rows[100:105], test_size=0.05)
    assert Counter(row[-1] for row in small_test) == {0: 1, 1: 1, 2: 1}  # every class is tested


def test_split_refuses_a_class_it_cannot_both_train_and_test_on() -> None:
    rows = iris.bundled_iris_rows()[:101]  # one virginica row
    with pytest.raises(
        iris.DatasetError, match=r"class 'virginica' \(2\) has 1 row.*at least 2 rows per class"
    ):
        iris.split(rows)
    with pytest.raises(ValueError, match="test_size 0.9 must be between"):
        iris.split(iris.bundled_iris_rows(), test_size=0.9)


def _with_constant_column(rows: list[iris.Row]) -> list[iris.Row]:
    # sepal width constant: zero variance, zero range; petal length large and nearly constant
    return [(row[0], 3.3, 1e8 + row[2] * 1e-9, row[3], row[4]) for row in rows]


@pytest.mark.parametrize(("kind", "sklearn_scaler"), [("standard", StandardScaler), ("minmax", MinMaxScaler)])
@pytest.mark.parametrize("data", ["iris", "constant column"])
def test_numpy_scaler_statistics_are_scikit_learns(kind: str, sklearn_scaler: type, data: str) -> None:
    rows, _ = iris.split(iris.bundled_iris_rows())
    train = rows if data == "iris" else _with_constant_column(rows)
    x_train, _ = iris.features_and_labels(train)
    expected = sklearn_scaler().fit(x_train)
    params = json.loads(json.dumps(iris.scaler_params(kind, train)))  # the artifact is JSON
    for name in iris.SCALER_ATTRIBUTES[kind]:
        np.testing.assert_allclose(params[name], getattr(expected, f"{name}_"), rtol=1e-12, err_msg=name)
    assert (params["n_samples_seen"], params["n_features_in"]) == (expected.n_samples_seen_, 4)
    if data == "constant column":
        assert params["scale"][1] == expected.scale_[1] == 1.0

    rebuilt = iris.scaler_from_params(params)
    assert type(rebuilt) is sklearn_scaler and rebuilt.get_params() == sklearn_scaler().get_params()
    assert rebuilt.n_features_in_ == expected.n_features_in_
    assert rebuilt.n_samples_seen_ == expected.n_samples_seen_
    x = np.random.default_rng(0).normal(loc=4.0, scale=3.0, size=(1000, 4))
    np.testing.assert_allclose(rebuilt.transform(x), expected.transform(x), rtol=1e-12)


def test_scaler_parameters_of_another_kind_or_shape_are_refused() -> None:
    params = iris.scaler_params("standard", iris.bundled_iris_rows())
    with pytest.raises(ValueError, match="kind 'robust' are not supported"):
        iris.scaler_from_params({**params, "kind": "robust"})
    with pytest.raises(ValueError, match=r"'scale' has shape \(3,\), expected \(4,\)"):
        iris.scaler_from_params({**params, "scale": params["scale"][:3]})
    with pytest.raises(ValueError, match="lack 'var'"):
        iris.scaler_from_params({k: v for k, v in params.items() if k != "var"})


@pytest.mark.parametrize("kind", iris.SCALERS)
def test_model_trained_through_the_json_scaler_is_plain_sklearn_and_served_fast(
    kind: str, tmp_path: Path
) -> None:
    # the path of a training run: fetch's CSV -> normalize (numpy, JSON) -> train (sklearn)
    dataset = tmp_path / "dataset.csv"
    iris.write_csv(iris.bundled_iris_rows(), str(dataset))
    train, test = iris.split(iris.read_dataset(dataset))
    artifact = tmp_path / "scaler.json"
    artifact.write_text(json.dumps(iris.scaler_params(kind, train)))
    scaler = iris.scaler_from_params(json.loads(artifact.read_text()))
    model, accuracy, _ = iris.train_candidate(train, test, scaler, k=5)
    assert accuracy >= 0.9
    joblib.dump(model, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    steps = [type(step) for _, step in loaded.steps]
    assert type(loaded) is Pipeline and steps == [type(scaler), KNeighborsClassifier]
    data = load_iris()
    assert (loaded.predict(data.data) == data.target).mean() >= 0.9
    # the predictor recognises it and its numpy fast path answers exactly as scikit-learn
    assert compile_fast_knn(loaded) is not None
    served = load_version_from(loaded).predict(QUERIES.tolist())
    assert served.classes == loaded.predict(QUERIES).tolist()
    assert served.probabilities == loaded.predict_proba(QUERIES).tolist()


def test_the_dataset_csv_is_read_without_pandas_and_refused_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "dataset.csv"
    rows = iris.bundled_iris_rows()
    iris.write_csv(rows, str(path))
    assert iris.read_dataset(path) == rows
    with pytest.raises(
        iris.DatasetError, match=f"dataset {re.escape(str(tmp_path))}/gone.csv does not exist"
    ):
        iris.read_dataset(tmp_path / "gone.csv")
    path.write_text("a,b\n1,2\n")
    with pytest.raises(
        iris.DatasetError,
        match=rf"dataset {re.escape(str(path))}: header must be sepal_length,.*got \['a', 'b'\]",
    ):
        iris.read_dataset(path)
    header = ",".join((*iris.FEATURES, iris.LABEL))
    path.write_text(f"{header}\n5.1,3.5,1.4,0.2,0\n5.1,wide,1.4,0.2,0\n")
    with pytest.raises(
        iris.DatasetError, match=rf"dataset {re.escape(str(path))}, line 3: not numbers.*'wide'"
    ):
        iris.read_dataset(path)
    path.write_text(f"{header}\n5.1,3.5,1.4,0.2,7\n")
    with pytest.raises(iris.DatasetError, match="line 2: label 7 is not one of 0/1/2"):
        iris.read_dataset(path)
    path.write_text(f"{header}\n5.1,3.5,1.4\n")
    with pytest.raises(iris.DatasetError, match="line 2: 3 fields, expected 5"):
        iris.read_dataset(path)


def test_normalize_imports_neither_pandas_nor_scikit_learn(tmp_path: Path) -> None:
    # the point of the numpy scaler: the normalize task skips ~2 s of imports on every training run
    script = f"""
import json, sys
from kfp.dsl import Dataset, Model
from pipelines.components.normalize import normalize
from pipelines import model as iris
iris.write_csv(iris.bundled_iris_rows(), {str(tmp_path / "dataset.csv")!r})
out = {{name: cls(uri={str(tmp_path)!r} + "/" + name) for name, cls in
       (("train", Dataset), ("test", Dataset), ("scaler", Model))}}
normalize.python_func(dataset=Dataset(uri={str(tmp_path / "dataset.csv")!r}), scaler_kind="minmax", **out)
print(json.dumps(sorted(m for m in ("pandas", "sklearn", "scipy") if m in sys.modules)))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout.splitlines()[-1]) == []
    assert (
        len(iris.read_dataset(tmp_path / "train")) == 120 and len(iris.read_dataset(tmp_path / "test")) == 30
    )
    assert json.loads((tmp_path / "scaler").read_text())["kind"] == "minmax"


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
