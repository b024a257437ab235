"""Every kind of bad input: a clear message naming file, column and rows; exit 2; no output."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from retain.cli import app
from tests.conftest import CUTOFF, copy_configs


def run_build(data_dir: Path, tmp_path: Path, *extra: str):
    out = tmp_path / "out" / "features.parquet"
    result = CliRunner().invoke(
        app, ["build-features", "--data", str(data_dir), "--cutoff", CUTOFF, "--out", str(out), *extra]
    )
    return result, out


def rewrite(data_dir: Path, table: str, edit) -> None:
    path = data_dir / f"{table}.csv"
    frame = pd.read_csv(path, dtype=str)
    frame = edit(frame)
    frame.to_csv(path, index=False)


def set_cell(column: str, row: int, value):
    def edit(frame):
        frame.loc[row, column] = value
        return frame

    return edit


CASES = {
    "missing required column": ("orders", lambda f: f.drop(columns="amount"), ["orders.csv", "amount", "missing"]),
    "unparseable date": ("orders", set_cell("ordered_at", 2, "not-a-date"), ["orders.csv", "ordered_at", "row 3"]),
    "wrong type": ("orders", set_cell("amount", 1, "twelve"), ["orders.csv", "'amount'", "row 2", "number"]),
    "negative amount": ("orders", set_cell("amount", 0, "-5"), ["orders.csv", "negative", "row 1", ">= 0"]),
    # a repeated order_id is legitimate on the lines of one order (same customer and time) and summed; not here
    "duplicate order_id": ("orders", set_cell("order_id", 1, "o1"), ["orders.csv", "duplicate", "'o1'"]),
    "order_id of two customers": (
        "orders",
        set_cell("order_id", 2, "o1"),
        ["orders.csv", "'order_id'", "different customers", "row 1: 'o1'", "row 3: 'o1'"],
    ),
    "ambiguous dates": (
        "orders",
        lambda f: f.assign(ordered_at=["03/01/2024", "04/01/2024", "04/02/2024", "05/10/2024", "06/01/2024"]),
        ["orders.csv", "'ordered_at'", "ambiguous", "row 1: '03/01/2024'", "date_format"],
    ),
    "age code": ("customers", set_cell("age", 1, "K"), ["customers.csv", "'age'", "row 2: 'K'", "band"]),
    "duplicate customer_id": ("customers", set_cell("customer_id", 1, "a"), ["customers.csv", "duplicate"]),
    "unknown event_type": ("events", set_cell("event_type", 3, "teleport"), ["events.csv", "teleport", "row 4"]),
    "unknown offer": ("offers", set_cell("offer", 0, "free_lunch"), ["offers.csv", "free_lunch", "discount_20"]),
    "mixed time zones": (
        "events",
        set_cell("occurred_at", 0, "2024-04-30T10:00:00+02:00"),
        ["events.csv", "occurred_at", "time-zone", "row 2"],
    ),
    "empty file": ("reviews", lambda f: f.iloc[0:0], ["reviews.csv", "empty"]),
    "orphan rows": ("orders", set_cell("customer_id", 0, "zed"), ["orders.csv", "1 row(s)", "1 customer(s)", "zed"]),
    # issue 16: impossible values that used to pass and break training or the profits
    "amount 1e308": ("orders", set_cell("amount", 1, "1e308"), ["orders.csv", "'amount'", "row 2", "finite"]),
    "amount inf": ("orders", set_cell("amount", 2, "inf"), ["orders.csv", "'amount'", "row 3", "finite"]),
    "discount -inf": ("orders", set_cell("discount_amount", 0, "-inf"), ["orders.csv", "discount_amount", "row 1"]),
    "order in year 9999": (
        "orders",
        set_cell("ordered_at", 1, "9999-01-01"),
        ["orders.csv", "'ordered_at'", "implausible date", "row 2: '9999-01-01'", "expected dates from"],
    ),
    "signup before 1900": (
        "customers",
        set_cell("signed_up_at", 0, "1024-01-01"),
        ["customers.csv", "signed_up_at", "row 1", "1900-01-01"],
    ),
}

# files that are not what their name says: exit 2 naming the file, no traceback
BROKEN_FILES = {
    "binary orders.csv": ("orders.csv", bytes(range(256)) * 40, ["orders.csv", "not UTF-8"]),
    "latin-1 with accents": (
        "customers.csv",
        "customer_id,region\na,Québec\nb,Genève\n".encode("latin-1"),
        ["customers.csv", "UTF-8"],
    ),
    "unterminated quote": (
        "orders.csv",
        b'customer_id,ordered_at,amount\na,2024-01-01,"10\nb,2024-02-01,20\n',
        ["orders.csv", "not a readable CSV file", "quote"],
    ),
    "truncated parquet": ("orders.parquet", None, ["orders.parquet", "not a readable Parquet file"]),
}


@pytest.mark.parametrize("case", BROKEN_FILES, ids=list(BROKEN_FILES))
def test_a_broken_file_exits_2_naming_it(case, data_dir, tmp_path):
    name, content, expected = BROKEN_FILES[case]
    if content is None:  # a real Parquet file cut in half
        frame = pd.read_csv(data_dir / "orders.csv", dtype=str)
        (data_dir / "orders.csv").unlink()
        frame.to_parquet(data_dir / name, index=False)
        whole = (data_dir / name).read_bytes()
        content = whole[: len(whole) // 2]
    (data_dir / name).write_bytes(content)
    result, out = run_build(data_dir, tmp_path)
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert "Traceback" not in message
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert not out.exists()


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_input_names_the_problem_and_writes_nothing(case, data_dir, tmp_path):
    table, edit, expected = CASES[case]
    rewrite(data_dir, table, edit)
    result, out = run_build(data_dir, tmp_path)
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    for fragment in expected:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_a_truly_empty_file_is_named(data_dir, tmp_path):
    (data_dir / "reviews.csv").write_text("")
    result, out = run_build(data_dir, tmp_path)
    assert result.exit_code == 2 and "reviews.csv" in result.output and "empty" in result.output
    assert not out.exists()


def test_orphans_can_be_dropped_with_a_warning(data_dir, tmp_path, caplog):
    rewrite(data_dir, "orders", set_cell("customer_id", 0, "zed"))
    copy_configs(data_dir.parent / "configs", features="orphans: drop\n")
    result, out = run_build(data_dir, tmp_path, "--configs", str(data_dir.parent / "configs"))
    assert result.exit_code == 0, result.output
    assert out.exists()
    assert "zed" not in set(pd.read_parquet(out)["customer_id"])


def test_good_input_writes_features(data_dir, tmp_path):
    result, out = run_build(data_dir, tmp_path, "--labels")
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out)
    assert list(frame["customer_id"]) == ["a", "b"]
    assert list(frame["churned"]) == [0, 0]  # both order within 90 days of the cutoff


def test_cutoff_is_required(data_dir, tmp_path):
    result = CliRunner().invoke(app, ["build-features", "--data", str(data_dir)])
    assert result.exit_code != 0 and "cutoff" in result.output.lower()


def test_a_bad_setting_names_the_file_and_exits_2(data_dir, tmp_path):
    configs = copy_configs(tmp_path / "configs", features='date_format: "mdY"\n')
    result, out = run_build(data_dir, tmp_path, "--configs", str(configs))
    assert result.exit_code == 2 and "features.yaml" in result.output and "date_format" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit) and not out.exists()


def test_the_configured_date_format_reaches_the_loader(tmp_path):
    """Dates a CLI user declared as day-first are read day-first, not refused as ambiguous."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "orders.csv").write_text("customer_id,ordered_at,amount\na,02/03/2024,10\nb,05/04/2024,20\n")
    configs = copy_configs(tmp_path / "configs")
    out = tmp_path / "features.parquet"
    args = ["build-features", "--data", str(data), "--cutoff", "2024-03-03", "--out", str(out)]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2 and "date_format" in refused.output  # 02/03 could be either
    (configs / "features.yaml").write_text('date_format: "%d/%m/%Y"\n')
    result = CliRunner().invoke(app, [*args, "--configs", str(configs)])
    assert result.exit_code == 0, result.output
    assert list(pd.read_parquet(out)["customer_id"]) == ["a"]  # 2 March is before the cutoff, 5 April is not


def test_an_output_that_cannot_be_written_exits_2_naming_it(data_dir, tmp_path):
    (tmp_path / "taken").mkdir()
    result = CliRunner().invoke(
        app, ["build-features", "--data", str(data_dir), "--cutoff", CUTOFF, "--out", str(tmp_path / "taken")]
    )
    assert result.exit_code == 2, result.output
    assert "taken" in result.output and "Traceback" not in result.output
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = CliRunner().invoke(
        app, ["build-features", "--data", str(data_dir), "--cutoff", CUTOFF, "--out", str(blocker / "f.parquet")]
    )
    assert result.exit_code == 2 and "file" in result.output, result.output
