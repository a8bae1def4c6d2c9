//! Streaming (stepwise) EM: learn a mixture one sample at a time in O(K)
//! memory, score anomalies, follow a drifting sensor.
//!
//! The model keeps, per component, the running sufficient statistics of
//! stepwise EM (Cappé & Moulines 2009; Liang & Klein 2009):
//! `s <- s + gamma_t (s_bar(x; theta) - s)`, `theta = M(s)`, where `s_bar`
//! is the per-sample statistic (responsibility `r_j`, `r_j x`,
//! `r_j x x^T`). They are stored centred, as (mass, mean, scatter), and
//! updated like a weighted Welford merge, so that f32 keeps the variance
//! of data far from the origin. After each update the mixture is
//! recomputed from them: `w_j = s0_j / sum s0`, `mu_j` the running mean,
//! `S_j = scatter_j / s0_j + reg_covar I`.

use crate::{Gaussian, Gmm, GmmError, P2Quantile, Point, SymMat2};

/// The step size `gamma_t` of update `t = 1, 2, ...`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StepSchedule {
    /// `gamma_t = (t + t0)^(-alpha)`, `alpha` in `(0.5, 1]`: converges on a
    /// stationary stream (Robbins-Monro conditions). `alpha = 1` is the
    /// running average of the per-sample statistics (every sample counts
    /// the same: best on stationary data, does not follow drift); smaller
    /// `alpha` forgets faster (`gamma_t` near 0.003 at t = 20 000 for
    /// 0.6): noisier estimates, some tracking. A drifting sensor wants
    /// [`StepSchedule::Constant`].
    Decaying {
        /// The exponent, in `(0.5, 1]`.
        alpha: f32,
        /// The offset, `>= 0`; larger values make early steps smaller.
        t0: f32,
    },
    /// `gamma_t = gamma`: an exponential forgetting factor with memory of
    /// about `1 / gamma` samples; follows a drifting sensor, never settles
    /// below the noise of that window.
    Constant(f32),
}

impl StepSchedule {
    /// `gamma_t`.
    #[must_use]
    pub fn step(self, t: u32) -> f32 {
        match self {
            Self::Decaying { alpha, t0 } => libm::powf(t as f32 + t0, -alpha),
            Self::Constant(g) => g,
        }
    }

    fn validate(self) -> Result<(), GmmError> {
        let ok = match self {
            Self::Decaying { alpha, t0 } => {
                alpha > 0.5 && alpha <= 1.0 && t0 >= 0.0 && t0.is_finite()
            }
            Self::Constant(g) => g > 0.0 && g < 1.0,
        };
        if ok {
            Ok(())
        } else {
            Err(GmmError::InvalidConfig {
                reason: "step schedule: alpha must be in (0.5, 1] with t0 >= 0, or a constant step in (0, 1)",
            })
        }
    }
}

/// How a streaming model learns and flags.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StreamConfig {
    /// Step sizes.
    pub schedule: StepSchedule,
    /// Added to every covariance diagonal.
    pub reg_covar: f32,
    /// A component whose mass `s0_j` falls below this is re-seeded at the
    /// current sample.
    pub min_mass: f32,
    /// The false-alarm rate the anomaly threshold is set for: samples whose
    /// log-density falls below the running `false_alarm_rate`-quantile of
    /// the log-densities seen are flagged.
    pub false_alarm_rate: f32,
    /// Updates counted as already seen when starting from a model (the
    /// `t` of the first update is this plus one): a warm start from a
    /// batch fit of M points should say M, so the first steps do not
    /// throw it away.
    pub prior_updates: u32,
}

