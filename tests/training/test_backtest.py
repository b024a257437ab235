"""retain backtest: issued scores against what happened, on a tiny shop whose outcome is known by hand."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.labels import spend_after
from features.sources import check_tables
from retain.cli import app
from training.backtest import BacktestError, run_backtest
from training.backtest_report import EXPERIMENT
from training.evaluate import rate_interval
from training.scores_file import read_issued

ROOT = Path(__file__).resolve().parents[2]
AS_OF = "2024-06-01"  # horizon 30 days: the window is [2024-06-01, 2024-07-01), its last day 2024-06-30

# a-d churn (no order in June), e-h order in June; i never ordered (a prospect, not scored)
ORDERS = pd.DataFrame(
    {
        "customer_id": [*"abcdefgh", "e", "f", "g", "h", "e"],
        "ordered_at": ["2024-05-0" + str(d) for d in range(1, 9)]
        + ["2024-06-10", "2024-06-15", "2024-06-05", "2024-06-25", "2024-06-30"],
        "amount": [10.0] * 8 + [30.0, 10.0, 40.0, 5.0, 20.0],
    }
)
PROBABILITY = {"a": 0.9, "b": 0.8, "c": 0.65, "d": 0.5, "e": 0.4, "f": 0.2, "g": 0.1, "h": 0.05}
BAND = {"a": "high", "b": "high", "c": "high", "d": "medium", "e": "medium", "f": "low", "g": "low", "h": "low"}
VALUE = {"a": 0.0, "b": 0.0, "c": 0.0, "d": 0.0, "e": 60.0, "f": 10.0, "g": 30.0, "h": 5.0}


def scores(probability=PROBABILITY, version=lambda c: "retain-churn v1", **extra) -> pd.DataFrame:
    ids = [*"abcdefghi"]
    frame = pd.DataFrame(
        {
            "customer_id": ids,
            "as_of": AS_OF,
            "churn_probability": [probability.get(c) for c in ids],
            "risk_band": [BAND.get(c) for c in ids],
            "churn_unscored_reason": [None] * 8 + ["no order before the as-of date"],
            "churn_model_version": [version(c) for c in ids],
        }
    )
    return frame.assign(**extra)


def shop(tmp_path: Path, orders: pd.DataFrame = ORDERS) -> tuple[Path, Path]:
    """A data folder with the orders and a configs folder whose horizon is 30 days."""
    data = tmp_path / "data"
    data.mkdir()
    orders.to_csv(data / "orders.csv", index=False)
    configs = tmp_path / "configs"
    shutil.copytree(ROOT / "configs", configs)
    text = (configs / "features.yaml").read_text().replace("horizon_days: 90", "horizon_days: 30")
    (configs / "features.yaml").write_text(text)
    return data, configs


@pytest.fixture
def registry(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    yield uri
    mlflow.set_tracking_uri(None)


def backtest(tmp_path: Path, frame: pd.DataFrame, *extra: str, orders: pd.DataFrame = ORDERS):
    data, configs = shop(tmp_path, orders)
    path = tmp_path / "scores.csv"
    frame.to_csv(path, index=False)
    done = CliRunner().invoke(
        app, ["backtest", "--scores", str(path), "--data", str(data), "--configs", str(configs), *extra]
    )
    return done, path


def _issued(tmp_path: Path, frame: pd.DataFrame):
    path = tmp_path / "scores.parquet"
    frame.to_parquet(path, index=False)
    return read_issued(path)


def test_a_perfect_ranking_has_auc_one_and_the_band_rates_are_counted(tmp_path):
    tables = check_tables({"orders": ORDERS})
    horizons = {"retain-churn v1": (30, "a test")}
    result = run_backtest(_issued(tmp_path, scores()), tables, horizons=horizons, n_boot=20, seed=0)
    v = result["versions"]["retain-churn v1"]
    assert v["metrics"]["roc_auc"]["value"] == 1.0
    assert (v["customers"], v["churners"], v["churn_rate"]["value"]) == (8, 4, 0.5)
    assert v["predicted_churn_rate"] == pytest.approx(sum(PROBABILITY.values()) / 8)
    bands = {b["group"]: (b["customers"], b["realised"], b["predicted"]) for b in v["bands"]}
    assert bands == {
        "low": (3, 0.0, pytest.approx(0.35 / 3)),
        "medium": (2, 0.5, pytest.approx(0.45)),
        "high": (3, 1.0, pytest.approx(2.35 / 3)),
    }
    assert [b["group"] for b in v["bands"]] == ["low", "medium", "high"]
    assert v["bands"][0]["ci"] == pytest.approx(rate_interval(0, 3))
    assert [r["customers"] for r in v["reliability"]] == [1] * 8  # fewer customers than deciles: one a group
    assert [r["realised"] for r in v["reliability"]] == [0.0] * 4 + [1.0] * 4
    assert result["not_scored"] == {"no order before the as-of date": 1}
    assert v["window"] == [AS_OF, "2024-07-01"] and result["data_last_order_day"] == "2024-06-30"
    assert "value" not in v


def test_predicted_value_is_compared_with_the_spend_in_the_window(tmp_path):
    tables = check_tables({"orders": ORDERS})
    spend = spend_after(tables, cutoff=AS_OF, horizon_days=30)
    assert spend.to_dict() == {"a": 0.0, "b": 0.0, "c": 0.0, "d": 0.0, "e": 50.0, "f": 10.0, "g": 40.0, "h": 5.0}
    frame = scores(predicted_value=[VALUE.get(c) for c in "abcdefghi"])
    result = run_backtest(_issued(tmp_path, frame), tables, horizons={"retain-churn v1": (30, "")}, n_boot=20, seed=0)
    value = result["versions"]["retain-churn v1"]["value"]
    assert value["mae"]["value"] == 2.5  # |60 - 50| + |30 - 40| over 8 customers
    assert value["spearman"]["value"] == pytest.approx(1.0)  # the same order
    assert value["predicted_total"] == value["realised_total"]["value"] == 105.0
    assert value["top_decile_share"]["value"] == pytest.approx(50 / 105)  # e, the top 1 of 8


def test_each_model_version_is_back_tested_on_its_own_customers(tmp_path):
    swapped = {**PROBABILITY, "d": 0.2, "f": 0.5}  # v2's churner d now ranks below its non-churner f
    frame = scores(swapped, version=lambda c: "retain-churn v1" if c in "aceg" else "retain-churn v2")
    tables = check_tables({"orders": ORDERS})
    horizons = {"retain-churn v1": (30, ""), "retain-churn v2": (30, "")}
    result = run_backtest(_issued(tmp_path, frame), tables, horizons=horizons, n_boot=20, seed=0)
    v1, v2 = result["versions"]["retain-churn v1"], result["versions"]["retain-churn v2"]
    assert (v1["customers"], v2["customers"]) == (4, 4)
    assert v1["metrics"]["roc_auc"]["value"] == 1.0
    assert v2["metrics"]["roc_auc"]["value"] == 0.75  # b > f, b > h, d > h; d < f


def test_the_cli_writes_the_folder_and_one_mlflow_run_per_version(tmp_path, registry):
    frame = scores(version=lambda c: "retain-churn v1" if c in "aceg" else "retain-churn v2")
    done, path = backtest(tmp_path, frame)
    assert done.exit_code == 0, done.output
    folder = tmp_path / "scores_backtest"
    assert sorted(p.name for p in folder.iterdir()) == ["backtest.json", "backtest.md", "reliability.png"]
    saved = json.loads((folder / "backtest.json").read_text())
    assert saved["versions"]["retain-churn v1"]["horizon_days"] == 30
    assert (
        "configs/features.yaml (retain-churn v1 is not in the registry"
        in saved["versions"]["retain-churn v1"]["horizon_source"]
    )
    assert "## retain-churn v2" in (folder / "backtest.md").read_text()
    runs = mlflow.search_runs(experiment_names=[EXPERIMENT], output_format="list")
    assert sorted(r.data.tags["churn_model_version"] for r in runs) == ["retain-churn v1", "retain-churn v2"]
    assert {r.data.tags["as_of"] for r in runs} == {AS_OF}
    assert {r.data.metrics["roc_auc"] for r in runs} == {1.0}
    assert "ROC AUC 1.000" in done.output


def test_refuses_while_the_window_is_open_naming_the_dates(tmp_path, registry):
    early = ORDERS[pd.to_datetime(ORDERS["ordered_at"]) < "2024-06-21"]  # the data end on 2024-06-15
    done, path = backtest(tmp_path, scores(), orders=early)
    assert done.exit_code == 2, done.output
    for says in ("as of 2024-06-01", "30-day horizon", "closes on 2024-06-30", "end on 2024-06-15", "rerun after"):
        assert says in done.output
    assert "Traceback" not in done.output
    assert not (tmp_path / "scores_backtest").exists()


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda f: f.drop(columns="risk_band"), "column risk_band missing"),
        (lambda f: f.assign(as_of=["2024-06-01"] * 5 + ["2024-05-01"] * 4), "column as_of holds 2 dates"),
        (
            lambda f: f.assign(churn_probability=[1.5, *f["churn_probability"][1:]]),
            "column churn_probability, rows [1]",
        ),
        (lambda f: pd.concat([f, f.head(1)]), "column customer_id: repeated ids ['a']"),
    ],
)
def test_a_bad_scores_file_exits_2_naming_the_file_and_column(tmp_path, registry, change, says):
    done, path = backtest(tmp_path, change(scores()))
    assert done.exit_code == 2, done.output
    assert str(path) in done.output and says in done.output
    assert "Traceback" not in done.output


def test_an_unreadable_scores_file_exits_2(tmp_path, registry):
    data, configs = shop(tmp_path)
    path = tmp_path / "scores.parquet"
    path.write_bytes(b"not parquet")
    done = CliRunner().invoke(app, ["backtest", "--scores", str(path), "--data", str(data), "--configs", str(configs)])
    assert done.exit_code == 2 and f"{path}: cannot read the scores file" in done.output, done.output
    gone = tmp_path / "gone.parquet"
    done = CliRunner().invoke(app, ["backtest", "--scores", str(gone), "--data", str(data), "--configs", str(configs)])
    assert done.exit_code == 2 and f"{gone}: no such file" in done.output, done.output


def test_scores_of_another_shop_are_refused(tmp_path):
    other = scores().assign(customer_id=[f"x{i}" for i in range(9)])
    tables = check_tables({"orders": ORDERS})
    with pytest.raises(BacktestError, match="none of the 8 scored customers has an order before 2024-06-01"):
        run_backtest(_issued(tmp_path, other), tables, horizons={"retain-churn v1": (30, "")}, n_boot=10, seed=0)


def test_the_report_shows_the_back_test_folder(tmp_path, registry):
    done, path = backtest(tmp_path, scores(predicted_value=[VALUE.get(c) for c in "abcdefghi"]), "--no-track")
    assert done.exit_code == 0, done.output
    assert "value: 105.00 EUR spent vs 105.00 predicted, MAE 2.50" in done.output
    html = tmp_path / "report.html"
    args = ["report", "--as-of", "2024-07-01", "--data", str(tmp_path / "data"), "--configs", str(tmp_path / "configs")]
    shown = CliRunner().invoke(app, [*args, "--out", str(html), "--backtest-dir", str(tmp_path / "scores_backtest")])
    assert shown.exit_code == 0, shown.output
    page = html.read_text()
    assert "<h2>Back-test of the scores as of 2024-06-01</h2>" in page and "<h3>retain-churn v1</h3>" in page
    assert (
        "<h4>Churn rate by risk band</h4>" in page and '<img alt="reliability"' in page and '<img alt="value"' in page
    )
    missing = CliRunner().invoke(app, [*args, "--out", str(html), "--backtest-dir", str(tmp_path)])
    assert missing.exit_code == 2 and "no backtest.md there" in missing.output


def test_a_shop_without_orders_is_refused(tmp_path):
    tables = check_tables({"customers": pd.DataFrame({"customer_id": [*"abcdefghi"]})})
    with pytest.raises(BacktestError, match="needs the shop's orders table, with the orders after 2024-06-01"):
        run_backtest(_issued(tmp_path, scores()), tables, horizons={"retain-churn v1": (30, "")}, n_boot=10, seed=0)


@pytest.mark.slow
def test_end_to_end_scores_issued_before_the_data_end_are_back_tested(tmp_path_factory):
    """Demo data end on 2026-06-30: scores issued on 2026-03-01 have their 90 days in the data."""
    from tests.serving_champions import champions

    champ = champions(tmp_path_factory.mktemp("serving"))
    out = tmp_path_factory.mktemp("issued") / "scores.parquet"
    common = ["--data", str(champ.data_dir), "--configs", str(champ.configs)]
    score = ["score", "--as-of", "2026-03-01", "--out", str(out), "--no-store", "--no-track", *common]
    done = CliRunner().invoke(app, score)
    assert done.exit_code == 0, done.output
    issued = pd.read_parquet(out)
    done = CliRunner().invoke(app, ["backtest", "--scores", str(out), *common])
    assert done.exit_code == 0, done.output
    saved = json.loads((out.parent / "scores_backtest" / "backtest.json").read_text())
    (version,) = issued["churn_model_version"].unique()
    v = saved["versions"][version]
    assert (v["horizon_days"], v["horizon_source"]) == (90, f"{version}'s training run")
    assert v["window"] == ["2026-03-01", "2026-05-30"]
    assert v["customers"] == issued["churn_probability"].notna().sum() and v["not_found"] == 0
    assert v["metrics"]["roc_auc"]["ci"][0] > 0.5  # the champion ranks the customers who then churned higher
    assert sum(b["customers"] for b in v["bands"]) == v["customers"]
    assert ("value" in v) == ("predicted_value" in issued.columns)  # realised vs predicted value once scores carry it
    run = mlflow.search_runs(experiment_names=[EXPERIMENT], output_format="list")[0]
    assert run.data.tags["churn_model_version"] == version and run.data.tags["as_of"] == "2026-03-01"
    late = out.with_name("late.parquet")
    done = CliRunner().invoke(app, [*score[:2], "2026-06-01", "--out", str(late), *score[5:]])
    assert done.exit_code == 0, done.output
    refused = CliRunner().invoke(app, ["backtest", "--scores", str(late), *common])
    assert refused.exit_code == 2 and "closes on 2026-08-29" in refused.output, refused.output


def test_the_wilson_interval_is_exact_at_the_edges():
    assert rate_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)  # the textbook value
    assert rate_interval(10, 10)[1] == 1.0 and rate_interval(0, 10)[0] == 0.0  # a plot's error bar is never < 0
