//! EM with the E-step split across threads, on the host.
//!
//! gmm-core's E-step produces per-component sufficient statistics that add
//! up ([`SufficientStats::merge`]), so the points are cut into contiguous
//! chunks (several per thread), each thread runs [`Gmm::e_step`] on the
//! next chunk not yet taken until none is left, the statistics are merged
//! in chunk order (a fixed order, so the result does not depend on which
//! thread made which chunk, or when), and one [`SufficientStats::m_step`]
//! gives the next model. Memory stays O(K) per chunk; only std threads
//! are used.
//!
//! The iteration and stopping rule are the core's ([`Gmm::fit`]):
//! `ll_0` under the start, then per iteration one M-step and one E-step,
//! stop when `|ll_n - ll_{n-1}| <= tol` (mean per unit weight) or after
//! `max_iter` M-steps. With one thread the result is bit-identical to
//! [`Gmm::refine`]; with more, each chunk's blocks are summed on their
//! own and the chunks' sums then added, so the sums are rounded
//! differently and the fit agrees to f32 rounding (see the tests).

use std::sync::atomic::{AtomicUsize, Ordering};

use gmm_core::{
    ExpMode, Fit, FitConfig, FitReport, Gmm, GmmError, Guards, Point, SufficientStats, Weighted,
    summarise,
};

/// Fits from `config`'s initialisation (restart 0 of [`Gmm::fit`], i.e.
/// `config.init` with `config.seed`), then runs EM with the E-step on
/// `threads` threads.
///
/// # Errors
/// The errors of [`Gmm::fit`]; [`GmmError::InvalidConfig`] when
/// `config.n_init > 1` (one restart only: run it once per seed) or
/// `threads == 0`; [`GmmError::WeightCountMismatch`] when `weights` is not
/// as long as `points`.
pub fn fit<const K: usize>(
    points: &[Point],
    weights: Option<&[f32]>,
    config: &FitConfig,
    threads: usize,
) -> Result<Fit<K>, GmmError> {
    if config.n_init > 1 {
        return Err(GmmError::InvalidConfig {
            reason: "the parallel fit runs one restart (n_init = 1)",
        });
    }
    let init_config = config.with_max_iter(0);
    let start = match weights {
        Some(w) => Gmm::<K>::fit(&Weighted::new(points, w)?, &init_config)?,
        None => Gmm::<K>::fit(points, &init_config)?,
    }
    .model;
    refine(&start, points, weights, config, threads)
}

/// Runs EM from `start` (a warm start, as [`Gmm::refine`]) with the E-step
/// on `threads` threads. `config.k`, `init`, `n_init` and `seed` are not
/// used.
///
/// # Errors
/// The input and fit errors of [`Gmm::refine`]; [`GmmError::InvalidConfig`]
/// for `threads == 0`; [`GmmError::WeightCountMismatch`].
pub fn refine<const K: usize>(
    start: &Gmm<K>,
    points: &[Point],
    weights: Option<&[f32]>,
    config: &FitConfig,
    threads: usize,
) -> Result<Fit<K>, GmmError> {
    if threads == 0 {
        return Err(GmmError::InvalidConfig {
            reason: "threads must be >= 1",
        });
    }
    FitConfig {
        k: start.k(),
        ..*config
    }
    .validate()?;
    let chunks = Chunks::new(points, weights, threads)?;
    let summary = match weights {
        Some(w) => summarise(&Weighted::new(points, w)?)?,
        None => summarise(points)?,
    };
    if summary.n_positive < start.k() {
        return Err(GmmError::TooFewPoints {
            points: summary.n_positive,
            components: start.k(),
        });
    }
    let total_weight = summary.total_weight;
    let mut model = *start;
    let mut stats = chunks.e_step(&model, config.exp, false)?;
    let mut mean_ll = stats.log_likelihood() / total_weight;
    if !mean_ll.is_finite() {
        return Err(GmmError::Diverged);
    }
    let mut guards = Guards::default();
    let mut n_iter = 0;
    let mut converged = false;
    while n_iter < config.max_iter {
        if stats.needs_worst() {
            // The same pass with the search for the worst-explained point,
            // where the M-step re-seeds (as the core's fit does).
            stats = chunks.e_step(&model, config.exp, true)?;
        }
        let (next_model, g) = stats.m_step(config.reg_covar)?;
        guards.reseeded += g.reseeded;
        guards.floored += g.floored;
        model = next_model;
        n_iter += 1;
        stats = chunks.e_step(&model, config.exp, false)?;
        let next = stats.log_likelihood() / total_weight;
        if !next.is_finite() {
            return Err(GmmError::Diverged);
        }
        let change = next - mean_ll;
        mean_ll = next;
        if change.abs() <= config.tol {
            converged = true;
            break;
        }
    }
    Ok(Fit {
        model,
        report: FitReport {
            k: model.k(),
            n_iter,
            converged,
            log_likelihood: stats.log_likelihood(),
            mean_log_likelihood: mean_ll,
            n_points: summary.n_positive,
            total_weight,
            restart: 0,
            failed_restarts: 0,
            guards,
        },
    })
}

