"""Retain: churn risk and next-best offers from a shop's tables. Every job is one command below."""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

import typer

from features.config import CONFIG_DIR, FeaturesConfig, OfferCatalog, load_config
from features.contract import ContractError
from features.runtime import quiet_telemetry

# Plain help (no rich boxes or markup) and no pretty tracebacks: a user's mistake is a usage message and exit 2.
app = typer.Typer(
    add_completion=False, no_args_is_help=True, help=__doc__, rich_markup_mode=None, pretty_exceptions_enable=False
)

DataDir = typer.Option(Path("data/demo"), "--data", help="folder with one CSV or Parquet file per table")
Configs = typer.Option(CONFIG_DIR, "--configs", help="folder with the YAML configs")
INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$")


def orphans_choice(value: str | None) -> str | None:
    """--orphans: error or drop, else exit 2 naming the choices."""
    if value is not None and value not in ("error", "drop"):
        raise typer.BadParameter(f"{value!r} is not one of 'error', 'drop'")
    return value


def instant(value: str | None) -> str | None:
    """An option's date: ISO 8601 (2026-06-30, 2026-06-30T14:00, with a zone or not) that exists, else exit 2."""
    if value is None:
        return None
    import pandas as pd

    if not INSTANT.match(value.strip()):
        raise typer.BadParameter(f"{value!r} is not a date; expected YYYY-MM-DD (or YYYY-MM-DDTHH:MM), e.g. 2026-06-30")
    try:
        pd.Timestamp(value.strip())
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not a date that exists ({exc})") from exc
    return value.strip()


def _version(value: bool) -> None:
    if value:
        import tomllib

        from features.config import ROOT

        meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
        typer.echo(f"{meta['name']} {meta['version']}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="log debug messages"),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="print the version and exit"
    ),
) -> None:
    quiet_telemetry()
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def fail_on_contract_errors(func):
    """Bad input exits with status 2 and a one-paragraph message, not a traceback."""
    from functools import wraps

    @wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except ContractError as exc:
            typer.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(2)
        except OSError as exc:  # a read-only or full disk, a folder where a file belongs: say which, no traceback
            where = exc.filename or "a file"
            typer.secho(f"error: {where}: {exc.strerror or exc}; nothing was replaced", fg="red", err=True)
            sys.exit(2)

    return wrapper


def load_inputs(data: Path, configs: Path, orphans: str | None = None):
    """The features config, the offer catalog and the validated tables every data command starts from."""
    from features.sources import load_tables

    features = load_config(FeaturesConfig, configs / "features.yaml")
    catalog = load_config(OfferCatalog, configs / "offers.yaml")
    tables = load_tables(
        data,
        offers=catalog.names,
        orphans=orphans or features.orphans,
        date_format=features.date_format,
        encoding=features.encoding,
    )
    return features, catalog, tables


@app.command("build-features")
@fail_on_contract_errors
def build_features_cmd(
    cutoff: str = typer.Option(
        ..., callback=instant, help="as-of instant (YYYY-MM-DD); only rows strictly before it are used (required)"
    ),
    data: Path = DataDir,
    out: Path = typer.Option(Path("outputs/features.parquet"), help="Parquet file to write (.parquet)"),
    labels: bool = typer.Option(False, "--labels", help="add the churn label (needs orders after the cutoff)"),
    orphans: str = typer.Option(
        None, callback=orphans_choice, help="rows for customers missing from customers: error or drop (default: config)"
    ),
    configs: Path = Configs,
) -> None:
    """Build one feature row per customer as of --cutoff into a Parquet file."""
    if out.suffix != ".parquet":
        raise typer.BadParameter(
            f"{out}: feature rows are written as Parquet; name the file *.parquet", param_hint="--out"
        )
    from features.build import build_features
    from features.io import write_parquet_atomic
    from features.labels import churn_labels

    cfg, _, tables = load_inputs(data, configs, orphans)
    frame = build_features(tables, cutoff=cutoff, config=cfg, progress=True)
    if labels:
        y = churn_labels(tables, cutoff=cutoff, horizon_days=cfg.horizon_days)
        frame = frame.join(y, how="inner")
    write_parquet_atomic(frame.reset_index(), out)
    typer.echo(f"wrote {len(frame):,} customers x {frame.shape[1]} columns to {out}")


