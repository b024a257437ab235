"""Benchmark: churn on a real shop's log (Ta-Feng grocery), through Retain's own CLI with its defaults.

What a new user would do: rename the export's columns into the contract and keep
the file as it is (order lines, a UTF-8 BOM, quoted fields, M/D/YYYY dates, ids
with leading zeros), set ``horizon_days: 28`` and ``date_format: "%m/%d/%Y"``,
run ``retain train-churn`` and ``retain score``. Rows until 2001-01-31 are known;
churn = no basket 2001-02-01..2001-02-28. Customers are split 70/30 (seed 0): the
CLI trains on the 70% and scores the 30% at 2001-02-01; the baselines learn from
the same 70% and the same known rows (labels at the last cutoff whose 28 days
close by 2001-01-31) and are judged on the same 30%, with paired bootstrap
differences. Fetch the data first (tests never download):

    bash ../shared/realdata/fetch_tafeng.sh
    .venv/bin/python -m benchmarks.bench_real [--csv PATH]

Prints Markdown tables for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.sources import load_tables
from training.baselines import RFM_COLUMNS, fit_and_score_baselines, rfm
from training.evaluate import bootstrap_report

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CSV = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "retain-realdata/ta_feng_all_months_merged.csv"
)
AS_OF = pd.Timestamp("2001-02-01")
HORIZON = 28
SHOWN = ("roc_auc", "pr_auc", "log_loss", "brier")
RENAME = {"TRANSACTION_DT": "ordered_at", "CUSTOMER_ID": "customer_id", "SALES_PRICE": "amount"}


def user_folders(csv: Path, work: Path) -> tuple[Path, Path, pd.Series]:
    """The export as a user would hand it over: column names changed, every byte of the values kept.

    Returns the training folder (70% of customers), the scoring folder (30%) and the outcome per scored
    customer (1 = no basket in the 28 days after ``AS_OF``).
    """
    raw = pd.read_csv(csv, dtype=str, encoding="utf-8-sig")
    day = pd.to_datetime(raw["TRANSACTION_DT"], format="%m/%d/%Y")
    ids = raw["CUSTOMER_ID"]
    buyers = pd.Index(ids[day < AS_OF].unique()).sort_values()
    held = pd.Index(buyers[np.random.default_rng(0).random(len(buyers)) < 0.3])
    came_back = set(ids[(day >= AS_OF) & (day < AS_OF + pd.Timedelta(days=HORIZON))])
    outcome = pd.Series([0 if c in came_back else 1 for c in held], index=held, name="churned")
    known = raw[day < AS_OF]
    lines = known[list(RENAME)].rename(columns=RENAME).assign(n_items=known["AMOUNT"])
    people = known.drop_duplicates("CUSTOMER_ID")[["CUSTOMER_ID", "AGE_GROUP", "PIN_CODE"]]
    people = people.rename(columns={"CUSTOMER_ID": "customer_id", "AGE_GROUP": "age", "PIN_CODE": "Residence Area"})
    folders = []
    for name, keep in (("train", ~lines["customer_id"].isin(held)), ("score", lines["customer_id"].isin(held))):
        folder = work / name
        folder.mkdir()
        # pandas writes the BOM and quotes every field, as the source file has them
        write = {"index": False, "encoding": "utf-8-sig", "quoting": 1, "lineterminator": "\r\n"}
        lines[keep].to_csv(folder / "orders.csv", **write)
        people[people["customer_id"].isin(lines.loc[keep, "customer_id"])].to_csv(folder / "customers.csv", **write)
        folders.append(folder)
    return folders[0], folders[1], outcome


def configs(work: Path) -> Path:
    folder = work / "configs"
    folder.mkdir()
    for src in (ROOT / "configs").glob("*.yaml"):
        (folder / src.name).write_text(src.read_text())
    features = (folder / "features.yaml").read_text()
    features = features.replace("horizon_days: 90", f"horizon_days: {HORIZON}")
    features = features.replace("date_format: null", 'date_format: "%m/%d/%Y"')
    (folder / "features.yaml").write_text(features)
    serving = (folder / "serving.yaml").read_text()
    (folder / "serving.yaml").write_text(serving.replace("outputs/feature_store.sqlite", str(work / "store.sqlite")))
    return folder


def cli(*args: str, env: dict) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "retain", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    print(done.stdout, file=sys.stderr)
    if done.returncode:
        sys.exit(f"retain {args[0]} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def lgbm_rfm(train: pd.DataFrame, y: np.ndarray, test: pd.DataFrame) -> np.ndarray:
    """LightGBM on the RFM summary, early-stopped on a fifth of the training customers."""
    X, T = train[list(RFM_COLUMNS)], test[list(RFM_COLUMNS)]
    stop = np.random.default_rng(1).random(len(X)) < 0.2
    clf = lgb.LGBMClassifier(n_estimators=2000, learning_rate=0.03, num_leaves=15, min_child_samples=50, verbose=-1)
    clf.fit(X[~stop], y[~stop], eval_X=(X[stop],), eval_y=(y[stop],), callbacks=[lgb.early_stopping(50, verbose=False)])
    return clf.predict_proba(T)[:, 1]


def baselines(train_dir: Path, score_dir: Path, outcome: pd.Series, cfg: Path) -> dict[str, np.ndarray]:
    """Recency, RFM logistic, BG/NBD and LightGBM on RFM, from the same known rows as the CLI."""
    from features.config import FeaturesConfig, load_config
    from features.labels import churn_labels

    features = load_config(FeaturesConfig, cfg / "features.yaml")
    train_tables, score_tables = load_tables(train_dir, orphans="drop"), load_tables(score_dir, orphans="drop")
    label_cutoff = AS_OF - pd.Timedelta(days=HORIZON)  # the last cutoff whose label window is known
    train = rfm(train_tables, cutoff=label_cutoff)
    y = churn_labels(train_tables, cutoff=label_cutoff, horizon_days=features.horizon_days)
    train = train.join(y, how="inner")
    label = y.name
    test = rfm(score_tables, cutoff=AS_OF).loc[outcome.index]
    y_train = train[label].to_numpy(dtype=int)
    scores = fit_and_score_baselines(train, y_train, test, horizon_days=HORIZON, seed=0)
    scores["lgbm_rfm"] = lgbm_rfm(train, y_train, test)
    return scores


def table(report: dict, shown=SHOWN, *, digits: int = 4, minus: str = "Retain minus") -> list[str]:
    """A bootstrap report (``training.evaluate``) as two Markdown tables: the models, then the differences."""
    head = "| model | " + " | ".join(shown) + " |\n|---|" + "---|" * len(shown)
    rows = []
    for name, v in report["models"].items():
        cells = [f"{v[m]['value']:.{digits}f} ({v[m]['ci'][0]:.{digits}f}-{v[m]['ci'][1]:.{digits}f})" for m in shown]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    diff = ["", f"| {minus} | " + " | ".join(shown) + " |\n|---|" + "---|" * len(shown)]
    for name, v in report["differences"].items():
        cells = [
            f"{v[m]['value']:+.{digits}f} ({v[m]['ci'][0]:+.{digits}f} to {v[m]['ci'][1]:+.{digits}f})" for m in shown
        ]
        diff.append(f"| {name} | " + " | ".join(cells) + " |")
    return [head, *rows, *diff]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV, help="ta_feng_all_months_merged.csv")
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    if not args.csv.exists():
        sys.exit(f"{args.csv} not found: run bash ../shared/realdata/fetch_tafeng.sh first")
    with tempfile.TemporaryDirectory(prefix="retain-real-") as tmp:
        work = Path(tmp)
        train_dir, score_dir, outcome = user_folders(args.csv, work)
        cfg = configs(work)
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }
        env.update(DO_NOT_TRACK="true", BENTOML_DO_NOT_TRACK="true", DVC_NO_ANALYTICS="1")
        train_s = cli(
            "train-churn", "--data", str(train_dir), "--configs", str(cfg), "--out", str(work / "churn"), env=env
        )
        out = work / "scores.parquet"
        score_s = cli("score", "--as-of", f"{AS_OF:%Y-%m-%d}", "--data", str(score_dir), "--configs", str(cfg),
                      "--out", str(out), "--no-store", "--no-track", env=env)  # fmt: skip
        scored = pd.read_parquet(out).set_index("customer_id")
        p = scored["churn_probability"].reindex(outcome.index)
        if p.isna().any():
            sys.exit(f"{int(p.isna().sum())} held-out buyers got no churn probability")
        scores = {"retain": p.to_numpy(dtype=float), **baselines(train_dir, score_dir, outcome, cfg)}
        card = (work / "churn" / "model_card.md").read_text()
    y = outcome.to_numpy()
    report = bootstrap_report(y, scores, reference="retain", n_boot=args.bootstrap, seed=0)
    plan = next(line for line in card.splitlines() if line.startswith("- plan:"))
    start = next(line for line in card.splitlines() if line.startswith("The model is"))
    print(f"Ta-Feng, {len(y):,} held-out buyers scored at {AS_OF:%Y-%m-%d}, churn rate {y.mean():.3f}; "
          f"train-churn {train_s:.0f} s, score {score_s:.0f} s; {args.bootstrap} paired bootstrap resamples; "
          f"{os.cpu_count()} cores, {platform.machine()}\n")  # fmt: skip
    print(f"{plan}\n- {start}\n- distinct probabilities: {len(np.unique(p)):,} of {len(p):,}, "
          f"range {p.min():.4f}-{p.max():.4f}\n")  # fmt: skip
    print("\n".join(table(report)))


if __name__ == "__main__":
    main()
