"""The DVC pipeline as its users expect: every step a stage, each stage's deps cover the code that defines it,
metrics versioned by git, plots that draw from files the code writes."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PIPELINE = yaml.safe_load((ROOT / "dvc.yaml").read_text())
STAGES = PIPELINE["stages"]
PACKAGES = ("features", "modeling", "training", "serving", "analytics", "retain")


def _module_file(name: str) -> Path | None:
    parts = name.split(".")
    if parts[0] not in PACKAGES:
        return None
    base = ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def imported_files(*starts: str) -> set[str]:
    """Repository files imported (at any depth, function-level imports included) from the ``starts`` files."""
    seen, todo = set(), [ROOT / s for s in starts]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                found = _module_file(name)
                if found is not None:
                    todo.append(found)
    return {str(p.relative_to(ROOT)) for p in seen}


def covered(file: str, deps: list[str]) -> bool:
    return any(file == d or file.startswith(d.rstrip("/") + "/") for d in deps)


@pytest.mark.parametrize(
    ("stage", "starts"),
    [
        ("churn_train", ("training/train.py", "modeling/churn_pyfunc.py", "training/registry.py")),
        ("offers_train", ("training/offers/pipeline.py", "modeling/offer_pyfunc.py", "training/offers/registry.py")),
        ("churn_features", ("training/datasets.py",)),
    ],
)
def test_stage_deps_cover_the_code_that_defines_the_model(stage, starts):
    deps = STAGES[stage]["deps"]
    missing = sorted(f for f in imported_files(*starts) if not covered(f, deps))
    assert not missing, f"{stage}: a change to {missing} would leave `dvc status` up to date"
    assert "retain/train_commands.py" in deps, f"{stage}: its command is defined in retain/train_commands.py"


def test_churn_deps_name_the_models_class():
    assert covered("modeling/prior_boosting.py", STAGES["churn_train"]["deps"])
    assert covered("modeling/offer_model.py", STAGES["offers_train"]["deps"])


def test_every_step_is_a_stage_and_reads_what_the_one_before_writes():
    assert {"demo_data", "churn_features", "churn_train", "offers_train", "score", "report"} <= set(STAGES)
    assert "outputs/scores.parquet" in STAGES["score"]["outs"]
    assert "outputs/scores.parquet" in STAGES["report"]["deps"]
    for model in ("churn", "offers"):
        train = STAGES[f"{model}_train"]
        assert f"models/{model}/model" in train["outs"] and f"models/{model}/challenger/model" in train["outs"]
        assert f"models/{model}/model" in STAGES["score"]["deps"]
        metrics = [next(iter(m)) for m in train["metrics"]]
        assert metrics == [f"models/{model}/metrics.json", f"models/{model}/challenger/metrics.json"]
        assert all(next(iter(m.values()))["cache"] is False for m in train["metrics"])


def test_the_drift_files_are_stage_outputs_where_the_code_writes_them():
    from modeling.drift import REFERENCE_FILE
    from serving.drift import table_path

    for folder in ("models/churn", "models/churn/challenger"):
        assert f"{folder}/{REFERENCE_FILE}" in STAGES["churn_train"]["outs"]
    assert f"models/churn/{REFERENCE_FILE}" in STAGES["score"]["deps"]
    drift = table_path("outputs/scores.parquet").as_posix()
    assert drift in STAGES["score"]["outs"] and drift in STAGES["report"]["deps"]


def test_the_value_model_is_a_score_dependency_and_its_plot_a_report_output():
    from analytics.value_section import VALUE_PLOT

    assert "models/churn/value" in STAGES["churn_train"]["outs"] and "models/churn/value" in STAGES["score"]["deps"]
    out = Path(STAGES["report"]["cmd"].split("--out ")[1].split()[0])
    assert (out.parent / VALUE_PLOT).as_posix() in STAGES["report"]["outs"]


def test_metrics_files_are_versioned_by_git():
    """``cache: false`` metrics must not be git-ignored, or `dvc metrics diff` cannot read HEAD's."""
    for path in ("models/churn/metrics.json", "models/offers/challenger/metrics.json"):
        ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT)
        assert ignored.returncode == 1, f"{path} is git-ignored"
    ignored = subprocess.run(["git", "check-ignore", "-q", "models/churn/model/MLmodel"], cwd=ROOT)
    assert ignored.returncode == 0, "model folders are DVC outputs, not git files"


def test_plots_draw_columns_the_code_writes():
    from training.offers.outputs import qini_table
    from training.plots import calibration_table, gain_table

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    scores = {name: rng.random(400) for name in ("model", "recency", "rfm_logistic", "bg_nbd")}
    curve = pd.DataFrame({"fraction": np.arange(1, 101) / 100, "qini": np.arange(100.0)})
    written = {
        "models/churn/plots/calibration.csv": calibration_table(y, scores),
        "models/churn/plots/gain.csv": gain_table(y, scores),
        "models/offers/plots/qini.csv": qini_table({"free_shipping": curve, "discount_20": curve}),
    }
    for plot in PIPELINE["plots"]:
        spec = next(iter(plot.values()))
        for file, columns in spec["y"].items():
            columns = [columns] if isinstance(columns, str) else columns
            assert {spec["x"], *columns} <= set(written[file].columns), (file, spec)
    gain = written["models/churn/plots/gain.csv"]
    assert gain["share_contacted"].iloc[0] == 0 and gain["model"].iloc[-1] == pytest.approx(1.0)


def test_dvc_reads_the_pipeline():
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    dvc = str(Path(sys.executable).with_name("dvc"))
    listed = subprocess.run([dvc, "stage", "list"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert {line.split()[0] for line in listed.stdout.splitlines() if line.strip()} >= set(STAGES)
