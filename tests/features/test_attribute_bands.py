"""Household attributes as shops export them: age and income in bands, regions and genders as codes."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.build import build_features
from features.contract import ContractError
from features.sources import check_tables, load_tables
from retain.cli import app


def customers(**columns) -> dict[str, pd.DataFrame]:
    n = len(next(iter(columns.values())))
    return {"customers": pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], **columns})}


def test_age_bands_become_their_midpoints(caplog):
    bands = ["<25", "25-29", "30-34", ">65", "65+", "47", None]
    with caplog.at_level(logging.WARNING, logger="features.numeric"):
        age = check_tables(customers(age=bands)).customers["age"]
    # closed bands are 4 wide, so an open band lies 2 beyond its edge; plain numbers stay as they are
    assert age.tolist()[:6] == [23, 27, 32, 67, 67, 47] and pd.isna(age.iloc[6])
    assert age.dtype == "float64"
    assert "5 value(s) are bands, read as their midpoints" in caplog.text and "'<25' -> 23" in caplog.text


def test_bands_with_words_and_ten_year_widths():
    age = check_tables(customers(age=["under 25", "25 to 34", "35-44", "45 and over", "over 45"])).customers["age"]
    assert age.tolist() == [20.5, 29.5, 39.5, 49.5, 49.5]  # bands 9 wide: open ones lie 4.5 beyond their edge


def test_an_open_band_never_leaves_the_allowed_range():
    age = check_tables(customers(age=["<5", "5-24", "25-44", "125+"])).customers["age"]
    assert age.tolist() == [0, 14.5, 34.5, 130]  # '<5' would be -4.5, '125+' 134.5: ages are 0-130


def test_income_bands_with_currency_and_thousands():
    income = check_tables(
        customers(household_income=["$25,000-$49,999", "50k-75k", "<$25,000", "150000+", "$80,000", "12.5k"])
    ).customers["household_income"]
    # closed widths 24,999 and 25,000: open bands lie half the median width, 12,499.75, beyond their edge
    assert income.tolist() == [37_499.5, 62_500, 12_500.25, 162_499.75, 80_000, 12_500]


def test_age_codes_are_refused_with_a_way_out():
    with pytest.raises(ContractError) as err:
        check_tables(customers(age=["A", "45-54", "K"]))
    message = str(err.value)
    for fragment in ("'age'", "wrong type", "row 1: 'A'", "row 3: 'K'", "band such as 45-54", "age_group"):
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_a_reversed_band_is_not_read():
    with pytest.raises(ContractError, match="row 1: '54-45'"):
        check_tables(customers(age=["54-45"]))


def test_bands_are_only_for_age_and_income():
    orders = pd.DataFrame({"customer_id": ["a"], "ordered_at": ["2024-05-01"], "amount": ["10-20"]})
    with pytest.raises(
        ContractError, match=r"'amount': wrong type, 1 bad row\(s\) \(row 1: '10-20'\); expected a number$"
    ):
        check_tables({"orders": orders})


def test_a_renamed_age_code_column_is_a_category_feature(tmp_path: Path):
    data = tmp_path / "d"
    data.mkdir()
    (data / "customers.csv").write_text(
        "customer_id,age_group,region,gender\n01,K,115,F\n02,B,Others,M\n03,K,115,F\n", encoding="utf-8"
    )
    (data / "orders.csv").write_text("customer_id,ordered_at,amount\n01,2024-05-01,3\n", encoding="utf-8")
    feats = build_features(load_tables(data), cutoff="2024-06-01")
    assert list(feats.index) == ["01", "02", "03"]
    assert feats.loc["01", "attr_age_group"] == "K" and isinstance(feats["attr_age_group"].dtype, pd.CategoricalDtype)
    assert feats.loc["01", "demo_region"] == "115" and feats.loc["02", "demo_gender"] == "M"


def test_ta_feng_like_customers_build_through_the_command(tmp_path: Path):
    data = tmp_path / "d"
    data.mkdir()
    (data / "customers.csv").write_bytes(
        '\ufeff"customer_id","age","region"\n"01104905","45-49","115"\n"00418683","<25","Others"\n"02","",""\n'.encode()
    )
    (data / "orders.csv").write_bytes(
        '\ufeff"ordered_at","customer_id","amount"\n"11/1/2000","01104905","30"\n"11/1/2000","01104905","46"\n'
        '"11/20/2000","00418683","12"\n'.encode()
    )
    out = tmp_path / "out" / "features.parquet"
    result = CliRunner().invoke(
        app, ["build-features", "--data", str(data), "--cutoff", "2001-02-01", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    feats = pd.read_parquet(out).set_index("customer_id")
    assert feats.loc["01104905", "demo_age"] == 47 and feats.loc["00418683", "demo_age"] == 23
    assert feats.loc["01104905", "sales_orders_all"] == 1 and feats.loc["01104905", "sales_revenue_all"] == 76
    assert pd.isna(feats.loc["02", "demo_age"]) and feats.loc["02", "sales_orders_all"] == 0
