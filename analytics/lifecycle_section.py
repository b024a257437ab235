"""The report's lifecycle section: customers per stage, the contact plan and, with churn scores, the risk bands."""

from __future__ import annotations

import html

import pandas as pd

from analytics.page import img_html, table_html
from analytics.plotting import bar_png
from features.contract import CUSTOMER_ID
from features.sources import Tables
from modeling.lifecycle import ACTION, CONTACT_AT, STAGE, STAGES, LifecycleConfig, lifecycle, risk_band


def lifecycle_html(
    tables: Tables,
    *,
    as_of: pd.Timestamp,
    rules: LifecycleConfig,
    churn_probability: pd.Series | None,
    churn_unscored_reason: pd.Series | None,
    scores: pd.DataFrame | None,
) -> str:
    """Who to contact, with what, when: stage sizes, each stage's next action and send time, offers and risk."""
    stages = lifecycle(tables, as_of=as_of, churn_probability=churn_probability, config=rules)
    sizes = stages[STAGE].value_counts().reindex(list(STAGES), fill_value=0).rename("customers")
    out = [
        "<h2>Lifecycle stages: who to contact, with what, when</h2>",
        img_html(bar_png(sizes, title="Customers per lifecycle stage", xlabel="customers"), "lifecycle stages"),
        _contact_plan(stages, as_of, rules, scores),
    ]
    if churn_probability is not None:
        out.append(_risk_bands(stages, churn_probability, churn_unscored_reason, rules))
    return "\n".join(out)


def _contact_plan(stages: pd.DataFrame, as_of: pd.Timestamp, rules: LifecycleConfig, scores) -> str:
    """Per stage: customers, the next action, when it goes out (now / later, first and last send), and with the
    scores file the recommended offers."""
    due = pd.to_datetime(stages[CONTACT_AT])
    rows = []
    for stage in STAGES:
        mine = (stages[STAGE] == stage).to_numpy()
        if not mine.any():
            continue
        when = due[mine]
        later = when > as_of
        row = {
            "stage": stage.replace("_", " "),
            "customers": f"{int(mine.sum()):,}",
            "next action": str(stages.loc[mine, ACTION].iloc[0]).replace("_", " "),
            "send now": f"{int((~later).sum()):,}",
            "send later": f"{int(later.sum()):,}",
            "last send (UTC)": f"{when.max():%Y-%m-%d %H:%M}",
        }
        rows.append(row)
    table = pd.DataFrame(rows).set_index("stage")
    note = (
        "<p class='note'>The first matching rule wins, in this order (configs/lifecycle.yaml): abandoned cart "
        f"(reminder {rules.cart_reminder_hours:g} h after the cart, for carts up to {rules.cart_max_age_hours:g} h "
        f"old), new buyer (welcome {rules.welcome_delay_hours:g} h after a first order less than "
        f"{rules.new_buyer_days} days ago), lapsed ({rules.lapsed_days}+ days without an order), at risk (churn "
        f"probability {rules.at_risk_threshold:.0%} or more), inactive ({rules.inactive_days}+ days), active, "
        f"prospect. Send now = at the as-of time ({as_of:%Y-%m-%d %H:%M} UTC). "
        "<code>retain score --campaign FILE</code> writes one row per customer (customer, action, offer, send_at) "
        "for a campaign tool.</p>"
    )
    parts = [table_html(table), note]
    if scores is not None and {"recommended_offer", CUSTOMER_ID}.issubset(scores.columns):
        offers = scores.set_index(scores[CUSTOMER_ID].astype(str))["recommended_offer"]
        offer = offers[~offers.index.duplicated()].reindex(stages[CUSTOMER_ID].astype(str)).fillna("not scored")
        plan = pd.crosstab(stages[STAGE].to_numpy(), offer.to_numpy())
        plan = plan.reindex(index=[s for s in STAGES if s in plan.index])
        plan.index = [s.replace("_", " ") for s in plan.index]
        parts.append("<h3>Offers by stage (from the scores)</h3>")
        parts.append(table_html(plan.rename_axis(index="stage", columns="recommended offer")))
    return "".join(parts)


def _risk_bands(stages: pd.DataFrame, prob: pd.Series, reasons: pd.Series | None, rules: LifecycleConfig) -> str:
    """Lifecycle stage x risk band over the scored customers, and how many were not scored and why."""
    ids = stages[CUSTOMER_ID].astype(str)
    given = pd.Series(prob).rename(index=str)
    prob = given.reindex(ids)
    scored = prob.notna().to_numpy()
    parts = ["<h3>By churn risk band</h3>"]
    note = f"Risk bands count the {int(scored.sum()):,} customers with a churn probability"
    if not scored.all():
        why = pd.Series("no churn probability", index=ids)
        why[~ids.isin(given.index).to_numpy()] = "no row in the churn scores"
        if reasons is not None:
            stated = pd.Series(reasons).rename(index=str).dropna()
            stated = stated[~stated.index.duplicated()].reindex(ids)
            why[stated.notna().to_numpy()] = stated.dropna().to_numpy()
        counts = why[~scored].value_counts()
        listed = "; ".join(f"{html.escape(str(r))}: {c:,}" for r, c in counts.items())
        note += f"; {int((~scored).sum()):,} customers were not scored ({listed})"
    parts.append(f"<p class='note'>{note}.</p>")
    if scored.any():
        band = risk_band(prob[scored], rules.risk_bands)
        stage = stages[STAGE].to_numpy()[scored]
        cross = pd.crosstab(stage, band.to_numpy()).reindex(
            index=[s for s in STAGES if (stage == s).any()], columns=band.cat.categories, fill_value=0
        )
        parts.append(table_html(cross.rename_axis(index="stage", columns="risk band")))
    return "".join(parts)
