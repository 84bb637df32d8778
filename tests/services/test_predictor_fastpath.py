"""The numpy fast path gives exactly scikit-learn's answers: all 150 iris rows and 10,000 random inputs."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from services.predictor.fastknn import compile_fast_knn
from services.predictor.model import ModelLoadError, load_version
from services.predictor.settings import IRIS_SPECIES

X, Y = load_iris(return_X_y=True)
X_TRAIN, _, Y_TRAIN, _ = train_test_split(X, Y, test_size=0.2, stratify=Y, random_state=42)


def random_inputs(n: int = 10_000, seed: int = 0) -> np.ndarray:
    """Random rows spanning the iris range plus 1 cm on each side; a quarter snapped to the 0.1 cm grid
    iris is measured on, so neighbour ties (the hard case) actually occur."""
    rng = np.random.default_rng(seed)
    rows = np.column_stack(
        [rng.uniform(lo - 1, hi + 1, n) for lo, hi in zip(X.min(0), X.max(0), strict=True)]
    )
    rows[: n // 4] = np.round(rows[: n // 4], 1)
    return rows


QUERIES = np.vstack([X, random_inputs()])


def kfchain_model(k: int = 9, weights: str = "uniform", scaler=None, algorithm: str = "auto") -> Pipeline:
    scaler = scaler if scaler is not None else StandardScaler()
    knn = KNeighborsClassifier(n_neighbors=k, weights=weights, algorithm=algorithm)
    return Pipeline([("scaler", scaler), ("knn", knn)]).fit(X_TRAIN, Y_TRAIN)


@pytest.mark.parametrize("k", [1, 3, 5, 9, 15])
@pytest.mark.parametrize("scaler", [StandardScaler, MinMaxScaler])
def test_batch_predictions_identical_to_sklearn(k: int, scaler: type) -> None:
    model = kfchain_model(k, scaler=scaler())
    served = load_version_from(model)
    result = served.predict(QUERIES.tolist())
    assert result.classes == model.predict(QUERIES).tolist()
    assert result.probabilities == model.predict_proba(QUERIES).tolist()  # exact, not approximate
    assert result.species == [IRIS_SPECIES[c] for c in model.predict(QUERIES)]


@pytest.mark.parametrize("k", [1, 5, 9])
def test_one_row_at_a_time_identical_to_sklearn(k: int) -> None:
    model = kfchain_model(k)
    served = load_version_from(model)
    expected_classes = model.predict(QUERIES).tolist()
    expected_proba = model.predict_proba(QUERIES).tolist()
    for i, row in enumerate(QUERIES[:3000].tolist()):  # 150 iris rows + 2850 random, one request each
        result = served.predict([row])
        assert result.classes == [expected_classes[i]], f"row {i} {row}"
        assert result.probabilities == [expected_proba[i]], f"row {i} {row}"
    again = served.predict([QUERIES[0].tolist()])  # a cached answer is the same answer
    assert again.classes == [expected_classes[0]]


@pytest.mark.parametrize("algorithm", ["auto", "brute"])
def test_distance_weighted_knn_identical_classes(algorithm: str) -> None:
    model = kfchain_model(7, weights="distance", algorithm=algorithm)
    served = load_version_from(model)
    result = served.predict(QUERIES.tolist())
    assert result.classes == model.predict(QUERIES).tolist()
    # distances differ from sklearn's tree/GEMM code in the last bits; probabilities agree to 1e-9
    np.testing.assert_allclose(result.probabilities, model.predict_proba(QUERIES), rtol=0, atol=1e-9)


def test_unrecognised_model_is_served_by_sklearn() -> None:
    model = Pipeline([("scaler", StandardScaler()), ("clf", LogisticRegression(max_iter=500))]).fit(
        X_TRAIN, Y_TRAIN
    )
    assert compile_fast_knn(model) is None
    served = load_version_from(model)
    assert served.predict(X.tolist()).classes == model.predict(X).tolist()


def test_a_model_with_the_wrong_feature_count_is_refused(tmp_path: Path) -> None:
    six_features = KNeighborsClassifier(3).fit(np.hstack([X, X[:, :2]]), Y)  # the seed's 6-input mistake
    path = tmp_path / "model.joblib"
    joblib.dump(six_features, path)
    with pytest.raises(ModelLoadError, match="expects 6 features"):
        load_version(path, "v6", IRIS_SPECIES, cache_size=0)


def test_a_file_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.joblib"
    path.write_bytes(b"not a pickle")
    with pytest.raises(ModelLoadError, match="not a loadable joblib model"):
        load_version(path, "broken", IRIS_SPECIES, cache_size=0)


_counter = iter(range(1_000_000))


def load_version_from(model, cache_size: int = 64):
    """Round-trip through joblib like the predictor does, so the test covers the real load path."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.joblib"
        joblib.dump(model, path)
        return load_version(path, f"v{next(_counter)}", IRIS_SPECIES, cache_size=cache_size)
