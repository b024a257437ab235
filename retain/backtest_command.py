"""retain backtest: issued scores graded against what happened once their horizon passed."""

from __future__ import annotations

from pathlib import Path

import typer

from features.config import load_config
from retain.options import Configs, DataDir, fail_on_contract_errors, load_inputs, refuse


@fail_on_contract_errors
def backtest_cmd(
    scores: Path = typer.Option(
        ..., help="the .parquet or .csv file retain score wrote at its as-of date, one as_of for all rows (required)"
    ),
    data: Path = DataDir,
    out: Path = typer.Option(None, help="folder to write (default: <scores stem>_backtest beside the scores file)"),
    no_track: bool = typer.Option(False, "--no-track", help="do not log the back-test to MLflow"),
    configs: Path = Configs,
) -> None:
    """Check issued scores against what happened once their horizon has passed: AUC, calibration, bands, value."""
    from serving.config import ServingConfig
    from training.backtest import BacktestError, recorded_horizons, run_backtest
    from training.backtest_report import default_folder, track, write_backtest
    from training.config import ChurnConfig
    from training.scores_file import read_issued

    if scores.suffix not in (".parquet", ".csv"):
        raise typer.BadParameter(f"{scores}: expected retain score's .parquet or .csv", param_hint="--scores")
    churn_cfg = load_config(ChurnConfig, configs / "churn.yaml")
    currency = ServingConfig.load(configs).currency
    issued = read_issued(scores)
    features_cfg, _, tables = load_inputs(data, configs)
    horizons = recorded_horizons(issued.versions(), default=features_cfg.horizon_days)
    try:
        result = run_backtest(issued, tables, horizons=horizons, n_boot=churn_cfg.bootstrap, seed=churn_cfg.seed)
    except BacktestError as exc:
        refuse(exc)
    folder = write_backtest(result, out or default_folder(scores), currency=currency)
    for version, v in result["versions"].items():
        if not v.get("customers"):
            typer.echo(f"{version}: none of its {v['scored']:,} customers ordered before {result['as_of']} here")
            continue
        auc, rate = v["metrics"]["roc_auc"], v["churn_rate"]
        typer.echo(
            f"{version} ({v['horizon_days']}-day horizon, {v['customers']:,} customers): ROC AUC {auc['value']:.3f} "
            f"({auc['ci'][0]:.3f}-{auc['ci'][1]:.3f}), log-loss {v['metrics']['log_loss']['value']:.3f}, "
            f"churned {rate['value']:.1%} ({rate['ci'][0]:.1%}-{rate['ci'][1]:.1%}) vs {v['predicted_churn_rate']:.1%} "
            "predicted"
        )
        if "value" in v:
            val, mae = v["value"], v["value"]["mae"]
            typer.echo(
                f"  value: {val['realised_total']['value']:,.2f} {currency} spent vs {val['predicted_total']:,.2f} "
                f"predicted, MAE {mae['value']:,.2f} ({mae['ci'][0]:,.2f}-{mae['ci'][1]:,.2f}) a customer, Spearman "
                f"{val['spearman']['value']:.3f}"
            )
    typer.echo(f"wrote the back-test to {folder}")
    if not no_track:
        typer.echo(f"MLflow runs in experiment retain-backtest: {', '.join(track(result, folder))}")
