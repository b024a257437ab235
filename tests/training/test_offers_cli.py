"""``python -m retain train-offers`` on a one-date randomised test: trains, says how it held out and valued
conversions, refuses with exit 2 and a message (no traceback), and registers a pyfunc that scores exactly
what ``build-features`` writes."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.config import CONFIG_DIR
from retain.cli import app
from tests.offers_synthetic import offer_log

pytestmark = pytest.mark.slow
FAST = ["--trials", "0", "--learners", "t,s"]


def _write(tables, folder: Path, *, drop: tuple[str, ...] = ()) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.present().items():
        if name not in drop:
            frame.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


def _configs(tmp_path: Path, **offer_model: str) -> Path:
    folder = tmp_path / "configs"
    shutil.copytree(CONFIG_DIR, folder, dirs_exist_ok=True)
    if offer_model:
        path = folder / "offer_model.yaml"
        path.write_text(path.read_text() + "".join(f"{k}: {v}\n" for k, v in offer_model.items()))
    return folder


def _invoke(args: list[str]):
    return CliRunner().invoke(app, args)


@pytest.fixture(scope="module")
def one_day(tmp_path_factory):
    """A single randomised campaign: every send on 2024-11-01."""
    tables, _ = offer_log(n_customers=3000, campaigns=1, seed=11)
    assert tables.offers["sent_at"].dt.normalize().nunique() == 1
    return tables, _write(tables, tmp_path_factory.mktemp("one_day"))


def test_one_date_log_trains_with_a_random_stratified_holdout(one_day, tmp_path):
    _, data = one_day
    out = tmp_path / "offers"
    result = _invoke(["train-offers", "--data", str(data), "--out", str(out), "--no-track", *FAST])
    assert result.exit_code == 0, result.output
    assert "holdout: random: 30% of each arm's sends (seed 7), 900 of 3,000 sends" in result.output
    assert "because the log has 1 campaign day(s)" in result.output
    assert "conversion value: the customer's own average order (sales_avg_order_value_all)" in result.output
    card = (out / "model_card.md").read_text()
    assert "- Holdout: random: 30% of each arm's sends" in card and "- Conversion value: the customer's own" in card


def test_forcing_a_time_holdout_on_one_date_is_exit_2_with_the_way_out(one_day, tmp_path):
    _, data = one_day
    configs = _configs(tmp_path, holdout="time")
    result = _invoke(["train-offers", "--data", str(data), "--configs", str(configs), "--no-track", *FAST])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert "a time holdout needs at least two campaign days; the offer log has 1 (3,000 sends)" in result.output
    assert "set holdout: auto or random" in result.output and "Traceback" not in result.output


def test_a_bad_setting_is_exit_2_before_reading_tables(tmp_path):
    configs = _configs(tmp_path, holdout="weekly")
    result = _invoke(["train-offers", "--data", str(tmp_path / "absent"), "--configs", str(configs), "--no-track"])
    assert result.exit_code == 2 and "error: settings:" in result.output and "holdout" in result.output


def test_no_order_history_and_no_revenue_is_exit_2_naming_the_ways_out(one_day, tmp_path):
    tables, _ = one_day
    data = _write(replace(tables, offers=tables.offers.drop(columns="revenue")), tmp_path / "data", drop=("orders",))
    result = _invoke(["train-offers", "--data", str(data), "--no-track", *FAST])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert "nothing says what a conversion is worth: none of the 3,000 sends' customers" in result.output
    assert "set margin_per_order in configs/offers.yaml" in result.output and "Traceback" not in result.output


def test_registered_pyfunc_scores_what_build_features_writes(one_day, tmp_path, monkeypatch):
    _, data = one_day
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)  # the run's artifacts land here
    result = _invoke(["train-offers", "--data", str(data), "--out", str(tmp_path / "offers"), *FAST])
    assert result.exit_code == 0, result.output
    run = mlflow.get_run(result.output.split("run ")[-1].split(":")[0])
    assert run.data.tags["holdout"] == "random" and run.data.params["holdout_kind"] == "random"
    assert run.data.tags["conversion_value_source"] == "own_order_value"
    features = tmp_path / "features.parquet"
    built = _invoke(["build-features", "--data", str(data), "--cutoff", "2024-12-01", "--out", str(features)])
    assert built.exit_code == 0, built.output
    frame = pd.read_parquet(features)
    model = mlflow.pyfunc.load_model("models:/retain-offers@champion")
    spec = model.unwrap_python_model().model.spec
    categorical = [c for c in spec["features"] if isinstance(frame[c].dtype, pd.CategoricalDtype)]
    assert categorical, "build-features should write category columns for this log"
    scored = model.predict(frame)
    assert len(scored) == len(frame) and set(scored["offer"]) <= set(spec["arms"])
    # the pyfunc gives what the model's own scoring gives on the same frame
    from modeling.offer_model import OfferModel

    inner = model.unwrap_python_model().model
    direct = OfferModel.from_parts(inner.boosters, spec).table(frame)
    pd.testing.assert_series_equal(scored["offer"].reset_index(drop=True), direct["offer"].reset_index(drop=True))