@app.command("report")
@fail_on_contract_errors
def report_cmd(
    as_of: str = typer.Option(
        ..., "--as-of", callback=instant, help="report instant (YYYY-MM-DD); only rows strictly before it (required)"
    ),
    data: Path = DataDir,
    out: Path = typer.Option(Path("outputs/report.html"), help="self-contained HTML file to write"),
    period_days: int = typer.Option(None, help="KPI period length in days before --as-of (default: churn horizon)"),
    churn_scores: Path = typer.Option(
        None,
        help="CSV/Parquet with customer_id and churn_probability (null = not scored; churn_unscored_reason says "
        "why): adds at-risk stage and risk bands, and the drift section when its <stem>.drift.csv is beside it",
    ),
    churn_model_dir: Path = typer.Option(
        None, help="train-churn's folder (model_card.md, report.json, drivers.csv, plots/), e.g. models/churn"
    ),
    offer_model_dir: Path = typer.Option(
        None, help="train-offers' folder (model_card.md, policies.csv, learners.csv, qini.png), e.g. models/offers"
    ),
    drivers: Path = typer.Option(None, help="CSV of top churn drivers (e.g. feature, importance)"),
    cohorts_dir: Path = typer.Option(
        None, help="folder for cohorts.csv and cohort_heatmap.png (default: the report's folder)"
    ),
    backtest_dir: Path = typer.Option(
        None, help="retain backtest's folder (backtest.md, reliability.png): adds the Back-test section"
    ),
    configs: Path = Configs,
) -> None:
    """Write the retention report (KPIs, cohorts, lifecycle and contact plan, models) and cohorts.csv beside it."""
    import pandas as pd

    from analytics.cohorts import cohort_retention
    from analytics.config import AnalyticsConfig
    from analytics.report import churn_section, offer_section, write_report
    from features.contract import CUSTOMER_ID
    from serving.config import ServingConfig

    if out.suffix.lower() not in (".html", ".htm"):
        raise typer.BadParameter(f"{out}: the report is one HTML file; name it *.html", param_hint="--out")
    if churn_scores is not None and churn_scores.suffix not in (".parquet", ".csv"):
        raise typer.BadParameter(
            f"{churn_scores}: expected retain score's .parquet or .csv", param_hint="--churn-scores"
        )
    for option, folder in (("--churn-model-dir", churn_model_dir), ("--offer-model-dir", offer_model_dir)):
        if folder is not None and not (folder / "model_card.md").exists():
            raise typer.BadParameter(f"{folder}: no model_card.md there", param_hint=option)
    if backtest_dir is not None and not (backtest_dir / "backtest.md").exists():
        raise typer.BadParameter(
            f"{backtest_dir}: no backtest.md there (retain backtest writes it)", param_hint="--backtest-dir"
        )
    acfg = AnalyticsConfig.load(configs)
    currency = ServingConfig.load(configs).currency
    cfg, catalog, tables = load_inputs(data, configs)
    prob = unscored = scores = None
    if churn_scores is not None:
        from features.io import read_scores

        scores = read_scores(churn_scores)
        if "churn_probability" not in scores.columns or CUSTOMER_ID not in scores.columns:
            raise ContractError(f"{churn_scores}: expected columns {CUSTOMER_ID} and churn_probability")
        scores = scores.set_index(scores[CUSTOMER_ID].astype(str), drop=False)
        prob = scores["churn_probability"]
        unscored = scores["churn_unscored_reason"] if "churn_unscored_reason" in scores.columns else None
    value = None
    if scores is not None and "predicted_value" in scores.columns:
        from analytics.report import value_section

        value = value_section(scores, currency=currency, horizon_days=cfg.horizon_days, folder=out.parent)
    cohorts_csv = None
    if tables.orders is not None:
        folder = cohorts_dir if cohorts_dir is not None else out.parent
        cohorts = cohort_retention(
            tables, as_of=as_of, period=acfg.cohorts.period, max_periods=acfg.cohorts.max_periods
        )
        written = cohorts.write(folder)
        cohorts_csv = str(written["csv"].relative_to(out.parent) if folder == out.parent else written["csv"])
    from analytics.report import backtest_section, drift_section
    from serving.drift import table_path

    drift_csv = None if churn_scores is None else table_path(churn_scores)  # retain score writes it beside them
    drift = [drift_section(drift_csv)] if drift_csv is not None and drift_csv.exists() else []
    path = write_report(
        out,
        tables=tables,
        as_of=as_of,
        config=acfg,
        horizon_days=cfg.horizon_days,
        period_days=period_days,
        churn_probability=prob,
        churn_unscored_reason=unscored,
        customer_value=value,
        churn_model=churn_section(churn_model_dir, currency=currency) if churn_model_dir else None,
        offer_model=offer_section(offer_model_dir, offers=catalog.names, currency=currency)
        if offer_model_dir
        else None,
        drivers=pd.read_csv(drivers) if drivers else None,
        currency=currency,
        scores=scores,
        cohorts_csv=cohorts_csv,
        extra=[*drift, *([backtest_section(backtest_dir)] if backtest_dir is not None else [])],
    )
    typer.echo(f"wrote the report to {path.resolve()}")
    if value is not None and value.images:
        typer.echo(f"wrote the predicted value plot to {value.images[0]}")
    if cohorts_csv:
        typer.echo(f"wrote the cohort table to {(out.parent / cohorts_csv) if folder == out.parent else cohorts_csv}")


