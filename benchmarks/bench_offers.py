"""Benchmark: the shipped offer policy on simulated single-day randomised tests, judged by the known truth.

    .venv/bin/python -m benchmarks.bench_offers --quick          # the suite, a few minutes on 2 cores
    .venv/bin/python -m benchmarks.bench_offers                  # more seeds and sends
    .venv/bin/python -m benchmarks.bench_offers --timing --rows 1000000 --features 30

Each simulated test sends one campaign on one date, each arm at random with
equal shares (2 arms: none or a promo; 3 arms: none or one of two promos), to
customers with 8 numeric features and a region. A conversion is worth $10
(``margin_per_order``); a send costs 15x the base conversion rate in dollars
($0.15 at 1%), so an offer pays only where it lifts conversion enough. With
heterogeneity each promo multiplies conversion by 5 in its own segment (30%
of customers) and does nothing elsewhere, so sending nothing is the best
constant policy and targeting pays; without it, every customer's conversion
rises by the same amount, 3x the base rate with promo_a (which pays for
everyone, so "promo_a for all" is the best policy there is) and 1x with
promo_b (which never pays).

Per setting and seed the real pipeline (``fit_and_evaluate``: random
stratified holdout, every learner, paired choice, constant fallback, refit on
all sends) trains on the log; its shipped model then scores 50,000 fresh
customers from the same simulator, and its true value per send (expected
profit from the simulator's conversion probabilities, minus sending nothing)
is compared, on the same customers, with the best constant policy (by true
value), a plain T-learner (LightGBM defaults, one classifier per arm, fitted
on the whole log) and the oracle. Prints a Markdown table for
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.config import CONFIG_DIR, Offer, OfferCatalog, load_config
from modeling.economics import expected_rewards
from modeling.offer_model import OfferModel
from training.offers.config import OfferModelConfig
from training.offers.dataset import ARM, ROW, OfferRows
from training.offers.holdout import holdout_for
from training.offers.offpolicy import evaluate_policies, realized_reward
from training.offers.pipeline import fit_and_evaluate
from training.offers.policy import check_against_constant, decide
from training.offers.propensity import logged_propensity
from training.offers.uplift import make_learner

VALUE = 10.0  # dollars per conversion
N_FEATURES = 8
EVAL_CUSTOMERS = 50_000


def catalog_for(n_arms: int, base: float) -> OfferCatalog:
    cost = 15 * base
    offers = tuple(Offer(name=f"promo_{chr(97 + k)}", cost_per_send=cost) for k in range(n_arms - 1))
    return OfferCatalog(offers=offers, margin_per_order=VALUE)


def customers(n: int, rng: np.random.Generator) -> pd.DataFrame:
    X = pd.DataFrame(rng.standard_normal((n, N_FEATURES)), columns=[f"f{i}" for i in range(N_FEATURES)])
    X["region"] = pd.Categorical(rng.choice(["north", "south", "east"], n), categories=["east", "north", "south"])
    return X


def true_conversion(X: pd.DataFrame, n_arms: int, base: float, heterogeneous: bool) -> np.ndarray:
    """P(convert | x, arm), shape (n, n_arms): a base that varies with f2, f3, times each promo's lift."""
    p0 = base * np.exp(0.4 * X["f2"] - 0.3 * X["f3"] - 0.25)  # mean about base
    segments = [(X["f0"] > 0.52).to_numpy(), ((X["region"] == "south") & (X["f1"] > -0.43)).to_numpy()]
    cols = [p0]
    for k in range(n_arms - 1):
        if heterogeneous:  # x5 in the promo's own segment, nothing elsewhere
            cols.append(p0 * np.where(segments[k], 5.0, 1.0))
        else:  # the same absolute lift for everyone: +3x base for promo_a (pays), +1x base for promo_b (does not)
            cols.append(p0 + (3.0 if k == 0 else 1.0) * base)
    return np.clip(np.column_stack(cols), 0, 1)


def simulate_log(n: int, n_arms: int, base: float, heterogeneous: bool, seed: int) -> OfferRows:
    """One randomised campaign sent on a single date, with features known at the send."""
    rng = np.random.default_rng(seed)
    X = customers(n, rng)
    p = true_conversion(X, n_arms, base, heterogeneous)
    arm = rng.integers(0, n_arms, n)
    y = (rng.random(n) < p[np.arange(n), arm]).astype(int)
    arms = ["none", *(f"promo_{chr(97 + k)}" for k in range(n_arms - 1))]
    frame = X.assign(
        customer_id=[f"c{i}" for i in range(n)],
        sent_at=pd.Timestamp("2026-03-02 09:00"),
        offer=np.array(arms)[arm],
        converted=y,
        propensity=1.0 / n_arms,
        **{ARM: arm, ROW: np.arange(n)},
    )
    return OfferRows(frame, list(X.columns), arms, {"region": ["east", "north", "south"]})


