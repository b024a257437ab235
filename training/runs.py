"""MLflow runs: where tracking starts, runs that end properly when killed, run names, dataset inputs.

A run records its process and host, so a run left RUNNING by a killed process is ended as KILLED the
next time tracking starts on that host.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from modeling.tracking import use_experiment

log = logging.getLogger(__name__)

PID_TAG, HOST_TAG = "retain.pid", "retain.host"


def start_tracking(experiment: str, *, uri: str | None = None, artifacts: str | None = None) -> str:
    """Point MLflow at the store and make sure the experiment exists; returns its id.

    A store on this machine keeps artifacts in ``artifacts/`` beside it (the project's
    ``mlruns/artifacts/`` for the embedded store) unless ``artifacts`` says otherwise, never
    MLflow's default ``./mlruns`` under whatever folder the process started in; a team server
    keeps its own artifact location. Runs of this host left RUNNING by a killed process are
    ended as KILLED.
    """
    experiment_id = use_experiment(experiment, uri=uri, artifacts=artifacts)
    end_interrupted_runs(experiment_id)
    return experiment_id


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def end_interrupted_runs(experiment_id: str) -> list[str]:
    """End as KILLED the RUNNING runs whose process (on this host) is gone; returns their ids."""
    client = MlflowClient()
    ended = []
    for run in client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=200):
        tags = run.data.tags
        if tags.get(HOST_TAG) != socket.gethostname() or not tags.get(PID_TAG, "").isdigit():
            continue
        if _alive(int(tags[PID_TAG])):
            continue
        client.set_tag(run.info.run_id, "interrupted", f"process {tags[PID_TAG]} ended without closing the run")
        client.set_terminated(run.info.run_id, status="KILLED")
        ended.append(run.info.run_id)
    if ended:
        log.warning("ended %d run(s) left RUNNING by killed processes: %s", len(ended), ", ".join(ended))
    return ended


class Interrupted(KeyboardInterrupt):
    """SIGTERM (or SIGHUP) during a tracked run: raised so the run and the registry are closed properly."""


@contextlib.contextmanager
def tracked_run(run_name: str, **tags: str) -> Iterator[mlflow.ActiveRun]:
    """``mlflow.start_run`` that records its process and ends as KILLED when interrupted.

    SIGTERM and SIGHUP raise :class:`Interrupted` inside the run (in the main thread), so
    ``finally`` blocks run and the run ends KILLED instead of staying RUNNING; a SIGKILL
    cannot be caught, and :func:`end_interrupted_runs` ends such runs on the next start.
    """
    previous = {}

    def stop(signum, frame):
        raise Interrupted(f"signal {signal.Signals(signum).name}")

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, stop)
    try:
        run = mlflow.start_run(run_name=run_name)
        mlflow.set_tags({PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname(), **tags})
        try:
            yield run
        except (KeyboardInterrupt, SystemExit) as exc:
            mlflow.set_tag("interrupted", str(exc) or type(exc).__name__)
            mlflow.end_run(status="KILLED")
            raise
        except BaseException:
            mlflow.end_run(status="FAILED")
            raise
        mlflow.end_run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_name(model: str, window: str) -> str:
    """``<model> <data window> <UTC time>``, e.g. ``churn 2025-06-05..2026-04-01 20261201T124000Z``."""
    return f"{model} {window} {time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"


def log_dataset(frame: pd.DataFrame, *, name: str, source: str | None, context: str, targets: str | None = None):
    """The rows a model was trained (or tested) on, as an MLflow dataset input of the active run."""
    import warnings

    from mlflow.data.sources import LocalArtifactDatasetSource

    with warnings.catch_warnings():  # the schema's note on integer columns: these rows are what was trained on
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        dataset = mlflow.data.from_pandas(
            frame,
            source=LocalArtifactDatasetSource(str(source)) if source else None,
            name=name,
            targets=targets,
        )
        mlflow.log_input(dataset, context=context)
    return dataset