impl StreamConfig {
    /// Decaying steps with `alpha = 0.9`, `t0 = 2`; `reg_covar = 1e-6`;
    /// `min_mass = 1e-4`; 1% false alarms; no prior updates.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            schedule: StepSchedule::Decaying {
                alpha: 0.9,
                t0: 2.0,
            },
            reg_covar: 1e-6,
            min_mass: 1e-4,
            false_alarm_rate: 0.01,
            prior_updates: 0,
        }
    }

    /// With the step schedule `schedule`.
    #[must_use]
    pub const fn with_schedule(mut self, schedule: StepSchedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// With `reg_covar`.
    #[must_use]
    pub const fn with_reg_covar(mut self, reg_covar: f32) -> Self {
        self.reg_covar = reg_covar;
        self
    }

    /// With the anomaly false-alarm rate.
    #[must_use]
    pub const fn with_false_alarm_rate(mut self, rate: f32) -> Self {
        self.false_alarm_rate = rate;
        self
    }

    /// With `prior_updates` counted as seen.
    #[must_use]
    pub const fn with_prior_updates(mut self, n: u32) -> Self {
        self.prior_updates = n;
        self
    }

    /// Checks every value.
    ///
    /// # Errors
    /// [`GmmError::InvalidConfig`] naming the bad field.
    pub fn validate(&self) -> Result<(), GmmError> {
        self.schedule.validate()?;
        if !(self.reg_covar >= 0.0 && self.reg_covar.is_finite()) {
            return Err(GmmError::InvalidConfig {
                reason: "reg_covar must be finite and >= 0",
            });
        }
        if !(self.min_mass >= 0.0 && self.min_mass < 1.0) {
            return Err(GmmError::InvalidConfig {
                reason: "min_mass must be in [0, 1)",
            });
        }
        if !(self.false_alarm_rate > 0.0 && self.false_alarm_rate < 1.0) {
            return Err(GmmError::InvalidConfig {
                reason: "false_alarm_rate must be in (0, 1)",
            });
        }
        Ok(())
    }
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// One component's running statistics: mass `s0`, mean, and scatter
/// `sum r (x - mean)(x - mean)^T` in the same (normalised) units as `s0`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
struct Running {
    mass: f32,
    mean: Point,
    scatter: SymMat2,
}

/// What one update saw.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Update {
    /// `ln p(x)` under the model before the update (the anomaly score).
    pub log_density: f32,
    /// Whether `log_density` is below the anomaly threshold in force
    /// before the update.
    pub anomaly: bool,
    /// The step size used.
    pub step: f32,
}

/// A Gaussian mixture learnt from a stream, one sample (or mini-batch) at
/// a time, in O(K) memory.
///
/// # Examples
/// ```
/// use gmm_core::{Gmm, StepSchedule, StreamConfig, StreamingGmm, SymMat2};
/// let start = Gmm::<2>::new(&[0.5, 0.5], &[[-1.0, 0.0], [1.0, 0.0]], &[SymMat2::IDENTITY; 2])?;
/// let config = StreamConfig::new().with_schedule(StepSchedule::Constant(0.01));
/// let mut stream = StreamingGmm::from_model(&start, &config)?;
/// for i in 0..2000 {
///     let x = if i % 2 == 0 { -3.0 } else { 3.0 };
///     stream.update([x + (i % 7) as f32 * 0.1, 0.0])?;
/// }
/// let m = stream.model().components()[1].mean();
/// assert!((m[0] - 3.3).abs() < 0.2);
/// # Ok::<(), gmm_core::GmmError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StreamingGmm<const K: usize> {
    model: Gmm<K>,
    stats: [Running; K],
    config: StreamConfig,
    t: u32,
    n_seen: u64,
    n_rejected: u64,
    reseeded: u32,
    floored: u32,
    scores: P2Quantile,
    threshold_frozen: bool,
}

impl<const K: usize> StreamingGmm<K> {
    /// Starts from a model (for example a batch fit of the first samples):
    /// its weights, means and covariances become the running statistics.
    ///
    /// # Errors
    /// [`GmmError::InvalidConfig`] from [`StreamConfig::validate`].
    pub fn from_model(model: &Gmm<K>, config: &StreamConfig) -> Result<Self, GmmError> {
        config.validate()?;
        let mut stats = [Running {
            mass: 0.0,
            mean: [0.0; 2],
            scatter: SymMat2::ZERO,
        }; K];
        for (s, (g, &w)) in stats
            .iter_mut()
            .zip(model.components().iter().zip(model.weights()))
        {
            let c = g.covariance();
            // The covariance without its regularisation, never below 0.
            let strip = |v: f32| {
                let u = v - config.reg_covar;
                if u > 0.0 { u } else { 0.0 }
            };
            *s = Running {
                mass: w,
                mean: g.mean(),
                scatter: SymMat2::new(strip(c.xx), c.xy, strip(c.yy)).scale(w),
            };
        }
        Ok(Self {
            model: *model,
            stats,
            config: *config,
            t: config.prior_updates,
            n_seen: 0,
            n_rejected: 0,
            reseeded: 0,
            floored: 0,
            scores: P2Quantile::new(config.false_alarm_rate),
            threshold_frozen: false,
        })
    }

