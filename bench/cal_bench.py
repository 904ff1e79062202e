"""`sen bench cal`: fit 1,000 co-location sets of 30 days of hourly data (EPA PurpleAir form).

Each fit is the full draft-record build a crew's `sen cal fit` does after reading the CSV:
OLS with covariance, 95 % intervals, 5-fold time-blocked cross-validation (five more fits),
1-h and 24-h EPA metrics with verdicts in sample, out of sample and for the raw sensor, record JSON.
Data generation is timed separately. Last line: one JSON object.
"""
import json
import time

import numpy as np


def run(sets: int = 1000, days: int = 30, seed: int = 2026):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from sen.testkit import cal_synthetic as synthetic
    from sen.calibration.fitting import build_record
    from sen.calibration.inputs import Table
    from sen.calibration.records import _clean, content_hash

    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    data = [synthetic.epa_colocation(rng, days=days) for _ in range(sets)]
    gen_s = time.perf_counter() - t0

    per_fit = np.empty(sets)
    covered = {k: 0 for k in synthetic.EPA_TRUE}
    console = Console(stderr=True)
    with Progress(TextColumn("fitting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("fits", total=sets)
        for i, (t, cols) in enumerate(data):
            s = time.perf_counter()
            table = Table(t, cols, np.arange(2, t.size + 2), [], [], "bench", "")
            rec = build_record(table, "epa_pa", "ref_pm25", ["pm25_cf1", "rh"], node=1 + i % 65535)
            doc = _clean(rec.doc)
            doc["hash"] = content_hash(doc)
            json.dumps(doc)
            per_fit[i] = time.perf_counter() - s
            for c in rec.doc["coefficients"]:
                covered[c["name"]] += c["ci95"][0] <= synthetic.EPA_TRUE[c["name"]] <= c["ci95"][1]
            bar.advance(task)

    # What a gateway's `recalibrate` pays: one approved record applied to a year of 2-min readings.
    from sen.calibration.apply import apply_records
    from sen.calibration.records import Record

    doc = dict(rec.doc, status="approved", node=1)
    n_apply = 365 * 24 * 30
    ta = data[0][0][0] + 120.0 * np.arange(n_apply)
    cf1 = rng.uniform(5, 90, n_apply)
    rh = rng.uniform(55, 99, n_apply)
    s = time.perf_counter()
    apply_records([Record(doc)], 1, "pm25", ta, cf1, {"pm25_cf1": cf1, "rh": rh})
    apply_s = time.perf_counter() - s

    ms = per_fit * 1000
    rows = days * 24
    print(f"co-location sets: {sets} × {rows} hourly rows ({days} days), model epa_pa")
    print(f"data generation: {gen_s:.2f} s total")
    print(f"per fit (OLS + 95% CI + 5-fold blocked CV + 1h/24h EPA metrics in/out of sample and raw + record JSON): mean {ms.mean():.2f} ms, "
          f"median {np.median(ms):.2f} ms, p95 {np.percentile(ms, 95):.2f} ms, max {ms.max():.2f} ms")
    print(f"total fitting time: {per_fit.sum():.2f} s")
    print("95% CI coverage of the true coefficients: " +
          ", ".join(f"{k} {v / sets:.1%}" for k, v in covered.items()))
    print(f"apply_records: {n_apply} readings in {apply_s * 1000:.1f} ms ({n_apply / apply_s / 1e6:.1f} M readings/s)")
    print(json.dumps({"fits": sets, "rows_per_fit": rows, "cv_folds": rec.doc["cross_validation"]["folds"],
                      "ms_per_fit": round(float(ms.mean()), 3),
                      "ms_per_fit_median": round(float(np.median(ms)), 3),
                      "ms_per_fit_p95": round(float(np.percentile(ms, 95)), 3),
                      "total_fit_s": round(float(per_fit.sum()), 3),
                      "apply_readings_per_s": round(n_apply / apply_s),
                      "ci95_coverage": {k: round(v / sets, 3) for k, v in covered.items()}}))


if __name__ == "__main__":
    run()
