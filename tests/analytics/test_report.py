"""The report as a person sees it: rendered by headless Chromium over the DevTools pipe.

No extra Python package: Chromium's ``--remote-debugging-pipe`` speaks JSON messages
separated by NUL bytes on file descriptors 3 (commands) and 4 (replies).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import struct
import subprocess
import time
import zlib
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analytics.config import AnalyticsConfig
from analytics.page import Section
from analytics.report import render_report, write_report
from features.sources import check_tables

CHROMIUM = "/usr/bin/chromium"
AS_OF = pd.Timestamp("2024-10-15")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-pipe",
)
needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} missing: install Debian's chromium package (CI does)"
)


class Browser:
    """Just enough of the DevTools protocol to load a page, listen to it and screenshot it."""

    def __init__(self, profile: Path):
        cmd_r, self._cmd_w = os.pipe()
        self._out_r, out_w = os.pipe()

        def fds():  # the child's fd 3 reads commands, fd 4 writes replies
            a, b = os.dup(cmd_r), os.dup(out_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            preexec_fn=fds,
            pass_fds=(3, 4),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(cmd_r)
        os.close(out_w)
        self._buf, self._id, self.events = b"", 0, []

    def _read(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._out_r], [], [], left)[0]:
                raise TimeoutError("no reply from chromium")
            chunk = os.read(self._out_r, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read(timeout)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 30) -> dict:
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self._read(timeout)
            self.events.append(event)
            if event.get("method") == method:
                return event

    def close(self):
        with contextlib.suppress(TimeoutError, RuntimeError, OSError):
            self.send("Browser.close", timeout=5)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._cmd_w)
        os.close(self._out_r)


def render(page: Path, screenshot: Path, profile: Path) -> dict:
    """Load ``page``; return console errors, requested URLs and each image's natural size."""
    browser = Browser(profile)
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable", session=session)
        browser.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1200, "height": 900, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        browser.send("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
        browser.wait_for("Page.loadEventFired")
        expr = "JSON.stringify(Array.from(document.images, i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight]))"
        value = browser.send("Runtime.evaluate", {"expression": expr, "returnByValue": True}, session=session)
        images = json.loads(value["result"]["value"])
        size = browser.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": 1200, "height": min(size["height"], 6000), "scale": 1}
        shot = browser.send(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}, session=session
        )
        screenshot.write_bytes(base64.b64decode(shot["data"]))
        time.sleep(0.2)  # let late console messages arrive
        browser.send("Runtime.evaluate", {"expression": "1"}, session=session)
    finally:
        browser.close()
    events = browser.events
    errors = [
        e["params"]
        for e in events
        if e.get("method") == "Runtime.exceptionThrown"
        or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
        or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
        or e.get("method") == "Network.loadingFailed"
    ]
    urls = [e["params"]["request"]["url"] for e in events if e.get("method") == "Network.requestWillBeSent"]
    return {"errors": errors, "urls": urls, "images": images}


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def _png_not_blank(data: bytes) -> bool:
    """True when the decoded pixel rows are not all the same byte (a white page)."""
    chunks, pos = b"", 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"IDAT":
            chunks += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(chunks)
    return len(set(raw[: 1 << 20])) > 8


@pytest.fixture
def tables():
    rng = np.random.default_rng(7)
    n, m = 3000, 300
    ids = np.arange(m).astype(str)
    orders = pd.DataFrame(
        {
            "customer_id": rng.choice(ids, n),
            "ordered_at": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 290 * 86400, n), unit="s"),
            "amount": rng.gamma(2, 20, n).round(2),
        }
    )
    customers = pd.DataFrame({"customer_id": ids, "region": rng.choice(["north", "south", "east"], m)})
    events = pd.DataFrame(
        {
            "customer_id": rng.choice(ids, 400),
            "occurred_at": AS_OF - pd.to_timedelta(rng.integers(1, 5 * 86400, 400), unit="s"),
            "event_type": "add_to_cart",
        }
    )
    return check_tables({"orders": orders, "customers": customers, "events": events})