    /// The live mixture.
    #[must_use]
    pub const fn model(&self) -> &Gmm<K> {
        &self.model
    }

    /// Samples accepted so far.
    #[must_use]
    pub const fn n_seen(&self) -> u64 {
        self.n_seen
    }

    /// Samples rejected (non-finite or out of range) so far.
    #[must_use]
    pub const fn n_rejected(&self) -> u64 {
        self.n_rejected
    }

    /// Components re-seeded so far because their mass fell below
    /// `min_mass`.
    #[must_use]
    pub const fn reseeded(&self) -> u32 {
        self.reseeded
    }

    /// Covariances that stopped being positive definite in f32 (a far
    /// outlier's scatter swamping the rest) and were replaced by their
    /// floored diagonal, as in the batch M-step.
    #[must_use]
    pub const fn floored(&self) -> u32 {
        self.floored
    }

    /// `ln p(x)` under the live model.
    #[must_use]
    pub fn log_density(&self, x: Point) -> f32 {
        self.model.log_density(x)
    }

    /// The anomaly threshold: the running `false_alarm_rate`-quantile of
    /// the log-densities of the samples seen, each scored before the model
    /// learnt from it (`None` before any). Anomalies count too: a burst of
    /// them lowers the threshold and can mask itself, unless the threshold
    /// was frozen ([`freeze_threshold`](Self::freeze_threshold)) after a
    /// clean calibration period. The model itself does learn
    /// from every sample passed to [`update`](Self::update): to keep
    /// anomalies out of it, check [`is_anomaly`](Self::is_anomaly) first.
    #[must_use]
    pub fn threshold(&self) -> Option<f32> {
        self.scores.estimate()
    }

    /// Whether `x` scores below the threshold (false before any sample).
    #[must_use]
    pub fn is_anomaly(&self, x: Point) -> bool {
        self.threshold().is_some_and(|t| self.log_density(x) < t)
    }

    /// Learns from one sample: responsibilities under the live model,
    /// one stepwise-EM step, the mixture recomputed. The sample's
    /// log-density before the step feeds the anomaly threshold.
    ///
    /// # Errors
    /// [`GmmError::NonFinitePoint`] or [`GmmError::PointOutOfRange`] (with
    /// the index of the sample in the stream) for a sample that is
    /// rejected, counted, and leaves the model untouched;
    /// [`GmmError::SingularCovariance`] if a covariance is singular even
    /// after flooring (only with `reg_covar = 0`), also leaving the model
    /// untouched. A covariance that stops being positive definite in f32
    /// (one far outlier's scatter swamping the rest) is floored like the
    /// batch M-step does and counted in [`floored`](Self::floored).
    pub fn update(&mut self, x: Point) -> Result<Update, GmmError> {
        self.check(x)?;
        let (proba, log_density) = self.model.posterior(x);
        let anomaly = self.threshold().is_some_and(|t| log_density < t);
        let step = self.config.schedule.step(self.t.saturating_add(1));
        let mut next = self.stats;
        for (s, &r) in next.iter_mut().zip(&proba).take(self.model.k()) {
            merge(s, step, r, x, SymMat2::ZERO);
        }
        self.commit(next, x)?;
        self.push_score(log_density);
        Ok(Update {
            log_density,
            anomaly,
            step,
        })
    }

    /// Learns from a mini-batch with one step: the batch's average
    /// statistics replace the single sample's. Non-finite or out-of-range
    /// samples reject the whole batch (the error names the first).
    ///
    /// # Errors
    /// As [`StreamingGmm::update`]; an empty batch is
    /// [`GmmError::ZeroTotalWeight`].
    pub fn update_batch(&mut self, batch: &[Point]) -> Result<f32, GmmError> {
        for (i, &x) in batch.iter().enumerate() {
            if let Err(e) = self.check_at(x, self.n_seen + i as u64) {
                self.n_rejected += batch.len() as u64;
                return Err(e);
            }
        }
        let Some(&last) = batch.last() else {
            return Err(GmmError::ZeroTotalWeight);
        };
        // Per component: sum r, mean and scatter of the batch (Welford).
        let mut acc = [Running {
            mass: 0.0,
            mean: [0.0; 2],
            scatter: SymMat2::ZERO,
        }; K];
        for &x in batch {
            let (proba, log_density) = self.model.posterior(x);
            for (a, &r) in acc.iter_mut().zip(&proba).take(self.model.k()) {
                merge(a, 0.0, r, x, SymMat2::ZERO);
            }
            self.push_score(log_density);
        }
        let step = self.config.schedule.step(self.t.saturating_add(1));
        let m = batch.len() as f32;
        let mut next = self.stats;
        for (s, a) in next.iter_mut().zip(&acc).take(self.model.k()) {
            // Normalised per sample: mass r_bar = sum r / m, scatter / m.
            merge(s, step, a.mass / m, a.mean, a.scatter.scale(1.0 / m));
        }
        self.commit(next, last)?;
        self.n_seen += batch.len() as u64 - 1;
        Ok(step)
    }

