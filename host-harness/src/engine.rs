//! Running a fit with either engine (the f32 core or the f64 reference)
//! behind one interface, and moving mixtures between the two.

use crate::data::{CliError, PointTable};
use crate::reference::{self, Mixture64, RefConfig, RefError};
use gmm_core::{FitConfig, Gmm, GmmError, InitMethod, SymMat2, Trace, Weighted};
use std::time::Instant;

/// The core's capacity in this command line: `--k` above it is an error.
pub const CAPACITY: usize = 16;

/// The core model type used by the command line.
pub type Model = Gmm<CAPACITY>;

/// Which implementation runs the fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// `gmm-core`: f32, streaming sufficient statistics, guards.
    Core,
    /// The f64 textbook reference (`host_harness::reference`).
    Reference,
}

impl Engine {
    /// Its name in output.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Core => "core",
            Self::Reference => "reference",
        }
    }
}

/// How a fit starts.
#[derive(Clone, Debug, PartialEq)]
pub enum Start {
    /// An initialisation method of the core, per restart.
    Method(InitMethod),
    /// Exactly these parameters (warm start, one run).
    Given(Mixture64),
}

/// Everything a fit needs besides the data.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Components (ignored with [`Start::Given`], which has its own).
    pub k: usize,
    /// Tolerance on the change of mean log-likelihood.
    pub tol: f64,
    /// Maximum number of M-steps.
    pub max_iter: usize,
    /// Added to covariance diagonals.
    pub reg_covar: f64,
    /// Restarts.
    pub n_init: usize,
    /// Seed of the initialisation.
    pub seed: u64,
    /// How to start.
    pub start: Start,
}

impl Settings {
    /// scikit-learn's defaults with k-means++ for `k` components.
    #[must_use]
    pub fn new(k: usize) -> Self {
        Self {
            k,
            tol: 1e-3,
            max_iter: 100,
            reg_covar: 1e-6,
            n_init: 1,
            seed: 0,
            start: Start::Method(InitMethod::KMeansPlusPlus),
        }
    }

    /// The number of components the fit will have.
    #[must_use]
    pub fn components(&self) -> usize {
        match &self.start {
            Start::Given(m) => m.k(),
            Start::Method(_) => self.k,
        }
    }

    fn core_config(&self, k: usize) -> Result<FitConfig, CliError> {
        let max_iter = u32::try_from(self.max_iter)
            .map_err(|_| CliError::input("--max-iter is larger than 4294967295"))?;
        let n_init = u32::try_from(self.n_init)
            .map_err(|_| CliError::input("--n-init is larger than 4294967295"))?;
        let mut c = FitConfig::new(k)
            .with_tol(self.tol as f32)
            .with_max_iter(max_iter)
            .with_reg_covar(self.reg_covar as f32)
            .with_n_init(n_init)
            .with_seed(self.seed);
        if let Start::Method(m) = self.start {
            c = c.with_init(m);
        }
        c.validate().map_err(|e| CliError::input(format!("{e}")))?;
        Ok(c)
    }
}

/// One iteration of one restart.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceRow {
    /// Restart (0-based).
    pub restart: usize,
    /// Iteration (0 = the start).
    pub iteration: usize,
    /// Mean log-likelihood per unit weight.
    pub mean_log_likelihood: f64,
    /// Mixing weights.
    pub weights: Vec<f64>,
}

/// What a fit produced, whichever engine ran it.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The engine.
    pub engine: Engine,
    /// The fitted parameters.
    pub mixture: Mixture64,
    /// M-steps of the winning restart.
    pub n_iter: usize,
    /// Whether it met `tol`.
    pub converged: bool,
    /// Total log-likelihood under the final parameters.
    pub log_likelihood: f64,
    /// Per unit weight.
    pub mean_log_likelihood: f64,
    /// Total weight (the `n` of BIC).
    pub total_weight: f64,
    /// The winning restart.
    pub restart: usize,
    /// Restarts that failed.
    pub failed_restarts: usize,
    /// Every iteration of every restart.
    pub trace: Vec<TraceRow>,
    /// Wall time of the fit alone, in seconds.
    pub fit_seconds: f64,
}

impl Outcome {
    /// BIC `-2 ln L + (6k - 1) ln n`.
    #[must_use]
    pub fn bic(&self) -> f64 {
        reference::bic(self.log_likelihood, self.total_weight, self.mixture.k())
    }

    /// AIC `-2 ln L + 2 (6k - 1)`.
    #[must_use]
    pub fn aic(&self) -> f64 {
        reference::aic(self.log_likelihood, self.mixture.k())
    }
}

