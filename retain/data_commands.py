"""build-features and generate-demo: feature rows as of a cutoff, and the simulated demo shop."""

from __future__ import annotations

from pathlib import Path

import typer

from retain.options import Configs, DataDir, fail_on_contract_errors, instant, load_inputs, orphans_choice


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