    /// Feeds the threshold's quantile unless it is frozen.
    ///
    /// Clamping low scores at the threshold (so anomalies could not pull
    /// it down) was tried and rejected: it removes the force that pulls an
    /// overshooting estimate back, and the threshold ratcheted up to the
    /// median (51% false alarms in `tests/stream.rs`).
    fn push_score(&mut self, log_density: f32) {
        if !self.threshold_frozen {
            self.scores.push(log_density);
        }
    }

    /// Stops the anomaly threshold from adapting: call it once the stream
    /// is known to be clean (after a calibration period), so a later burst
    /// of anomalies cannot lower the threshold and mask itself.
    pub fn freeze_threshold(&mut self) {
        self.threshold_frozen = true;
    }

    /// Lets the anomaly threshold adapt again.
    pub fn unfreeze_threshold(&mut self) {
        self.threshold_frozen = false;
    }

    fn check(&mut self, x: Point) -> Result<(), GmmError> {
        let r = self.check_at(x, self.n_seen + self.n_rejected);
        if r.is_err() {
            self.n_rejected += 1;
        }
        r
    }

    fn check_at(&self, x: Point, index: u64) -> Result<(), GmmError> {
        crate::em::check_point(x, index as usize)
    }

    /// Re-seeds starving components, recomputes the mixture and keeps it
    /// only if every component is valid.
    fn commit(&mut self, mut next: [Running; K], at: Point) -> Result<(), GmmError> {
        let k = self.model.k();
        let mut reseeded = 0;
        let mut floored = 0;
        // The mass-weighted mean covariance of the healthy components, the
        // shape a re-seeded component starts with.
        let mut pooled = SymMat2::ZERO;
        let mut healthy = 0.0f32;
        for s in next.iter().take(k) {
            if s.mass >= self.config.min_mass {
                pooled = pooled + s.scatter;
                healthy += s.mass;
            }
        }
        let pooled = if healthy > 0.0 {
            pooled.scale(1.0 / healthy)
        } else {
            SymMat2::IDENTITY
        };
        for s in next.iter_mut().take(k) {
            if !(s.mass >= self.config.min_mass) {
                let mass = if self.config.min_mass > 0.0 {
                    10.0 * self.config.min_mass
                } else {
                    1e-3
                };
                *s = Running {
                    mass,
                    mean: at,
                    scatter: pooled.scale(mass),
                };
                reseeded += 1;
            }
        }
        let mut weights = [0.0f32; K];
        let mut gaussians = [Gaussian::STANDARD; K];
        let mut total = 0.0f32;
        for (j, ((s, w), g)) in next
            .iter()
            .zip(weights.iter_mut())
            .zip(gaussians.iter_mut())
            .take(k)
            .enumerate()
        {
            let cov = s.scatter.scale(1.0 / s.mass);
            let reg = self.config.reg_covar;
            let (gaussian, was_floored) = crate::gaussian::regularised(s.mean, cov, reg, reg)
                .ok_or(GmmError::SingularCovariance { component: j })?;
            floored += u32::from(was_floored);
            *g = gaussian;
            *w = s.mass;
            total += s.mass;
        }
        if !(total > 0.0 && total.is_finite()) {
            return Err(GmmError::Diverged);
        }
        for w in weights.iter_mut().take(k) {
            *w /= total;
        }
        self.model = Gmm::from_parts(k, weights, gaussians);
        self.stats = next;
        self.t = self.t.saturating_add(1);
        self.n_seen += 1;
        self.reseeded += reseeded;
        self.floored += floored;
        Ok(())
    }
}

