"""statsforecast beside our forecasting, on the same series (scripts/bench-forecast.sh).

Reads the CSV `alkasba-bench forecast-series` wrote and our results (`ours.json` from
`alkasba-bench forecast`), runs statsforecast's AutoETS and SeasonalNaive (season 7) through the
same rolling-origin backtest (8 cuts a week apart, 28 days each: `cross_validation` with
n_windows=8, step_size=7, h=28) plus the final 28-day forecast with 80% and 95% intervals, and
scores both sides the same way: MASE per cut (MAE over the in-sample MAE of same-weekday-last-
week on the training days), averaged over cuts; 80% interval coverage. Prints the comparison and
a Markdown row for docs/benchmarks.md.

    bench.py SERIES_CSV OURS_JSON [--aggregates]

With --aggregates only the shop and category series are run (statsforecast's AutoETS on the
thousands of product series takes more than 15 minutes on 2 cores: the time of the whole set is
then its lower bound).
"""
import json
import os
import statistics
import sys
import time

import numpy as np
import pandas as pd

os.environ.setdefault("NIXTLA_ID_AS_COL", "1")
from statsforecast import StatsForecast  # noqa: E402
from statsforecast.models import AutoETS, SeasonalNaive  # noqa: E402

H, WINDOWS, STEP, SEASON = 28, 8, 7, 7


def main(series_csv, ours_json, aggregates=False):
    df = pd.read_csv(series_csv, parse_dates=["ds"])
    if aggregates:
        df = df[~df["unique_id"].str.startswith("units/product/")]
    ours = json.load(open(ours_json))
    n_series = df["unique_id"].nunique()
    n_jobs = os.cpu_count() or 1
    sf = StatsForecast(models=[AutoETS(season_length=SEASON), SeasonalNaive(season_length=SEASON)], freq="D", n_jobs=n_jobs)

    # The first call compiles statsforecast's numba kernels: warm them on one series, untimed,
    # so the figure is the steady cost (as ours, a compiled binary, has no compile step).
    first = df[df["unique_id"] == df["unique_id"].iloc[0]]
    StatsForecast(models=[AutoETS(season_length=SEASON), SeasonalNaive(season_length=SEASON)], freq="D", n_jobs=1).forecast(df=first, h=H, level=[80, 95])

    t0 = time.perf_counter()
    cv = sf.cross_validation(df=df, h=H, n_windows=WINDOWS, step_size=STEP, level=[80, 95])
    final = sf.forecast(df=df, h=H, level=[80, 95])
    secs = time.perf_counter() - t0
    assert len(final) == n_series * H

    # Scores per series and model.
    y = {k: g["y"].to_numpy() for k, g in df.groupby("unique_id", sort=False)}
    ds0 = {k: g["ds"].iloc[0] for k, g in df.groupby("unique_id", sort=False)}
    scores = {}
    for (uid, cutoff), g in cv.groupby(["unique_id", "cutoff"], sort=False):
        series = y[uid]
        train_end = (cutoff - ds0[uid]).days + 1
        train = series[:train_end]
        scale = np.mean(np.abs(train[SEASON:] - train[:-SEASON])) if len(train) > SEASON else 0.0
        for model in ("AutoETS", "SeasonalNaive"):
            mae = np.mean(np.abs(g["y"].to_numpy() - g[model].to_numpy()))
            inside = ((g["y"] >= g[f"{model}-lo-80"]) & (g["y"] <= g[f"{model}-hi-80"])).mean()
            s = scores.setdefault((uid, model), {"mase": [], "cov80": []})
            s["mase"].append(mae / scale if scale > 0 else mae)
            s["cov80"].append(inside)
    theirs = {k: {"mase": float(np.mean(v["mase"])), "cov80": float(np.mean(v["cov80"]))} for k, v in scores.items()}

    mine = {r["series"]: r for r in ours["per_series"]}
    ours_seconds = ours["seconds"]
    def row(uid):
        o = mine.get(uid, {})
        return o.get("mase"), o.get("naive_mase"), o.get("coverage80"), theirs[(uid, "AutoETS")]["mase"], theirs[(uid, "SeasonalNaive")]["mase"], theirs[(uid, "AutoETS")]["cov80"]

    print(f"{'series':<40} {'ours':>7} {'naive':>7} {'cov80':>6} | {'AutoETS':>7} {'sf naive':>8} {'cov80':>6}")
    shown = ["revenue_mad/total", "units/total"] + sorted(u for u in y if "/category/" in u)
    for uid in shown:
        m, n, c, a, sn, ac = row(uid)
        print(f"{uid:<40} {m:7.3f} {n:7.3f} {c:6.2f} | {a:7.3f} {sn:8.3f} {ac:6.2f}")

    total = row("revenue_mad/total")
    cats = [row(u) for u in y if u.startswith("revenue_mad/category/")]
    median_ours = statistics.median(r[0] for r in cats)
    median_ets = statistics.median(r[3] for r in cats)
    products = [row(u) for u in y if u.startswith("units/product/")]
    med_prod_ours = statistics.median(r[0] for r in products) if products else float("nan")
    med_prod_ets = statistics.median(r[3] for r in products) if products else float("nan")
    cov_ours = statistics.mean(r[2] for r in [total] + cats)
    cov_ets = statistics.mean(r[5] for r in [total] + cats)

    summary = {
        "series": n_series,
        "ours_seconds": ours["seconds"], "statsforecast_seconds": secs, "time_ratio": secs / ours["seconds"],
        "ours_peak_rss_mib": ours["peak_rss_mib"],
        "total_revenue_mase": {"ours": total[0], "autoets": total[3], "seasonal_naive": total[4], "ours_vs_autoets": total[0] / total[3] - 1},
        "median_category_revenue_mase": {"ours": median_ours, "autoets": median_ets, "ours_vs_autoets": median_ours / median_ets - 1},
        "median_product_units_mase": {"ours": med_prod_ours, "autoets": med_prod_ets},
        "coverage80_shop_and_categories": {"ours": cov_ours, "autoets": cov_ets},
    }
    print(json.dumps(summary, indent=2))
    print(
        f"| forecast: {n_series} series, backtest 8×28 d + final forecast | "
        f"ours {ours['seconds']:.1f} s ({ours['threads']} threads, peak {ours['peak_rss_mib']:.0f} MiB) | statsforecast AutoETS+SeasonalNaive {secs:.1f} s (n_jobs={n_jobs}) | "
        f"{secs / ours['seconds']:.1f}× | MASE total revenue ours {total[0]:.3f} vs AutoETS {total[3]:.3f} (naive {total[4]:.3f}); "
        f"median category ours {median_ours:.3f} vs AutoETS {median_ets:.3f}; 80% coverage ours {cov_ours:.2f} vs AutoETS {cov_ets:.2f} |"
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], "--aggregates" in sys.argv[3:])
