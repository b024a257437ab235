"""Retain: churn risk and next-best offers from a shop's tables. Every job is one command below."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from features.runtime import quiet_telemetry
from retain import backtest_command, data_commands, report_command, score_command, serve_command, train_commands

# Plain help (no rich boxes or markup) and no pretty tracebacks: a user's mistake is a usage message and exit 2.
app = typer.Typer(
    add_completion=False, no_args_is_help=True, help=__doc__, rich_markup_mode=None, pretty_exceptions_enable=False
)


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


app.command("build-features")(data_commands.build_features_cmd)
app.command("generate-demo")(data_commands.generate_demo_cmd)
app.command("report")(report_command.report_cmd)
app.command("train-churn")(train_commands.train_churn_cmd)
app.command("train-offers")(train_commands.train_offers_cmd)
app.command("score")(score_command.score_cmd)
app.command("backtest")(backtest_command.backtest_cmd)
app.command("serve")(serve_command.serve_cmd)


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
