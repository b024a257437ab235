"""train-churn and train-offers: fit, compare with baselines, log to MLflow and register through the gate."""

from __future__ import annotations

from pathlib import Path

import typer

from features.config import OfferCatalog, load_config
from retain.options import Configs, DataDir, fail_on_contract_errors, load_inputs, refuse


@fail_on_contract_errors
def train_churn_cmd(
    data: Path = DataDir,
    configs: Path = Configs,
    out: Path = typer.Option(Path("models/churn"), help="folder for the model, metrics.json, model card and plots"),
    trials: int = typer.Option(None, min=0, help="Optuna trials (default: tuning.trials in churn.yaml; 0 = no tuning)"),
    timeout: float = typer.Option(None, min=1, help="stop tuning after this many seconds"),
    test_cutoff: str = typer.Option(None, help="test cutoff (default: the last one whose label window is complete)"),
    features_out: Path = typer.Option(None, help="only build the feature panel for every cutoff, write it here, stop"),
    features_in: Path = typer.Option(None, help="read the feature panel from this Parquet file instead of building it"),
    register: bool = typer.Option(True, help="register the model and run the champion gate"),
) -> None:
    """Train the churn model on rolling cutoffs, compare with baselines, log to MLflow and register."""
    import pandas as pd

    from features.io import write_parquet_atomic
    from training.churn import InsufficientData
    from training.config import ChurnConfig
    from training.datasets import CUTOFF, NotEnoughHistory, build_panel, plan_for
    from training.runs import start_tracking
    from training.train import train_churn

    cfg = load_config(ChurnConfig, configs / "churn.yaml")
    if timeout is not None:
        cfg = cfg.model_copy(update={"tuning": cfg.tuning.model_copy(update={"timeout_s": timeout})})
    features_cfg, _, tables = load_inputs(data, configs)
    try:
        plan = plan_for(tables, features=features_cfg, config=cfg, test_cutoff=test_cutoff)
        if features_in is not None:
            panel = pd.read_parquet(features_in)
            missing = sorted(set(plan.all) - set(panel[CUTOFF]))
            if missing:
                raise NotEnoughHistory(f"{features_in}: no rows for cutoffs {[f'{c:%Y-%m-%d}' for c in missing]}")
        else:
            panel = build_panel(tables, plan, config=features_cfg, progress=True)
        if features_out is not None:
            write_parquet_atomic(panel, features_out)
            typer.echo(f"wrote {len(panel):,} rows for {panel[CUTOFF].nunique()} cutoffs to {features_out}")
            return
        start_tracking(cfg.experiment)
        result = train_churn(
            tables,
            panel,
            plan,
            features=features_cfg,
            config=cfg,
            out_dir=out,
            trials=trials,
            register_model=register,
            source=str(data.resolve()),
        )
    except (InsufficientData, NotEnoughHistory) as exc:
        refuse(exc)
    auc = result.report["models"]["model"]["roc_auc"]
    typer.echo(f"run {result.run_id}: test ROC AUC {auc['value']:.3f} ({auc['ci'][0]:.3f}-{auc['ci'][1]:.3f})")
    for line in result.report["verdicts"]:
        typer.echo("  " + line.replace("**", ""))
    if result.decision is not None:
        typer.echo(f"champion gate: {'promoted' if result.decision.promoted else 'kept'} ({result.decision.reason})")
    if register:
        typer.echo(f"files of this training: {out / 'challenger'}; of the champion (what is served): {out}")
    else:
        typer.echo(f"model card: {out / 'model_card.md'}")


@fail_on_contract_errors
def train_offers_cmd(
    data: Path = DataDir,
    configs: Path = Configs,
    out: Path = typer.Option(Path("models/offers"), help="folder for the model, metrics.json, tables and Qini plot"),
    trials: int = typer.Option(None, min=0, help="Optuna trials (default: trials in offer_model.yaml; 0 = no tuning)"),
    learners: str = typer.Option(None, help="comma-separated uplift learners to try, e.g. s,t,x (default: config)"),
    max_offers: int = typer.Option(None, min=0, help="budget: send at most this many offers (default: config)"),
    max_cost: float = typer.Option(None, min=0, help="budget: at most this expected total cost (default: config)"),
    truth: Path = typer.Option(
        None, help="known truth per send (demo data's truth/offers.parquet): adds true profit and the oracle"
    ),
    track: bool = typer.Option(True, help="log to MLflow, register the model and run the champion gate"),
) -> None:
    """Train the next-best-offer model on the offers log, choose a policy by off-policy value, register it."""
    import pandas as pd

    from training.offers.config import OfferModelConfig
    from training.offers.errors import OfferLogError
    from training.offers.pipeline import train_offers

    updates = {"trials": trials, "max_offers": max_offers, "max_cost": max_cost}
    updates = {k: v for k, v in updates.items() if v is not None}
    if learners:
        updates["learners"] = tuple(x.strip() for x in learners.split(","))
    try:  # settings first: a bad key or value is exit 2 before any table is read
        cfg = load_config(OfferModelConfig, configs / "offer_model.yaml")
        cfg = OfferModelConfig.model_validate({**cfg.model_dump(), **updates})
        load_config(OfferCatalog, configs / "offers.yaml")
    except ValueError as exc:
        refuse(f"settings: {exc}")
    features_cfg, catalog, tables = load_inputs(data, configs)
    known = pd.read_parquet(truth) if truth is not None else None
    try:
        result = train_offers(
            tables,
            catalog=catalog,
            config=cfg,
            features_config=features_cfg,
            truth=known,
            out_dir=out,
            track=track,
            progress=True,
        )
    except OfferLogError as exc:
        refuse(exc)
    shipped = result.evaluation.policies.loc["shipped"]
    typer.echo(f"holdout: {result.holdout.description}")
    typer.echo(f"conversion value: {result.value.description}")
    typer.echo(result.evaluation.learners[["dr_gain", "dr_gain_se", "vs_reference", "vs_reference_se"]].to_string())
    typer.echo(f"learner {result.evaluation.learner}: {result.evaluation.choice.reason}")
    typer.echo(f"policy: {result.evaluation.fallback.reason}")
    typer.echo(
        f"shipped policy DR gain {shipped['dr_gain']:.4f} ± {shipped['dr_gain_se']:.4f} per send vs sending nothing"
    )
    if result.promoted is not None:
        gate = getattr(result, "gate", "")
        verdict = "promoted" if result.promoted else "kept the champion"
        typer.echo(f"champion gate: {verdict} ({gate})")
        typer.echo(f"files of this training: {out / 'challenger'}; of the champion (what is served): {out}")
        typer.echo(f"run {result.run_id}: champion gate {verdict}")
    else:
        typer.echo(f"wrote {out}")
