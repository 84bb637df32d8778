"""The iris KNN model of DESIGN.md ("The model"): data, split, scaler, one Pipeline per K, selection rule.

Plain functions the components call, so the logic is testable without KFP.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
LABEL = "species"
CLASS_NAMES = ("setosa", "versicolor", "virginica")
SCALERS = ("standard", "minmax")
MIN_ROWS_PER_CLASS = 5
SEED = 42


class DatasetError(ValueError):
    """The data source is unreadable or its columns/rows are not usable iris data."""


#: One iris row: the four FEATURES in centimetres, then the LABEL (0/1/2).
Row = tuple[float, float, float, float, int]


def bundled_iris_rows() -> list[Row]:
    """Iris from the CSV bundled with scikit-learn (no network), as rows of FEATURES + LABEL.

    Reads the file ``sklearn.datasets.load_iris`` reads, without importing scikit-learn or pandas
    (about a second of start-up in a component): the same values, in the same order.
    """
    path = _bundled_iris_path()
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            n_samples, n_features = (int(v) for v in next(reader)[:2])
            rows = [(float(a), float(b), float(c), float(d), int(label)) for a, b, c, d, label in reader]
    except (OSError, StopIteration, ValueError) as exc:
        raise DatasetError(f"the iris copy bundled with scikit-learn ({path}) is unreadable: {exc}") from exc
    if n_features != len(FEATURES) or len(rows) != n_samples:
        raise DatasetError(
            f"the iris copy bundled with scikit-learn ({path}) has {len(rows)} rows of {n_features} features;"
            f" its header says {n_samples} rows of {len(FEATURES)}. Reinstall scikit-learn"
        )
    return rows


def _bundled_iris_path() -> Path:
    # find_spec locates the package without running its __init__ (which imports scipy and pandas).
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError("scikit-learn is not installed, so there is no bundled iris; give a CSV source")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "iris.csv"


def load_bundled_iris() -> Any:
    """Iris from the copy bundled with scikit-learn (no network), as a DataFrame."""
    import pandas as pd

    return pd.DataFrame(bundled_iris_rows(), columns=[*FEATURES, LABEL])


def read_source(source: str) -> Any:
    """Read a CSV from a path or http(s) URL; errors name the source and say what is expected."""
    import pandas as pd

    try:
        frame = pd.read_csv(source)
    except FileNotFoundError as exc:
        raise DatasetError(f"data source {source!r} does not exist; give a readable CSV path or URL") from exc
    except Exception as exc:  # pandas raises many types (URLError, ParserError, UnicodeDecodeError, ...)
        raise DatasetError(f"data source {source!r} could not be read as CSV: {exc}") from exc
    return validate_frame(frame, source)


def validate_frame(frame: Any, source: str = "dataset") -> Any:
    """Check columns and rows; map species names to 0/1/2; return a clean frame of FEATURES + LABEL."""
    import pandas as pd

    frame = frame.rename(
        columns=lambda c: str(c).strip().lower().replace(" ", "_").replace("(cm)", "").strip("_")
    )
    if LABEL not in frame.columns and "target" in frame.columns:
        frame = frame.rename(columns={"target": LABEL})
    missing = [c for c in (*FEATURES, LABEL) if c not in frame.columns]
    if missing:
        raise DatasetError(
            f"{source}: missing column(s) {missing}; expected {list(FEATURES) + [LABEL]} (got {list(frame.columns)})"
        )
    frame = frame[[*FEATURES, LABEL]].copy()
    for column in FEATURES:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = frame[column][values.isna()]
        if len(bad):
            raise DatasetError(
                f"{source}: column {column!r} has {len(bad)} non-numeric or empty value(s), e.g. {bad.iloc[0]!r}"
            )
        frame[column] = values.astype(float)
    labels = frame[LABEL]
    if labels.dtype == object:
        names = labels.astype(str).str.strip().str.lower().str.removeprefix("iris-")
        unknown = sorted(set(names) - set(CLASS_NAMES))
        if unknown:
            raise DatasetError(f"{source}: unknown species {unknown}; expected {list(CLASS_NAMES)} or 0/1/2")
        frame[LABEL] = names.map({name: i for i, name in enumerate(CLASS_NAMES)}).astype(int)
    else:
        if labels.isna().any() or not set(labels.astype(int)) <= {0, 1, 2}:
            raise DatasetError(f"{source}: column {LABEL!r} must hold 0/1/2 or species names")
        frame[LABEL] = labels.astype(int)
    counts = frame[LABEL].value_counts()
    too_few = {
        CLASS_NAMES[c]: int(counts.get(c, 0)) for c in range(3) if counts.get(c, 0) < MIN_ROWS_PER_CLASS
    }
    if too_few:
        raise DatasetError(
            f"{source}: each species needs at least {MIN_ROWS_PER_CLASS} rows for a stratified split; got {too_few}"
        )
    return frame.reset_index(drop=True)


def content_hash(data: Any) -> str:
    """sha256 of the canonical CSV form of the data (same rows, same hash).

    ``data`` is a frame of FEATURES + LABEL (``validate_frame``) or rows (``bundled_iris_rows``).
    """
    if isinstance(data, list):
        text = _csv_text(data, "%.6g")
    else:
        buffer = io.StringIO()
        data.to_csv(buffer, index=False, float_format="%.6g")
        text = buffer.getvalue()
    return hashlib.sha256(text.encode()).hexdigest()


def write_csv(data: Any, path: str) -> None:
    """Write a frame (``validate_frame``) or rows (``bundled_iris_rows``) as the CSV pandas reads back."""
    if isinstance(data, list):
        Path(path).write_text(_csv_text(data))
    else:
        data.to_csv(path, index=False)


def _csv_text(rows: Sequence[Row], float_format: str = "") -> str:
    # What DataFrame.to_csv(index=False[, float_format=...]) writes for these rows: repr() of each
    # float (numpy's shortest round-trip form) unless a format is given, the label as an int.
    def number(value: float) -> str:
        return float_format % value if float_format else repr(value)

    lines = [",".join((*FEATURES, LABEL))]
    lines += [",".join((*(number(v) for v in row[:-1]), str(row[-1]))) for row in rows]
    return "\n".join(lines) + "\n"


def read_dataset(path: str | Path) -> list[Row]:
    """The rows of a CSV that fetch wrote (header FEATURES + LABEL), read without pandas.

    fetch has validated the data already; this checks only that the file is what fetch writes and
    raises ``DatasetError`` naming the file, the line and the problem otherwise.
    """
    expected = [*FEATURES, LABEL]
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            lines = list(csv.reader(handle))
    except FileNotFoundError:
        raise DatasetError(
            f"dataset {path} does not exist; normalize reads the CSV the fetch task writes"
        ) from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"dataset {path} could not be read as CSV: {exc}") from exc
    if not lines or lines[0] != expected:
        got = lines[0] if lines else "an empty file"
        raise DatasetError(
            f"dataset {path}: header must be {','.join(expected)} (what fetch writes); got {got}"
        )
    rows: list[Row] = []
    for number, fields in enumerate(lines[1:], start=2):
        if len(fields) != len(expected):
            raise DatasetError(
                f"dataset {path}, line {number}: {len(fields)} fields, expected {len(expected)}"
            )
        try:
            a, b, c, d = (float(value) for value in fields[:-1])
            label = int(fields[-1])
        except ValueError:
            raise DatasetError(
                f"dataset {path}, line {number}: not numbers and a 0/1/2 label: {fields}"
            ) from None
        if label not in range(len(CLASS_NAMES)):
            raise DatasetError(f"dataset {path}, line {number}: label {label} is not one of 0/1/2")
        rows.append((a, b, c, d, label))
    if not rows:
        raise DatasetError(f"dataset {path} has a header but no rows")
    return rows


def split(rows: Sequence[Row], test_size: float = 0.2, seed: int = SEED) -> tuple[list[Row], list[Row]]:
    """Stratified train/test split of ``rows`` with a fixed seed; both parts keep the input order.

    Each class gives ``test_size * its rows`` (rounded half up) rows to the test split (at least one,
    never all of them), drawn by a seeded numpy permutation: iris's 150 rows at 0.2 give
    10 test rows per class, the same ones every time. A class with a single row cannot be split and
    raises ``DatasetError``.
    """
    import numpy as np

    if not 0.05 <= test_size <= 0.5:
        raise ValueError(f"test_size {test_size!r} must be between 0.05 and 0.5")
    labels = np.fromiter((row[-1] for row in rows), dtype=np.int64, count=len(rows))
    rng = np.random.default_rng(seed)
    in_test = np.zeros(len(rows), dtype=bool)
    for label in np.unique(labels):  # classes in sorted order: one reproducible sequence of draws
        members = np.flatnonzero(labels == label)
        if len(members) < 2:
            raise DatasetError(
                f"class {_class_name(int(label))} has {len(members)} row; a stratified split needs at least 2"
                " rows per class (one to train, one to test)"
            )
        n_test = min(max(int(test_size * len(members) + 0.5), 1), len(members) - 1)
        in_test[rng.permutation(members)[:n_test]] = True
    train = [row for row, held_out in zip(rows, in_test, strict=True) if not held_out]
    test = [row for row, held_out in zip(rows, in_test, strict=True) if held_out]
    return train, test


def _class_name(label: int) -> str:
    return f"{CLASS_NAMES[label]!r} ({label})" if 0 <= label < len(CLASS_NAMES) else repr(label)


def make_scaler(kind: str) -> Any:
    """A fresh (unfitted) scikit-learn scaler of ``kind`` (``standard`` or ``minmax``)."""
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    if kind == "standard":
        return StandardScaler()
    if kind == "minmax":
        return MinMaxScaler()
    raise ValueError(f"scaler {kind!r} is not supported; use one of {list(SCALERS)}")


#: The fitted attributes ``scaler_params`` computes and ``scaler_from_params`` sets, per scaler kind.
SCALER_ATTRIBUTES = {
    "standard": ("mean", "var", "scale"),
    "minmax": ("data_min", "data_max", "data_range", "scale", "min"),
}


def scaler_params(kind: str, rows: Sequence[Row]) -> dict[str, Any]:
    """Fit scaler ``kind`` on the features of ``rows`` with numpy, as scikit-learn does; a JSON-able dict.

    The statistics are those of ``StandardScaler().fit`` (mean_, var_ with ddof=0, scale_ with
    (near-)zero variance -> 1.0) or ``MinMaxScaler().fit`` (feature_range (0, 1)), computed the way
    scikit-learn 1.x computes them, so normalize needs no scikit-learn import (~2 s of start-up).
    ``scaler_from_params`` turns the dict back into the fitted scikit-learn scaler.
    """
    import numpy as np

    if kind not in SCALER_ATTRIBUTES:
        raise ValueError(f"scaler {kind!r} is not supported; use one of {list(SCALERS)}")
    x, _ = features_and_labels(rows)
    if not len(x):
        raise DatasetError("cannot fit a scaler on no rows")
    n = x.shape[0]
    if kind == "standard":
        # sklearn.utils.extmath._incremental_mean_and_var from a fresh state: corrected two-pass variance
        total = x.sum(axis=0)
        mean = total / n
        centred = x - mean
        correction = centred.sum(axis=0)
        var = ((centred**2).sum(axis=0) - correction**2 / n) / n
        # sklearn.preprocessing._data._is_constant_feature: variance within rounding error of zero
        eps = np.finfo(np.float64).eps
        constant = var <= n * eps * var + (n * mean * eps) ** 2
        fitted = {"mean": mean, "var": var, "scale": np.where(constant, 1.0, np.sqrt(var))}
    else:
        data_min, data_max = x.min(axis=0), x.max(axis=0)
        data_range = data_max - data_min
        # sklearn.preprocessing._data._handle_zeros_in_scale: ranges below 10 eps count as zero
        safe_range = np.where(data_range < 10 * np.finfo(np.float64).eps, 1.0, data_range)
        scale = (1.0 - 0.0) / safe_range
        fitted = {
            "data_min": data_min,
            "data_max": data_max,
            "data_range": data_range,
            "scale": scale,
            "min": 0.0 - data_min * scale,
        }
    arrays = {name: values.tolist() for name, values in fitted.items()}
    return {"kind": kind, "n_features_in": x.shape[1], "n_samples_seen": n, **arrays}


def scaler_from_params(params: dict[str, Any]) -> Any:
    """The fitted scikit-learn scaler that ``params`` (from ``scaler_params``) describes.

    A default-constructed ``StandardScaler`` / ``MinMaxScaler`` with its documented fitted attributes
    (``mean_``, ``var_``, ``scale_`` / ``data_min_``, ``data_max_``, ``data_range_``, ``scale_``,
    ``min_``; ``n_samples_seen_``, ``n_features_in_``) set: it transforms, pickles and clones as one
    fitted by scikit-learn.
    """
    import numpy as np

    kind = params.get("kind")
    if kind not in SCALER_ATTRIBUTES:
        raise ValueError(f"scaler parameters of kind {kind!r} are not supported; use one of {list(SCALERS)}")
    scaler = make_scaler(kind)
    try:
        n_features = int(params["n_features_in"])
        n_samples = int(params["n_samples_seen"])
        arrays = {name: np.asarray(params[name], dtype=np.float64) for name in SCALER_ATTRIBUTES[kind]}
    except KeyError as exc:
        raise ValueError(
            f"{kind} scaler parameters lack {exc.args[0]!r}; write them with scaler_params"
        ) from None
    for name, values in arrays.items():
        if values.shape != (n_features,):
            raise ValueError(
                f"{kind} scaler parameter {name!r} has shape {values.shape}, expected ({n_features},)"
            )
        setattr(scaler, f"{name}_", values)
    scaler.n_features_in_ = n_features
    # the type fit leaves: StandardScaler reduces a per-feature float64 count, MinMaxScaler keeps an int
    scaler.n_samples_seen_ = np.float64(n_samples) if kind == "standard" else n_samples
    return scaler


def parse_k_values(text: str | Sequence[int]) -> list[int]:
    """Parse "1,3,5" (or a list) into distinct positive ints; errors show the bad value."""
    items = [p.strip() for p in text.split(",")] if isinstance(text, str) else list(text)
    values: list[int] = []
    for item in items:
        try:
            value = int(item)
        except (TypeError, ValueError):
            raise ValueError(f"K value {item!r} is not an integer; give a list like 1,3,5,7,9") from None
        if value < 1 or value > 100:
            raise ValueError(f"K value {value} is out of range; K must be between 1 and 100")
        if value in values:
            raise ValueError(f"K value {value} is given twice; each K trains one model")
        values.append(value)
    if not values:
        raise ValueError("the K list is empty; give at least one K, e.g. 1,3,5")
    return values


def train_candidate(
    train: Sequence[Row], test: Sequence[Row], scaler: Any, k: int, cv_folds: int = 5, seed: int = SEED
) -> tuple[Any, float, float]:
    """Fit Pipeline(scaler, KNN(k)) on the training rows; return (pipeline, test accuracy, CV accuracy).

    ``scaler`` is the scaler fitted on the training split by normalize; the pipeline keeps it as is
    (fitting KNN only), and cross-validation refits a clone per fold so no fold sees its own test rows.
    """
    from sklearn.base import clone
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline

    x_train, y_train = features_and_labels(train)
    x_test, y_test = features_and_labels(test)
    smallest_fold_train = len(x_train) - -(-len(x_train) // cv_folds)
    if k > smallest_fold_train:
        raise ValueError(
            f"K={k} is larger than the {smallest_fold_train} training rows of a CV fold; use a smaller K"
        )
    knn = KNeighborsClassifier(n_neighbors=k).fit(scaler.transform(x_train), y_train)
    model = Pipeline([("scaler", scaler), ("knn", knn)])
    accuracy = float(accuracy_score(y_test, model.predict(x_test)))
    folds = StratifiedKFold(n_splits=cv_folds, shuffle=True, random_state=seed)
    cv_model = Pipeline([("scaler", clone(scaler)), ("knn", KNeighborsClassifier(n_neighbors=k))])
    cv_accuracy = float(cross_val_score(cv_model, x_train, y_train, cv=folds).mean())
    return model, accuracy, cv_accuracy


def features_and_labels(rows: Sequence[Row]) -> tuple[Any, Any]:
    """``rows`` as numpy arrays: features (n, 4) float64 in centimetres and labels (n,) int64."""
    import numpy as np

    features = np.array([row[:-1] for row in rows], dtype=np.float64).reshape(len(rows), len(FEATURES))
    return features, np.array([row[-1] for row in rows], dtype=np.int64)


def choose_best(records: Sequence[Any]) -> Any:
    """The selection rule: highest test accuracy; ties -> higher CV accuracy; then smaller K.

    Smaller K wins the last tie because it is the cheaper model to serve.
    """
    if not records:
        raise ValueError("no candidates to choose from")
    return max(records, key=lambda r: (r.accuracy, -1.0 if r.cv_accuracy is None else r.cv_accuracy, -r.k))


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def copy_verified(source: str | Path, target: str | Path, expected_sha256: str = "") -> str:
    """Copy ``source`` to ``target`` through a temporary file and a rename; return the sha256.

    A reader of ``target`` never sees half a file. ``expected_sha256`` (recorded when the model was
    trained) must match the source, so the bytes served are the bytes that were evaluated; the copy
    is checked against the source before the rename. On any error ``target`` is left as it was.
    """
    source, target = Path(source), Path(target)
    if not source.is_file():
        raise FileNotFoundError(
            f"model file {source} does not exist; was the training run's artifact removed?"
        )
    digest = file_sha256(source)
    if expected_sha256 and digest != expected_sha256:
        raise ValueError(
            f"model file {source} changed since it was trained and evaluated (sha256 {digest[:12]},"
            f" registered {expected_sha256[:12]}); train the version again"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, partial_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(handle)
    partial = Path(partial_name)
    try:
        shutil.copyfile(source, partial)
        copied = file_sha256(partial)
        if copied != digest:
            raise OSError(
                f"the copy of {source} in {target.parent} differs from it (sha256 {copied[:12]} != {digest[:12]})"
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return digest