/// `s <- (1 - gamma) s + gamma (mass r, mean x, scatter c)`, in centred
/// form: the Welford merge of the decayed running group with the new one.
/// With `gamma = 0` this accumulates unnormalised (for batch sums).
#[inline]
fn merge(s: &mut Running, gamma: f32, r: f32, x: Point, c: SymMat2) {
    let (a, b) = if gamma > 0.0 {
        ((1.0 - gamma) * s.mass, gamma * r)
    } else {
        (s.mass, r)
    };
    let decay = if gamma > 0.0 { 1.0 - gamma } else { 1.0 };
    let total = a + b;
    if !(total > 0.0) {
        s.mass = total;
        s.scatter = s.scatter.scale(decay);
        return;
    }
    let f = b / total;
    let d = [x[0] - s.mean[0], x[1] - s.mean[1]];
    let mean = [s.mean[0] + f * d[0], s.mean[1] + f * d[1]];
    let ab = a * f;
    let bc = if gamma > 0.0 { c.scale(gamma) } else { c };
    s.scatter = s.scatter.scale(decay)
        + bc
        + SymMat2::new(ab * d[0] * d[0], ab * d[0] * d[1], ab * d[1] * d[1]);
    s.mass = total;
    s.mean = mean;
}

/// Collects the first `M` samples, fits them with batch EM, and hands over
/// a [`StreamingGmm`] started from that fit (with `prior_updates = M`).
///
/// The buffer is a fixed-capacity `heapless::Vec`; it is the only memory
/// that depends on `M`, and it is dropped once the stream starts.
#[derive(Clone, Debug)]
pub struct Warmup<const K: usize, const M: usize> {
    buffer: heapless::Vec<Point, M>,
    /// Samples offered so far, rejected ones included.
    offered: usize,
    fit: crate::FitConfig,
    stream: StreamConfig,
}

impl<const K: usize, const M: usize> Warmup<K, M> {
    /// Warm-up with the batch configuration `fit` (its `k` components,
    /// k-means++ or another init, restarts) and the stream configuration
    /// `stream`.
    ///
    /// # Errors
    /// Invalid configurations; `M` smaller than `fit.k`.
    pub fn new(fit: &crate::FitConfig, stream: &StreamConfig) -> Result<Self, GmmError> {
        fit.validate()?;
        stream.validate()?;
        if fit.k == 0 || fit.k > K {
            return Err(GmmError::InvalidK {
                k: fit.k,
                capacity: K,
            });
        }
        if M < fit.k {
            return Err(GmmError::TooFewPoints {
                points: M,
                components: fit.k,
            });
        }
        Ok(Self {
            buffer: heapless::Vec::new(),
            offered: 0,
            fit: *fit,
            stream: stream.with_prior_updates(M as u32),
        })
    }

    /// Adds a sample; returns the started stream once `M` samples are in.
    ///
    /// # Errors
    /// A non-finite or out-of-range sample is rejected
    /// ([`GmmError::NonFinitePoint`], [`GmmError::PointOutOfRange`] with its
    /// index among all samples offered) and not buffered; the batch fit's
    /// errors when it fails.
    pub fn push(&mut self, x: Point) -> Result<Option<StreamingGmm<K>>, GmmError> {
        self.push_with(x, |data, config| {
            Gmm::<K>::fit(data, config).map(|f| f.model)
        })
    }

    /// [`Warmup::push`] with the batch fit in the caller's
    /// [`Workspace`](crate::Workspace) (see [`Gmm::fit_in`]): the same
    /// stream, bit for bit, and the fit that ends the warm-up does not
    /// put a workspace on the stack.
    ///
    /// # Errors
    /// As [`Warmup::push`].
    pub fn push_in(
        &mut self,
        ws: &mut crate::Workspace<K>,
        x: Point,
    ) -> Result<Option<StreamingGmm<K>>, GmmError> {
        self.push_with(x, |data, config| {
            Gmm::<K>::fit_in(ws, data, config).map(|f| f.model)
        })
    }

    fn push_with(
        &mut self,
        x: Point,
        fit: impl FnOnce(&[Point], &crate::FitConfig) -> Result<Gmm<K>, GmmError>,
    ) -> Result<Option<StreamingGmm<K>>, GmmError> {
        let index = self.offered;
        self.offered += 1;
        crate::em::check_point(x, index)?;
        if self.buffer.push(x).is_err() || self.buffer.len() == M {
            let model = fit(&self.buffer, &self.fit)?;
            let mut stream = StreamingGmm::from_model(&model, &self.stream)?;
            for &p in &self.buffer {
                stream.scores.push(model.log_density(p));
            }
            stream.n_seen = M as u64;
            self.buffer.clear();
            return Ok(Some(stream));
        }
        Ok(None)
    }
}
