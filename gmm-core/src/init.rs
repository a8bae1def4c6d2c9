//! Where EM starts: k-means++ seeding, random data points, or the
//! notebook's standard-normal means. All in O(K) memory, a few passes.

use crate::em::{Guards, Pass, Summary, Workspace, m_step_into};
use crate::sample::{below, standard_normal_pair, uniform};
use crate::{FitConfig, Gmm, GmmError, InitMethod, Point, Points, SymMat2};
use rand_core::Rng;

/// Starting parameters for one restart, into `ws.model`.
pub(crate) fn initialise<const K: usize, P: Points + ?Sized, R: Rng + ?Sized>(
    data: &P,
    summary: &Summary,
    config: &FitConfig,
    rng: &mut R,
    ws: &mut Workspace<K>,
) -> Result<(), GmmError> {
    let k = config.k;
    // The centres go straight into the pass's sums, which the hard
    // assignment starts from; each way of choosing them has its own frame,
    // off the hard assignment's path (the fit's deepest).
    let centres = &mut ws.pass.pass_mut().centres;
    match config.init {
        InitMethod::KMeansPlusPlus => {
            kmeans_plus_plus::<K, P, R>(data, summary, k, rng, centres);
            hard_assignment(data, config, ws)
        }
        InitMethod::RandomFromData => {
            random_points::<K, P, R>(data, k, rng, centres);
            hard_assignment(data, config, ws)
        }
        InitMethod::StandardNormal => standard_normal_means(k, rng, &mut ws.model),
    }
}

/// The notebook's start, into `out`: equal weights, standard-normal
/// means, identity covariances, through [`Gmm::assign`] (`Gmm::new`
/// returning a model to copy made a frame of 928 bytes on a Cortex-M at
/// opt-level 3).
fn standard_normal_means<const K: usize, R: Rng + ?Sized>(
    k: usize,
    rng: &mut R,
    out: &mut Gmm<K>,
) -> Result<(), GmmError> {
    let mut means = [[0.0f32; 2]; K];
    for m in means.iter_mut().take(k) {
        *m = standard_normal_pair(rng);
    }
    let weights = [1.0 / k as f32; K];
    let covs = [SymMat2::IDENTITY; K];
    out.assign(
        weights.get(..k).unwrap_or(&[]),
        means.get(..k).unwrap_or(&[]),
        covs.get(..k).unwrap_or(&[]),
    )
}

/// Squared distance from `p` to the nearest of `centres`.
#[inline]
fn nearest(p: Point, centres: &[Point]) -> (usize, f32) {
    let mut best = (0, f32::INFINITY);
    for (j, c) in centres.iter().enumerate() {
        let (dx, dy) = (p[0] - c[0], p[1] - c[1]);
        let d2 = dx * dx + dy * dy;
        if d2 < best.1 {
            best = (j, d2);
        }
    }
    best
}

/// The first point at which the running sum of `mass` exceeds `target`
/// (the last point with positive mass if rounding never lets it).
fn pick<P: Points + ?Sized>(
    data: &P,
    target: f32,
    mut mass: impl FnMut(Point, f32) -> f32,
) -> Option<Point> {
    let mut running = 0.0f32;
    let mut chosen = None;
    let mut last = None;
    data.visit(|p, w| {
        if chosen.is_some() {
            return;
        }
        let m = mass(p, w);
        if m > 0.0 {
            running += m;
            last = Some(p);
            if running > target {
                chosen = Some(p);
            }
        }
    });
    chosen.or(last)
}

/// k-means++ (Arthur & Vassilvitskii 2007): the first centre drawn by
/// weight, each next one with probability proportional to weight times
/// squared distance to the nearest centre so far. Two passes per centre.
fn kmeans_plus_plus<const K: usize, P: Points + ?Sized, R: Rng + ?Sized>(
    data: &P,
    summary: &Summary,
    k: usize,
    rng: &mut R,
    centres: &mut [Point; K],
) {
    *centres = [summary.mean; K];
    let first = uniform(rng) * summary.total_weight;
    if let Some(c) = centres.first_mut() {
        *c = pick(data, first, |_, w| w).unwrap_or(summary.mean);
    }
    for m in 1..k.min(K) {
        let chosen = centres.get(..m).unwrap_or(&[]);
        let mut total = 0.0f32;
        data.visit(|p, w| {
            if w > 0.0 {
                total += w * nearest(p, chosen).1;
            }
        });
        let next = if total > 0.0 && total.is_finite() {
            let target = uniform(rng) * total;
            pick(data, target, |p, w| {
                if w > 0.0 {
                    w * nearest(p, chosen).1
                } else {
                    0.0
                }
            })
        } else {
            // Every point sits on a centre already: any point will do; the
            // M-step re-seeds the duplicate if it stays empty.
            pick(data, uniform(rng) * summary.total_weight, |_, w| w)
        };
        if let Some(slot) = centres.get_mut(m) {
            *slot = next.unwrap_or(summary.mean);
        }
    }
}