/// The core model with these parameters (rounded to f32).
///
/// # Errors
/// [`CliError::input`] when `k` exceeds [`CAPACITY`] or the parameters
/// are invalid in f32.
pub fn to_core(m: &Mixture64) -> Result<Model, CliError> {
    if m.k() > CAPACITY {
        return Err(capacity_error(m.k()));
    }
    let w: Vec<f32> = m.weights.iter().map(|&v| v as f32).collect();
    let means: Vec<[f32; 2]> = m.means.iter().map(|p| [p[0] as f32, p[1] as f32]).collect();
    let covs: Vec<SymMat2> = m
        .covariances
        .iter()
        .map(|c| {
            SymMat2::from_rows([
                [c[0][0] as f32, c[0][1] as f32],
                [c[1][0] as f32, c[1][1] as f32],
            ])
        })
        .collect();
    Model::new(&w, &means, &covs).map_err(|e| CliError::input(format!("{e} (in f32)")))
}

/// The parameters of a core model, widened to f64.
#[must_use]
pub fn from_core<const K: usize>(g: &Gmm<K>) -> Mixture64 {
    Mixture64 {
        weights: g.weights().iter().map(|&w| f64::from(w)).collect(),
        means: g
            .components()
            .iter()
            .map(|c| c.mean().map(f64::from))
            .collect(),
        covariances: g
            .components()
            .iter()
            .map(|c| c.covariance().to_rows().map(|r| r.map(f64::from)))
            .collect(),
    }
}

/// The error for `k` above the capacity.
#[must_use]
pub fn capacity_error(k: usize) -> CliError {
    CliError::input(format!(
        "k = {k} is above this build's capacity of {CAPACITY} components (gmm-core Gmm<{CAPACITY}>)"
    ))
}

/// A core error about the data, with the file line when it names a point.
#[must_use]
pub fn core_error(e: GmmError, data: &dyn PointTable) -> CliError {
    let at = |i: usize| format!("{}:{}", data.path(), data.line_of(i));
    match e {
        GmmError::NonFinitePoint { index }
        | GmmError::PointOutOfRange { index }
        | GmmError::InvalidWeight { index } => CliError::input(format!("{}: {e}", at(index))),
        GmmError::WeightCountMismatch { .. }
        | GmmError::ZeroTotalWeight
        | GmmError::TooFewPoints { .. }
        | GmmError::Overflow => CliError::input(format!("{}: {e}", data.path())),
        GmmError::InvalidK { k, .. } => capacity_error(k),
        GmmError::InvalidConfig { .. } | GmmError::InvalidParameters { .. } => {
            CliError::input(format!("{e}"))
        }
        _ => CliError::failed(format!("the core's fit failed: {e}")),
    }
}

fn reference_error(e: RefError, data: &dyn PointTable) -> CliError {
    let at = |i: usize| format!("{}:{}", data.path(), data.line_of(i));
    match e {
        RefError::NonFinitePoint { index } | RefError::InvalidWeight { index } => {
            CliError::input(format!("{}: {e}", at(index)))
        }
        RefError::WeightCountMismatch { .. }
        | RefError::ZeroTotalWeight
        | RefError::TooFewPoints { .. } => CliError::input(format!("{}: {e}", data.path())),
        RefError::InvalidConfig(_) | RefError::InvalidParameters(_) => {
            CliError::input(format!("{e}"))
        }
        RefError::EmptyComponent { .. }
        | RefError::SingularCovariance { .. }
        | RefError::Diverged => CliError::failed(format!("the reference fit failed: {e}")),
    }
}

/// A core trace that keeps every row and reports each new restart.
struct Recorder<'a> {
    rows: Vec<TraceRow>,
    on_progress: &'a mut dyn FnMut(usize, usize),
}

impl Trace for Recorder<'_> {
    fn record(&mut self, restart: u32, iteration: u32, mean_log_likelihood: f32, weights: &[f32]) {
        (self.on_progress)(restart as usize, iteration as usize);
        self.rows.push(TraceRow {
            restart: restart as usize,
            iteration: iteration as usize,
            mean_log_likelihood: f64::from(mean_log_likelihood),
            weights: weights.iter().map(|&w| f64::from(w)).collect(),
        });
    }
}

