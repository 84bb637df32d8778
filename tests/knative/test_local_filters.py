"""Trigger filter semantics, table-driven against Knative's definitions.

Sources: knative.dev "Using Triggers" (filter.attributes: exact match on every listed attribute, all
must match) and "New trigger filters" (exact, prefix, suffix, all, any, not), with eventing's
``pkg/eventfilter`` behaviour for the corner cases: ``""`` in ``filter.attributes`` matches any value
of an attribute that exists; a missing extension fails; ``filters`` takes precedence over ``filter``.
"""

from __future__ import annotations

import pytest

from events.catalogue import Candidate, PipelineRunSucceeded
from events.event import new_event
from knative.local.filters import FilterError, Result, dialect_filter, trigger_filter

TRAINING_DONE = new_event(
    PipelineRunSucceeded(
        pipeline="training", run_id="run-1", model_name="iris", model_version="v1",
        candidates=(Candidate(k=3, accuracy=0.95, uri="file:///m/3"),),
    ),
    source="/kfchain/pipelines/training",
).attributes()  # fmt: skip
TYPE = "io.kfchain.pipeline.run.succeeded"

# (description, trigger spec, passes)
CASES = [
    ("no filter delivers everything", {}, True),
    ("attributes: all listed match", {"filter": {"attributes": {"type": TYPE, "pipeline": "training"}}}, True),
    ("attributes: one differs", {"filter": {"attributes": {"type": TYPE, "pipeline": "model-selection"}}}, False),
    ("attributes: match is case-sensitive", {"filter": {"attributes": {"pipeline": "Training"}}}, False),
    ("attributes: missing extension fails", {"filter": {"attributes": {"tenant": "a"}}}, False),
    ("attributes: empty value = any value", {"filter": {"attributes": {"pipeline": ""}}}, True),
    ("attributes: empty value still needs the extension", {"filter": {"attributes": {"tenant": ""}}}, False),
    ("attributes: empty map delivers everything", {"filter": {"attributes": {}}}, True),
    ("exact", {"filters": [{"exact": {"type": TYPE}}]}, True),
    ("exact mismatch", {"filters": [{"exact": {"type": "io.kfchain.model.deployed"}}]}, False),
    ("exact on a missing extension", {"filters": [{"exact": {"tenant": "a"}}]}, False),
    ("prefix", {"filters": [{"prefix": {"type": "io.kfchain.pipeline."}}]}, True),
    ("prefix mismatch", {"filters": [{"prefix": {"type": "io.kfchain.model."}}]}, False),
    ("suffix", {"filters": [{"suffix": {"type": ".succeeded"}}]}, True),
    ("suffix mismatch", {"filters": [{"suffix": {"type": ".failed"}}]}, False),
    ("suffix on source", {"filters": [{"suffix": {"source": "/training"}}]}, True),
    ("list is an AND", {"filters": [{"prefix": {"type": "io.kfchain."}}, {"exact": {"pipeline": "model-selection"}}]}, False),
    ("all: every part passes", {"filters": [{"all": [{"exact": {"pipeline": "training"}}, {"suffix": {"type": "succeeded"}}]}]}, True),
    ("all: one part fails", {"filters": [{"all": [{"exact": {"pipeline": "training"}}, {"suffix": {"type": "failed"}}]}]}, False),
    ("any: one part passes", {"filters": [{"any": [{"exact": {"pipeline": "x"}}, {"exact": {"pipeline": "training"}}]}]}, True),
    ("any: no part passes", {"filters": [{"any": [{"exact": {"pipeline": "x"}}, {"exact": {"pipeline": "y"}}]}]}, False),
    ("not: inverts a pass", {"filters": [{"not": {"exact": {"pipeline": "training"}}}]}, False),
    ("not: inverts a fail", {"filters": [{"not": {"exact": {"pipeline": "model-selection"}}}]}, True),
    ("not: a missing extension fails, so not passes", {"filters": [{"not": {"exact": {"tenant": "a"}}}]}, True),
    ("nested", {"filters": [{"all": [{"prefix": {"type": "io.kfchain."}}, {"not": {"any": [{"exact": {"pipeline": "a"}}, {"suffix": {"type": "failed"}}]}}]}]}, True),
    ("filters take precedence over filter",
     {"filter": {"attributes": {"pipeline": "model-selection"}}, "filters": [{"exact": {"pipeline": "training"}}]}, True),
]  # fmt: skip


@pytest.mark.parametrize(("spec", "passes"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_filter_decides_delivery_as_knative_does(spec: dict, passes: bool) -> None:
    assert trigger_filter(spec).evaluate(TRAINING_DONE).passes() is passes


def test_not_of_no_filter_is_no_filter_so_the_event_is_delivered() -> None:
    # eventing's notFilter returns NoFilter for a NoFilter operand; only FailFilter stops delivery.
    from knative.local.filters import NoFilter, NotFilter

    assert NotFilter(NoFilter()).evaluate(TRAINING_DONE) is Result.NO_FILTER
    assert NotFilter(NoFilter()).evaluate(TRAINING_DONE).passes()


BAD = [
    ({"exact": {"type": "a", "source": "b"}}, "spec.filters[0].exact", "exactly one attribute"),
    ({"prefix": {"type": ""}}, "spec.filters[0].prefix.type", "must not be empty"),
    ({"exact": {"type": "a"}, "prefix": {"type": "a"}}, "spec.filters[0]", "exactly one dialect"),
    ({"regex": {"type": "a"}}, "spec.filters[0].regex", "unknown filter dialect"),
    ({"all": []}, "spec.filters[0].all", "non-empty list"),
    ({"any": [{"exact": {"type": 3}}]}, "spec.filters[0].any[0].exact.type", "must be strings"),
    ({"cesql": "type = 'a'"}, "spec.filters[0].cesql", "not supported"),
]


@pytest.mark.parametrize(("spec", "field", "reason"), BAD, ids=[b[1] + ":" + b[2] for b in BAD])
def test_invalid_filter_names_the_field(spec: dict, field: str, reason: str) -> None:
    with pytest.raises(FilterError) as error:
        dialect_filter(spec, "spec.filters[0]")
    assert error.value.field == field
    assert reason in str(error.value)
