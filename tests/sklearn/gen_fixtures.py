"""Generates the scikit-learn conformance fixtures in tests/fixtures/sklearn/.

Regenerate (needs Python 3.11+ and network access to PyPI; not run in CI,
the JSON output is committed):

    python3 -m venv /tmp/sklvenv \
      && /tmp/sklvenv/bin/pip install -r tests/sklearn/requirements.txt \
      && /tmp/sklvenv/bin/python tests/sklearn/gen_fixtures.py

(from the workspace root). The output is deterministic for the pinned
versions: every data set and initial parameter comes from a seeded
numpy RandomState.

Each fixture holds a data set, warm-start parameters, and what
scikit-learn's GaussianMixture(covariance_type="full") computes from them
after a fixed number of EM iterations. Why fixed iteration counts: the
core counts M-steps and reports the log-likelihood under its final
parameters, while scikit-learn's lower_bound_ comes from its last E-step
(the parameters before the last M-step) and it tests convergence one
iteration later. With tol = 0 scikit-learn runs exactly max_iter E+M steps
from the given parameters, which is what the core does with max_iter and
tol = 0 (it may stop earlier only at an exact f32 fixed point). The final
log-likelihood, BIC and AIC are recomputed on the final model with
score(X) * n, bic(X) and aic(X), i.e. under the final parameters, like the
core's report.

Points and initial parameters are rounded to f32 before scikit-learn sees
them, so both sides start from exactly the same numbers; they are written
as the f64 repr of the f32 value (exact, no double rounding when parsed).
"""

import json
import pathlib
import sys
import warnings

import numpy as np
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky

OUT = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "sklearn"

# After how many EM iterations the result is recorded: every count, so the
# Rust side can compare at whatever count the core stopped (with tol = 0 it
# stops early when the f32 log-likelihood no longer changes at all).
CHECKPOINTS = range(1, 31)


def f32(a):
    """Rounds to the nearest f32 and back to f64 (exact)."""
    return np.asarray(a, dtype=np.float64).astype(np.float32).astype(np.float64)


def rotation(theta):
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s], [s, c]])


def random_cov(rng, scale, anisotropy):
    """A rotated covariance with standard deviations scale and scale/anisotropy."""
    r = rotation(rng.uniform(0, np.pi))
    d = np.diag([scale**2, (scale / anisotropy) ** 2])
    c = r @ d @ r.T
    return 0.5 * (c + c.T)


def sample(rng, weights, means, covs, n):
    """round(w * n) points per component (scikit-learn's RandomData rule)."""
    parts = []
    for w, m, c in zip(weights, means, covs):
        parts.append(rng.multivariate_normal(m, c, int(round(w * n))))
    x = np.vstack(parts)
    rng.shuffle(x)
    return x


def perturbed_init(rng, weights, means, covs, shift, spread):
    """Starting parameters near (but not at) the truth."""
    w = np.asarray(weights) * rng.uniform(0.7, 1.3, len(weights))
    m = np.asarray(means) + shift * rng.standard_normal(np.shape(means))
    c = np.array([cv * rng.uniform(1.0, spread) for cv in covs])
    return w / w.sum(), m, c


def data_init(rng, x, k):
    """Starting parameters from data: k random points as means, the data
    covariance for every component, equal weights (a poor start)."""
    idx = rng.choice(len(x), k, replace=False)
    cov = np.cov(x.T, bias=True)
    return np.full(k, 1.0 / k), x[idx].copy(), np.array([cov] * k)


def case_blobs3(rng):
    w = [0.3, 0.5, 0.2]
    m = [[0.0, 0.0], [6.0, 1.0], [2.0, 7.0]]
    c = [random_cov(rng, 1.0, 2.0) for _ in range(3)]
    x = sample(rng, w, m, c, 600)
    return x, perturbed_init(rng, w, m, c, 0.8, 2.0), 1e-6


