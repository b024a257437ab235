"""The main job on built-in demo data: generate, train, register, score, report.

Each step is the same CLI command a user would run by hand, so the demo proves
the commands, not a private code path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import typer

from features.runtime import TRACKING_DIR, tracking_uri
from simulator.demo_data import END


def demo_steps(data: Path, outputs: Path, customers: int, trials: int) -> list[tuple[str, list[str]]]:
    """The commands, in order; scoring and the report are as of the data's last day."""
    as_of = END  # the generator's default end, as generate-demo leaves it
    scores = outputs / "scores.parquet"
    return [
        ("generate demo data", ["generate-demo", "--out", str(data), "--customers", str(customers)]),
        ("train the churn model", ["train-churn", "--data", str(data), "--trials", str(trials)]),
        ("train the offer model", ["train-offers", "--data", str(data), "--trials", str(trials)]),
        (
            "score every customer",
            ["score", "--data", str(data), "--as-of", as_of, "--out", str(scores), "--reasons"]
            + ["--campaign", str(outputs / "campaign.csv")],
        ),
        (
            "write the report",
            [
                "report",
                "--data",
                str(data),
                "--as-of",
                as_of,
                "--churn-scores",
                str(scores),
                "--churn-model-dir",
                "models/churn",
                "--offer-model-dir",
                "models/offers",
                "--out",
                str(outputs / "report.html"),
            ],
        ),
    ]


def run_demo(invoke: Callable[[list[str]], None], *, data: Path, outputs: Path, customers: int, trials: int) -> None:
    started = time.perf_counter()
    steps = demo_steps(data, outputs, customers, trials)
    for i, (title, args) in enumerate(steps, 1):
        typer.secho(f"\n[{i}/{len(steps)}] {title}: python -m retain {' '.join(args)}", bold=True)
        invoke(args)
    scores = pd.read_parquet(outputs / "scores.parquet")
    offers = scores["recommended_offer"].value_counts().to_dict() if "recommended_offer" in scores else {}
    typer.secho(f"\nDone in {time.perf_counter() - started:.0f} s. Results:", bold=True, fg="green")
    typer.echo(f"  report        {(outputs / 'report.html').resolve()}")
    typer.echo(
        f"  scores        {(outputs / 'scores.parquet').resolve()}  ({len(scores):,} customers; offers: {offers})"
    )
    typer.echo(f"  campaign      {(outputs / 'campaign.csv').resolve()}  (customer, action, offer, send_at)")
    typer.echo(f"  cohorts       {(outputs / 'cohorts.csv').resolve()}")
    typer.echo(f"  churn model   {Path('models/churn').resolve()}  (model_card.md, metrics.json, plots)")
    typer.echo(f"  offer model   {Path('models/offers').resolve()}")
    typer.echo(f"  demo data     {data.resolve()}  (ground truth in {data.resolve() / 'truth'})")
    typer.echo(f"  MLflow        {tracking_uri()}")
    if tracking_uri().startswith("sqlite"):
        typer.echo(f"                open it: .venv/bin/mlflow ui --backend-store-uri {tracking_uri()}")
        typer.echo(f"                (artifacts in {TRACKING_DIR / 'artifacts'})")
    typer.echo("  serve it      .venv/bin/python -m retain serve  (http://127.0.0.1:3000/docs)")
