"""retain serve: the checked BentoML scoring service on HOST:PORT."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from retain.options import Configs, refuse


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
    from serving.launch import empty_key_reason, run_server, serve_command, server_env
    from serving.models import ModelError, load_models
    from serving.store import SQLiteStore, StoreError

    cfg = ServingConfig.load(configs)
    key = os.environ.get(cfg.api_key_env)
    if key is not None and not key.strip():
        refuse(f"refusing to start: {empty_key_reason(cfg.api_key_env)}")
    if key is None:
        typer.secho(f"warning: {cfg.api_key_env} is not set: anyone who can reach the port can score", err=True)
    if check:
        try:
            load_models(cfg).check_features(SQLiteStore(cfg.store_path).columns, source=str(cfg.store_path))
        except (ModelError, StoreError) as exc:
            refuse(f"refusing to start: {exc}")
    env = server_env(
        {**os.environ, "RETAIN_CONFIGS": str(configs.resolve())}, cfg.workers if workers is None else workers
    )
    sys.exit(run_server(serve_command(host, port), cwd=ROOT, env=env))