def plain_t_learner(rows: OfferRows, X_eval: pd.DataFrame, catalog: OfferCatalog) -> np.ndarray:
    """Arm per evaluation customer from one default LGBMClassifier per arm fitted on the whole log."""
    arm, y = rows.frame[ARM].to_numpy(), rows.frame["converted"].to_numpy()
    proba = np.column_stack(
        [
            lgb.LGBMClassifier(verbose=-1, n_jobs=2, random_state=0)
            .fit(rows.X(arm == a), y[arm == a])
            .predict_proba(X_eval)[:, 1]
            for a in range(len(rows.arms))
        ]
    )
    return decide(proba, np.full(len(X_eval), VALUE), catalog)


def run_one(n: int, n_arms: int, base: float, heterogeneous: bool, seed: int, config: OfferModelConfig) -> dict:
    rows = simulate_log(n, n_arms, base, heterogeneous, seed)
    catalog = catalog_for(n_arms, base)
    t0 = time.perf_counter()
    result = fit_and_evaluate(rows, catalog=catalog, config=config)
    fit_s = time.perf_counter() - t0
    X_eval = customers(EVAL_CUSTOMERS, np.random.default_rng(10_000 + seed))
    truth = expected_rewards(
        true_conversion(X_eval, n_arms, base, heterogeneous), np.full(EVAL_CUSTOMERS, VALUE), catalog
    )
    gain = truth - truth[:, [0]]  # per customer and arm, vs sending nothing
    codes = {a: i for i, a in enumerate(rows.arms)}
    shipped = OfferModel.from_parts(result.boosters, result.spec).table(X_eval)["offer"].map(codes).to_numpy()
    plain = plain_t_learner(rows, X_eval, catalog)
    idx = np.arange(EVAL_CUSTOMERS)
    per_customer = {"shipped": gain[idx, shipped], "t_plain": gain[idx, plain]}
    best_const = int(gain.mean(axis=0).argmax())
    per_customer["constant"] = gain[:, best_const]
    per_customer["oracle"] = gain.max(axis=1)
    out = {k: float(v.mean()) for k, v in per_customer.items()}
    for ref in ("constant", "t_plain"):
        d = per_customer["shipped"] - per_customer[ref]
        out[f"vs_{ref}"], out[f"vs_{ref}_se"] = float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))
    out.update(
        learner=result.evaluation.learner,
        personalised=result.evaluation.fallback.constant_arm is None,
        shipped_constant=result.spec["constant_offer"],
        best_constant=rows.arms[best_const],
        conversion=float(rows.frame["converted"].mean()),
        fit_s=fit_s,
    )
    return out