def _plot(path: Path) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 3))
    fig.subplots().plot([0, 0.5, 1], [0, 0.8, 1])
    fig.savefig(path)
    return path


def _churn_card(folder: Path, markdown: str, plot: str) -> Section:
    """A churn model-card folder as the trainer writes it: markdown and one PNG."""
    folder.mkdir()
    (folder / "model_card.md").write_text(markdown)
    _plot(folder / plot)
    return Section.from_folder("Churn model", folder)


PROBABILITIES = pd.Series(np.linspace(0, 1, 300), index=np.arange(300).astype(str))


def _page(tables, card: Section, **extra) -> dict:
    """The report's arguments every full-page test shares: demo tables, default settings, a churn card."""
    common = {"as_of": AS_OF, "config": AnalyticsConfig(), "horizon_days": 90, "currency": "EUR"}
    return {"tables": tables, **common, "churn_probability": PROBABILITIES, "churn_model": card, **extra}


def test_report_is_self_contained_and_renders_every_section(tables, tmp_path):
    card = _churn_card(tmp_path / "card", "# Churn model\n\n| metric | value |\n|---|---|\n| AUC | 0.81 |\n", "roc.png")
    html = render_report(
        **_page(tables, card),
        offer_model=Section(
            "Offer model", "<script>alert(1)</script> uplift", pd.DataFrame({"offer": ["a"], "q": [1.0]})
        ),
        drivers=pd.Series({"days_since_last_order": 0.31, "orders_90d": 0.12}, name="importance"),
    )
    for heading in (
        "Retention KPIs",
        "By region",
        "Cohort retention",
        "Lifecycle stages",
        "By churn risk band",
        "Churn model",
        "Offer model",
        "Top churn drivers",
        "AUC",
        "days_since_last_order",
    ):
        assert heading in html
    assert "<script" not in html  # markdown's raw HTML is escaped, and the report has no JS
    assert "http://" not in html and "https://" not in html
    assert html.count("<img") == 3  # heatmap, stage bars, the card's ROC curve


def test_optional_sections_are_left_out_when_not_given(tables):
    html = render_report(tables=tables, as_of=AS_OF, config=AnalyticsConfig(), horizon_days=90, currency="EUR")
    assert "Cohort retention" in html and "Lifecycle stages" in html
    for heading in ("By churn risk band", "Churn model", "Offer model", "Top churn drivers"):
        assert heading not in html


def test_rows_from_the_as_of_instant_on_change_nothing(tables):
    """The report reads the tables through the features' snapshot: an order or a cart at as_of is the future."""
    ids = tables.customers["customer_id"].head(50)
    later = pd.to_timedelta(np.arange(50) * 3600, unit="s") + AS_OF  # the first one exactly at as_of
    orders = pd.concat([tables.orders, pd.DataFrame({"customer_id": ids, "ordered_at": later, "amount": 99.0})])
    events = pd.concat(
        [tables.events, pd.DataFrame({"customer_id": ids, "occurred_at": later, "event_type": "add_to_cart"})]
    )
    with_future = check_tables({"orders": orders, "customers": tables.customers, "events": events})
    kw = dict(as_of=AS_OF, config=AnalyticsConfig(), horizon_days=90, currency="EUR", churn_probability=PROBABILITIES)
    assert render_report(tables=with_future, **kw) == render_report(tables=tables, **kw)


def test_write_report_is_atomic_and_leaves_no_temp_file(tables, tmp_path):
    out = write_report(
        tmp_path / "r" / "report.html",
        tables=tables,
        as_of=AS_OF,
        config=AnalyticsConfig(),
        horizon_days=90,
        currency="EUR",
    )
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]