/// Checks `k` against the capacity and the data before any fit.
///
/// # Errors
/// [`CliError::input`] for `k = 0`, `k` above [`CAPACITY`], or fewer
/// points with a positive weight than `k`.
pub fn check_k(k: usize, data: &dyn PointTable) -> Result<(), CliError> {
    if k == 0 {
        return Err(CliError::input("k must be at least 1"));
    }
    if k > CAPACITY {
        return Err(capacity_error(k));
    }
    let n = data.n_positive();
    if n < k {
        return Err(CliError::input(format!(
            "{}: {n} points with positive weight is fewer than the {k} components asked for",
            data.path()
        )));
    }
    Ok(())
}

/// The core's starting parameters for restart `restart` of a fit with
/// these settings (`Gmm::initialise`: the start that restart of
/// `Gmm::fit` uses, from the seed's stream jumped `restart` times).
///
/// `Ok(Err(..))` is an initialisation that failed, which the core counts
/// as a failed restart; the outer error is bad input.
fn core_start(
    data: &dyn PointTable,
    s: &Settings,
    method: InitMethod,
    restart: usize,
) -> Result<Result<Mixture64, CliError>, CliError> {
    let cfg = s.core_config(s.k)?.with_init(method);
    let restart = u32::try_from(restart)
        .map_err(|_| CliError::input("--n-init is larger than 4294967295"))?;
    let points = data.core_points();
    let start: Result<Model, GmmError> = match data.core_weights() {
        Some(w) => {
            let wd = Weighted::new(&points, &w).map_err(|e| core_error(e, data))?;
            Model::initialise(&wd, &cfg, restart)
        }
        None => Model::initialise(&*points, &cfg, restart),
    };
    match start {
        Ok(g) => Ok(Ok(from_core(&g))),
        Err(e) => {
            let e = core_error(e, data);
            if e.code == 1 {
                Ok(Err(CliError::failed(format!(
                    "the core's initialisation (which the reference starts from) failed: {}",
                    e.message.trim_start_matches("the core's fit failed: ")
                ))))
            } else {
                Err(e)
            }
        }
    }
}

/// Runs one fit. `on_progress(r, i)` is called as iteration `i` of
/// restart `r` ends (the reference reports only `i = 0` of each restart);
/// for progress bars.
///
/// The core runs its own restarts. The reference starts restart `r` from
/// exactly the core's start of restart `r` (`Gmm::initialise`), or from
/// the given parameters; a restart whose initialisation fails is counted
/// as failed by both.
///
/// # Errors
/// [`CliError::input`] for bad settings or data; [`CliError::failed`]
/// when every restart fails.
pub fn run(
    engine: Engine,
    data: &dyn PointTable,
    s: &Settings,
    on_progress: &mut dyn FnMut(usize, usize),
) -> Result<Outcome, CliError> {
    let k = s.components();
    check_k(k, data)?;
    let cfg = s.core_config(k)?;
    match engine {
        Engine::Core => {
            // Borrowed from a CompactDataset: no copy of the points.
            let points = data.core_points();
            let weights = data.core_weights();
            let mut rec = Recorder {
                rows: Vec::new(),
                on_progress,
            };
            let given = match &s.start {
                Start::Given(m) => Some(to_core(m)?),
                Start::Method(_) => None,
            };
            let t0 = Instant::now();
            let fit = match (&weights, &given) {
                (Some(w), g) => {
                    let wd = Weighted::new(&points, w).map_err(|e| core_error(e, data))?;
                    match g {
                        Some(g) => g.refine(&wd, &cfg, &mut rec),
                        None => Model::fit_traced(&wd, &cfg, &mut rec),
                    }
                }
                (None, Some(g)) => g.refine(&*points, &cfg, &mut rec),
                (None, None) => Model::fit_traced(&*points, &cfg, &mut rec),
            };
            let fit_seconds = t0.elapsed().as_secs_f64();
            let fit = fit.map_err(|e| core_error(e, data))?;
            let r = fit.report;
            Ok(Outcome {
                engine,
                mixture: from_core(&fit.model),
                n_iter: r.n_iter as usize,
                converged: r.converged,
                log_likelihood: f64::from(r.log_likelihood),
                mean_log_likelihood: f64::from(r.mean_log_likelihood),
                total_weight: f64::from(r.total_weight),
                restart: r.restart as usize,
                failed_restarts: r.failed_restarts as usize,
                trace: rec.rows,
                fit_seconds,
            })
        }
        Engine::Reference => {
            let rc = RefConfig {
                tol: s.tol,
                max_iter: s.max_iter,
                reg_covar: s.reg_covar,
            };
            let starts: Vec<Result<Mixture64, CliError>> = match &s.start {
                Start::Given(m) => vec![Ok(m.clone())],
                Start::Method(method) => (0..s.n_init)
                    .map(|r| core_start(data, s, *method, r))
                    .collect::<Result<_, _>>()?,
            };
            let (points, weights) = (data.wide_points(), data.wide_weights());
            let t0 = Instant::now();
            let mut best: Option<(usize, reference::RefFit)> = None;
            let mut failed = 0;
            let mut last_error = None;
            let mut trace = Vec::new();
            for (r, start) in starts.iter().enumerate() {
                on_progress(r, 0);
                let start = match start {
                    Ok(m) => m,
                    Err(e) => {
                        failed += 1;
                        last_error = Some(e.clone());
                        continue;
                    }
                };
                match reference::fit(&points, weights.as_deref(), start, &rc) {
                    Ok(f) => {
                        for (i, (ll, w)) in f.trace.iter().zip(&f.weights_trace).enumerate() {
                            trace.push(TraceRow {
                                restart: r,
                                iteration: i,
                                mean_log_likelihood: *ll,
                                weights: w.clone(),
                            });
                        }
                        if best
                            .as_ref()
                            .is_none_or(|(_, b)| f.log_likelihood > b.log_likelihood)
                        {
                            best = Some((r, f));
                        }
                    }
                    Err(e) => {
                        failed += 1;
                        last_error = Some(reference_error(e, data));
                    }
                }
            }
            let fit_seconds = t0.elapsed().as_secs_f64();
            let Some((restart, f)) = best else {
                return Err(last_error.unwrap_or_else(|| reference_error(RefError::Diverged, data)));
            };
            Ok(Outcome {
                engine,
                mixture: f.mixture,
                n_iter: f.n_iter,
                converged: f.converged,
                log_likelihood: f.log_likelihood,
                mean_log_likelihood: f.mean_log_likelihood,
                total_weight: data.total_weight(),
                restart,
                failed_restarts: failed,
                trace,
                fit_seconds,
            })
        }
    }
}