/// k points drawn uniformly without replacement from those with positive
/// weight (reservoir sampling, one pass).
fn random_points<const K: usize, P: Points + ?Sized, R: Rng + ?Sized>(
    data: &P,
    k: usize,
    rng: &mut R,
    chosen: &mut [Point; K],
) {
    *chosen = [[0.0f32; 2]; K];
    let mut seen = 0usize;
    data.visit(|p, w| {
        if w > 0.0 {
            let slot = if seen < k { seen } else { below(rng, seen + 1) };
            if slot < k
                && let Some(c) = chosen.get_mut(slot)
            {
                *c = p;
            }
            seen += 1;
        }
    });
}

/// Parameters from assigning every point to its nearest centre (the
/// centres of the workspace's pass): one M-step with hard
/// responsibilities, into `ws.model`.
#[inline(never)]
fn hard_assignment<const K: usize, P: Points + ?Sized>(
    data: &P,
    config: &FitConfig,
    ws: &mut Workspace<K>,
) -> Result<(), GmmError> {
    let k = config.k;
    let st = ws.pass.pass_mut();
    st.reset(k);
    let Pass {
        centres,
        moments,
        count,
        worst,
        ..
    } = st;
    let used = centres.get(..k).unwrap_or(&[]);
    data.visit(|p, w| {
        if w > 0.0 {
            *count += 1;
            let (j, d2) = nearest(p, used);
            if let (Some(m), Some(c)) = (moments.get_mut(j), used.get(j)) {
                m.add_point(w, p[0] - c[0], p[1] - c[1]);
            }
            if -d2 < worst.0 {
                *worst = (-d2, p);
            }
        }
    });
    st.finish(&mut ws.stats);
    m_step_into(
        &ws.stats,
        config.reg_covar,
        &mut Guards::default(),
        &mut ws.model,
    )
}

impl<const K: usize> crate::Gmm<K> {
    /// The starting parameters that restart `restart` (0-based) of
    /// [`Gmm::fit`](crate::Gmm::fit) with `config` begins from: lets
    /// another implementation (a reference, a test) start exactly where
    /// the core does.
    ///
    /// # Errors
    /// As [`Gmm::fit`](crate::Gmm::fit) for the data and configuration.
    pub fn initialise<P: Points + ?Sized>(
        data: &P,
        config: &FitConfig,
        restart: u32,
    ) -> Result<Self, GmmError> {
        use rand_core::SeedableRng;
        let summary = crate::em::validate::<K, P>(data, config, config.k)?;
        let mut rng = rand_xoshiro::Xoshiro128PlusPlus::seed_from_u64(config.seed);
        for _ in 0..restart {
            rng.jump();
        }
        let mut ws = Workspace::new();
        initialise(data, &summary, config, &mut rng, &mut ws)?;
        Ok(ws.model)
    }
}

#[cfg(test)]
mod tests {
    use crate::{FitConfig, Gmm};

    /// `initialise` reproduces the start of every restart of `fit`:
    /// refining it with the same configuration gives the winning fit.
    #[test]
    fn initialise_matches_fit_restarts() {
        let points: [[f32; 2]; 60] = core::array::from_fn(|i| {
            [
                (i % 6) as f32 + if i % 2 == 0 { 0.0 } else { 7.0 },
                (i / 6) as f32 * 0.5,
            ]
        });
        let config = FitConfig::new(3).with_n_init(4).with_seed(11);
        let fit = Gmm::<3>::fit(&points, &config).unwrap();
        let start = Gmm::<3>::initialise(&points, &config, fit.report.restart).unwrap();
        let again = start.refine(&points, &config, &mut ()).unwrap();
        assert_eq!(again.model, fit.model);
        assert_eq!(again.report.log_likelihood, fit.report.log_likelihood);
    }
}
