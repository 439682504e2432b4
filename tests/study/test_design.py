"""Study design: seeded per-image orders, opaque tokens, a key that inverts them."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from facesr.study import Study, StudyError, plan_study

IMAGES = [f"face{k}" for k in range(30)]
METHODS = ["bicubicq", "esrganzz", "oursxmodel"]


def _plan(seed: int, **kw) -> Study:
    return plan_study(IMAGES, METHODS, np.random.default_rng(seed), **kw)


def test_orders_are_seeded_and_differ_from_image_to_image():
    a, b, c = _plan(0), _plan(0), _plan(1)
    orders = [item.methods for item in a.items]
    assert orders == [item.methods for item in b.items]
    assert orders != [item.methods for item in c.items]
    assert all(sorted(o) == METHODS for o in orders)
    assert len(set(orders)) > 3  # not one order for every image
    # every method is shown as A on some image: the letter says nothing about the method
    assert {o[0] for o in orders} == set(METHODS)


def test_tokens_are_opaque_unique_and_fresh_per_study():
    a, b = _plan(0), _plan(0)
    tokens = [t for item in a.items for t in item.tokens]
    assert len(set(tokens)) == len(IMAGES) * len(METHODS)
    assert not any(m in t for t, m in itertools.product(tokens, METHODS))
    assert a.study_id != b.study_id and set(tokens).isdisjoint(b.method_of())


def test_key_inverts_the_tokens_and_reads_back():
    study = _plan(3, study_id="s1")
    key = json.loads(json.dumps(study.to_key()))
    assert key["study"] == "s1"
    for item in study.items:
        assert [key["tokens"][t] for t in key["images"][item.image]] == list(item.methods)
    assert Study.from_key(key) == study


def test_bad_designs_and_keys_are_refused():
    with pytest.raises(StudyError, match="2 to 26 methods"):
        plan_study(IMAGES, ["a"], np.random.default_rng(0))
    with pytest.raises(StudyError, match="repeat"):
        plan_study(IMAGES, ["a", "a"], np.random.default_rng(0))
    with pytest.raises(StudyError, match="keeps repeating"):
        plan_study(IMAGES, METHODS, np.random.default_rng(0), token=lambda: "same")
    with pytest.raises(StudyError, match="not a study key"):
        Study.from_key({"format": "facesr-study-rankings"})
    key = _plan(0).to_key()
    key["images"]["face0"][0] = "nosuchtoken"
    with pytest.raises(StudyError, match="face0"):
        Study.from_key(key)
