"""Issue 16.6: the scores file and the feature snapshot are one unit, and one run at a time writes them."""

from __future__ import annotations

import errno
import hashlib
import sqlite3
from pathlib import Path

import pytest

from serving import batch
from serving.config import ServingConfig
from serving.writer import BatchError, output_lock
from tests.serving_champions import champions, score_args, score_batch


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from features.sources import load_tables
    from serving.models import load_models

    c = champions(tmp_path_factory.mktemp("batch-faults"))
    config = ServingConfig.load(c.configs)
    tables = load_tables(c.data_dir, offers=("free_shipping", "discount_20"))
    return config, tables, load_models(config)


def _run(setup, out: Path, store: Path | None, **kw):
    config, tables, models = setup
    return score_batch(config, tables, models, out, store=store, **kw)


def _meta(store: Path) -> dict:
    with sqlite3.connect(store) as con:
        return dict(con.execute("SELECT key, value FROM meta").fetchall())


def test_the_snapshot_records_the_scores_file_it_belongs_with(setup, tmp_path):
    out, store = tmp_path / "scores.parquet", tmp_path / "store.sqlite"
    _run(setup, out, store)
    meta = _meta(store)
    assert meta["scores_sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert meta["scores_file"] == "scores.parquet"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []


@pytest.mark.parametrize(
    "failure",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        PermissionError(errno.EACCES, "Permission denied"),
        OSError(errno.EROFS, "Read-only file system"),
    ],
    ids=["disk full", "no permission", "read-only"],
)
def test_a_failure_writing_the_snapshot_leaves_the_old_scores_and_snapshot(setup, tmp_path, monkeypatch, failure):
    out, store = tmp_path / "scores.parquet", tmp_path / "store.sqlite"
    _run(setup, out, store)
    before = out.read_bytes(), store.read_bytes()

    def broken(tmp, *a, **kw):
        raise failure

    monkeypatch.setattr(batch, "fill_snapshot", broken)
    with pytest.raises(BatchError, match="cannot write .*nothing was replaced"):
        _run(setup, out, store, reasons=True)  # a different file, were it written
    assert (out.read_bytes(), store.read_bytes()) == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_store_folder_that_cannot_be_created_is_exit_2_material(setup, tmp_path):
    out = tmp_path / "scores.parquet"
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(BatchError, match="cannot write"):
        _run(setup, out, blocker / "store.sqlite")
    assert not out.exists()


def test_out_pointing_at_a_folder_is_refused(setup, tmp_path):
    (tmp_path / "dir").mkdir()
    with pytest.raises(BatchError, match="is a folder"):
        _run(setup, tmp_path / "dir", None)


def test_a_second_run_on_the_same_outputs_stops_and_leaves_the_first_ones_files(setup, tmp_path):
    out, store = tmp_path / "scores.parquet", tmp_path / "store.sqlite"
    first = tmp_path / f".{store.name}.first.tmp"  # the temporary file of a run in progress
    with output_lock(store):
        first.write_bytes(b"in progress")
        with pytest.raises(BatchError, match="another retain score is writing it"):
            _run(setup, out, store)
        assert first.read_bytes() == b"in progress"  # not cleaned away under the running job
    assert not out.exists() and not store.exists()
    _run(setup, out, store)  # once the first is done, the next run goes ahead
    assert out.exists() and store.exists() and not first.exists()


def test_the_cli_says_busy_with_exit_2(setup, tmp_path):
    from typer.testing import CliRunner

    from retain.cli import app

    config, _, _ = setup
    c = champions(tmp_path)
    out = tmp_path / "scores.parquet"
    with output_lock(out):
        r = CliRunner().invoke(
            app,
            [
                *score_args(c, out),
                "--no-store",
                "--configs",
                str(c.configs),
                "--no-track",
            ],
        )
    assert r.exit_code == 2 and "another retain score is writing it" in r.output, r.output


@pytest.mark.slow
def test_sigkill_while_the_snapshot_is_written_leaves_the_old_pair(setup, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    c = champions(tmp_path)
    out, store = tmp_path / "scores.parquet", tmp_path / "store.sqlite"
    _run(setup, out, store)
    before = out.read_bytes(), store.read_bytes()
    cmd = [
        sys.executable,
        "-m",
        "retain",
        *score_args(c, out),
        "--store",
        str(store),
        "--configs",
        str(c.configs),
        "--no-track",
        "--reasons",
    ]
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "MLFLOW_TRACKING_URI": c.uri}
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed = False
    deadline = time.monotonic() + 180
    while proc.poll() is None and time.monotonic() < deadline:
        filling = [p for p in tmp_path.glob(".store.sqlite.*.tmp") if p.stat().st_size > 0]
        if filling:  # the scores are written (beside their path) and the snapshot is being filled
            proc.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.005)
    proc.wait(timeout=30)
    assert killed, "the run ended before the snapshot was being written"
    assert (out.read_bytes(), store.read_bytes()) == before  # neither file of the pair was replaced
    _run(setup, out, store)  # the next run cleans the killed run's temporary files and goes ahead
    assert not list(tmp_path.glob(".*.tmp"))
