"""Which sends train and which judge the offer model: time holdout, random stratified holdout, refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.offers.errors import OfferLogError
from training.offers.holdout import check_arms, choose_holdout, split_by_time, split_random


def _sent(days: list[str], per_day: int) -> pd.Series:
    return pd.Series(pd.to_datetime(np.repeat(days, per_day)) + pd.Timedelta(hours=9))


def test_random_holdout_keeps_each_arms_share_and_is_seeded():
    arm = np.array([0] * 10 + [1] * 20 + [2] * 30)
    held = split_random(arm, 0.3, seed=7)
    assert [int(held[arm == a].sum()) for a in range(3)] == [3, 6, 9]
    np.testing.assert_array_equal(held, split_random(arm, 0.3, seed=7))
    assert not np.array_equal(held, split_random(arm, 0.3, seed=8))


def test_single_day_log_gets_a_random_holdout_that_says_why():
    sent = _sent(["2026-03-02"], 100)
    arm = np.tile([0, 1], 50)
    holdout = choose_holdout(sent, arm, kind="auto", holdout_share=0.3, min_time_days=2, seed=7)
    assert holdout.kind == "random" and holdout.rows == 30
    assert "random: 30% of each arm's sends (seed 7)" in holdout.description
    assert "1 campaign day(s), fewer than time_holdout_min_days=2" in holdout.description


def test_several_days_keep_the_time_holdout():
    sent = _sent(["2026-03-02", "2026-03-16", "2026-03-30"], 10)
    arm = np.tile([0, 1], 15)
    holdout = choose_holdout(sent, arm, kind="auto", holdout_share=0.3, min_time_days=2, seed=7)
    assert holdout.kind == "time"
    assert sent[holdout.mask].min() > sent[~holdout.mask].max()
    assert "the latest 1 of 3 campaign days (2026-03-30..2026-03-30, 10 of 30 sends)" in holdout.description
    # with a higher bar the same log is split at random
    assert choose_holdout(sent, arm, kind="auto", holdout_share=0.3, min_time_days=4, seed=7).kind == "random"


def test_time_holdout_on_one_day_is_refused_with_the_way_out():
    sent = _sent(["2026-03-02"], 40)
    with pytest.raises(OfferLogError, match=r"has 1 \(40 sends\); set holdout: auto or random"):
        choose_holdout(sent, np.zeros(40, dtype=int), kind="time", holdout_share=0.3, min_time_days=2, seed=7)
    with pytest.raises(OfferLogError, match="two campaign days"):
        split_by_time(sent, 0.3)


def test_arms_without_enough_conversions_are_refused_naming_the_counts():
    arm = np.array([0] * 50 + [1] * 50)
    y = np.r_[np.tile([0, 1], 25), np.zeros(48), [1, 1]]
    held = np.zeros(100, dtype=bool)
    held[::5] = True
    with pytest.raises(OfferLogError) as err:
        check_arms(arm, y, held, ["none", "promo"], min_conversions=5)
    msg = str(err.value)
    assert "'promo' has 2 conversions in 40 training sends" in msg and "min_conversions_per_arm=5" in msg
    assert "'none'" not in msg.split("(each arm")[0]
    check_arms(arm, y, held, ["none", "promo"], min_conversions=1)  # one conversion is enough at this bar


def test_an_offer_never_sent_is_refused():
    arm = np.zeros(20, dtype=int)
    y = np.tile([0, 1], 10)
    with pytest.raises(OfferLogError, match="'promo' has no training sends; 'promo' has no held-out sends"):
        check_arms(arm, y, np.arange(20) % 4 == 0, ["none", "promo"], min_conversions=1)
