"""A build over a slice of the customers, given the population's vocabulary, equals the whole build's rows.

This is what lets Spark build features per partition: each customer's row must
not depend on which other customers share its partition.
"""

from __future__ import annotations

import pandas as pd
import pytest

from features.build import build_features, learn_vocabulary
from features.config import FeaturesConfig
from features.sources import check_tables
from simulator.demo_data import generate

CUTOFF = "2026-03-01"
# few levels and interests, so that folding into "other" and the choice of interests matter
CONFIG = FeaturesConfig(max_category_levels=3, top_interests=3)


@pytest.fixture(scope="module")
def frames():
    frames = generate(900, days=400, seed=3).tables
    customers = frames["customers"]
    customers["Shoe Size"] = [f"s{i % 7}" for i in range(len(customers))]  # 7 levels, equally common: ties
    customers["Last Login"] = customers["signed_up_at"] + pd.to_timedelta(customers.index % 50, unit="D")
    return frames


def _slice(frames: dict[str, pd.DataFrame], ids: set[str]) -> dict[str, pd.DataFrame]:
    """Those customers' rows, shuffled: another machine reads them in another order."""
    return {
        name: f[f["customer_id"].isin(ids)].sample(frac=1.0, random_state=1).reset_index(drop=True)
        for name, f in frames.items()
    }


def test_partition_builds_with_the_population_vocabulary_equal_the_whole_build(frames):
    whole = build_features(check_tables(frames), cutoff=CUTOFF, config=CONFIG)
    vocabulary = learn_vocabulary(check_tables(frames), cutoff=CUTOFF, config=CONFIG)
    assert vocabulary["features.builders.social"]  # the data has interests to choose from
    shuffled = _slice(frames, set(frames["customers"]["customer_id"]))
    assert learn_vocabulary(check_tables(shuffled), cutoff=CUTOFF, config=CONFIG) == vocabulary  # ties by value
    ids = sorted(frames["customers"]["customer_id"])
    parts = [
        build_features(
            check_tables(_slice(frames, set(ids[k::3]))), cutoff=CUTOFF, config=CONFIG, vocabulary=vocabulary
        )
        for k in range(3)
    ]
    joined = pd.concat(parts).sort_index()
    pd.testing.assert_frame_equal(joined, whole)


def test_a_slice_with_an_empty_table_equals_the_whole_build(frames):
    """A partition may hold no rows of some table (no reviews there); its customers still had none."""
    whole = build_features(check_tables(frames), cutoff=CUTOFF, config=CONFIG)
    vocabulary = learn_vocabulary(check_tables(frames), cutoff=CUTOFF, config=CONFIG)
    quiet = set(frames["customers"]["customer_id"]) - set(frames["reviews"]["customer_id"])
    part = _slice(frames, set(sorted(quiet)[:50]))
    assert part["reviews"].empty and not part["orders"].empty
    built = build_features(check_tables(part, allow_empty=True), cutoff=CUTOFF, config=CONFIG, vocabulary=vocabulary)
    pd.testing.assert_frame_equal(built, whole.loc[built.index])
    assert (built["social_reviews_all"] == 0).all()


def test_a_slice_alone_would_choose_differently(frames):
    """Why the vocabulary is needed: learned on one slice, the levels kept as named differ."""
    ids = sorted(frames["customers"]["customer_id"])
    alone = learn_vocabulary(check_tables(_slice(frames, set(ids[:40]))), cutoff=CUTOFF, config=CONFIG)
    whole = learn_vocabulary(check_tables(frames), cutoff=CUTOFF, config=CONFIG)
    assert alone != whole


def test_a_given_vocabulary_must_cover_every_builder(frames):
    with pytest.raises(KeyError, match="learn_vocabulary"):
        build_features(check_tables(frames), cutoff=CUTOFF, config=CONFIG, vocabulary={})


def test_value_columns_per_partition_equal_the_whole_build(frames):
    """Gamma-Gamma's parameters travel in the vocabulary like BG/NBD's, so a partition's value columns are the
    whole build's."""
    from features.value import value_frame

    whole = value_frame(check_tables(frames), cutoff=CUTOFF, config=CONFIG)
    vocabulary = learn_vocabulary(check_tables(frames), cutoff=CUTOFF, config=CONFIG)
    assert vocabulary["features.value"] is not None and whole["expected_spend_bgnbd"].notna().any()
    ids = sorted(frames["customers"]["customer_id"])
    parts = [
        value_frame(check_tables(_slice(frames, set(ids[k::3]))), cutoff=CUTOFF, config=CONFIG, vocabulary=vocabulary)
        for k in range(3)
    ]
    pd.testing.assert_frame_equal(pd.concat(parts).sort_index(), whole)