@app.command("generate-demo")
def generate_demo_cmd(
    out: Path = typer.Option(Path("data/demo"), help="folder for the table files; truth goes to OUT/truth/"),
    customers: int = typer.Option(20_000, min=1, help="number of customers to simulate"),
    days: int = typer.Option(730, min=1, help="length of the data window in days, ending at 2026-06-30"),
    seed: int = typer.Option(7, help="random seed; the same seed gives identical files"),
    offer_effect_scale: float = typer.Option(
        1.0, min=0.0, help="multiplies every true offer effect; 0 = offers have no effect"
    ),
) -> None:
    """Simulate a shop with known churn and offer truth and write it as Parquet."""
    import time

    from simulator.demo_data import generate, write

    started = time.perf_counter()
    demo = generate(customers, days=days, seed=seed, offer_effect_scale=offer_effect_scale)
    write(demo, out)
    rows = ", ".join(f"{len(f):,} {name}" for name, f in demo.tables.items())
    typer.echo(f"wrote {rows} to {out} (truth in {out / 'truth'}) in {time.perf_counter() - started:.1f}s")


@app.command("train-churn")
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
    from training.registry import start_tracking
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
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(2)
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


@app.command("train-offers")
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

    from training.offer_split import OfferLogError
    from training.offers import OfferModelConfig, train_offers

    updates = {"trials": trials, "max_offers": max_offers, "max_cost": max_cost}
    updates = {k: v for k, v in updates.items() if v is not None}
    if learners:
        updates["learners"] = tuple(x.strip() for x in learners.split(","))
    try:  # settings first: a bad key or value is exit 2 before any table is read
        cfg = load_config(OfferModelConfig, configs / "offer_model.yaml")
        cfg = OfferModelConfig.model_validate({**cfg.model_dump(), **updates})
        load_config(OfferCatalog, configs / "offers.yaml")
    except ValueError as exc:
        typer.secho(f"error: settings: {exc}", fg="red", err=True)
        sys.exit(2)
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
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(2)
    shipped = result.policies.loc["shipped"]
    typer.echo(f"holdout: {result.holdout['description']}")
    typer.echo(f"conversion value: {result.value.description}")
    typer.echo(result.learners[["dr_gain", "dr_gain_se", "vs_reference", "vs_reference_se"]].to_string())
    typer.echo(f"learner {result.learner}: {result.choice.reason}")
    typer.echo(f"policy: {result.fallback.reason}")
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


