"""Order lines summed into orders: exports with a row per product become one row per order."""

from __future__ import annotations

import logging

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.contract import CUSTOMER_ID, MAX_ROWS_SHOWN, ORDERS, ContractError, bad_rows

log = logging.getLogger(__name__)


def orders_from_lines(lines: pd.DataFrame, *, source: str) -> pd.DataFrame:
    """One row per order from a validated orders table that may hold order lines (a row per product).

    A line's order is its ``order_id`` or, for a line without one, its (customer_id, ordered_at): a
    basket. The lines of one order become one row: ``amount``, ``discount_amount`` and ``n_items`` are
    summed (without an ``n_items`` column it is the number of lines); ``shipping_fee`` is the largest on
    the order (exports repeat the order's fee on every line, or put it on one line and 0 on the others);
    ``category`` is the most common among the lines, ties by value. An ``order_id`` on lines of
    different customers or times is refused. A table of one row per order comes back as it is.
    """
    n = len(lines)
    has_id = ORDERS.order_id in lines.columns
    if n == 0 or (has_id and lines[ORDERS.order_id].notna().all() and all_distinct(lines[ORDERS.order_id])):
        return lines  # one row per order: the common case costs one uniqueness check
    if not has_id and _distinct_pairs(lines, CUSTOMER_ID, ORDERS.ordered_at) == n:
        return lines
    customer = pd.factorize(lines[CUSTOMER_ID])[0].astype("int64")
    moment = pd.factorize(lines[ORDERS.ordered_at])[0].astype("int64")
    basket = pd.factorize(customer * (int(moment.max()) + 1) + moment)[0]
    if has_id:
        key, ids = pd.factorize(lines[ORDERS.order_id])
        no_id = key < 0
        key[no_id] = len(ids) + pd.factorize(basket[no_id])[0]
    else:
        key = basket
    n_orders = int(key.max()) + 1
    if n_orders == n:
        return lines
    if has_id:
        _check_one_order_per_id(lines, key, basket, customer, source=source)
    groups = pd.Series(np.arange(n)).groupby(key, sort=False)  # orders in the order of their first line
    first_line = groups.min()
    first, order_key = first_line.to_numpy(), first_line.index.to_numpy()
    out = lines.iloc[first].reset_index(drop=True)
    rules = []
    for col in lines.columns:
        values = lines[col].reset_index(drop=True)
        if col in (ORDERS.amount, ORDERS.discount_amount, ORDERS.n_items):
            out[col] = values.groupby(key).sum(min_count=1).reindex(order_key).to_numpy()
            rules.append(f"{col} summed")
        elif col == ORDERS.shipping_fee:
            out[col] = values.groupby(key).max().reindex(order_key).to_numpy()
            rules.append(f"{col} the largest per order")
        elif col == ORDERS.category:
            out[col] = pd.array(_most_common(values, key).reindex(order_key), dtype="string")
            rules.append(f"{col} the most common among the lines")
    if ORDERS.n_items not in lines.columns:
        out[ORDERS.n_items] = groups.size().reindex(order_key).to_numpy().astype("float64")
        rules.append(f"{ORDERS.n_items} the number of lines")
    by = f"({CUSTOMER_ID}, {ORDERS.ordered_at})"
    if has_id:
        by = ORDERS.order_id if not no_id.any() else f"{ORDERS.order_id}, or {by} for lines without one"
    log.warning("%s: %s lines summed into %s orders by %s: %s", source, f"{n:,}", f"{n_orders:,}", by, ", ".join(rules))
    return out


def _most_common(values: pd.Series, key: np.ndarray) -> pd.Series:
    """Per order key, the most common non-empty value, ties by value (never by line order)."""
    text = values.astype("string")
    present = text.notna().to_numpy()
    codes, levels = pd.factorize(text[present], sort=True)  # code order is value order
    width = max(len(levels), 1)
    pairs, counts = np.unique(key[present].astype("int64") * width + codes, return_counts=True)
    k, c = pairs // width, pairs % width
    ranked = np.lexsort((c, -counts, k))  # per key: most lines first, then the smallest value
    k, c = k[ranked], c[ranked]
    first = np.r_[True, k[1:] != k[:-1]]
    return pd.Series(np.asarray(levels, dtype=object)[c[first]], index=k[first], dtype="string")


def _check_one_order_per_id(
    lines: pd.DataFrame, key: np.ndarray, basket: np.ndarray, customer: np.ndarray, *, source: str
) -> None:
    """An order_id repeats only on lines of one order: one customer, one ordered_at."""
    spread = pd.DataFrame({"k": key, "b": basket, "c": customer}).groupby("k").agg(["min", "max"])
    mixed = spread[("b", "min")] != spread[("b", "max")]
    if not mixed.any():
        return
    bad = mixed.reindex(key).to_numpy()
    customers = (spread[("c", "min")] != spread[("c", "max")])[mixed]
    what = "different customers" if customers.any() else f"different {ORDERS.ordered_at}"
    worst = customers.index[customers.to_numpy()][0] if customers.any() else mixed.index[mixed.to_numpy()][0]
    shown = np.flatnonzero(key == worst)[:MAX_ROWS_SHOWN]
    detail = "; ".join(
        f"row {i + 1}: {CUSTOMER_ID} {lines[CUSTOMER_ID].iloc[i]!r}, {ORDERS.ordered_at} "
        f"{lines[ORDERS.ordered_at].iloc[i]}"
        for i in shown
    )
    raise ContractError(
        f"{source}, column {ORDERS.order_id!r}: duplicate {ORDERS.order_id} on lines of {what}, "
        f"{bad_rows(bad, lines[ORDERS.order_id])}; {lines[ORDERS.order_id].iloc[shown[0]]!r} is on {detail}. "
        f"Expected each {ORDERS.order_id} once, or repeated only on the lines of one order (same {CUSTOMER_ID} "
        f"and {ORDERS.ordered_at}), which are summed into one order"
    )


def _distinct_pairs(frame: pd.DataFrame, *columns: str) -> int:
    """How many distinct value combinations ``columns`` hold (DuckDB: parallel, no copy of Arrow strings)."""
    with duckdb.connect() as con:
        con.register("_frame", frame[list(columns)])
        return con.execute(f"SELECT count(*) FROM (SELECT DISTINCT {', '.join(columns)} FROM _frame)").fetchone()[0]


def all_distinct(values: pd.Series) -> bool:
    """Cheap uniqueness check in Arrow; the slow pandas path runs only to report duplicates."""
    return len(pc.unique(pa.array(values, from_pandas=True)).drop_null()) == values.notna().sum()
