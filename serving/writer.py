"""The batch job's files: one run at a time per output, written beside the final path and renamed into place.

A killed run leaves the previous file or none, never half of one (``features.io.atomic_path``); a second run on
the same outputs stops at once with :class:`BatchError` (``output_lock``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from features.io import atomic_path
from serving.batch_tracking import Summary

FORMATS = ("parquet", "csv")


class BatchError(RuntimeError):
    """The outputs cannot be written (busy, read-only, full, a folder where a file belongs); exit 2 in the CLI."""


def clean_stale(path: Path) -> None:
    """Remove temporary files a killed run left beside ``path``; call it only while holding ``output_lock``
    (another live run's temporary file looks the same)."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)


@contextlib.contextmanager
def output_lock(*paths: Path):
    """An exclusive lock per output (``.<name>.lock`` beside it) for the whole run; a second run on the same
    outputs stops at once with BatchError instead of deleting the first one's temporary files."""
    held: list[int] = []
    try:
        for path in sorted({Path(p).resolve() for p in paths}):
            if path.is_dir():
                raise BatchError(f"{path}: is a folder; expected a file path for the output")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as exc:
                raise BatchError(f"{path}: cannot write there ({exc.strerror or exc})") from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                os.close(fd)
                raise BatchError(
                    f"{path}: another retain score is writing it now; wait for it to finish, or choose another "
                    "--out / --store"
                ) from exc
            held.append(fd)
        yield
    finally:
        for fd in held:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def write_scores(chunks, out: Path, fmt: str, total: int, progress: bool = True) -> dict:
    """Stream chunks into ``out`` atomically; returns the distribution summary."""
    out = Path(out)
    with output_lock(out):
        clean_stale(out)
        with atomic_path(out) as tmp:
            return fill_scores(chunks, tmp, fmt, total, progress=progress)


def fill_scores(chunks, tmp: Path, fmt: str, total: int, progress: bool = True) -> dict:
    """Stream chunks into the new file ``tmp`` (``write_scores`` without the lock and the rename)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    summary = Summary()
    columns = [TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, transient=True, disable=not progress) as bar:
        task = bar.add_task("score", total=total)
        writer = None
        try:
            for chunk in chunks:
                summary.add(chunk)
                if fmt == "parquet":
                    table = pa.Table.from_pandas(chunk, preserve_index=False)
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, table.schema)
                    writer.write_table(table)
                else:
                    chunk.to_csv(tmp, mode="w" if writer is None else "a", header=writer is None, index=False)
                    writer = writer or True
                bar.advance(task, len(chunk))
        finally:
            if fmt == "parquet" and writer is not None:
                writer.close()
    return summary.result()


def sha256(path: Path) -> str:
    """A written file's digest: the snapshot records the scores file it belongs with."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
