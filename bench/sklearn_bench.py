"""scikit-learn's side of `cargo xtask bench-compare`.

usage: python sklearn_bench.py DIR ITERS REPEATS

Reads DIR/points.f32 (little-endian f32 pairs) and DIR/init.txt (one line per
component: weight mx my cxx cxy cyy), runs GaussianMixture (full covariances,
float64, tol 0, reg_covar 1e-6) from exactly that init, and prints one
`RESULT system=sklearn ...` line with ns per point x component x iteration:
(T(ITERS + 1) - T(1)) / ITERS, each T the minimum process CPU time over REPEATS
fits, so initialisation and input checks are not counted. One BLAS/OpenMP
thread (threadpoolctl, and the environment xtask sets).
"""

import os
import sys
import time
import warnings

import numpy as np
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_info, threadpool_limits


def main() -> None:
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    folder, iters, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    x = np.fromfile(os.path.join(folder, "points.f32"), dtype="<f4")
    x = x.reshape(-1, 2).astype(np.float64)
    init = np.loadtxt(os.path.join(folder, "init.txt"), ndmin=2)
    weights = init[:, 0] / init[:, 0].sum()
    means = init[:, 1:3]
    covariances = np.array([[[a, b], [b, c]] for a, b, c in init[:, 3:6]])
    precisions = np.linalg.inv(covariances)
    n, k = x.shape[0], init.shape[0]

    def fit(max_iter: int) -> int:
        gm = GaussianMixture(
            n_components=k,
            covariance_type="full",
            tol=0.0,
            reg_covar=1e-6,
            max_iter=max_iter,
            n_init=1,
            init_params="random_from_data",
            weights_init=weights,
            means_init=means,
            precisions_init=precisions,
            random_state=0,
        )
        start = time.process_time_ns()
        gm.fit(x)
        elapsed = time.process_time_ns() - start
        if gm.n_iter_ != max_iter:
            sys.exit(f"scikit-learn ran {gm.n_iter_} iterations, not {max_iter}")
        return elapsed

    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        threads = sorted({p["num_threads"] for p in threadpool_info()})
        long = min(fit(iters + 1) for _ in range(repeats))
        short = min(fit(1) for _ in range(repeats))
    ns = (long - short) / (iters * n * k)
    print(
        f"RESULT system=sklearn k={k} n={n} ns_pki={ns:.3f} "
        f"version={sklearn.__version__} threads={','.join(map(str, threads)) or '1'}"
    )


if __name__ == "__main__":
    main()