@needs_chromium
def test_report_renders_in_chromium_without_errors(tables, tmp_path):
    card = _churn_card(tmp_path / "card", "# Churn model\n\nAUC 0.81 on the holdout.\n", "calibration.png")
    page = write_report(
        tmp_path / "report.html",
        **_page(tables, card),
        drivers=pd.Series({"days_since_last_order": 0.31}, name="importance"),
    )
    shot = Path(os.environ.get("RETAIN_SCREENSHOT", tmp_path / "report.png"))
    seen = render(page, shot, tmp_path / "profile")
    assert seen["errors"] == []
    assert all(u.startswith(("file://", "data:")) for u in seen["urls"]), seen["urls"]
    assert len(seen["images"]) == 3
    for alt, complete, width, height in seen["images"]:
        assert complete and width > 0 and height > 0, alt
    data = shot.read_bytes()
    width, height = _png_size(data)
    assert width == 1200 and height > 900
    assert _png_not_blank(data)


@needs_chromium
def test_chromium_check_catches_a_broken_image(tmp_path):
    """The harness itself: a missing image and a script error must be reported."""
    page = tmp_path / "broken.html"
    page.write_text("<html><body><img alt='gone' src='missing.png'><script>undefined_fn()</script></body></html>")
    seen = render(page, tmp_path / "broken.png", tmp_path / "profile")
    assert seen["images"] == [["gone", True, 0, 0]]
    assert any("exceptionDetails" in e for e in seen["errors"])
    assert shutil.which(CHROMIUM)


class _Cells(HTMLParser):
    """The text of every <td>/<th> cell, row by row, of the first table after ``start``."""

    def __init__(self):
        super().__init__()
        self.rows, self._in_cell, self._done = [], False, False

    def handle_starttag(self, tag, attrs):
        if self._done:
            return
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._in_cell = True
            self.rows[-1].append("")

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._in_cell = False
        elif tag == "table":
            self._done = True

    def handle_data(self, data):
        if self._in_cell and not self._done:
            self.rows[-1][-1] += data.strip()


def _band_table(html_text: str) -> pd.DataFrame:
    """The 'By churn risk band' table as stage x band counts."""
    parser = _Cells()
    parser.feed(html_text[html_text.index("By churn risk band") :])
    header, *body = [r for r in parser.rows if r]
    bands = header[-3:]
    rows = [r for r in body if r[0] not in ("stage", "")]
    return pd.DataFrame(
        [[int(v.replace(",", "")) for v in r[-3:]] for r in rows], index=[r[0] for r in rows], columns=bands
    )


def test_risk_bands_count_only_scored_customers_and_say_who_was_not_scored(tables):
    """Prospects (no order before as_of) have a null churn probability: out of the bands, counted with the reason."""
    customers = pd.concat(
        [tables.customers, pd.DataFrame({"customer_id": [f"p{i}" for i in range(40)], "region": "north"})]
    )
    with_prospects = check_tables({"orders": tables.orders, "customers": customers, "events": tables.events})
    buyers = sorted(tables.orders.loc[tables.orders["ordered_at"] < AS_OF, "customer_id"].astype(str).unique())
    prob = pd.Series(np.linspace(0, 1, len(buyers)), index=buyers)
    prob = pd.concat([prob, pd.Series(np.nan, index=[f"p{i}" for i in range(40)])])
    reasons = pd.Series([None] * len(buyers) + ["no order before the as-of date"] * 40, index=prob.index)
    html = render_report(
        tables=with_prospects,
        as_of=AS_OF,
        config=AnalyticsConfig(),
        horizon_days=90,
        currency="EUR",
        churn_probability=prob.iloc[:-5],  # the last 5 prospects have no row at all
        churn_unscored_reason=reasons.iloc[:-5],
    )
    assert (
        f"Risk bands count the {len(buyers):,} customers with a churn probability; 40 customers were not scored "
        "(no order before the as-of date: 35; no row in the churn scores: 5)"
    ) in html
    table = _band_table(html)
    assert table.to_numpy().sum() == len(buyers)
    assert "prospect" not in table.index
    assert list(table.columns) == ["low", "medium", "high"]


