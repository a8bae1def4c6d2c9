//! How a fit is run: the knobs, their defaults and their validation.

use crate::{ExpMode, GmmError};

/// How EM picks its starting parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum InitMethod {
    /// k-means++ seeding (D^2 sampling) of k centres, then one M-step from
    /// the hard assignment of every point to its nearest centre (like
    /// scikit-learn's `init_params="k-means++"`). The default.
    #[default]
    KMeansPlusPlus,
    /// k distinct data points drawn uniformly as centres, then the same
    /// hard-assignment M-step.
    RandomFromData,
    /// The course notebook's start: uniform weights, means drawn from a
    /// standard normal, identity covariances. Poor on data far from the
    /// origin; kept to reproduce the notebook.
    StandardNormal,
}

/// The parameters of an EM fit.
///
/// Defaults follow scikit-learn's `GaussianMixture`: `tol = 1e-3`,
/// `max_iter = 100`, `reg_covar = 1e-6`, `n_init = 1`.
///
/// # Examples
/// ```
/// use gmm_core::{FitConfig, InitMethod};
/// let config = FitConfig::new(3).with_n_init(4).with_seed(7).with_tol(1e-4);
/// assert!(config.validate().is_ok());
/// assert!(FitConfig::new(3).with_tol(-1.0).validate().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FitConfig {
    /// Number of components, `1..=K`.
    pub k: usize,
    /// Stop when the mean log-likelihood per point changes by at most this
    /// between iterations. `0` runs `max_iter` iterations unless a fixed
    /// point is reached exactly.
    pub tol: f32,
    /// Maximum number of EM iterations (M-steps) per restart. `0` returns
    /// the initial parameters.
    pub max_iter: u32,
    /// Added to the diagonal of every covariance; keeps them positive
    /// definite.
    pub reg_covar: f32,
    /// Number of restarts, each from its own random stream; the best
    /// final log-likelihood wins.
    pub n_init: u32,
    /// How each restart starts.
    pub init: InitMethod,
    /// Seed of the random streams (restart `r` uses the `r`-th jump of a
    /// xoshiro128++ generator seeded from this).
    pub seed: u64,
    /// The `exp` of the E-step.
    pub exp: ExpMode,
}

impl FitConfig {
    /// scikit-learn's defaults for `k` components.
    #[must_use]
    pub const fn new(k: usize) -> Self {
        Self {
            k,
            tol: 1e-3,
            max_iter: 100,
            reg_covar: 1e-6,
            n_init: 1,
            init: InitMethod::KMeansPlusPlus,
            seed: 0,
            exp: ExpMode::Libm,
        }
    }

    /// With `k` components.
    #[must_use]
    pub const fn with_k(mut self, k: usize) -> Self {
        self.k = k;
        self
    }

    /// With tolerance `tol`.
    #[must_use]
    pub const fn with_tol(mut self, tol: f32) -> Self {
        self.tol = tol;
        self
    }

    /// With at most `max_iter` iterations.
    #[must_use]
    pub const fn with_max_iter(mut self, max_iter: u32) -> Self {
        self.max_iter = max_iter;
        self
    }

    /// With `reg_covar` added to every covariance diagonal.
    #[must_use]
    pub const fn with_reg_covar(mut self, reg_covar: f32) -> Self {
        self.reg_covar = reg_covar;
        self
    }

    /// With `n_init` restarts.
    #[must_use]
    pub const fn with_n_init(mut self, n_init: u32) -> Self {
        self.n_init = n_init;
        self
    }

    /// With the initialisation `init`.
    #[must_use]
    pub const fn with_init(mut self, init: InitMethod) -> Self {
        self.init = init;
        self
    }

    /// With random seed `seed`.
    #[must_use]
    pub const fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// With the E-step exponential `exp`.
    #[must_use]
    pub const fn with_exp(mut self, exp: ExpMode) -> Self {
        self.exp = exp;
        self
    }

    /// Checks every value (but not `k` against a capacity, which the fit
    /// does).
    ///
    /// # Errors
    /// [`GmmError::InvalidConfig`] naming the first bad field.
    pub fn validate(&self) -> Result<(), GmmError> {
        if self.k == 0 {
            return Err(GmmError::InvalidConfig {
                reason: "k must be >= 1",
            });
        }
        if !(self.tol >= 0.0 && self.tol.is_finite()) {
            return Err(GmmError::InvalidConfig {
                reason: "tol must be finite and >= 0",
            });
        }
        if !(self.reg_covar >= 0.0 && self.reg_covar.is_finite()) {
            return Err(GmmError::InvalidConfig {
                reason: "reg_covar must be finite and >= 0",
            });
        }
        if self.n_init == 0 {
            return Err(GmmError::InvalidConfig {
                reason: "n_init must be >= 1",
            });
        }
        Ok(())
    }
}

impl Default for FitConfig {
    fn default() -> Self {
        Self::new(1)
    }
}
