"""The command line answers a user's mistake with a usage message and exit 2, before reading any table."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from retain.cli import app
from retain.score_command import score_format

NOWHERE = "/nonexistent/retain-data"  # if a command read its tables first, the error would be about this folder


def _run(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("score", "--as-of", "2026-13-01"), "'2026-13-01' is not a date that exists"),
        (("score", "--as-of", "yesterday"), "'yesterday' is not a date; expected YYYY-MM-DD"),
        (("report", "--as-of", "30/06/2026"), "'30/06/2026' is not a date"),
        (("build-features", "--cutoff", "2026-02-30"), "'2026-02-30' is not a date that exists"),
        (("build-features", "--cutoff", "2026-01-01", "--orphans", "dorp"), "'dorp' is not one of 'error', 'drop'"),
        (("score", "--as-of", "2026-01-01", "--orphans", "dorp"), "'dorp' is not one of 'error', 'drop'"),
        (("score", "--as-of", "2026-01-01", "--csv", "--out", "s.parquet"), "--csv asks for CSV but s.parquet"),
        (("score", "--as-of", "2026-01-01", "--out", "s.txt"), "name the scores file *.parquet or *.csv"),
        (("score", "--as-of", "2026-01-01", "--campaign", "c.parquet"), "the campaign export is CSV"),
        (("build-features", "--cutoff", "2026-01-01", "--out", "f.csv"), "name the file *.parquet"),
    ],
)
def test_bad_options_exit_2_with_the_message_and_no_traceback(args, says):
    done = _run(*args, "--data", NOWHERE)
    assert done.exit_code == 2, done.output
    assert says in done.output
    assert "Traceback" not in done.output and NOWHERE not in done.output
    assert done.exception is None or isinstance(done.exception, SystemExit)


def test_the_format_follows_the_extension():
    assert score_format(None, False) == (Path("outputs/scores.parquet"), "parquet")
    assert score_format(None, True) == (Path("outputs/scores.csv"), "csv")
    assert score_format(Path("s.csv"), False) == (Path("s.csv"), "csv")
    assert score_format(Path("s.CSV"), True) == (Path("s.CSV"), "csv")
    assert score_format(Path("x/s.parquet"), False) == (Path("x/s.parquet"), "parquet")


def test_version_and_plain_help():
    done = _run("--version")
    assert done.exit_code == 0 and done.output.startswith("retain ")
    for args in ((), ("score",), ("report",), ("build-features",), ("demo",)):
        done = _run(*args, "--help")
        assert done.exit_code == 0, done.output
        text = done.output
        assert "``" not in text and "╭" not in text and "\x1b[" not in text and "[bold" not in text
        assert "<bool>" not in text  # flags read as flags: --reasons, not --reasons <bool>
    score_help = _run("score", "--help").output
    for flag in ("--reasons ", "--csv ", "--no-store ", "--no-track "):
        assert flag in score_help
    assert "--no-reasons" not in score_help
