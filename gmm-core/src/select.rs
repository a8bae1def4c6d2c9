//! Choosing the number of components by an information criterion.

use crate::{FitConfig, FitReport, Gmm, GmmError, Points, Trace, Workspace};

/// Which criterion picks k (lower is better for both).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Criterion {
    /// Bayesian information criterion, `-2 ln L + (6k - 1) ln n`. The default.
    #[default]
    Bic,
    /// Akaike information criterion, `-2 ln L + 2 (6k - 1)`.
    Aic,
}

/// One row of the model-selection table.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SelectionRow {
    /// Components.
    pub k: usize,
    /// Total log-likelihood of the best restart.
    pub log_likelihood: f32,
    /// Its BIC.
    pub bic: f32,
    /// Its AIC.
    pub aic: f32,
    /// Its EM iterations.
    pub n_iter: u32,
    /// Whether it converged.
    pub converged: bool,
}

/// The table over k = 1..=k_max and the chosen model.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Selection<const K: usize> {
    /// One row per k that could be fitted, in increasing k.
    pub rows: heapless::Vec<SelectionRow, K>,
    /// The k with the lowest criterion.
    pub best_k: usize,
    /// The model fitted with `best_k` components.
    pub best: Gmm<K>,
    /// Its report.
    pub report: FitReport,
}

/// Fits every k in `1..=k_max` with `config` (its `k` is ignored) and picks
/// the k with the lowest `criterion`.
///
/// A k whose every restart fails (singular or diverged) is left out of the
/// table; k larger than the number of points is not tried.
///
/// # Errors
/// [`GmmError::InvalidK`] when `k_max` is 0 or above `K`; the input and
/// configuration errors of [`Gmm::fit`]; the last fit error when no k
/// could be fitted.
///
/// # Examples
/// ```
/// use gmm_core::{Criterion, FitConfig, select_k};
/// // Two blobs of 50 points on a jittered grid.
/// let points: [[f32; 2]; 100] = core::array::from_fn(|i| {
///     let (a, b) = ((i % 7) as f32 * 0.3, (i % 11) as f32 * 0.2);
///     if i < 50 { [a, b] } else { [8.0 + b, 8.0 - a] }
/// });
/// let sel = select_k::<3, _>(&points, &FitConfig::new(1).with_n_init(2), 3, Criterion::Bic)?;
/// assert_eq!(sel.rows.len(), 3);
/// assert_eq!(sel.best_k, 2);
/// # Ok::<(), gmm_core::GmmError>(())
/// ```
pub fn select_k<const K: usize, P: Points + ?Sized>(
    data: &P,
    config: &FitConfig,
    k_max: usize,
    criterion: Criterion,
) -> Result<Selection<K>, GmmError> {
    select_k_traced(data, config, k_max, criterion, &mut ())
}

/// [`select_k`], calling `trace` for every iteration of every restart of
/// every k (the length of the weights slice tells which k).
///
/// # Errors
/// As [`select_k`].
pub fn select_k_traced<const K: usize, P: Points + ?Sized, T: Trace + ?Sized>(
    data: &P,
    config: &FitConfig,
    k_max: usize,
    criterion: Criterion,
    trace: &mut T,
) -> Result<Selection<K>, GmmError> {
    select_k_traced_in(&mut Workspace::new(), data, config, k_max, criterion, trace)
}

/// [`select_k`] in the caller's [`Workspace`] (see [`Gmm::fit_in`]).
///
/// # Errors
/// As [`select_k`].
pub fn select_k_in<const K: usize, P: Points + ?Sized>(
    ws: &mut Workspace<K>,
    data: &P,
    config: &FitConfig,
    k_max: usize,
    criterion: Criterion,
) -> Result<Selection<K>, GmmError> {
    select_k_traced_in(ws, data, config, k_max, criterion, &mut ())
}

/// [`select_k_traced`] in the caller's [`Workspace`].
///
/// # Errors
/// As [`select_k`].
pub fn select_k_traced_in<const K: usize, P: Points + ?Sized, T: Trace + ?Sized>(
    ws: &mut Workspace<K>,
    data: &P,
    config: &FitConfig,
    k_max: usize,
    criterion: Criterion,
    trace: &mut T,
) -> Result<Selection<K>, GmmError> {
    if k_max == 0 || k_max > K {
        return Err(GmmError::InvalidK {
            k: k_max,
            capacity: K,
        });
    }
    let mut rows = heapless::Vec::new();
    let mut best: Option<(f32, crate::Fit<K>)> = None;
    let mut last_error = GmmError::Diverged;
    for k in 1..=k_max {
        match Gmm::<K>::fit_traced_in(ws, data, &config.with_k(k), trace) {
            Ok(&fit) => {
                let r = fit.report;
                let row = SelectionRow {
                    k,
                    log_likelihood: r.log_likelihood,
                    bic: r.bic(),
                    aic: r.aic(),
                    n_iter: r.n_iter,
                    converged: r.converged,
                };
                // k_max <= K, so the table never fills.
                let _ = rows.push(row);
                let value = match criterion {
                    Criterion::Bic => row.bic,
                    Criterion::Aic => row.aic,
                };
                if best.as_ref().is_none_or(|(v, _)| value < *v) {
                    best = Some((value, fit));
                }
            }
            Err(GmmError::TooFewPoints { .. }) => break,
            Err(e @ (GmmError::SingularCovariance { .. } | GmmError::Diverged)) => last_error = e,
            Err(e) => return Err(e),
        }
    }
    let (_, fit) = best.ok_or(last_error)?;
    Ok(Selection {
        rows,
        best_k: fit.model.k(),
        best: fit.model,
        report: fit.report,
    })
}