@app.command("score")
@fail_on_contract_errors
def score_cmd(
    as_of: str = typer.Option(
        ..., "--as-of", callback=instant, help="score as of this instant (YYYY-MM-DD); only rows before it (required)"
    ),
    data: Path = DataDir,
    out: Path = typer.Option(
        None, help="file to write; the extension picks the format: .parquet or .csv (default: outputs/scores.parquet)"
    ),
    csv: bool = typer.Option(False, "--csv", help="write CSV (default file outputs/scores.csv; --out must end .csv)"),
    reasons: bool = typer.Option(False, "--reasons", help="add the top 3 churn reasons per customer, in words"),
    campaign: Path = typer.Option(
        None, help="also write the campaign export (customer_id, action, offer, send_at, ...) to this .csv file"
    ),
    chunk_size: int = typer.Option(None, min=1, help="customers per chunk (default: batch.chunk_size in serving.yaml)"),
    store: Path = typer.Option(None, help="feature snapshot to refresh (default: store in serving.yaml)"),
    no_store: bool = typer.Option(False, "--no-store", help="do not refresh the service's feature snapshot"),
    no_track: bool = typer.Option(False, "--no-track", help="do not log the run (counts, distribution) to MLflow"),
    orphans: str = typer.Option(
        None, callback=orphans_choice, help="rows for customers missing from customers: error or drop (default: config)"
    ),
    configs: Path = Configs,
) -> None:
    """Score every customer as of a date (churn, risk band, lifecycle stage, next action and when, offer)."""
    from analytics.plotting import log_value_plot
    from serving.batch import BatchError, run_batch
    from serving.config import ServingConfig
    from serving.drift import table_path
    from serving.models import ModelError, load_models

    out, fmt = score_format(out, csv)
    if campaign is not None and campaign.suffix != ".csv":
        raise typer.BadParameter(f"{campaign}: the campaign export is CSV; name it *.csv", param_hint="--campaign")
    serving_cfg = ServingConfig.load(configs)
    lifecycle_cfg = serving_cfg.lifecycle
    features_cfg, _, tables = load_inputs(data, configs, orphans)
    try:
        models = load_models(serving_cfg)
        if campaign is not None and serving_cfg.campaign.priority != "profit" and models.value is None:
            raise ModelError(
                f"campaign.priority {serving_cfg.campaign.priority} needs a value model, and there is none "
                f"({models.value_label}); set campaign.priority: profit in {configs / 'serving.yaml'}"
            )
        result = run_batch(
            tables,
            as_of=as_of,
            models=models,
            config=serving_cfg,
            features=features_cfg,
            lifecycle_config=lifecycle_cfg,
            out=out,
            fmt=fmt,
            reasons=reasons,
            chunk_size=chunk_size,
            store=None if no_store else (store or serving_cfg.store_path),
            track=not no_track,
        )
    except (ModelError, BatchError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(2)
    if result.run_id is not None and models.value is not None:
        log_value_plot(result.run_id, out, models.value.horizon_days)
    rate = result.customers / max(result.seconds, 1e-9)
    typer.echo(
        f"scored {result.customers:,} customers as of {as_of} into {out} in {result.seconds:.1f}s ({rate:,.0f}/s)"
    )
    if result.drift.table is not None and result.drift.drifted.empty:
        typer.echo(result.drift.message(table_path(out)))
    else:  # features drifted, or drift could not be checked: say so where warnings go
        where = None if result.drift.table is None else table_path(out)
        typer.secho(f"warning: {result.drift.message(where)}", fg="yellow", err=True)
    unscored = int(result.summary["churn_unscored"])
    if models.churn is None:
        typer.echo(f"{models.churn_label}: churn fields are null for all {unscored:,}; offers from {models.offer_note}")
    elif unscored:
        typer.echo(f"{unscored:,} customers without an order before {as_of} have no churn probability (prospects)")
    if result.store is not None:
        typer.echo(f"refreshed the feature snapshot {result.store}")
    if campaign is not None:
        from serving.campaign import CampaignError, write_campaign

        budget = serving_cfg.campaign
        try:
            sends = write_campaign(out, campaign, budget)
        except CampaignError as exc:
            typer.secho(f"error: {campaign}: {exc}", fg="red", err=True)
            sys.exit(2)
        typer.echo(f"wrote {len(sends):,} sends to the campaign export {campaign}")
        if sends.over_budget:
            typer.echo(
                f"budget: {sends.offers:,} offers (campaign.max_offers {budget.max_offers:,}, first by "
                f"{budget.priority}); {sends.over_budget:,} more get their action without an offer"
            )


def score_format(out: Path | None, csv: bool) -> tuple[Path, str]:
    """The scores file and its format, from the extension; --csv with a file that is not .csv is refused."""
    if out is None:
        out = Path("outputs/scores.csv" if csv else "outputs/scores.parquet")
    kinds = {".parquet": "parquet", ".csv": "csv"}
    fmt = kinds.get(out.suffix.lower())
    if fmt is None:
        raise typer.BadParameter(f"{out}: name the scores file *.parquet or *.csv (the extension picks the format)")
    if csv and fmt != "csv":
        raise typer.BadParameter(
            f"--csv asks for CSV but {out} ends in {out.suffix}; name it *.csv", param_hint="--out"
        )
    return out, fmt


@app.command("backtest")
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
    from training.backtest import (
        BacktestError,
        default_folder,
        read_issued,
        recorded_horizons,
        run_backtest,
        track,
        write_backtest,
    )
    from training.config import ChurnConfig

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
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(2)
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


@app.command("serve")
def serve_cmd(
    host: str = typer.Option("127.0.0.1", help="address to bind; 0.0.0.0 to accept outside connections"),
    port: int = typer.Option(3000, min=1, max=65535, help="TCP port"),
    workers: int = typer.Option(None, min=1, help="worker processes (default: workers in serving.yaml)"),
    configs: Path = Configs,
    check: bool = typer.Option(True, help="load the champions and snapshot first; exit 2 with a message if unusable"),
) -> None:
    """Start the scoring service (BentoML) on HOST:PORT; see serving/service.py for the endpoints."""
    import os

    from features.config import ROOT
    from serving.config import ServingConfig
    from serving.launch import empty_key_reason, run_server, serve_command
    from serving.models import ModelError, load_models
    from serving.store import SQLiteStore, StoreError

    cfg = ServingConfig.load(configs)
    key = os.environ.get(cfg.api_key_env)
    if key is not None and not key.strip():
        typer.secho(f"error: refusing to start: {empty_key_reason(cfg.api_key_env)}", fg="red", err=True)
        sys.exit(2)
    if key is None:
        typer.secho(f"warning: {cfg.api_key_env} is not set: anyone who can reach the port can score", err=True)
    if check:
        try:
            load_models(cfg).check_features(SQLiteStore(cfg.store_path).columns, source=str(cfg.store_path))
        except (ModelError, StoreError) as exc:
            typer.secho(f"error: refusing to start: {exc}", fg="red", err=True)
            sys.exit(2)
    env = {**os.environ, "RETAIN_CONFIGS": str(configs.resolve())}
    if workers is not None:
        env["RETAIN_WORKERS"] = str(workers)
    sys.exit(run_server(serve_command(host, port), cwd=ROOT, env=env))


@app.command("demo")
def demo_cmd(
    data: Path = typer.Option(Path("data/demo"), "--data", help="where to write the demo tables"),
    outputs: Path = typer.Option(Path("outputs"), help="folder for scores and the report"),
    customers: int = typer.Option(20_000, min=1000, help="number of demo customers"),
    trials: int = typer.Option(0, min=0, help="Optuna trials for each model (0 = the configs' tuned defaults)"),
) -> None:
    """The main job on built-in demo data: generate, train, register, score, report; prints where results are."""
    from retain.demo import run_demo

    def invoke(args: list[str]) -> None:
        try:
            app(args, standalone_mode=False)
        except SystemExit as exc:
            if exc.code:
                raise

    run_demo(invoke, data=data, outputs=outputs, customers=customers, trials=trials)