def test_report_command_reads_the_reason_from_the_scores_file(tables, tmp_path):
    from typer.testing import CliRunner

    from retain.cli import app

    data = tmp_path / "data"
    data.mkdir()
    customers = pd.concat([tables.customers, pd.DataFrame({"customer_id": ["p0", "p1"], "region": "south"})])
    tables.orders.to_csv(data / "orders.csv", index=False)
    customers.to_csv(data / "customers.csv", index=False)
    buyers = sorted(tables.orders.loc[tables.orders["ordered_at"] < AS_OF, "customer_id"].astype(str).unique())
    scores = pd.DataFrame(
        {
            "customer_id": [*buyers, "p0", "p1"],
            "churn_probability": [*np.linspace(0, 1, len(buyers)), None, None],
            "churn_unscored_reason": [None] * len(buyers) + ["no order before the as-of date"] * 2,
        }
    )
    scores.to_parquet(tmp_path / "scores.parquet", index=False)
    out = tmp_path / "report.html"
    args = ["report", "--as-of", "2024-10-15", "--data", str(data), "--out", str(out)]
    done = CliRunner().invoke(app, [*args, "--churn-scores", str(tmp_path / "scores.parquet")])
    assert done.exit_code == 0, done.output
    html = out.read_text()
    assert "2 customers were not scored (no order before the as-of date: 2)" in html
    cohorts = pd.read_csv(tmp_path / "cohorts.csv")  # beside the report, without a flag
    assert {"cohort", "cohort_size", "k", "customers", "share"} <= set(cohorts.columns) and len(cohorts) > 10
    assert "cohorts.csv" in html and (tmp_path / "cohort_heatmap.png").exists()
    assert _band_table(html).to_numpy().sum() == len(buyers)


def _model_folders(root: Path) -> tuple[Path, Path]:
    """A churn and an offer folder laid out as train-churn and train-offers write them (small, by hand)."""
    churn, offers = root / "churn", root / "offers"
    (churn / "plots").mkdir(parents=True)
    offers.mkdir()
    (churn / "model_card.md").write_text(
        "# Model card: retain-churn\n\n## Purpose\nChurn in 90 days.\n\n## Test metrics with 95% bootstrap intervals\n"
        "| model | lift_top10 |\n|---|---|\n| model | 1.905 |\n\n## Top drivers (mean |SHAP|, log-odds)\n"
        "- behavior_days_since_last_visit: 0.3\n\n## Caveats\n- associations, not causes\n"
    )

    def metric(v):
        return {"value": v, "ci": [v - 0.01, v + 0.01]}

    models = {
        name: {"roc_auc": metric(auc), "pr_auc": metric(auc), "brier": metric(0.1), "ece": metric(0.03)}
        | {"lift_top10": metric(1.90)}
        for name, auc in (("model", 0.95), ("recency", 0.89))
    }
    (churn / "report.json").write_text(json.dumps({"n": 1500, "churn_rate": 0.525, "models": models}))
    pd.DataFrame({"feature": ["behavior_days_since_last_visit"], "mean_abs_shap": [0.3]}).to_csv(
        churn / "drivers.csv", index=False
    )
    for name in ("roc.png", "calibration.png"):
        _plot(churn / "plots" / name)
    (offers / "model_card.md").write_text(
        "# Next-best-offer model\n\n- Learner: t\n\n## Policies on held-out sends\n\n```\n  dr_gain\nlearned 1.0\n```\n\n"
        "## Learners\n\n```\n   dr_gain\nt 1.0\n```\n\nCaveats: off-policy estimates.\n"
    )
    policies = pd.DataFrame(
        {
            "ipw": [7.3],
            "dr_gain": [1.0543561246358708],
            "dr_gain_se": [0.24],
            "share_arm1": [0.21],
            "share_arm2": [0.14],
        },
        index=pd.Index(["learned"], name="policy"),
    )
    policies.to_csv(offers / "policies.csv")
    learners = pd.DataFrame(
        {"dr_gain": [1.05], "vs_reference": [0.0], "fit_s": [4.93]}, index=pd.Index(["t"], name="learner")
    )
    learners.to_csv(offers / "learners.csv")
    _plot(offers / "qini.png")
    return churn, offers