/// Chunks per thread when there are several threads: a thread that finishes
/// its chunk takes the next one not yet taken, so a core slowed by other
/// work (a shared virtual CPU) does fewer chunks instead of holding the
/// others up at the end of every E-step.
const CHUNKS_PER_THREAD: usize = 8;

/// The data cut into contiguous, nearly equal chunks: one for one thread
/// (so the fit is the core's, bit for bit), else [`CHUNKS_PER_THREAD`]
/// per thread, each a whole number of the core's blocks but the last.
struct Chunks<'a> {
    parts: Vec<(&'a [Point], Option<&'a [f32]>)>,
    threads: usize,
}

impl<'a> Chunks<'a> {
    fn new(
        points: &'a [Point],
        weights: Option<&'a [f32]>,
        threads: usize,
    ) -> Result<Self, GmmError> {
        if let Some(w) = weights
            && w.len() != points.len()
        {
            return Err(GmmError::WeightCountMismatch {
                points: points.len(),
                weights: w.len(),
            });
        }
        let size = if threads == 1 {
            points.len().max(1)
        } else {
            points
                .len()
                .div_ceil(threads * CHUNKS_PER_THREAD)
                .next_multiple_of(gmm_core::BLOCK)
                .max(gmm_core::BLOCK)
        };
        let parts = points
            .chunks(size)
            .enumerate()
            .map(|(i, p)| {
                let w = weights.and_then(|w| w.get(i * size..i * size + p.len()));
                (p, w)
            })
            .collect();
        Ok(Self { parts, threads })
    }

    /// One E-step: `threads` threads (this one among them) take the chunks
    /// in turn; the statistics are merged in chunk order, whichever thread
    /// made them, so the result does not depend on the schedule. With
    /// `worst`, the search for the worst-explained point too.
    fn e_step<const K: usize>(
        &self,
        model: &Gmm<K>,
        exp: ExpMode,
        worst: bool,
    ) -> Result<SufficientStats<K>, GmmError> {
        let one = |(p, w): &(&[Point], Option<&[f32]>)| -> Result<SufficientStats<K>, GmmError> {
            Ok(match (w, worst) {
                (Some(w), true) => model.e_step(&Weighted::new(p, w)?, exp),
                (Some(w), false) => model.e_step_without_worst(&Weighted::new(p, w)?, exp),
                (None, true) => model.e_step(*p, exp),
                (None, false) => model.e_step_without_worst(*p, exp),
            })
        };
        let next = AtomicUsize::new(0);
        // The chunks one thread made, with their indices.
        let work = || {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(part) = self.parts.get(i) else {
                    return done;
                };
                done.push((i, one(part)));
            }
        };
        let mut made = std::thread::scope(|scope| {
            let handles: Vec<_> = (1..self.threads.min(self.parts.len()))
                .map(|_| scope.spawn(work))
                .collect();
            let mut all = work();
            for h in handles {
                all.extend(h.join().map_err(|_| GmmError::Diverged)?);
            }
            Ok::<_, GmmError>(all)
        })?;
        made.sort_unstable_by_key(|&(i, _)| i);
        let mut made = made.into_iter().map(|(_, r)| r);
        let mut stats = made.next().ok_or(GmmError::ZeroTotalWeight)??;
        for other in made {
            stats.merge(&other?)?;
        }
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gmm_core::SymMat2;
    use rand_xoshiro::Xoshiro128PlusPlus;
    use rand_xoshiro::rand_core::SeedableRng;

