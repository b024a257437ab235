"""Exports as shops make them: order lines, a byte-order mark, quoted fields, M/D/YYYY dates, ids with zeros."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.build import build_features
from features.config import FeaturesConfig
from features.contract import ContractError
from features.dates import parse_time
from features.sources import check_tables, load_tables
from retain.cli import app
from tests.conftest import copy_configs

BOM = "\ufeff"


def write(folder: Path, name: str, text: str) -> Path:
    """A table file exactly as given (the text's own BOM, quotes and line ends)."""
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.csv"
    path.write_bytes(text.encode("utf-8"))
    return path


def run_build(data_dir: Path, tmp_path: Path, *extra: str, cutoff: str = "2024-06-01"):
    out = tmp_path / "out" / "features.parquet"
    args = ["build-features", "--data", str(data_dir), "--cutoff", cutoff, "--out", str(out), *extra]
    result = CliRunner().invoke(app, args)
    return result, out


def one_paragraph(result) -> str:
    return " ".join(result.output.split())


# --- reading the file --------------------------------------------------------------------------------------------


def test_bom_quotes_and_declared_month_first_dates(tmp_path):
    write(
        tmp_path / "d",
        "orders",
        BOM + '"customer_id","ordered_at","amount"\r\n"00123","3/4/2024","10.5"\r\n"00123","12/25/2023","4"\r\n',
    )
    orders = load_tables(tmp_path / "d", date_format="%m/%d/%Y").orders
    assert list(orders.columns) == ["customer_id", "ordered_at", "amount"]  # no BOM left on the first name
    assert list(orders["customer_id"]) == ["00123", "00123"]
    assert list(orders["ordered_at"]) == [pd.Timestamp("2024-03-04"), pd.Timestamp("2023-12-25")]
    assert list(orders["amount"]) == [10.5, 4.0]


def test_a_declared_format_is_the_only_one_accepted(tmp_path):
    write(tmp_path / "d", "orders", "customer_id,ordered_at,amount\na,3/4/2024,1\na,2024-03-05,1\n")
    with pytest.raises(ContractError) as err:
        load_tables(tmp_path / "d", date_format="%m/%d/%Y")
    message = str(err.value)
    assert "'ordered_at'" in message and "row 2: '2024-03-05'" in message and "%m/%d/%Y" in message


def test_the_date_format_comes_from_configs_features_yaml():
    assert FeaturesConfig().date_format is None
    assert FeaturesConfig(date_format="%d.%m.%Y").date_format == "%d.%m.%Y"
    with pytest.raises(ValueError, match="strptime"):
        FeaturesConfig(date_format="%Q")


def test_month_first_dates_are_read_when_only_one_reading_fits(tmp_path):
    write(tmp_path / "d", "orders", "customer_id,ordered_at,amount\na,3/4/2024,1\na,12/25/2023,1\n")
    assert list(load_tables(tmp_path / "d").orders["ordered_at"]) == [
        pd.Timestamp("2024-03-04"),  # 12/25 proves month first, so 3/4 is March 4
        pd.Timestamp("2023-12-25"),
    ]


def test_day_first_dates_with_times_are_read_when_only_one_reading_fits(tmp_path):
    write(tmp_path / "d", "orders", "customer_id,ordered_at,amount\na,03/04/2024 10:30,1\na,25/12/2023 08:00,1\n")
    assert list(load_tables(tmp_path / "d").orders["ordered_at"]) == [
        pd.Timestamp("2024-04-03 10:30"),
        pd.Timestamp("2023-12-25 08:00"),
    ]


def test_ambiguous_day_and_month_are_refused_with_exit_2(tmp_path):
    data = tmp_path / "d"
    write(data, "orders", "customer_id,ordered_at,amount\na,01/02/2024,1\na,03/04/2024,1\n")
    result, out = run_build(data, tmp_path)
    assert result.exit_code == 2, result.output
    message = one_paragraph(result)
    for fragment in ("orders.csv", "'ordered_at'", "ambiguous", "row 1: '01/02/2024'", "date_format"):
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert not out.exists()


def test_a_stray_value_in_a_month_first_column_is_named(tmp_path):
    write(tmp_path / "d", "orders", "customer_id,ordered_at,amount\na,12/25/2023,1\na,soon,1\na,1/5/2024,1\n")
    with pytest.raises(ContractError, match=r"'ordered_at': unparseable date, 1 bad row\(s\) \(row 2: 'soon'\)"):
        load_tables(tmp_path / "d")


def test_leading_zero_ids_are_kept_and_joined(tmp_path):
    data = tmp_path / "d"
    write(data, "customers", BOM + '"customer_id","region"\n"00123","01"\n"123","K"\n')
    write(
        data, "orders", BOM + '"customer_id","ordered_at","amount"\n"00123","2024-05-01","5"\n"123","2024-05-02","7"\n'
    )
    tables = load_tables(data)
    assert list(tables.customers["customer_id"]) == ["00123", "123"]
    assert list(tables.customers["region"]) == ["01", "K"]  # codes stay text as written
    result, out = run_build(data, tmp_path)
    assert result.exit_code == 0, result.output
    feats = pd.read_parquet(out).set_index("customer_id")
    assert feats.loc["00123", "sales_revenue_all"] == 5 and feats.loc["123", "sales_revenue_all"] == 7
    assert feats.loc["00123", "demo_region"] == "01"


def test_a_file_that_is_not_utf8_is_named(tmp_path):
    data = tmp_path / "d"
    data.mkdir()
    (data / "customers.csv").write_bytes("customer_id,region\na,Köln\n".encode("latin-1"))
    result, out = run_build(data, tmp_path)
    assert result.exit_code == 2 and "customers.csv" in result.output and "UTF-8" in result.output
    assert "encoding: latin-1" in result.output  # the way out
    assert not out.exists()


def test_a_declared_encoding_reads_the_file(tmp_path):
    data = tmp_path / "d"
    data.mkdir()
    (data / "customers.csv").write_bytes("customer_id,region\na,Köln\n".encode("latin-1"))
    configs = copy_configs(tmp_path / "configs", features="encoding: latin-1\n")
    result, out = run_build(data, tmp_path, "--configs", str(configs))
    assert result.exit_code == 0, result.output
    assert list(pd.read_parquet(out)["demo_region"]) == ["Köln"]


def test_an_unknown_encoding_is_a_bad_setting(tmp_path):
    data = tmp_path / "d"
    data.mkdir()
    (data / "customers.csv").write_text("customer_id\na\n")
    configs = copy_configs(tmp_path / "configs", features="encoding: klingon\n")
    result, _ = run_build(data, tmp_path, "--configs", str(configs))
    assert result.exit_code == 2 and "klingon" in result.output and "features.yaml" in result.output


# --- order lines into orders -------------------------------------------------------------------------------------

LINES = """order_id,customer_id,ordered_at,amount,discount_amount,shipping_fee,category,n_items
o1,a,2024-05-01 10:00,10,1,4.5,shoes,1
o1,a,2024-05-01 10:00,20,,4.5,bags,2
o1,a,2024-05-01 10:00,5,0.5,4.5,bags,1
o2,a,2024-05-03 09:00,8,0,0,socks,3
o3,b,2024-05-02 12:00,30,,0,shoes,1
o3,b,2024-05-02 12:00,6,,3,socks,1
"""


def test_order_lines_with_a_repeated_order_id_are_summed(tmp_path, caplog):
    write(tmp_path / "d", "orders", LINES)
    with caplog.at_level(logging.WARNING, logger="features.order_lines"):
        orders = load_tables(tmp_path / "d").orders.set_index("order_id")
    assert list(orders.index) == ["o1", "o2", "o3"]
    assert list(orders["customer_id"]) == ["a", "a", "b"]
    assert list(orders["amount"]) == [35, 8, 36]
    assert orders.loc["o1", "discount_amount"] == 1.5 and pd.isna(orders.loc["o3", "discount_amount"])
    assert list(orders["shipping_fee"]) == [4.5, 0, 3]  # the order's fee, repeated or on one line, not a sum
    assert list(orders["n_items"]) == [4, 3, 2]
    assert list(orders["category"]) == ["bags", "socks", "shoes"]  # most lines; o3's tie goes to the first by value
    assert "6 lines summed into 3 orders by order_id" in caplog.text


def test_order_lines_give_the_features_of_the_orders_they_sum_to(tmp_path):
    write(tmp_path / "d", "orders", LINES)
    from_lines = build_features(load_tables(tmp_path / "d"), cutoff="2024-06-01")
    orders = pd.DataFrame(
        {
            "order_id": ["o1", "o2", "o3"],
            "customer_id": ["a", "a", "b"],
            "ordered_at": ["2024-05-01 10:00", "2024-05-03 09:00", "2024-05-02 12:00"],
            "amount": [35.0, 8.0, 36.0],
            "discount_amount": [1.5, 0.0, None],
            "shipping_fee": [4.5, 0.0, 3.0],
            "category": ["bags", "socks", "shoes"],
            "n_items": [4, 3, 2],
        }
    )
    pd.testing.assert_frame_equal(from_lines, build_features(check_tables({"orders": orders}), cutoff="2024-06-01"))


def test_lines_without_order_id_are_grouped_by_customer_and_time(tmp_path, caplog):
    write(
        tmp_path / "d",
        "orders",
        '"customer_id","ordered_at","amount","category"\n'
        '"007","11/1/2000","30","110411"\n'
        '"007","11/1/2000","46","120107"\n'
        '"007","11/20/2000","12","120107"\n'
        '"008","11/1/2000","5","110411"\n',
    )
    with caplog.at_level(logging.WARNING, logger="features.order_lines"):
        orders = load_tables(tmp_path / "d").orders
    assert list(orders["customer_id"]) == ["007", "007", "008"]
    assert list(orders["ordered_at"]) == [pd.Timestamp(d) for d in ("2000-11-01", "2000-11-20", "2000-11-01")]
    assert list(orders["amount"]) == [76, 12, 5]
    assert list(orders["n_items"]) == [2, 1, 1]  # without n_items: the number of lines
    assert "4 lines summed into 3 orders by (customer_id, ordered_at)" in caplog.text


def test_lines_with_an_empty_order_id_are_grouped_by_customer_and_time(tmp_path):
    write(
        tmp_path / "d",
        "orders",
        "order_id,customer_id,ordered_at,amount\no1,a,2024-05-01,1\n,a,2024-05-02,2\n,a,2024-05-02,3\no1,a,2024-05-01,4\n",
    )
    orders = load_tables(tmp_path / "d").orders
    assert list(orders["amount"]) == [5, 5]
    assert orders["order_id"].isna().tolist() == [False, True]


def test_one_row_per_order_comes_back_unchanged(tmp_path, caplog):
    write(tmp_path / "d", "orders", "order_id,customer_id,ordered_at,amount\no1,a,2024-05-01,1\no2,a,2024-05-01,2\n")
    with caplog.at_level(logging.WARNING, logger="features.order_lines"):
        orders = load_tables(tmp_path / "d").orders
    assert list(orders["amount"]) == [1, 2] and "n_items" not in orders.columns  # two orders at the same time
    assert "summed" not in caplog.text


def test_an_order_id_shared_by_two_customers_is_refused(tmp_path):
    data = tmp_path / "d"
    write(
        data,
        "orders",
        "order_id,customer_id,ordered_at,amount\no1,a,2024-05-01,1\no2,b,2024-05-01,2\no1,b,2024-05-01,3\n",
    )
    result, out = run_build(data, tmp_path)
    assert result.exit_code == 2, result.output
    message = one_paragraph(result)
    for fragment in ("orders.csv", "'order_id'", "different customers", "row 1: 'o1'", "row 3: 'o1'", "'b'"):
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert not out.exists()


def test_an_order_id_at_two_times_is_refused():
    orders = pd.DataFrame(
        {
            "order_id": ["o1", "o1"],
            "customer_id": ["a", "a"],
            "ordered_at": ["2024-05-01", "2024-05-02"],
            "amount": [1, 2],
        }
    )
    with pytest.raises(ContractError, match="different ordered_at, 2 bad row"):
        check_tables({"orders": orders})


@pytest.mark.parametrize("fmt", ["%m/%d/%Y", "%d/%m/%Y"])
def test_the_one_value_that_settles_day_and_month_may_come_last(fmt):
    ambiguous = [d for d in pd.date_range("2000-01-01", "2008-12-31") if d.day <= 12]  # over 1,000 distinct
    dates = [*ambiguous, pd.Timestamp("2009-01-25")]
    text = pd.Series([d.strftime(fmt) for d in dates], dtype="string")
    assert list(parse_time(text, where="orders.csv, column 'ordered_at'")) == dates
    with pytest.raises(ContractError, match="ambiguous"):
        parse_time(text.iloc[:-1], where="orders.csv, column 'ordered_at'")


@pytest.mark.parametrize(
    "texts",
    [
        ["31-May-2024", "1-Jun-2024"],
        ["May 31, 2024", "Jun 1, 2024"],
        ["31.05.2024", "01.06.2024"],
        ["31-05-2024", "01-06-2024"],  # '-2024' is no time-zone offset
        ["5/31/2024 2:30 PM", "6/1/2024 9:00 AM"],
        ["2024-05-31T16:30:00+02:00", "2024-06-01T09:00Z"],
    ],
)
def test_common_formats_are_read(texts):
    got = parse_time(pd.Series(texts), where="orders.csv, column 'ordered_at'")
    assert [t.date() for t in got] == [pd.Timestamp("2024-05-31").date(), pd.Timestamp("2024-06-01").date()]
