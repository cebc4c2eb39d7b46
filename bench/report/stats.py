# SPDX-License-Identifier: MIT
"""stats.py — the few statistics the report uses: median, min-max, and
ratios taken within each repetition (never across runs)."""


def median(values):
    v = sorted(x for x in values if x is not None)
    if not v:
        return None
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def summary(values):
    """{median, min, max, n} over the values that exist, or None."""
    v = [x for x in values if x is not None]
    if not v:
        return None
    return {"median": median(v), "min": min(v), "max": max(v), "n": len(v)}


def per_rep_ratios(num, den):
    """num[i] / den[i] for every repetition i where both exist (and den is
    not 0): each ratio compares two measurements of the same repetition,
    which the benchmarks interleave."""
    out = []
    for a, b in zip(num, den):
        out.append(a / b if a is not None and b not in (None, 0) else None)
    return out


def ratio_summary(num, den):
    """summary() of the per-repetition ratios, with the values kept."""
    r = per_rep_ratios(num, den)
    s = summary(r)
    if s is not None:
        s["values"] = r
    return s