def case_overlap2(rng):
    w = [0.45, 0.55]
    m = [[0.0, 0.0], [1.5, 0.5]]
    c = [random_cov(rng, 1.0, 1.5), random_cov(rng, 1.2, 3.0)]
    x = sample(rng, w, m, c, 1000)
    return x, perturbed_init(rng, w, m, c, 0.5, 1.5), 1e-6


def case_far_offset(rng):
    # Data far from the origin relative to its spread: tests centring.
    w = [0.5, 0.5]
    m = [[1.0e4, -1.0e4], [1.0e4 + 8.0, -1.0e4 + 3.0]]
    c = [random_cov(rng, 1.0, 2.0) for _ in range(2)]
    x = sample(rng, w, m, c, 800)
    return x, perturbed_init(rng, w, m, c, 1.0, 2.0), 1e-6


def case_small_scale(rng):
    s = 1e-3
    w = [0.4, 0.6]
    m = [[0.0, 0.0], [6 * s, 2 * s]]
    c = [random_cov(rng, s, 2.0) for _ in range(2)]
    x = sample(rng, w, m, c, 700)
    # reg_covar scaled with the data, or it would dominate variances of 1e-6.
    return x, perturbed_init(rng, w, m, c, s, 2.0), 1e-12


def case_large_scale(rng):
    s = 1e3
    w = [0.2, 0.3, 0.5]
    m = [[0.0, 0.0], [5 * s, -2 * s], [-4 * s, 5 * s]]
    c = [random_cov(rng, s, 3.0) for _ in range(3)]
    x = sample(rng, w, m, c, 900)
    return x, perturbed_init(rng, w, m, c, 0.5 * s, 2.0), 1e-6


def case_single(rng):
    w = [1.0]
    m = [[2.0, -3.0]]
    c = [random_cov(rng, 1.5, 4.0)]
    x = sample(rng, w, m, c, 50)
    return x, perturbed_init(rng, w, m, c, 1.0, 2.0), 1e-6


def case_aniso4(rng):
    w = [0.1, 0.2, 0.3, 0.4]
    m = [[-6.0, 0.0], [0.0, 6.0], [6.0, 0.0], [0.0, -6.0]]
    c = [random_cov(rng, 1.5, 10.0) for _ in range(4)]
    x = sample(rng, w, m, c, 2000)
    return x, perturbed_init(rng, w, m, c, 0.7, 2.0), 1e-6


def case_random_data(rng):
    # scikit-learn's RandomData (test_gaussian_mixture.py): weights rand
    # normalised, means rand * scale (50), covariances from random SPD
    # matrices * 0.5.
    k, n = 2, 500
    w = rng.rand(k)
    w /= w.sum()
    m = rng.rand(k, 2) * 50
    c = []
    for _ in range(k):
        a = rng.rand(2, 2)
        u, _, vt = np.linalg.svd(a.T @ a)
        c.append(0.5 * (u @ np.diag(1.0 + rng.rand(2)) @ vt))
    x = sample(rng, w, m, c, n)
    return x, data_init(rng, x, k), 1e-6


def case_big_reg(rng):
    w = [0.5, 0.5]
    m = [[0.0, 0.0], [3.0, 3.0]]
    c = [random_cov(rng, 0.5, 2.0) for _ in range(2)]
    x = sample(rng, w, m, c, 400)
    return x, perturbed_init(rng, w, m, c, 0.5, 2.0), 0.1


def case_overfit5(rng):
    # More components than clusters, started from random data points.
    w = [0.5, 0.5]
    m = [[0.0, 0.0], [5.0, 5.0]]
    c = [random_cov(rng, 1.0, 2.0) for _ in range(2)]
    x = sample(rng, w, m, c, 300)
    return x, data_init(rng, x, 5), 1e-6