/// Whether every number of the mixture is finite.
#[must_use]
pub fn all_finite(m: &Mixture64) -> bool {
    m.weights.iter().all(|v| v.is_finite())
        && m.means.iter().flatten().all(|v| v.is_finite())
        && m.covariances
            .iter()
            .flatten()
            .flatten()
            .all(|v| v.is_finite())
}

/// The permutation `perm` of the fitted components that best matches the
/// true ones (`fitted[perm[j]]` goes with `truth[j]`), minimising the sum
/// of squared distances between means; brute force over all permutations
/// (k <= 8). `None` when k differs or exceeds 8.
#[must_use]
pub fn match_components(truth: &Mixture64, fitted: &Mixture64) -> Option<Vec<usize>> {
    let k = truth.k();
    if k != fitted.k() || k > 8 {
        return None;
    }
    let cost = |j: usize, i: usize| {
        let (a, b) = (truth.means[j], fitted.means[i]);
        (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)
    };
    let mut perm: Vec<usize> = (0..k).collect();
    let mut best = (f64::INFINITY, perm.clone());
    permute(&mut perm, 0, &mut |p| {
        let c: f64 = p.iter().enumerate().map(|(j, &i)| cost(j, i)).sum();
        if c < best.0 {
            best = (c, p.to_vec());
        }
    });
    Some(best.1)
}

/// Calls `f` on every permutation of `v[at..]` (Heap-like recursion by swaps).
fn permute(v: &mut Vec<usize>, at: usize, f: &mut dyn FnMut(&[usize])) {
    if at == v.len() {
        f(v);
        return;
    }
    for i in at..v.len() {
        v.swap(at, i);
        permute(v, at + 1, f);
        v.swap(at, i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_finds_the_permutation() {
        let truth = Mixture64::seed_mixture();
        let mut fitted = truth.clone();
        // Fitted order: truth 2, truth 0, truth 1, means nudged.
        fitted.means = vec![[4.1, 0.1], [-3.9, 0.0], [0.0, 3.8]];
        fitted.weights = vec![0.2, 0.3, 0.5];
        assert_eq!(match_components(&truth, &fitted), Some(vec![1, 2, 0]));
    }

    #[test]
    fn core_round_trip_is_exact_for_f32_values() {
        let m = Mixture64::seed_mixture();
        let back = from_core(&to_core(&m).unwrap());
        for (a, b) in m.weights.iter().zip(&back.weights) {
            assert!((a - b).abs() < 1e-7);
        }
        assert_eq!(back.means, m.means);
        assert_eq!(back.covariances, m.covariances);
    }
}
