#!/usr/bin/env python3
"""Writes reports/tests/fixtures/stats-goldens.json: the statistics acbench's
reports compute (`acbench_reports::stats`), computed by scipy on fixed
inputs, so that `reports/tests/stats_goldens.rs` checks them without Python.

Run it from the repository root with scipy and numpy installed:

    python3 -m venv /tmp/stats-venv && /tmp/stats-venv/bin/pip install scipy numpy
    /tmp/stats-venv/bin/python scripts/stats-goldens.py
"""

import json
import math
import sys

import numpy as np
import scipy
from scipy import stats

LEVEL = 0.95
MAX_NEEDED = 10_000
OUT = "reports/tests/fixtures/stats-goldens.json"


def estimate(values):
    v = np.asarray(values, dtype=float)
    n = len(v)
    out = {"values": values, "n": n, "mean": float(v.mean())}
    if n >= 2:
        std = float(v.std(ddof=1))
        if std == 0:
            # scipy gives NaN for a zero scale; the interval is the point.
            lo = hi = v.mean()
        else:
            lo, hi = stats.t.interval(LEVEL, n - 1, loc=v.mean(), scale=std / math.sqrt(n))
        out.update(std=std, ci=[float(lo), float(hi)])
    return out


def needed(m, s):
    """Least n >= 2 with t(0.975, n-1) * s / sqrt(n) < |m| (see stats.rs)."""
    if m == 0 or not math.isfinite(m) or not math.isfinite(s):
        return None
    crit = lambda n: stats.t.ppf(0.5 + LEVEL / 2, n - 1) * s / math.sqrt(n)
    if not crit(MAX_NEEDED) < abs(m):
        return {"more_than": MAX_NEEDED}
    lo, hi = 1, MAX_NEEDED
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if crit(mid) < abs(m):
            hi = mid
        else:
            lo = mid
    return {"seeds": hi}


def difference(a, b):
    """a, b: lists of [seed, value]."""
    av = np.array([v for _, v in a], dtype=float)
    bv = np.array([v for _, v in b], dtype=float)
    u = stats.mannwhitneyu(av, bv, alternative="two-sided").statistic
    out = {"a": a, "b": b, "prob_improvement": float(u) / (len(av) * len(bv))}
    bmap = dict((s, v) for s, v in b)
    pairs = [(v, bmap[s]) for s, v in a if s in bmap]
    if len(pairs) >= 2:
        x = np.array([p[0] for p in pairs])
        y = np.array([p[1] for p in pairs])
        d = x - y
        res = stats.ttest_rel(x, y)
        ci = res.confidence_interval(LEVEL)
        s = float(d.std(ddof=1))
        out.update(
            pairing="paired",
            n=len(pairs),
            mean=float(d.mean()),
            spread=s,
            se=s / math.sqrt(len(pairs)),
            ci=[float(ci.low), float(ci.high)],
            p_value=float(res.pvalue),
            needed=needed(float(d.mean()), s),
        )
    elif len(av) >= 2 and len(bv) >= 2:
        res = stats.ttest_ind(av, bv, equal_var=False)
        ci = res.confidence_interval(LEVEL)
        va, vb = av.var(ddof=1), bv.var(ddof=1)
        m = float(av.mean() - bv.mean())
        out.update(
            pairing="welch",
            n=min(len(av), len(bv)),
            mean=m,
            spread=float(math.sqrt(va + vb)),
            se=float(math.sqrt(va / len(av) + vb / len(bv))),
            ci=[float(ci.low), float(ci.high)],
            p_value=float(res.pvalue),
            needed=needed(m, float(math.sqrt(va + vb))),
        )
    else:
        out.update(pairing="none", n=min(len(av), len(bv)), mean=float(av.mean() - bv.mean()))
    return out


def seeded(values, first=0):
    return [[first + i, v] for i, v in enumerate(values)]


def main():
    rng = np.random.default_rng(20261201)
    estimates = [
        [0.8141],
        [0.81, 0.83],
        [0.702, 0.65, 0.75, 0.71, 0.70],
        [0.5, 0.5, 0.5],
        [0.848, 0.837, 0.859, 0.846, 0.850, 0.851, 0.839],
    ]
    for _ in range(100):
        n = int(rng.integers(2, 16))
        estimates.append([float(x) for x in rng.normal(0.8, rng.uniform(0.001, 0.1), n)])

    diffs = [
        # paired, clearly better / worse / undecided
        (seeded([0.84, 0.85, 0.83, 0.86, 0.84]), seeded([0.80, 0.81, 0.80, 0.82, 0.79])),
        (seeded([0.70, 0.65, 0.75, 0.71, 0.70]), seeded([0.60, 0.55, 0.62, 0.58, 0.63])),
        (seeded([0.84, 0.80, 0.86]), seeded([0.83, 0.82, 0.85])),
        # ties between runs
        (seeded([0.8, 0.8, 0.9]), seeded([0.8, 0.7, 0.9])),
        # shared seeds only in part: pairs on the two shared
        (seeded([0.81, 0.82, 0.83]), seeded([0.80, 0.79, 0.90], first=1)),
        # no shared seeds: Welch
        (seeded([0.81, 0.82, 0.83, 0.84]), seeded([0.70, 0.75, 0.72], first=10)),
        # one shared seed, one run on a side: no interval
        (seeded([0.81]), seeded([0.80])),
        (seeded([0.81, 0.85]), seeded([0.80], first=5)),
        # zero mean difference
        (seeded([0.80, 0.82]), seeded([0.82, 0.80])),
    ]
    for _ in range(100):
        n = int(rng.integers(2, 12))
        base = rng.normal(0.8, rng.uniform(0.005, 0.08), n)
        a = base + rng.normal(rng.normal(0, 0.02), rng.uniform(0.002, 0.05), n)
        diffs.append((seeded([float(x) for x in a]), seeded([float(x) for x in base])))
    for _ in range(50):
        na, nb = int(rng.integers(2, 10)), int(rng.integers(2, 10))
        a = rng.normal(0.8 + rng.normal(0, 0.02), rng.uniform(0.005, 0.08), na)
        b = rng.normal(0.8, rng.uniform(0.005, 0.08), nb)
        diffs.append((seeded([float(x) for x in a]), seeded([float(x) for x in b], first=100)))

    out = {
        "made_by": f"scripts/stats-goldens.py with scipy {scipy.__version__}, numpy {np.__version__}",
        "level": LEVEL,
        "estimates": [estimate(v) for v in estimates],
        "differences": [difference(a, b) for a, b in diffs],
    }
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(f"wrote {OUT}: {len(out['estimates'])} estimates, {len(out['differences'])} differences", file=sys.stderr)


if __name__ == "__main__":
    main()