def _full_report(tables, root: Path, **kw) -> str:
    from analytics.churn_section import churn_section
    from analytics.offer_section import offer_section

    churn, offers = _model_folders(root)
    ids = sorted(tables.customer_ids().astype(str))
    scores = pd.DataFrame(
        {
            "customer_id": ids,
            "recommended_offer": ["free_shipping", "none", "discount_20"] * (len(ids) // 3) + ["none"] * (len(ids) % 3),
        }
    )
    return dict(
        tables=tables,
        as_of=AS_OF,
        config=AnalyticsConfig(),
        horizon_days=90,
        currency="USD",
        churn_probability=PROBABILITIES,
        churn_model=churn_section(churn, currency="USD"),
        offer_model=offer_section(offers, offers=("free_shipping", "discount_20"), currency="USD"),
        scores=scores,
        cohorts_csv="cohorts.csv",
        **kw,
    )


def test_a_complete_report_in_words(tables, tmp_path):
    """Plots from plots/, offer tables once and in words, KPIs with the currency, cohorts aligned, contact plan."""
    page = render_report(**_full_report(tables, tmp_path))
    assert "<pre>" not in page and "```" not in page  # no text dumps
    assert page.count("<img") == 2 + 2 + 1  # heatmap, stages, the churn plots in plots/, the Qini plot
    assert "Learners" in page and page.count("gain over the reference learner (USD)") == 1
    for raw in (">ipw<", "dr gain se", "share arm", "share_arm", ">aov<", "historical clv<"):
        assert raw not in page, raw
    assert "share sent free shipping" in page and "21%" in page and "1.05<" in page
    assert "average order value (USD)" in page and "churn rate (no order within 90 days)" in page
    assert "lift in the riskiest 10% (at most 1.90)" in page
    assert "every model is at that ceiling, so lift does not separate them here" in page
    assert "days since the last site visit" in page  # drivers described in words, listed once
    assert page.count("behavior_days_since_last_visit") == 1
    assert "Lifecycle stages: who to contact, with what, when" in page and "cart reminder" in page
    assert "Offers by stage (from the scores)" in page and "cohorts.csv" in page


def test_the_cohort_table_shows_the_heatmaps_cohorts(tables):
    from analytics.cohorts import cohort_retention

    page = render_report(tables=tables, as_of=AS_OF, config=AnalyticsConfig(), horizon_days=90, currency="EUR")
    cohorts = cohort_retention(tables, as_of=AS_OF, period="month").shares.tail(
        AnalyticsConfig().cohorts.max_periods + 1
    )
    parser = _Cells()
    parser.feed(page[page.index("By cohort (first purchase") :])
    rows = [r[0] for r in parser.rows[1:] if r]
    assert rows == [c.strftime("%Y-%m-%d") for c in cohorts.index]


@needs_chromium
def test_the_complete_report_renders_in_chromium(tables, tmp_path):
    page = write_report(tmp_path / "report.html", **_full_report(tables, tmp_path))
    shot = Path(os.environ.get("RETAIN_SCREENSHOT", tmp_path / "full.png"))
    seen = render(page, shot, tmp_path / "profile")
    assert seen["errors"] == []
    assert all(u.startswith(("file://", "data:")) for u in seen["urls"]), seen["urls"]
    assert [alt for alt, *_ in seen["images"]] == [
        "cohort retention heatmap", "lifecycle stages", "calibration", "roc", "qini"
    ]  # fmt: skip
    for alt, complete, width, height in seen["images"]:
        assert complete and width > 0 and height > 0, alt
    assert _png_not_blank(shot.read_bytes())