CASES = [
    ("blobs3", 1, case_blobs3),
    ("overlap2", 2, case_overlap2),
    ("far_offset", 3, case_far_offset),
    ("small_scale", 4, case_small_scale),
    ("large_scale", 5, case_large_scale),
    ("single", 6, case_single),
    ("aniso4", 7, case_aniso4),
    ("random_data", 8, case_random_data),
    ("big_reg", 9, case_big_reg),
    ("overfit5", 10, case_overfit5),
]


def fit(x, w0, m0, c0, reg_covar, max_iter, tol=0.0):
    gm = GaussianMixture(
        n_components=len(w0),
        covariance_type="full",
        tol=tol,
        reg_covar=reg_covar,
        max_iter=max_iter,
        n_init=1,
        init_params="random",
        weights_init=w0,
        means_init=m0,
        precisions_init=np.array([np.linalg.inv(c) for c in c0]),
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(x)
    n = len(x)
    return gm, {
        "max_iter": max_iter,
        "n_iter": int(gm.n_iter_),
        "weights": gm.weights_.tolist(),
        "means": gm.means_.tolist(),
        "covariances": gm.covariances_.tolist(),
        "log_likelihood": float(gm.score(x) * n),
        "bic": float(gm.bic(x)),
        "aic": float(gm.aic(x)),
    }


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for name, seed, make in CASES:
        rng = np.random.RandomState(seed)
        x, (w0, m0, c0), reg_covar = make(rng)
        x = f32(x)
        # The core normalises f32 weights itself; give scikit-learn the
        # same weights normalised in f64 (it requires a sum of 1).
        w0 = f32(w0)
        w0_sk = w0 / w0.sum()
        m0 = f32(m0)
        c0 = f32(c0)
        c0[:, 1, 0] = c0[:, 0, 1]
        reg_covar = float(np.float32(reg_covar))
        fixture = {
            "name": name,
            "seed": seed,
            "generator": f"gen_fixtures.py, scikit-learn {sklearn.__version__}, numpy {np.__version__}",
            "reg_covar": reg_covar,
            "points": x.tolist(),
            "init": {
                "weights": w0.tolist(),
                "means": m0.tolist(),
                "covariances": c0.tolist(),
            },
            "results": [fit(x, w0_sk, m0, c0, reg_covar, it)[1] for it in CHECKPOINTS],
        }
        # The stopping rule: scikit-learn's default tol = 1e-3, with the
        # mean log-likelihood of every iteration (lower_bounds_[i] is under
        # the parameters after i M-steps, i = 0 the start).
        gm, _ = fit(x, w0_sk, m0, c0, reg_covar, 100, tol=1e-3)
        fixture["stopping"] = {
            "tol": 1e-3,
            "max_iter": 100,
            "n_iter": int(gm.n_iter_),
            "converged": bool(gm.converged_),
            "lower_bounds": [float(v) for v in gm.lower_bounds_],
        }
        # The queries of the last model, its parameters rounded to f32 (so
        # the core can hold exactly the same model), on the first 50 points.
        gm, _ = fit(x, w0_sk, m0, c0, reg_covar, CHECKPOINTS[-1])
        w = f32(gm.weights_)
        gm.weights_ = w / w.sum()
        gm.means_ = f32(gm.means_)
        cov = f32(gm.covariances_)
        cov[:, 1, 0] = cov[:, 0, 1]
        gm.covariances_ = cov
        gm.precisions_cholesky_ = _compute_precision_cholesky(cov, "full")
        probe = x[:50]
        fixture["queries"] = {
            "weights": w.tolist(),
            "means": gm.means_.tolist(),
            "covariances": cov.tolist(),
            "score_samples": gm.score_samples(probe).tolist(),
            "predict_proba": gm.predict_proba(probe).tolist(),
            "predict": gm.predict(probe).tolist(),
        }
        path = OUT / f"{name}.json"
        path.write_text(json.dumps(fixture, separators=(",", ":")) + "\n")
        print(f"wrote {path} ({len(x)} points, k = {len(w0)})", file=sys.stderr)


if __name__ == "__main__":
    main()