    fn seed() -> u64 {
        let s = std::env::var("GMM_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20_261_126);
        eprintln!("seed {s} (override with GMM_TEST_SEED)");
        s
    }

    fn data(n: usize, seed: u64) -> Vec<Point> {
        let truth = Gmm::<3>::new(
            &[0.3, 0.5, 0.2],
            &[[-4.0, 0.0], [0.0, 4.0], [4.0, 0.0]],
            &[
                SymMat2::new(1.0, 0.5, 1.0),
                SymMat2::IDENTITY,
                SymMat2::new(1.0, -0.5, 1.0),
            ],
        )
        .unwrap();
        let mut rng = Xoshiro128PlusPlus::seed_from_u64(seed);
        (0..n).map(|_| truth.sample(&mut rng).0).collect()
    }

    fn config() -> FitConfig {
        FitConfig::new(3)
            .with_tol(1e-6)
            .with_max_iter(100)
            .with_seed(3)
    }

    #[test]
    fn one_thread_is_bit_identical_to_the_core() {
        let points = data(20_000, seed());
        for exp in [ExpMode::Libm, ExpMode::Fast] {
            let config = config().with_exp(exp);
            let core = Gmm::<4>::fit(points.as_slice(), &config).unwrap();
            let par = fit::<4>(&points, None, &config, 1).unwrap();
            assert_eq!(par, core, "{exp:?}");
        }
    }

    /// Overlapping components, so EM is still moving after 30 iterations
    /// and `tol` 0 does not stop it early: both fits do the same work.
    fn overlapping(n: usize, seed: u64) -> Vec<Point> {
        let truth = Gmm::<3>::new(
            &[1.0, 2.0, 3.0],
            &[[1.5, 0.0], [-0.75, 1.3], [-0.75, -1.3]],
            &[SymMat2::new(1.0, 0.3, 0.8); 3],
        )
        .unwrap();
        let mut rng = Xoshiro128PlusPlus::seed_from_u64(seed);
        (0..n).map(|_| truth.sample(&mut rng).0).collect()
    }

    /// Two and three threads against the one-thread core fit, 30
    /// iterations each. A chunk boundary starts a new summation block, so
    /// each statistic is rounded differently, by about one f32 ulp per
    /// iteration; EM carries such perturbations along (slowly, on
    /// overlapping data) but does not amplify them: the largest difference
    /// seen was 3.6e-7 (seed 20261126). Tolerance: 2e-6 relative on the
    /// log-likelihood, 1e-5 absolute on weights, means and covariances
    /// (data of unit scale): about 80 ulps, far below the statistical
    /// error of the estimates (about 1e-2 here).
    #[test]
    fn threads_agree_with_the_core_within_f32_rounding() {
        let points = overlapping(30_001, seed());
        let config = config().with_tol(0.0).with_max_iter(30);
        let core = Gmm::<4>::fit(points.as_slice(), &config).unwrap();
        assert_eq!(core.report.n_iter, 30);
        let mut worst = 0.0f32;
        for threads in [2, 3] {
            let par = fit::<4>(&points, None, &config, threads).unwrap();
            let (a, b) = (&core.report, &par.report);
            assert_eq!(a.n_iter, b.n_iter, "{threads} threads");
            assert_eq!(a.n_points, b.n_points);
            assert_eq!(a.total_weight, b.total_weight);
            let rel = (a.log_likelihood - b.log_likelihood).abs() / a.log_likelihood.abs();
            assert!(rel <= 2e-6, "{threads} threads: ll {a:?} vs {b:?}");
            let mut diff = |x: f32, y: f32| {
                worst = worst.max((x - y).abs());
                assert!(
                    (x - y).abs() <= 1e-5,
                    "{threads} threads: {core:?} vs {par:?}"
                );
            };
            for (ga, gb) in core.model.components().iter().zip(par.model.components()) {
                for (&x, &y) in ga.mean().iter().zip(&gb.mean()) {
                    diff(x, y);
                }
                let (ca, cb) = (ga.covariance(), gb.covariance());
                for (x, y) in [(ca.xx, cb.xx), (ca.xy, cb.xy), (ca.yy, cb.yy)] {
                    diff(x, y);
                }
            }
            for (&x, &y) in core.model.weights().iter().zip(par.model.weights()) {
                diff(x, y);
            }
        }
        eprintln!("largest parameter difference {worst:e}");
    }

    /// The statistics of an E-step on two threads equal, bit for bit,
    /// those of the same chunks made one after another on one thread,
    /// whichever thread took which chunk.
    #[test]
    fn the_schedule_does_not_change_the_statistics() {
        let points = overlapping(30_001, seed());
        let model = fit::<4>(&points, None, &config().with_max_iter(2), 1)
            .unwrap()
            .model;
        let mut chunks = Chunks::new(&points, None, 2).unwrap();
        assert_eq!(chunks.parts.len(), 2 * CHUNKS_PER_THREAD);
        assert!(
            chunks.parts[..chunks.parts.len() - 1]
                .iter()
                .all(|(p, _)| p.len() % gmm_core::BLOCK == 0)
        );
        for exp in [ExpMode::Libm, ExpMode::Fast] {
            for worst in [false, true] {
                chunks.threads = 2;
                let two: Vec<_> = (0..3)
                    .map(|_| chunks.e_step(&model, exp, worst).unwrap())
                    .collect();
                chunks.threads = 1;
                let serial = chunks.e_step(&model, exp, worst).unwrap();
                for t in &two {
                    assert_eq!(
                        t.log_likelihood().to_bits(),
                        serial.log_likelihood().to_bits()
                    );
                    assert_eq!(t.needs_worst(), serial.needs_worst());
                    assert_eq!(t.m_step(1e-6).unwrap(), serial.m_step(1e-6).unwrap());
                }
            }
        }
    }

    #[test]
    fn weighted_points_and_errors() {
        let points = data(5_000, seed());
        let weights: Vec<f32> = (0..points.len()).map(|i| (i % 3) as f32).collect();
        let config = config();
        let core = Gmm::<3>::fit(&Weighted::new(&points, &weights).unwrap(), &config).unwrap();
        let one = fit::<3>(&points, Some(&weights), &config, 1).unwrap();
        assert_eq!(one, core);
        let two = fit::<3>(&points, Some(&weights), &config, 2).unwrap();
        assert_eq!(two.report.total_weight, core.report.total_weight);

        assert!(matches!(
            fit::<3>(&points, Some(&weights[1..]), &config, 2),
            Err(GmmError::WeightCountMismatch { .. })
        ));
        assert!(matches!(
            fit::<3>(&points, None, &config, 0),
            Err(GmmError::InvalidConfig { .. })
        ));
        assert!(matches!(
            fit::<3>(&points, None, &config.with_n_init(2), 2),
            Err(GmmError::InvalidConfig { .. })
        ));
        let mut bad = points.clone();
        bad[4_321] = [f32::NAN, 0.0];
        assert_eq!(
            fit::<3>(&bad, None, &config, 2),
            Err(GmmError::NonFinitePoint { index: 4_321 })
        );
        // More threads than points still works (empty chunks are not made).
        let few = &points[..5];
        let f = fit::<2>(few, None, &FitConfig::new(2), 8).unwrap();
        assert_eq!(f.report.n_points, 5);
        // No points: an error on any number of threads, not a panic.
        for threads in [1, 2, 3] {
            assert!(fit::<2>(&[], None, &FitConfig::new(2), threads).is_err());
            assert!(refine(&f.model, &[], Some(&[]), &FitConfig::new(2), threads).is_err());
        }
    }
}
