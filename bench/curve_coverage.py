"""Coverage of the yield curve's 90 % bands: dU/dR at the last batch and the forward stop point.

Synthetic ledgers of 20 batches of 1e9 raw tokens, multiplicative noise on each batch's new unique tokens, four
cases: (a) constant fresh share 0.6, (b) exponentially decaying share 0.8 exp(-R / 1.5e10), (c) a power law
U = R1 (R / R1)^0.7 (first batch all unique), (d) the power law of (c) with AR(1) noise between neighbouring
batches (rho = 0.6). A batch is valued with a stand-in for the scaling-law price, value per unique token
v(U) = 1e-6 $ x (1e9 / U), and costs the same fixed amount, set so that the noise-free curve says "10 more
batches". The truth per seed is the generating curve's dU/dR and stop count (anchored on the seed's last U).
Target: 85-95 % coverage in every case.

    python bench/curve_coverage.py [--seeds 200] [--bootstrap 200]

writes bench/results/curve_coverage.json.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import time

import numpy as np

from corpusslim.tracker.curve import fit_yield_curve, future_increments
from corpusslim.tracker.decision import batches_worth

N, DR, SIGMA, HORIZON, TARGET_STOP = 20, 1e9, 0.10, 60, 10
R1 = 1e9
CURVES = {
    "constant_share": (lambda R: 0.6 * R, lambda R: 0.6 + 0 * R),
    "decaying_share": (lambda R: 0.8 * 1.5e10 * -np.expm1(-R / 1.5e10), lambda R: 0.8 * np.exp(-R / 1.5e10)),
    "power_law": (lambda R: R1 * (R / R1) ** 0.7, lambda R: 0.7 * (R / R1) ** -0.3),
}
CASES = {"constant_share": ("constant_share", 0.0), "decaying_share": ("decaying_share", 0.0),
         "power_law_0.7": ("power_law", 0.0), "correlated_ar1_0.6": ("power_law", 0.6)}


def value_per_token(U):
    return 1e-6 * 1e9 / U


def noise(rho: float, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative noise 1 + e_i with e an AR(1) series of stationary standard deviation SIGMA."""
    z = rng.standard_normal(N)
    e = np.empty(N)
    e[0] = z[0]
    for i in range(1, N):
        e[i] = rho * e[i - 1] + np.sqrt(1 - rho ** 2) * z[i]
    return 1 + SIGMA * e


def true_count(curve, U_last: float, cost: float) -> float:
    R = DR * np.arange(N, N + HORIZON + 1)
    inc = np.diff(curve(R))[None, :]
    return float(batches_worth(inc, U_last, value_per_token, cost, 0.0)[0])


def calibrate_cost(curve) -> float:
    """The fixed batch cost that puts the noise-free stop at TARGET_STOP more batches."""
    R = DR * np.arange(N, N + HORIZON + 1)
    inc = np.diff(curve(R))
    before = curve(R[0]) + np.cumsum(inc) - inc
    values = inc * value_per_token(before + inc / 2)
    return float((values[TARGET_STOP - 1] + values[TARGET_STOP]) / 2)


def run_case(curve_name: str, rho: float, seeds: int, bootstrap: int) -> dict:
    curve, share = CURVES[curve_name]
    cost = calibrate_cost(curve)
    R = DR * np.arange(1, N + 1)
    truth_slope = float(share(R[-1]))
    hit_slope = hit_stop = 0
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        U = np.cumsum(np.diff(curve(R), prepend=0.0) * noise(rho, rng))
        fit = fit_yield_curve(R, U, np.cumsum(np.ones(N)), bootstrap=bootstrap, seed=seed)
        lo, hi = fit.marginal_yield_band
        hit_slope += bool(lo <= truth_slope <= hi)
        counts = batches_worth(future_increments(fit, R[-1], HORIZON), U[-1], value_per_token, cost, 0.0)
        lo, hi = np.percentile(counts[1:], [5, 95])
        hit_stop += bool(lo <= true_count(curve, U[-1], cost) <= hi)
    return {"coverage_dudr": hit_slope / seeds, "coverage_stop": hit_stop / seeds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "curve_coverage.json"))
    args = parser.parse_args()
    started = time.perf_counter()
    results = {}
    for case, (curve_name, rho) in CASES.items():
        results[case] = run_case(curve_name, rho, args.seeds, args.bootstrap)
        print(case, results[case], flush=True)
    results["_setup"] = {"seeds": args.seeds, "bootstrap": args.bootstrap, "batches": N, "noise_sd": SIGMA,
                         "level": 0.90, "seconds": round(time.perf_counter() - started, 1)}
    pathlib.Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
