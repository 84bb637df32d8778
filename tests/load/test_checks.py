"""The answer checks every load tool relies on: a 200 with the wrong species must count as a failure."""

from __future__ import annotations

import pytest

from load.checks import KNOWN_FLOWERS, WrongAnswer, check_frontend, check_v1, check_v2, v2_body
from load.shapes import RampHoldRamp

SETOSA, VERSICOLOR, VIRGINICA = KNOWN_FLOWERS


def test_v1_answer_with_right_species_returns_the_model_version() -> None:
    body = {"predictions": [0, 1, 2], "species": ["setosa", "versicolor", "virginica"], "model_version": "v2"}
    assert check_v1(body, KNOWN_FLOWERS) == "v2"


def test_v1_wrong_species_names_the_flower_and_both_answers() -> None:
    body = {"predictions": [0], "species": ["setosa"], "model_version": "v2"}
    with pytest.raises(WrongAnswer, match=r"\[6.3, 3.3, 6.0, 2.5\] is virginica, the answer was 'setosa'"):
        check_v1(body, [VIRGINICA])


def test_version_may_come_from_the_header_and_its_absence_fails_unless_allowed() -> None:
    body = {"predictions": [1]}  # KServe's stock sklearn runtime: class indexes only
    assert check_v1(body, [VERSICOLOR], {"x-kfchain-model-version": "v3"}) == "v3"
    with pytest.raises(WrongAnswer, match="no model version"):
        check_v1(body, [VERSICOLOR])
    assert check_v1(body, [VERSICOLOR], require_version=False) == ""


def test_v2_checks_the_species_output_of_the_request_it_built() -> None:
    request = v2_body([SETOSA, VIRGINICA])
    assert request["inputs"][0]["shape"] == [2, 4] and len(request["inputs"][0]["data"]) == 8
    good = {
        "model_version": "v1",
        "outputs": [
            {"name": "predict", "data": [0, 2]},
            {"name": "species", "data": ["setosa", "virginica"]},
        ],
    }
    assert check_v2(good, [SETOSA, VIRGINICA]) == "v1"
    short = {"model_version": "v1", "outputs": [{"name": "predict", "data": [0]}]}
    with pytest.raises(WrongAnswer, match="expected 2 answers, got 1"):
        check_v2(short, [SETOSA, VIRGINICA])


def test_frontend_answer_in_kfchain_shape() -> None:
    body = {
        "predictions": [1],
        "species": ["versicolor"],
        "probabilities": None,
        "model_name": "iris",
        "model_version": None,
    }
    assert check_frontend(body, [VERSICOLOR], {"x-kfchain-model-version": "v4"}) == "v4"
    with pytest.raises(WrongAnswer, match="expected a JSON object"):
        check_frontend(["versicolor"], [VERSICOLOR])


def test_autoscale_shape_ramps_up_holds_ramps_down_then_stops() -> None:
    shape = RampHoldRamp(peak_users=30, ramp_s=10, hold_s=20)
    assert shape.at(0) == (30, 3.0)  # Locust spawns 3 users/s: the peak arrives after the 10 s ramp
    assert shape.at(29.9) == (30, 3.0)
    assert shape.at(30) == (0, 3.0)  # ramp down at the same rate
    assert shape.at(40) is None and shape.duration_s == 40
    with pytest.raises(ValueError, match="peak users"):
        RampHoldRamp(peak_users=0)
