"""Statistics the init tests share: does a tensor look drawn from a distribution, or from
the same one as another tensor? Two-sample Kolmogorov-Smirnov at a fixed threshold, plus
exact checks for constants and orthogonal matrices (which KS cannot see)."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from netdsl.initializers import Distribution

# KS p-value below which two samples are taken to differ, for the whole family of tensors
# one test compares: each of m tensors must pass p > P_MIN / m (Bonferroni), so a test over
# a network's 160 tensors is wrong about one of them by chance at most 1% of the time
P_MIN = 0.01
SAMPLE = 20_000  # values compared per tensor (a random subset of larger tensors)


def _flat(values, rng) -> np.ndarray:
    flat = np.asarray(values, dtype=np.float64).ravel()
    if flat.size > SAMPLE:
        flat = rng.choice(flat, SAMPLE, replace=False)
    return flat


def constant_value(values) -> float | None:
    flat = np.asarray(values, dtype=np.float64).ravel()
    return float(flat[0]) if flat.size and np.all(flat == flat[0]) else None


def draw(d: Distribution, shape: tuple, rng) -> np.ndarray:
    """Values drawn from `d` (an orthogonal one: a fresh orthogonal matrix times gain)."""
    n = math.prod(shape)
    if d.kind == "constant":
        return np.full(n, d.a)
    if d.kind == "normal":
        return rng.normal(d.a, d.b, n)
    if d.kind == "uniform":
        return rng.uniform(d.a, d.b, n)
    if d.kind == "trunc_normal":
        lo, hi = (d.lo - d.a) / d.b, (d.hi - d.a) / d.b
        return stats.truncnorm.rvs(lo, hi, loc=d.a, scale=d.b, size=n, random_state=rng)
    rows, cols = shape[0], n // shape[0]
    q, r = np.linalg.qr(rng.normal(size=(max(rows, cols), min(rows, cols))))
    q = q * np.sign(np.diag(r))
    return (q if rows >= cols else q.T).ravel() * d.a


def same_distribution(ours, theirs, tests: int = 1, seed: int = 0) -> tuple[bool, str]:
    """(whether they look drawn from one distribution, a line saying why not)."""
    rng = np.random.default_rng(seed)
    a, b = constant_value(ours), constant_value(theirs)
    if a is not None or b is not None:
        return a == b, f"constant {a} vs {b}"
    x, y = _flat(ours, rng), _flat(theirs, rng)
    result = stats.ks_2samp(x, y)
    text = (
        f"KS p={result.pvalue:.3g} (D={result.statistic:.3g}); mean {x.mean():.4g} vs "
        f"{y.mean():.4g}, std {x.std():.4g} vs {y.std():.4g}"
    )
    return bool(result.pvalue > P_MIN / tests), text


def drawn_from(values, d: Distribution, tests: int = 1, seed: int = 0) -> tuple[bool, str]:
    """Whether `values` look drawn from `d` (one-sample KS against its CDF; constants and
    orthogonal matrices exactly)."""
    values = np.asarray(values, dtype=np.float64)
    if d.kind == "constant":
        c = constant_value(values)
        return c is not None and math.isclose(c, d.a, rel_tol=1e-6), f"constant {c} vs {d.a}"
    if d.kind == "orthogonal":
        m = values.reshape(values.shape[0], -1) / d.a
        small = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
        ok = np.allclose(small, np.eye(small.shape[0]), atol=1e-4)
        return bool(ok), "orthogonal" if ok else "not orthogonal"
    x = _flat(values, np.random.default_rng(seed))
    if d.kind == "normal":
        cdf = stats.norm(d.a, d.b).cdf
    elif d.kind == "uniform":
        cdf = stats.uniform(d.a, d.b - d.a).cdf
    else:
        cdf = stats.truncnorm((d.lo - d.a) / d.b, (d.hi - d.a) / d.b, loc=d.a, scale=d.b).cdf
    result = stats.kstest(x, cdf)
    text = f"KS p={result.pvalue:.3g} against {d}; mean {x.mean():.4g}, std {x.std():.4g}"
    return bool(result.pvalue > P_MIN / tests), text