def suite(args) -> None:
    config = OfferModelConfig(trials=0, order_value_feature=None, order_count_feature=None, n_jobs=args.threads, seed=7)
    seeds = range(args.seeds)
    sizes = {0.01: args.rows_rare, 0.10: args.rows_common}
    results = []
    t_start = time.perf_counter()
    for n_arms in (2, 3):
        for base in (0.01, 0.10):
            for het in (True, False):
                for seed in seeds:
                    r = run_one(sizes[base], n_arms, base, het, seed, config)
                    r.update(arms=n_arms, base=base, heterogeneous=het, seed=seed, sends=sizes[base])
                    results.append(r)
                    print(
                        f"arms={n_arms} base={base:.0%} effect={'segment' if het else 'everyone'} seed={seed}: shipped {r['shipped']:.4f} "
                        f"({r['learner']}, {'personalised' if r['personalised'] else 'constant ' + str(r['shipped_constant'])}) "
                        f"constant {r['constant']:.4f} T {r['t_plain']:.4f} oracle {r['oracle']:.4f} [{r['fit_s']:.0f}s]",
                        flush=True,
                    )
    total = time.perf_counter() - t_start
    frame = pd.DataFrame(results)
    lines = [
        f"{len(frame)} simulated single-day tests in {total:.0f} s ({args.threads} LightGBM threads, "
        f"{os.cpu_count()} CPUs visible, {platform.processor() or platform.machine()}); true incremental "
        f"profit per send on {EVAL_CUSTOMERS:,} fresh customers, mean over {args.seeds} seeds "
        "(± SE over seeds); 'worse' counts seeds where the shipped policy's true value is below the reference's.",
        "",
        "| arms | base conv. | effect | sends | shipped | best constant | plain T | oracle "
        "| shipped - constant | worse | shipped - plain T | worse | learner shipped | personalised |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (n_arms, base, het), g in frame.groupby(["arms", "base", "heterogeneous"], sort=False):
        worse_c = int((g["vs_constant"] < -1e-12).sum())
        worse_t = int((g["vs_t_plain"] < -1e-12).sum())
        lines.append(
            f"| {n_arms} | {base:.0%} | {'segment' if het else 'everyone'} | {g['sends'].iloc[0]:,} | {g['shipped'].mean():.4f} "
            f"| {g['constant'].mean():.4f} | {g['t_plain'].mean():.4f} | {g['oracle'].mean():.4f} "
            f"| {_mean_se(g['vs_constant'])} | {worse_c}/{len(g)} | {_mean_se(g['vs_t_plain'])} | {worse_t}/{len(g)} "
            f"| {','.join(g['learner'])} | {int(g['personalised'].sum())}/{len(g)} |"
        )
    print("\n".join(lines))


def _mean_se(d: pd.Series) -> str:
    se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
    return f"{d.mean():+.4f} ± {se:.4f}"


def timing(args) -> None:
    """Time each learner's fit, policy and evaluation on a large synthetic log (10 campaign days)."""
    catalog = load_config(OfferCatalog, CONFIG_DIR / "offers.yaml")
    config = OfferModelConfig(n_jobs=args.threads)
    rng = np.random.default_rng(0)
    n, arms = args.rows, ["none", "free_shipping", "discount_20"]
    X = pd.DataFrame(rng.standard_normal((n, args.features)), columns=[f"f{i}" for i in range(args.features)])
    X["sales_avg_order_value_all"] = rng.gamma(8.0, 8.0, n)
    X["demo_region"] = pd.Categorical(rng.choice(["north", "south", "east"], n))
    arm = rng.integers(0, 3, n)
    effect = np.column_stack([np.zeros(n), 0.15 * (X["f0"] > 0.5), 0.2 * (X["f1"] > 0.8)])
    y = (rng.random(n) < 0.05 + 0.03 * (X["f2"] > 0) + effect[np.arange(n), arm]).astype(int).to_numpy()
    sent = pd.Timestamp("2026-01-05") + pd.to_timedelta(np.sort(rng.integers(0, 10, n)) * 14, unit="D")
    frame = X.assign(
        customer_id=np.arange(n).astype(str),
        sent_at=sent,
        offer=np.array(arms)[arm],
        converted=y,
        propensity=1 / 3,
        revenue=np.where(y == 1, X["sales_avg_order_value_all"], 0.0),
        **{ARM: arm, ROW: np.arange(n)},
    )
    rows = OfferRows(frame, [*X.columns], arms, {"demo_region": ["east", "north", "south"]})
    held = holdout_for(rows, config).mask
    t0 = time.perf_counter()
    propensity, _ = logged_propensity(rows, config)
    prep_s = time.perf_counter() - t0
    value = frame["sales_avg_order_value_all"].to_numpy()
    reward = realized_reward(y, arm, np.where(y == 1, frame["revenue"], value), catalog)
    lines = [
        f"{n:,} offer-log rows ({int((~held).sum()):,} train / {int(held.sum()):,} held out), "
        f"{len(rows.features)} features, {args.threads} threads; propensity + randomisation check {prep_s:.1f} s",
        "",
        "| learner | fit (s) | trees per booster | policy on held-out (s) | evaluation (s) | held-out DR gain / send |",
        "|---|---|---|---|---|---|",
    ]
    for kind in args.learners.split(","):
        t0 = time.perf_counter()
        learner = make_learner(kind, 3, None, config.seed, args.threads)
        learner.fit(rows.X(~held), arm[~held], y[~held], propensity[~held])
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        proba = learner.predict_proba(rows.X(held))
        chosen = decide(proba, value[held], catalog, max_offers=int(held.sum()) // 2)
        policy_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        q = expected_rewards(proba, value[held], catalog)
        args_ = reward[held], arm[held], propensity[held]
        table = evaluate_policies({"learned": chosen, "random": np.full((held.sum(), 3), 1 / 3)}, *args_, q)
        check_against_constant(chosen, *args_, q, arms)
        eval_s = time.perf_counter() - t0
        gain = table.loc["learned"]
        lines.append(
            f"| {kind} | {fit_s:.1f} | {'/'.join(str(b.num_trees()) for b in learner.boosters_)} | {policy_s:.1f} "
            f"| {eval_s:.1f} | {gain['dr_gain']:.3f} ± {gain['dr_gain_se']:.3f} |"
        )
        print(lines[-1], flush=True)
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, 60k sends at 1%% and 20k at 10%% conversion")
    parser.add_argument("--seeds", type=int, default=4, help="simulated tests per setting")
    parser.add_argument("--rows-rare", type=int, default=100_000, help="sends per test at 1%% conversion")
    parser.add_argument("--rows-common", type=int, default=40_000, help="sends per test at 10%% conversion")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="LightGBM threads")
    parser.add_argument("--timing", action="store_true", help="time each learner on --rows instead of the suite")
    parser.add_argument("--rows", type=int, default=1_000_000, help="--timing: offer-log rows")
    parser.add_argument("--features", type=int, default=30, help="--timing: numeric synthetic features")
    parser.add_argument("--learners", default="t,s,x,dr", help="--timing: comma-separated learners to time")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.rows_rare, args.rows_common = 2, 60_000, 20_000
    timing(args) if args.timing else suite(args)


if __name__ == "__main__":
    main()
