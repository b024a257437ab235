"""Staged writes: a model's files are written beside their final place and renamed in, so a killed run
leaves the previous files whole and only hidden ``.staging-*`` / ``.old-*`` entries, removed next time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def staged(path: Path) -> Iterator[Path]:
    """A fresh path beside ``path`` (same filesystem) that replaces it only when the block succeeds.

    A folder is swapped by two renames (old aside, new in), so ``path`` is whole before and after;
    a run killed inside the block leaves ``path`` as it was and only a hidden ``.staging-*`` beside it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".staging-{path.name}-", dir=path.parent))
    shutil.rmtree(stage)
    try:
        yield stage
        swap(stage, path)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if stage.exists():
            stage.unlink()


def swap(new: Path, path: Path) -> None:
    """Put ``new`` (file or folder) at ``path``; the old one is removed after the rename."""
    if new.is_dir() and path.exists():
        old = path.parent / f".old-{path.name}-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
        os.replace(new, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, path)


@contextlib.contextmanager
def staging(out_dir: Path) -> Iterator[Path]:
    """A hidden folder inside ``out_dir`` whose entries replace ``out_dir``'s (one rename each) on success."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".staging-", dir=out_dir))
    try:
        yield stage
        publish(stage, out_dir)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def publish(files: Path, out_dir: Path) -> None:
    """Move every entry of the staging folder ``files`` into ``out_dir``, each by rename."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for entry in sorted(files.iterdir()):
        swap(entry, out_dir / entry.name)


def clean_staging(out_dir: Path) -> None:
    """Remove what killed runs left: hidden ``.staging-*`` and ``.old-*`` entries."""
    if out_dir.is_dir():
        for entry in out_dir.iterdir():
            if entry.name.startswith((".staging-", ".old-")):
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
