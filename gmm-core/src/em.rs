//! Expectation maximisation in O(K) memory: every pass streams the points
//! into per-component sufficient statistics, never an N x K matrix.
//!
//! Numerics, and why:
//! - The E-step works in the log domain: `q_j = ln w_j + ln N_j(x)`,
//!   `ln p(x) = m + ln sum_j exp(q_j - m)` with `m = max_j q_j`, so a point
//!   far from every component cannot make `0 / 0`.
//! - Statistics are centred on each component's current mean
//!   (`sum r (x - mu)`, `sum r (x - mu)(x - mu)^T`): no catastrophic
//!   cancellation in `E[xx] - E[x]^2` when the data sit far from the origin.
//! - Points are processed in blocks of [`BLOCK`]: each block's sums are
//!   added pairwise (a fixed tree, the same on every target), and block
//!   totals go into Kahan-compensated f32 sums, so the error stays near
//!   one f32 rounding for N up to 1e7 and beyond.
//! - Every operation is plain f32 or libm, in a fixed order, with no fused
//!   multiply-add: the same bits on x86_64 and on a Cortex-M.

use crate::mixture::LOG_FLOOR;
use crate::{ExpMode, FitConfig, Gaussian, Gmm, GmmError, Point, Points, SymMat2, Trace};
use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro128PlusPlus;

/// Points per block of the E-step. Part of the arithmetic (the order of
/// additions), so it is the same on every target.
pub const BLOCK: usize = 16;

/// The largest coordinate magnitude accepted: `(2e12)^2 = 4e24` leaves
/// f32 sums of squares room for 1e13 of total weight before they overflow.
pub const MAX_ABS_COORDINATE: f32 = 1e12;

/// The largest per-point weight accepted.
pub const MAX_WEIGHT: f32 = 1e12;

/// The smallest positive per-point weight accepted (0 is accepted too):
/// smaller weights would make the moment sums subnormal and imprecise.
pub const MIN_POSITIVE_WEIGHT: f32 = 1e-12;

/// One step of Kahan summation: `v` added to `sum`, whose running
/// rounding error is `comp`.
#[inline(always)]
fn kahan(sum: &mut f32, comp: &mut f32, v: f32) {
    let y = v - *comp;
    let t = *sum + y;
    *comp = (t - *sum) - y;
    *sum = t;
}

/// A Kahan-compensated f32 sum.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Sum {
    sum: f32,
    comp: f32,
}

impl Sum {
    pub const ZERO: Self = Self {
        sum: 0.0,
        comp: 0.0,
    };

    #[inline]
    pub fn add(&mut self, v: f32) {
        kahan(&mut self.sum, &mut self.comp, v);
    }

    #[inline]
    pub fn value(self) -> f32 {
        self.sum
    }
}

/// Zeroth, first and second moments of one component, centred on the
/// point the pass was centred on: Kahan-compensated sums of
/// `[r, r dx, r dy, r dx dx, r dx dy, r dy dy]`, kept as two arrays so
/// that a vector target updates all six at once. (Six `Sum`s side by
/// side made x86 gather each sum and its compensation from interleaved
/// memory, and the block's reductions went through the stack with
/// stalled loads: a fit took 1.3x (K = 3) to 1.6x (K = 8) as long
/// with AVX-512, up to 1.2x without.)
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Moments {
    sum: [f32; 6],
    comp: [f32; 6],
}

impl Moments {
    const ZERO: Self = Self {
        sum: [0.0; 6],
        comp: [0.0; 6],
    };

    /// Adds the six moments `v` of a point or a block (one [`kahan`] step
    /// each). Written out, not as a loop, for builds that do not unroll it
    /// (opt-level s).
    #[inline]
    pub fn add(&mut self, v: [f32; 6]) {
        let [s0, s1, s2, s3, s4, s5] = &mut self.sum;
        let [c0, c1, c2, c3, c4, c5] = &mut self.comp;
        kahan(s0, c0, v[0]);
        kahan(s1, c1, v[1]);
        kahan(s2, c2, v[2]);
        kahan(s3, c3, v[3]);
        kahan(s4, c4, v[4]);
        kahan(s5, c5, v[5]);
    }

    /// Adds one point of weight `r` at offset `(dx, dy)`.
    #[inline]
    pub fn add_point(&mut self, r: f32, dx: f32, dy: f32) {
        let rx = r * dx;
        let ry = r * dy;
        self.add([r, rx, ry, rx * dx, rx * dy, ry * dy]);
    }

    /// The sums, resolved to f32.
    pub fn value(&self) -> Sums {
        let [n, sx, sy, sxx, sxy, syy] = self.sum;
        Sums {
            n,
            sx,
            sy,
            sxx,
            sxy,
            syy,
        }
    }
}

/// The running sums of one pass: Kahan-compensated moments, centred on
/// `centres`, the log-likelihood, and the worst-explained point.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pass<const K: usize> {
    /// Components in use.
    pub k: usize,
    /// Points with a positive weight seen.
    pub count: usize,
    pub moments: [Moments; K],
    pub centres: [Point; K],
    pub log_likelihood: Sum,
    /// Lowest score seen (a point's largest log joint `ln(w_j N_j(x))`,
    /// or minus the squared distance) and its point: where an emptied
    /// component is re-seeded. An E-step pass looks for it only when
    /// `track` is set (else it stays at +inf).
    pub worst: (f32, Point),
    /// Whether the E-step pass looks for `worst` (see
    /// [`Stats::needs_worst`]).
    pub track: bool,
}

impl<const K: usize> Pass<K> {
    pub const ZERO: Self = Self {
        k: 0,
        count: 0,
        moments: [Moments::ZERO; K],
        centres: [[0.0; 2]; K],
        log_likelihood: Sum::ZERO,
        worst: (0.0, [0.0; 2]),
        // All-zero bits, like every `ZERO` of the workspace: a `static`
        // workspace stays in `.bss` (with `true` here it moved to `.data`,
        // 2.7 KB of flash).
        track: false,
    };

    /// Starts a pass of `k` components, in place (a `Pass` for K = 8 is
    /// 476 bytes: no temporary copy on the stack); the caller sets
    /// `centres`.
    pub fn reset(&mut self, k: usize) {
        self.k = k;
        self.count = 0;
        self.moments = [Moments::ZERO; K];
        self.log_likelihood = Sum::ZERO;
        self.worst = (f32::INFINITY, [0.0; 2]);
    }

    /// The pass's statistics: its compensated sums, resolved to f32.
    pub fn finish(&self, out: &mut Stats<K>) {
        out.k = self.k;
        out.count = self.count;
        for (o, m) in out.moments.iter_mut().zip(&self.moments) {
            *o = m.value();
        }
        out.centres = self.centres;
        out.log_likelihood = self.log_likelihood.value();
        out.worst = self.worst;
    }
}

/// One component's moments after a pass:
/// `sum r`, `sum r dx`, `sum r dy`, `sum r dx dx`, `sum r dx dy`, `sum r dy dy`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Sums {
    pub n: f32,
    pub sx: f32,
    pub sy: f32,
    pub sxx: f32,
    pub sxy: f32,
    pub syy: f32,
}

impl Sums {
    const ZERO: Self = Self {
        n: 0.0,
        sx: 0.0,
        sy: 0.0,
        sxx: 0.0,
        sxy: 0.0,
        syy: 0.0,
    };
}

/// What one pass over the data produced: per-component moments centred
/// on `centres`, the total log-likelihood, and the worst-explained point.
/// Plain f32 (the compensation stays in the [`Pass`]): 35 words for K = 8.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stats<const K: usize> {
    /// Components in use.
    pub k: usize,
    /// Points with a positive weight seen.
    pub count: usize,
    pub moments: [Sums; K],
    pub centres: [Point; K],
    pub log_likelihood: f32,
    /// Lowest score seen and its point (see [`Pass::worst`]).
    pub worst: (f32, Point),
}

impl<const K: usize> Stats<K> {
    pub const ZERO: Self = Self {
        k: 0,
        count: 0,
        moments: [Sums::ZERO; K],
        centres: [[0.0; 2]; K],
        log_likelihood: 0.0,
        worst: (0.0, [0.0; 2]),
    };

    /// Adds the statistics of another pass with the same centres (another
    /// chunk of the data): the parallel E-step's reduction.
    pub fn merge(&mut self, other: &Self) {
        self.count += other.count;
        for (a, b) in self.moments.iter_mut().zip(&other.moments) {
            a.n += b.n;
            a.sx += b.sx;
            a.sy += b.sy;
            a.sxx += b.sxx;
            a.sxy += b.sxy;
            a.syy += b.syy;
        }
        self.log_likelihood += other.log_likelihood;
        if other.worst.0 < self.worst.0 {
            self.worst = other.worst;
        }
    }

    /// Whether the M-step on these statistics re-seeds a component, and
    /// so needs the pass's worst point: a fit's passes skip that search
    /// and run the pass again, with it, only then (the same bits: a test
    /// checks a fit that re-seeds against E- and M-steps through the
    /// public API, which always search). Fast exp, k = 3 on a Cortex-M:
    /// 78.8 -> 77.0 instructions/pki at opt-level 3, 106.0 -> 101.5 at
    /// opt-level s.
    pub fn needs_worst(&self) -> bool {
        // The total weight as `data_moments` sums it, and the threshold
        // and test of `m_step_into`. (Where the M-step fails before
        // looking at any component, as on a total weight that is not
        // positive and finite, the answer does not matter.)
        let empty_below = empty_below(self.total_weight() / self.count as f32);
        self.moments
            .iter()
            .take(self.k)
            .any(|m| !is_kept(m.n, empty_below))
    }

    /// The sum of the components' weights, in component order: the data's
    /// total weight (see [`Self::data_moments`]).
    fn total_weight(&self) -> f32 {
        let mut w = 0.0f32;
        for m in self.moments.iter().take(self.k) {
            w += m.n;
        }
        w
    }

    /// Total weight, mean and covariance of the data, recovered from the
    /// per-component moments (responsibilities of a point sum to 1).
    pub fn data_moments(&self) -> (f32, Point, SymMat2) {
        let w = self.total_weight();
        let (mut mx, mut my) = (0.0f32, 0.0f32);
        for (m, c) in self.moments.iter().zip(&self.centres).take(self.k) {
            mx += m.n * c[0] + m.sx;
            my += m.n * c[1] + m.sy;
        }
        if !(w > 0.0) {
            return (0.0, [0.0; 2], SymMat2::ZERO);
        }
        let mean = [mx / w, my / w];
        let mut cov = SymMat2::ZERO;
        for (m, c) in self.moments.iter().zip(&self.centres).take(self.k) {
            let (n, sx, sy) = (m.n, m.sx, m.sy);
            let (ex, ey) = (c[0] - mean[0], c[1] - mean[1]);
            cov = cov
                + SymMat2::new(
                    m.sxx + 2.0 * sx * ex + n * ex * ex,
                    m.sxy + sx * ey + sy * ex + n * ex * ey,
                    m.syy + 2.0 * sy * ey + n * ey * ey,
                );
        }
        (w, mean, cov.scale(1.0 / w))
    }
}

/// Facts about the data from the validating pass.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Summary {
    /// Points with a positive weight.
    pub n_positive: usize,
    /// Sum of the weights.
    pub total_weight: f32,
    /// Weighted mean.
    pub mean: Point,
    /// Weighted covariance (divided by the total weight).
    pub covariance: SymMat2,
}

/// A point the fit accepts: finite, each coordinate at most
/// [`MAX_ABS_COORDINATE`] in magnitude; `index` names it in the error.
pub(crate) fn check_point(p: Point, index: usize) -> Result<(), GmmError> {
    if !(p[0].is_finite() && p[1].is_finite()) {
        return Err(GmmError::NonFinitePoint { index });
    }
    if !(libm::fabsf(p[0]) <= MAX_ABS_COORDINATE && libm::fabsf(p[1]) <= MAX_ABS_COORDINATE) {
        return Err(GmmError::PointOutOfRange { index });
    }
    Ok(())
}

/// Validates every point and weight and computes the data's weighted mean
/// and covariance: the checks [`Gmm::fit`] makes before anything else.
///
/// # Errors
/// [`GmmError::NonFinitePoint`], [`GmmError::PointOutOfRange`],
/// [`GmmError::InvalidWeight`] with the index of the first bad point;
/// [`GmmError::ZeroTotalWeight`]; [`GmmError::Overflow`].
pub fn summarise<P: Points + ?Sized>(data: &P) -> Result<Summary, GmmError> {
    let mut error = None;
    let mut index = 0usize;
    let mut n_positive = 0usize;
    let mut origin = None;
    let mut m = Moments::ZERO;
    data.visit(|p, w| {
        if error.is_none() {
            if let Err(e) = check_point(p, index) {
                error = Some(e);
            } else if !(w == 0.0 || (MIN_POSITIVE_WEIGHT..=MAX_WEIGHT).contains(&w)) {
                error = Some(GmmError::InvalidWeight { index });
            } else if w > 0.0 {
                n_positive += 1;
                let o: Point = *origin.get_or_insert(p);
                m.add_point(w, p[0] - o[0], p[1] - o[1]);
            }
        }
        index += 1;
    });
    if let Some(e) = error {
        return Err(e);
    }
    let o = origin.ok_or(GmmError::ZeroTotalWeight)?;
    let m = m.value();
    let w = m.n;
    if !(w > 0.0) {
        return Err(GmmError::ZeroTotalWeight);
    }
    let (dx, dy) = (m.sx / w, m.sy / w);
    let covariance = SymMat2::new(
        m.sxx / w - dx * dx,
        m.sxy / w - dx * dy,
        m.syy / w - dy * dy,
    );
    if !(w.is_finite() && covariance.is_finite()) {
        return Err(GmmError::Overflow);
    }
    Ok(Summary {
        n_positive,
        total_weight: w,
        mean: [o[0] + dx, o[1] + dy],
        covariance,
    })
}

/// A block of points in structure-of-arrays form, padded with weight 0.
#[derive(Clone, Debug)]
struct Block {
    x: [f32; BLOCK],
    y: [f32; BLOCK],
    w: [f32; BLOCK],
}

impl Block {
    /// Copies `points` (at most `BLOCK`) into the first coordinates.
    #[inline(always)]
    fn fill_xy(&mut self, points: &[Point]) {
        for ((p, x), y) in points.iter().zip(&mut self.x).zip(&mut self.y) {
            *x = p[0];
            *y = p[1];
        }
    }
}

/// Sum of a block in a fixed pairwise order (vectorises; deterministic).
#[inline(always)]
fn tree_sum(v: &[f32; BLOCK]) -> f32 {
    tree_sum_halves(&core::array::from_fn(|i| v[i] + v[i + BLOCK / 2]))
}

/// The rest of [`tree_sum`] from its first level, `h[i] = v[i] + v[i + BLOCK / 2]`.
/// Written out rather than as a loop: a Cortex-M build at opt-level s does
/// not unroll small loops, and this one runs six times per component and
/// block.
#[inline(always)]
fn tree_sum_halves(h: &[f32; BLOCK / 2]) -> f32 {
    const { assert!(BLOCK == 16) };
    let [h0, h1, h2, h3, h4, h5, h6, h7] = *h;
    let q = [h0 + h4, h1 + h5, h2 + h6, h3 + h7];
    (q[0] + q[2]) + (q[1] + q[3])
}

/// The two halves of a block's product in [`tree_sum`]'s pairwise order:
/// `(v0 v8)(v4 v12) (v2 v10)(v6 v14)` and the same from `v1`.
#[inline(always)]
fn tree_product_halves(v: &[f32; BLOCK]) -> (f32, f32) {
    // Arrays made by `from_fn`, not zeroed and then filled: at opt-level
    // s the zeroing stayed (calls of memclr).
    let h: [f32; BLOCK / 2] = core::array::from_fn(|i| v[i] * v[i + BLOCK / 2]);
    let q: [f32; BLOCK / 4] = core::array::from_fn(|i| h[i] * h[i + BLOCK / 4]);
    (q[0] * q[2], q[1] * q[3])
}

/// Minimum of a block in the same fixed pairwise order as [`tree_sum`].
#[inline(always)]
fn tree_min(v: &[f32; BLOCK]) -> f32 {
    let min = |a: f32, b: f32| if b < a { b } else { a };
    let h: [f32; BLOCK / 2] = core::array::from_fn(|i| min(v[i], v[i + BLOCK / 2]));
    let q: [f32; BLOCK / 4] = core::array::from_fn(|i| min(h[i], h[i + BLOCK / 4]));
    min(min(q[0], q[2]), min(q[1], q[3]))
}

/// The power (base 2 or e, the mode's own) and the logarithm of the
/// log-sum-exp as a type, so each mode gets its own inlined E-step.
trait Exp {
    /// The unit of the E-step's log terms per nat: `log2(e)` for a base-2
    /// mode, 1 for a natural one.
    const PER_NAT: f32;
    /// Terms `t - m` below this (`2^-32` relative to the largest term)
    /// are taken as exactly 0.
    const SKIP: f32;
    /// Whether a Cortex-M's [`pow_row`] tests the range of a term's
    /// argument on its bits (see there) rather than with two float
    /// comparisons.
    #[cfg(target_arch = "arm")]
    const BIT_TEST: bool;
    /// `base^x` for `SKIP <= x <= 0`.
    fn pow(x: f32) -> f32;
    /// `ln x` for `x` in `[1, K^16]`: a point's sum of terms, or the
    /// product of eight or sixteen of them (see [`ln_product`]).
    fn ln(x: f32) -> f32;
}
/// `-32 ln 2`: [`Exp::SKIP`] in nats.
const SKIP_NATS: f32 = -22.180_71;

struct LibmExp;
/// Natural units: libm's `exp2f` computes in f64, which is soft-float on
/// a Cortex-M4F.
impl Exp for LibmExp {
    const PER_NAT: f32 = 1.0;
    const SKIP: f32 = SKIP_NATS;
    #[cfg(target_arch = "arm")]
    const BIT_TEST: bool = false;
    #[inline(always)]
    fn pow(x: f32) -> f32 {
        libm::expf(x)
    }
    #[inline(always)]
    fn ln(x: f32) -> f32 {
        libm::logf(x)
    }
}
/// The fast mode: both functions branch-free, so the whole block
/// vectorises.
struct FastExp;
impl Exp for FastExp {
    const PER_NAT: f32 = core::f32::consts::LOG2_E;
    const SKIP: f32 = -32.0;
    #[cfg(target_arch = "arm")]
    const BIT_TEST: bool = true;
    #[inline(always)]
    fn pow(x: f32) -> f32 {
        crate::exp::fast_exp2_in_range(x)
    }
    #[inline(always)]
    fn ln(x: f32) -> f32 {
        crate::exp::fast_ln(x)
    }
}
#[cfg(feature = "micromath")]
struct MicroExp;
#[cfg(feature = "micromath")]
impl Exp for MicroExp {
    const PER_NAT: f32 = 1.0;
    const SKIP: f32 = SKIP_NATS;
    #[cfg(target_arch = "arm")]
    const BIT_TEST: bool = false;
    #[inline(always)]
    fn pow(x: f32) -> f32 {
        ExpMode::Micromath.exp(x)
    }
    #[inline(always)]
    fn ln(x: f32) -> f32 {
        libm::logf(x)
    }
}

/// One component of a mixture unpacked for the E-step, in the unit of
/// its [`Exp`] (`p` = [`Exp::PER_NAT`] units per nat):
/// `t(x) = c2 - (u^2 + v^2)` with `u = a dx`, `v = e dx + c dy` (the
/// whitening factor, scaled so that `u^2 + v^2` is `p / 2` times the
/// Mahalanobis form) and `c2 = p (ln w + ln-normaliser - shift)`, so that
/// `ln(w N(x)) = shift + t(x) / p`. A sum of squares is never
/// negative, so `t <= c2 <= 0` (or NaN, from `inf - inf` in `v`).
#[derive(Clone, Copy, Debug)]
struct Terms {
    mx: f32,
    my: f32,
    a: f32,
    e: f32,
    c: f32,
    c2: f32,
}

impl Terms {
    const ZERO: Self = Self {
        mx: 0.0,
        my: 0.0,
        a: 0.0,
        e: 0.0,
        c: 0.0,
        c2: 0.0,
    };

    /// A component beyond `k`.
    const UNUSED: Self = Self {
        mx: 0.0,
        my: 0.0,
        a: 0.0,
        e: 0.0,
        c: 0.0,
        c2: LOG_FLOOR,
    };

    #[inline(always)]
    fn log2_joint(&self, x: f32, y: f32) -> f32 {
        let dx = x - self.mx;
        let dy = y - self.my;
        let u = self.a * dx;
        let v = self.e * dx + self.c * dy;
        self.c2 - (u * u + v * v)
    }
}

/// A mixture unpacked for the E-step.
#[derive(Clone, Copy, Debug)]
struct EScorer<const K: usize> {
    k: usize,
    /// The largest `ln w + ln-normaliser` of the components.
    shift: f32,
    comps: [Terms; K],
}

impl<const K: usize> EScorer<K> {
    const ZERO: Self = Self {
        k: 0,
        shift: 0.0,
        comps: [Terms::ZERO; K],
    };

    /// Unpacks `model`, in place.
    fn init<E: Exp>(&mut self, model: &Gmm<K>) {
        let scale = libm::sqrtf(0.5 * E::PER_NAT);
        let constant = |g: &Gaussian, w: f32| {
            let c0 = libm::logf(w) + g.log_normaliser();
            if c0 > LOG_FLOOR { c0 } else { LOG_FLOOR }
        };
        let mut c0s = [LOG_FLOOR; K];
        let mut shift = LOG_FLOOR;
        for ((c0, g), &w) in c0s.iter_mut().zip(model.components()).zip(model.weights()) {
            *c0 = constant(g, w);
            shift = if *c0 > shift { *c0 } else { shift };
        }
        self.comps = [Terms::UNUSED; K];
        for ((t, g), &c0) in self.comps.iter_mut().zip(model.components()).zip(&c0s) {
            let [mx, my] = g.mean();
            let [a, e, c] = g.whitening_scaled(scale);
            *t = Terms {
                mx,
                my,
                a,
                e,
                c,
                c2: (c0 - shift) * E::PER_NAT,
            };
        }
        self.k = model.k();
        self.shift = shift;
    }

    /// `ln p(x)` from a point's largest log joint `m` (in the mode's unit,
    /// shifted) and the sum `s` of its terms.
    #[inline(always)]
    fn log_density<E: Exp>(&self, m: f32, s: f32) -> f32 {
        self.shift + m * (1.0 / E::PER_NAT) + E::ln(s)
    }

    /// The careful path for point `i` of a block whose terms were all
    /// `-inf` or one of them NaN: non-finite terms floored. Writes the
    /// point's terms to `e[..][i]`; returns their sum (at least 1) and
    /// their largest log joint, the point's new `max`.
    #[cold]
    #[inline(never)]
    fn far_point<E: Exp>(&self, x: f32, y: f32, e: &mut [[f32; BLOCK]; K], i: usize) -> (f32, f32) {
        let floored = |c: &Terms| {
            let t = c.log2_joint(x, y);
            if t > LOG_FLOOR { t } else { LOG_FLOOR }
        };
        let mut max = LOG_FLOOR;
        for c in self.comps.iter().take(self.k) {
            let t = floored(c);
            max = if t > max { t } else { max };
        }
        let mut s = 0.0f32;
        for (c, ej) in self.comps.iter().zip(e.iter_mut()).take(self.k) {
            let v = term::<E>(floored(c) - max);
            if let Some(slot) = ej.get_mut(i) {
                *slot = v;
            }
            s += v;
        }
        // s >= 1: the largest term is 2^0.
        (s, max)
    }
}

/// Per-block buffers: every entry a block uses is written before it is
/// read, except a Cortex-M's `s`, which each block leaves zeroed for the
/// next. A Cortex-M keeps one set in the pass's [`PassWork`], zeroed
/// only when that is made (at opt-level s an M4 spent about 15
/// instructions per point x component zeroing them per block), and off
/// the stack (with `max` and `s` here rather than in the block's frame,
/// that frame was 128 bytes smaller and the pass 1 instruction/pki
/// faster); a vector target zeroes a set of its own per block, which its
/// optimiser keeps in registers (the same buffers held for the pass made
/// an AVX-512 build 20 % slower).
#[derive(Clone, Debug)]
struct Scratch {
    /// The first level of each moment's tree (see [`block_moments`]).
    h: [[f32; BLOCK / 2]; 6],
    /// Per point, for the log-likelihood of a weighted block: `w ln p(x)`.
    wl: [f32; BLOCK],
    /// Per point: `w / s`, and for a weighted block the largest log joint
    /// of the points with a positive weight (+inf for the others).
    inv: [f32; BLOCK],
    low: [f32; BLOCK],
    /// Per point: the largest log joint, and the sum of the terms (all
    /// zero between blocks: see [`e_block`]). A Cortex-M's only.
    #[cfg(target_arch = "arm")]
    max: [f32; BLOCK],
    #[cfg(target_arch = "arm")]
    s: [f32; BLOCK],
}

impl Scratch {
    const ZERO: Self = Self {
        h: [[0.0; BLOCK / 2]; 6],
        wl: [0.0; BLOCK],
        inv: [0.0; BLOCK],
        low: [0.0; BLOCK],
        #[cfg(target_arch = "arm")]
        max: [0.0; BLOCK],
        #[cfg(target_arch = "arm")]
        s: [0.0; BLOCK],
    };
}

/// The careful path ([`EScorer::far_point`]) for the points of a block
/// whose sum of terms is not at least 1.
///
/// A vector target passes copies of the block's `s` and `max`: were their
/// own addresses passed, they would live in memory rather than in
/// registers, and an AVX-512 build turned each row's update of `max` into
/// a masked store that the next row's load waited on (native K = 3 took
/// about 2.7 ns/pki instead of 1.8).
#[inline(always)]
fn far_points<E: Exp, const K: usize>(
    sc: &EScorer<K>,
    b: &Block,
    e: &mut [[f32; BLOCK]; K],
    s: &mut [f32; BLOCK],
    max: &mut [f32; BLOCK],
) {
    #[cfg(target_arch = "arm")]
    far_points_in::<E, K>(sc, b, e, s, max);
    #[cfg(not(target_arch = "arm"))]
    {
        let (mut s_copy, mut max_copy) = (*s, *max);
        far_points_in::<E, K>(sc, b, e, &mut s_copy, &mut max_copy);
        (*s, *max) = (s_copy, max_copy);
    }
}

/// [`far_points`] on the arrays themselves.
#[inline(never)]
fn far_points_in<E: Exp, const K: usize>(
    sc: &EScorer<K>,
    b: &Block,
    e: &mut [[f32; BLOCK]; K],
    s: &mut [f32; BLOCK],
    max: &mut [f32; BLOCK],
) {
    for i in 0..BLOCK {
        if !(s[i] >= 1.0) {
            (s[i], max[i]) = sc.far_point::<E>(b.x[i], b.y[i], e, i);
        }
    }
}

/// The E-step of one block: log-sum-exp per point (in the mode's base,
/// shifted by each point's largest term), responsibilities, and their centred
/// moments added to `st`. `e` holds the block's terms (zeroed once per
/// pass), `_pass` the pass's [`Scratch`] (used on a Cortex-M only);
/// `unit` says that every weight in `b` is 1 (a whole block of a slice).
#[inline(never)]
fn e_block<E: Exp, const K: usize>(
    sc: &EScorer<K>,
    b: &Block,
    st: &mut Pass<K>,
    e: &mut [[f32; BLOCK]; K],
    _pass: &mut Scratch,
    unit: bool,
) {
    #[cfg(target_arch = "arm")]
    let work = _pass;
    #[cfg(not(target_arch = "arm"))]
    let mut local = Scratch::ZERO;
    #[cfg(not(target_arch = "arm"))]
    let work = &mut local;
    #[cfg(target_arch = "arm")]
    let Scratch {
        h,
        wl,
        inv,
        low,
        max,
        s,
    } = work;
    // A vector target keeps `max` and `s` as locals, in registers as long
    // as their addresses do not escape (see `far_points`); in the
    // `Scratch` it makes per block, a plain x86-64 build was 4 % slower.
    #[cfg(not(target_arch = "arm"))]
    let Scratch { h, wl, inv, low } = work;
    #[cfg(not(target_arch = "arm"))]
    let (max, s) = (&mut [LOG_FLOOR; BLOCK], &mut [0.0f32; BLOCK]);
    let k = sc.k;
    *max = [LOG_FLOOR; BLOCK];
    for (ej, c) in e.iter_mut().zip(&sc.comps).take(k) {
        log_joint_row(c, b, ej, max);
    }
    // `s` is all zero here: a vector target's is new, and a Cortex-M's
    // starts zeroed and each block zeroes it after its last read (below),
    // in a loop it runs anyway (zeroing it here was a call to memclr, 0.9
    // instructions/pki at k = 3).
    for ej in e.iter_mut().take(k) {
        pow_row::<E>(ej, max, s);
    }
    // The largest term is 2^0, so s >= 1, unless no log joint was finite
    // and above the floor: then no term is 2^0, s = 0, and the point is
    // redone carefully. (A NaN log joint is never the largest, and its
    // term is 0.)
    // Each `s` is 0 or in [1, K], so each half of the block's product of
    // them (in `tree_sum`'s order) is 0 or in [1, K^8], below 2^128; a 0
    // shows a point to redo. One copy of the product for both kinds of
    // block, and one call of the careful path (at opt-level s a second
    // product after that path was about 100 bytes, a second call 16).
    let mut redone = false;
    let (lo, hi) = loop {
        let (lo, hi) = tree_product_halves(s);
        if redone || (lo >= 1.0 && hi >= 1.0) {
            break (lo, hi);
        }
        far_points::<E, K>(sc, b, e, s, max);
        redone = true;
    };
    let (halves, positive) = if unit {
        // Weights all 1: the block's log-likelihood, the sum of
        // `shift + max / p + ln s`, is `BLOCK shift + (sum of max) / p +
        // ln(product of s)`: one or two logarithms per block instead of
        // one per point.
        (Some((lo, hi)), BLOCK as u32)
    } else {
        // `low`: the padding has weight 0, so +inf.
        // u32, not usize: a 64-bit counter halves the vector width of the loop.
        let mut positive = 0u32;
        for i in 0..BLOCK {
            let counted = b.w[i] > 0.0;
            low[i] = if counted { max[i] } else { f32::INFINITY };
            positive += u32::from(counted);
            wl[i] = b.w[i] * sc.log_density::<E>(max[i], s[i]);
        }
        (None, positive)
    };
    for i in 0..BLOCK {
        inv[i] = b.w[i] / s[i];
        #[cfg(target_arch = "arm")]
        {
            s[i] = 0.0;
        }
    }
    for ((ej, c), m) in e.iter().zip(&sc.comps).zip(st.moments.iter_mut()).take(k) {
        // A Cortex-M reads the block's points afresh for each component:
        // without the barrier LLVM hoisted the coordinates out of this
        // loop, had no registers for them, and copied them to the stack
        // (484 instructions per block outside the loops, now 401). Fast
        // exp, k = 3: 81.7 -> 79.5 instructions/pki at opt-level 3, 106.2
        // -> 106.5 at opt-level s, 24 bytes less flash. Only a hint: it
        // changes no result.
        #[cfg(target_arch = "arm")]
        let b = core::hint::black_box(b);
        m.add(block_moments(ej, c, b, inv, h));
    }
    // The logarithms last: nothing above waits for them. On a Cortex-M
    // one `tree_sum` serves both cases (smaller code); on x86 that sum
    // through a reference chosen at run time was slower (native K = 3
    // about 2.9 against 2.6 ns/pki), as was `low` chosen that way below.
    #[cfg(target_arch = "arm")]
    let sum = tree_sum(if unit { max } else { wl });
    #[cfg(not(target_arch = "arm"))]
    let sum = if unit { tree_sum(max) } else { tree_sum(wl) };
    let ll = match halves {
        Some((lo, hi)) => {
            BLOCK as f32 * sc.shift + sum * (1.0 / E::PER_NAT) + ln_product::<E, K>(lo, hi)
        }
        None => sum,
    };
    st.log_likelihood.add(ll);
    st.count += positive as usize;
    if st.track {
        // The worst point: the first one at the block's minimum, as a scan
        // point by point would find it. With weights all 1 it is `max`'s: on
        // a Cortex-M a reference to it (the copy cost 72 bytes of flash at
        // opt-level s and 0.1 to 0.3 instructions/pki at k = 3), on x86 a
        // copy (see the sum above).
        #[cfg(target_arch = "arm")]
        let low = if unit { max } else { low };
        #[cfg(not(target_arch = "arm"))]
        if unit {
            *low = *max;
        }
        let block_low = tree_min(low);
        let score = sc.shift + block_low * (1.0 / E::PER_NAT);
        if score < st.worst.0 {
            for ((&l, &x), &y) in low.iter().zip(&b.x).zip(&b.y) {
                if l == block_low {
                    st.worst = (score, [x, y]);
                    break;
                }
            }
        }
    }
}

/// `ln(a b)` for the two halves `a`, `b` of a block's product of sums of
/// terms, each in `[1, K^8]`: one logarithm of their product while that
/// stays below `2^128` (`K < 256`; at K = 3 on a Cortex-M, 0.6
/// instructions/pki fewer than two), else `ln a + ln b` (as one two-lane
/// operation on a vector target: two scalar logarithms made an AVX-512
/// build about 5 % slower at K = 3).
#[inline(always)]
fn ln_product<E: Exp, const K: usize>(a: f32, b: f32) -> f32 {
    if K < 256 {
        return E::ln(a * b);
    }
    #[cfg(not(target_arch = "arm"))]
    let [la, lb] = [a, b].map(E::ln);
    #[cfg(target_arch = "arm")]
    let (la, lb) = (E::ln(a), E::ln(b));
    la + lb
}

/// One component's log joints for a block, and the running maximum.
/// On a Cortex-M each row is a function of its own: inlined into the
/// block, the unrolled rows kept so many values live that every constant
/// was reloaded from memory. (Calls would cost a vector target more than
/// they save.)
#[cfg_attr(target_arch = "arm", inline(never))]
#[cfg_attr(not(target_arch = "arm"), inline(always))]
fn log_joint_row(c: &Terms, b: &Block, row: &mut [f32; BLOCK], max: &mut [f32; BLOCK]) {
    for i in 0..BLOCK {
        let t = c.log2_joint(b.x[i], b.y[i]);
        row[i] = t;
        // NaN never wins.
        max[i] = if t > max[i] { t } else { max[i] };
    }
}

/// The term `base^d` of a log joint `d` below the point's largest. A term
/// below 2^-32 of the largest (or NaN) is exactly 0: it could not move the
/// sum by more than its rounding. A vector target computes every power and
/// selects; a scalar one skips it.
#[inline(always)]
fn term<E: Exp>(d: f32) -> f32 {
    if d >= E::SKIP { E::pow(d) } else { 0.0 }
}

/// A Cortex-M's [`term`] of a log joint `d` below its point's largest,
/// with 1 and no power for `d = 0` (the largest itself), tested with float
/// comparisons.
#[cfg(any(target_arch = "arm", test))]
#[inline(always)]
fn term_or_one<E: Exp>(d: f32) -> f32 {
    if d == 0.0 { 1.0 } else { term::<E>(d) }
}

/// [`term_or_one`] for `d` in `[-inf, 0]` or NaN (as a log joint minus
/// its point's largest always is), tested on `d`'s bits: twice them (the sign shifted out) are 0 for `d = 0`, at
/// most twice [`Exp::SKIP`]'s for `SKIP <= d < 0`, and above for the
/// rest. Two integer comparisons, where the float ones each also moved
/// the flags (fast exp, k = 3: 76.9 -> 75.9 instructions/pki at
/// opt-level 3, 100.1 -> 99.4 at opt-level s). With a called exp (libm's,
/// micromath's) [`pow_row`]'s loop was then no longer unrolled at
/// opt-level 3 (+6 instructions/pki), so those modes use [`term_or_one`]
/// (see `Exp::BIT_TEST`). A test checks that both give the same bits.
#[cfg(any(target_arch = "arm", test))]
#[inline(always)]
fn term_by_bits<E: Exp>(d: f32) -> f32 {
    let twice = d.to_bits() << 1;
    if twice == 0 {
        1.0
    } else if twice <= const { E::SKIP.to_bits() << 1 } {
        E::pow(d)
    } else {
        0.0
    }
}

/// One component's terms `base^(t - max)` for a block, added to `s`.
#[cfg_attr(target_arch = "arm", inline(never))]
#[cfg_attr(not(target_arch = "arm"), inline(always))]
fn pow_row<E: Exp>(row: &mut [f32; BLOCK], max: &[f32; BLOCK], s: &mut [f32; BLOCK]) {
    for i in 0..BLOCK {
        let d = row[i] - max[i];
        // A point's largest term is `base^0`, exactly 1 in every mode (a
        // test checks it): a Cortex-M skips its power, one of every k
        // (at k = 3, 4.5 instructions/pki fewer with the fast exp, 6.1
        // with libm's); a vector target computes every power anyway.
        #[cfg(target_arch = "arm")]
        let v = if E::BIT_TEST {
            term_by_bits::<E>(d)
        } else {
            term_or_one::<E>(d)
        };
        #[cfg(not(target_arch = "arm"))]
        let v = term::<E>(d);
        row[i] = v;
        s[i] += v;
    }
}

/// One component's moments `[r, r dx, r dy, r dx dx, r dx dy, r dy dy]`
/// of a block (`r = e * inv`), each summed over the block by
/// [`tree_sum`]'s fixed tree.
#[inline(always)]
fn block_moments(
    e: &[f32; BLOCK],
    c: &Terms,
    b: &Block,
    inv: &[f32; BLOCK],
    h: &mut [[f32; BLOCK / 2]; 6],
) -> [f32; 6] {
    // A Cortex-M makes the first two levels of the tree in one pass,
    // points `j, j + 8, j + 4, j + 12` at a time, so each moment stores
    // and re-reads 4 partial sums per block instead of 8: the same
    // additions in the same order as a vector target's, so the same bits.
    // (Fast exp, k = 3: 83.1 -> 81.7 instructions/pki at opt-level 3,
    // 110.1 -> 106.2 at opt-level s, 144 bytes more flash; the whole
    // tree in registers spilled and was slower.)
    #[cfg(target_arch = "arm")]
    {
        // Four quadruples of points, whose sums the last two levels add.
        const { assert!(BLOCK == 16) };
        #[inline(always)]
        fn add(a: [f32; 6], b: [f32; 6]) -> [f32; 6] {
            [
                a[0] + b[0],
                a[1] + b[1],
                a[2] + b[2],
                a[3] + b[3],
                a[4] + b[4],
                a[5] + b[5],
            ]
        }
        #[inline(always)]
        fn point(e: &[f32; BLOCK], c: &Terms, b: &Block, inv: &[f32; BLOCK], j: usize) -> [f32; 6] {
            let (dx, dy) = (b.x[j] - c.mx, b.y[j] - c.my);
            let r = e[j] * inv[j];
            let (rx, ry) = (r * dx, r * dy);
            [r, rx, ry, rx * dx, rx * dy, ry * dy]
        }
        #[inline(always)]
        fn pair(e: &[f32; BLOCK], c: &Terms, b: &Block, inv: &[f32; BLOCK], j: usize) -> [f32; 6] {
            add(point(e, c, b, inv, j), point(e, c, b, inv, j + BLOCK / 2))
        }
        #[inline(always)]
        fn quad(e: &[f32; BLOCK], c: &Terms, b: &Block, inv: &[f32; BLOCK], j: usize) -> [f32; 6] {
            add(pair(e, c, b, inv, j), pair(e, c, b, inv, j + BLOCK / 4))
        }
        for j in 0..BLOCK / 4 {
            let [q0, q1, q2, q3, q4, q5] = quad(e, c, b, inv, j);
            let [h0, h1, h2, h3, h4, h5] = h;
            (h0[j], h1[j], h2[j], h3[j], h4[j], h5[j]) = (q0, q1, q2, q3, q4, q5);
        }
        core::array::from_fn(|m| (h[m][0] + h[m][2]) + (h[m][1] + h[m][3]))
    }
    #[cfg(not(target_arch = "arm"))]
    {
        // The first level of `tree_sum` (point i plus point i + BLOCK / 2)
        // fused into the loop that makes the moments, so no BLOCK-long
        // array per moment is built and re-read. (A loop over BLOCK / 4
        // lanes doing two levels is fully unrolled and vectorised worse; so
        // is a layout with the six moments in the lanes of `h[i]`.)
        for i in 0..BLOCK / 2 {
            let j = i + BLOCK / 2;
            let (dx0, dy0) = (b.x[i] - c.mx, b.y[i] - c.my);
            let (dx1, dy1) = (b.x[j] - c.mx, b.y[j] - c.my);
            let (r0, r1) = (e[i] * inv[i], e[j] * inv[j]);
            let (rx0, rx1) = (r0 * dx0, r1 * dx1);
            let (ry0, ry1) = (r0 * dy0, r1 * dy1);
            h[0][i] = r0 + r1;
            h[1][i] = rx0 + rx1;
            h[2][i] = ry0 + ry1;
            h[3][i] = rx0 * dx0 + rx1 * dx1;
            h[4][i] = rx0 * dy0 + rx1 * dy1;
            h[5][i] = ry0 * dy0 + ry1 * dy1;
        }
        core::array::from_fn(|m| tree_sum_halves(&h[m]))
    }
}

/// The buffers of one E-step pass, kept between passes (in a
/// [`Workspace`] or on the stack): 1 896 bytes for K = 8 on a Cortex-M,
/// off the stack when the workspace is a `static`. Nothing here is zeroed
/// per pass: every entry a block uses is written before it is read, or
/// (a Cortex-M's sums of terms, see [`Scratch`]) left zeroed by the block
/// before.
pub(crate) struct PassWork<const K: usize> {
    sc: EScorer<K>,
    st: Pass<K>,
    b: Block,
    /// The terms of a block.
    e: [[f32; BLOCK]; K],
    /// Per-block buffers (a Cortex-M's; see [`Scratch`]).
    scratch: Scratch,
}

impl<const K: usize> PassWork<K> {
    /// The running sums (also used by the initialisation's hard
    /// assignment).
    pub fn pass_mut(&mut self) -> &mut Pass<K> {
        &mut self.st
    }

    pub const ZERO: Self = Self {
        sc: EScorer::ZERO,
        st: Pass::ZERO,
        b: Block {
            x: [0.0; BLOCK],
            y: [0.0; BLOCK],
            w: [0.0; BLOCK],
        },
        e: [[0.0; BLOCK]; K],
        scratch: Scratch::ZERO,
    };
}

fn e_pass<E: Exp, const K: usize, P: Points + ?Sized>(
    model: &Gmm<K>,
    data: &P,
    work: &mut PassWork<K>,
    out: &mut Stats<K>,
    worst: bool,
) {
    // The log-likelihood's products of eight sums in [1, K] stay finite.
    const { assert!(K < 1 << 16, "at most 65535 components") };
    let PassWork {
        sc,
        st,
        b,
        e,
        scratch,
    } = work;
    sc.init::<E>(model);
    st.reset(model.k());
    st.track = worst;
    for (c, s) in st.centres.iter_mut().zip(&sc.comps) {
        *c = [s.mx, s.my];
    }
    // Points filled into `b` and not yet run: the last, partial block,
    // padded below with weight 0 whichever way it was filled. The count
    // lives outside `b`: kept in the block, it made a store-to-load round
    // trip through memory on every point.
    let mut len = 0usize;
    if let Some(points) = data.as_point_slice() {
        // Points in memory: whole blocks, no call per point.
        let mut chunks = points.chunks_exact(BLOCK);
        b.w = [1.0; BLOCK];
        for chunk in &mut chunks {
            b.fill_xy(chunk);
            e_block::<E, K>(sc, b, st, e, scratch, true);
        }
        let rest = chunks.remainder();
        b.fill_xy(rest);
        len = rest.len();
    } else {
        // Whether the block's weights are all 1 so far.
        let mut unit = true;
        data.visit(|p, w| {
            let i = len % BLOCK;
            b.x[i] = p[0];
            b.y[i] = p[1];
            b.w[i] = w;
            unit &= w == 1.0;
            len = i + 1;
            if len == BLOCK {
                e_block::<E, K>(sc, b, st, e, scratch, unit);
                len = 0;
                unit = true;
            }
        });
    }
    if len > 0 {
        for ((x, y), w) in
            b.x.iter_mut()
                .zip(b.y.iter_mut())
                .zip(b.w.iter_mut())
                .skip(len)
        {
            *x = 0.0;
            *y = 0.0;
            *w = 0.0;
        }
        e_block::<E, K>(sc, b, st, e, scratch, false);
    }
    st.finish(out);
}

/// One E-step pass into `out`: statistics centred on the model's means,
/// total log-likelihood, and with `worst` the worst point (else its score
/// is +inf: see [`Stats::needs_worst`]).
pub(crate) fn e_step<const K: usize, P: Points + ?Sized>(
    model: &Gmm<K>,
    data: &P,
    exp: ExpMode,
    work: &mut PassWork<K>,
    out: &mut Stats<K>,
    worst: bool,
) {
    match exp {
        ExpMode::Libm => e_pass::<LibmExp, K, P>(model, data, work, out, worst),
        ExpMode::Fast => e_pass::<FastExp, K, P>(model, data, work, out, worst),
        #[cfg(feature = "micromath")]
        ExpMode::Micromath => e_pass::<MicroExp, K, P>(model, data, work, out, worst),
    }
}

/// Counters of the guards that fired during a fit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Guards {
    /// Components that emptied (less than a thousandth of an average
    /// point's weight) and were re-seeded at the worst-explained point
    /// with the data's covariance.
    pub reseeded: u32,
    /// Covariances that were not positive definite after `reg_covar` and
    /// were replaced by their floored diagonal.
    pub floored: u32,
}

/// The M-step: new weights, means and covariances from the statistics.
///
/// Rules for the degenerate cases, applied per component:
/// - empty (`n_k` below a thousandth of an average point's weight, or not
///   finite): re-seeded at the worst-explained point of the pass (the
///   next ones at the data mean) with the data's covariance plus
///   `reg_covar`, and the weight of one average point;
/// - covariance not positive definite after adding `reg_covar`: a ridge
///   scaled to its variances is added instead (at least
///   `floor = max(reg_covar, 1e-6 * largest data variance)`, keeping the
///   correlation's sign), or as a last resort its diagonal plus `floor`;
///   if that is still singular (`reg_covar = 0` on data with no spread),
///   the fit fails with [`GmmError::SingularCovariance`].
pub(crate) fn m_step<const K: usize>(
    st: &Stats<K>,
    reg_covar: f32,
    guards: &mut Guards,
) -> Result<Gmm<K>, GmmError> {
    let mut model = Gmm::EMPTY;
    m_step_into(st, reg_covar, guards, &mut model)?;
    Ok(model)
}

/// The weight below which the M-step takes a component as empty: 1e-3 of
/// a point's average weight. Shared, with [`is_kept`], by `m_step_into`
/// and `Stats::needs_worst`, which must agree.
fn empty_below(avg_weight: f32) -> f32 {
    1e-3 * avg_weight
}

/// Whether the M-step keeps a component of weight `nk` (else it is empty
/// and re-seeded; NaN included): the one test of `m_step_into` and
/// `Stats::needs_worst`. (Marked `inline(always)` it took the flash added
/// by `select_k_in` at opt-level s from 8 160 to 8 240 bytes; unmarked,
/// 8 184, and LLVM inlines it anyway.)
fn is_kept(nk: f32, empty_below: f32) -> bool {
    nk > 0.0 && nk >= empty_below && nk.is_finite()
}

/// [`m_step`] into `out` (which is not a valid model after an error).
pub(crate) fn m_step_into<const K: usize>(
    st: &Stats<K>,
    reg_covar: f32,
    guards: &mut Guards,
    out: &mut Gmm<K>,
) -> Result<(), GmmError> {
    let k = st.k;
    let (total_weight, data_mean, data_cov) = st.data_moments();
    if !(total_weight > 0.0 && total_weight.is_finite() && st.count > 0) {
        return Err(GmmError::Diverged);
    }
    let avg_weight = total_weight / st.count as f32;
    let empty_below = empty_below(avg_weight);
    let data_var = if data_cov.xx > data_cov.yy {
        data_cov.xx
    } else {
        data_cov.yy
    };
    let floor = if 1e-6 * data_var > reg_covar {
        1e-6 * data_var
    } else {
        reg_covar
    };
    // Written in place (a second model on the stack was 228 bytes for
    // K = 8); the components beyond k are reset as `Gmm::new` leaves them.
    let (nks, gaussians) = out.parts_mut(k);
    let mut worst_used = false;
    let mut total = 0.0f32;
    for (j, (((m, &centre), nk_out), g_out)) in st
        .moments
        .iter()
        .zip(&st.centres)
        .zip(nks.iter_mut())
        .zip(gaussians.iter_mut())
        .take(k)
        .enumerate()
    {
        let nk = m.n;
        let (mean, cov, nk) = if is_kept(nk, empty_below) {
            let dx = m.sx / nk;
            let dy = m.sy / nk;
            let cov = SymMat2::new(
                m.sxx / nk - dx * dx,
                m.sxy / nk - dx * dy,
                m.syy / nk - dy * dy,
            );
            ([centre[0] + dx, centre[1] + dy], cov, nk)
        } else {
            guards.reseeded += 1;
            let at = if worst_used || !st.worst.0.is_finite() {
                data_mean
            } else {
                st.worst.1
            };
            worst_used = true;
            (at, data_cov, avg_weight)
        };
        if !(mean[0].is_finite() && mean[1].is_finite()) {
            return Err(GmmError::Diverged);
        }
        let (gaussian, floored) = crate::gaussian::regularised(mean, cov, reg_covar, floor)
            .ok_or(GmmError::SingularCovariance { component: j })?;
        guards.floored += u32::from(floored);
        *g_out = gaussian;
        *nk_out = nk;
        total += nk;
    }
    if !(total > 0.0 && total.is_finite()) {
        return Err(GmmError::Diverged);
    }
    for nk in nks.iter_mut().take(k) {
        *nk /= total;
    }
    Ok(())
}

/// Per-component sufficient statistics (responsibility sums, centred
/// first and second moments) of one E-step over the data or a chunk of it,
/// with the log-likelihood of the parameters that produced them.
///
/// This is the seam for parallel and out-of-core fits: run
/// [`Gmm::e_step`] on chunks (on threads, or as data arrives),
/// [`merge`](Self::merge) the results in a fixed order, then
/// [`m_step`](Self::m_step). Memory is O(K), whatever the chunk size.
///
/// # Examples
/// ```
/// use gmm_core::{ExpMode, FitConfig, Gmm};
/// let points: [[f32; 2]; 40] = core::array::from_fn(|i| [(i % 5) as f32, (i / 5) as f32 + if i < 20 { 0.0 } else { 9.0 }]);
/// let model = Gmm::<2>::fit(&points, &FitConfig::new(2).with_max_iter(0))?.model;
/// let (a, b) = points.split_at(20);
/// let mut stats = model.e_step(a, ExpMode::Libm);
/// stats.merge(&model.e_step(b, ExpMode::Libm))?;
/// let (next, _guards) = stats.m_step(1e-6)?;
/// assert_eq!(next.k(), 2);
/// # Ok::<(), gmm_core::GmmError>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct SufficientStats<const K: usize>(Stats<K>);

impl<const K: usize> SufficientStats<K> {
    /// Adds the statistics of another chunk, computed from the same model.
    ///
    /// # Errors
    /// [`GmmError::InvalidParameters`] when `other` comes from a model
    /// with other components (the moments are centred on its means).
    pub fn merge(&mut self, other: &Self) -> Result<(), GmmError> {
        if self.0.k != other.0.k || self.0.centres != other.0.centres {
            return Err(GmmError::InvalidParameters {
                reason: "statistics from different models cannot be merged",
            });
        }
        self.0.merge(&other.0);
        Ok(())
    }

    /// Total (weighted) log-likelihood of the visited points under the
    /// model that produced these statistics.
    #[must_use]
    pub fn log_likelihood(&self) -> f32 {
        self.0.log_likelihood
    }

    /// Sum of the weights of the visited points.
    #[must_use]
    pub fn total_weight(&self) -> f32 {
        self.0.data_moments().0
    }

    /// Points with a positive weight visited.
    #[must_use]
    pub fn count(&self) -> usize {
        self.0.count
    }

    /// The M-step: the next model from these statistics, with the guards
    /// that fired (see [`Gmm::fit`] for the empty and collapsing rules).
    ///
    /// # Errors
    /// [`GmmError::Diverged`] when the statistics are not finite or empty
    /// (for example from non-finite points, which [`Gmm::e_step`] does not
    /// check); [`GmmError::SingularCovariance`].
    pub fn m_step(&self, reg_covar: f32) -> Result<(Gmm<K>, Guards), GmmError> {
        let mut guards = Guards::default();
        let model = m_step(&self.0, reg_covar, &mut guards)?;
        Ok((model, guards))
    }

    /// Whether [`SufficientStats::m_step`] on these statistics re-seeds
    /// an emptied component, which it puts at the pass's worst-explained
    /// point: statistics from [`Gmm::e_step_without_worst`] lack that
    /// point (the component would go to the data mean instead), so redo
    /// such a pass with [`Gmm::e_step`] first, as a fit does.
    #[must_use]
    pub fn needs_worst(&self) -> bool {
        self.0.needs_worst()
    }
}

impl<const K: usize> Gmm<K> {
    /// One E-step over `data`: the sufficient statistics for the next
    /// M-step. Points are not validated here (use [`summarise`] once, or
    /// [`Gmm::fit`]); non-finite points make the statistics non-finite
    /// and the M-step fail.
    ///
    /// Its pass buffers (1 896 bytes for `K = 8` on a Cortex-M) are on the
    /// stack; [`Gmm::e_step_in`] takes them from a [`Workspace`].
    pub fn e_step<P: Points + ?Sized>(&self, data: &P, exp: ExpMode) -> SufficientStats<K> {
        let (mut work, mut out) = (PassWork::ZERO, Stats::ZERO);
        e_step(self, data, exp, &mut work, &mut out, true);
        SufficientStats(out)
    }

    /// [`Gmm::e_step`] without the search for the worst-explained point,
    /// which only an M-step that re-seeds a component uses: the same
    /// moments and log-likelihood, a little less work per block. Check
    /// [`SufficientStats::needs_worst`] before the M-step, as a fit does:
    /// it skips the search on every pass that does not need it.
    pub fn e_step_without_worst<P: Points + ?Sized>(
        &self,
        data: &P,
        exp: ExpMode,
    ) -> SufficientStats<K> {
        let (mut work, mut out) = (PassWork::ZERO, Stats::ZERO);
        e_step(self, data, exp, &mut work, &mut out, false);
        SufficientStats(out)
    }

    /// [`Gmm::e_step`] with its pass buffers in `ws` (a `static` on a
    /// device), for a firmware's own EM loop over data it reads chunk by
    /// chunk (from external flash, say): only the statistics it returns
    /// are on the stack. The same bits as [`Gmm::e_step`]; a workspace
    /// needs no reset between calls or fits.
    ///
    /// # Examples
    /// ```
    /// use gmm_core::{ExpMode, FitConfig, Gmm, Workspace};
    /// let points: [[f32; 2]; 40] = core::array::from_fn(|i| [(i % 5) as f32, (i / 5) as f32 + if i < 20 { 0.0 } else { 9.0 }]);
    /// let mut model = Gmm::<2>::fit(&points, &FitConfig::new(2).with_max_iter(0))?.model;
    /// let mut ws = Workspace::<2>::new();
    /// for _ in 0..5 {
    ///     // Two chunks, as if read one after the other.
    ///     let (a, b) = points.split_at(20);
    ///     let mut stats = model.e_step_in(&mut ws, a, ExpMode::Libm);
    ///     stats.merge(&model.e_step_in(&mut ws, b, ExpMode::Libm))?;
    ///     model = stats.m_step(1e-6)?.0;
    /// }
    /// assert_eq!(model.predict([2.0, 1.0]), model.predict([2.0, 2.0]));
    /// assert_ne!(model.predict([2.0, 1.0]), model.predict([2.0, 11.0]));
    /// # Ok::<(), gmm_core::GmmError>(())
    /// ```
    pub fn e_step_in<P: Points + ?Sized>(
        &self,
        ws: &mut Workspace<K>,
        data: &P,
        exp: ExpMode,
    ) -> SufficientStats<K> {
        let mut out = Stats::ZERO;
        e_step(self, data, exp, &mut ws.pass, &mut out, true);
        SufficientStats(out)
    }
}

/// What a fit reports besides the model.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FitReport {
    /// Components fitted.
    pub k: usize,
    /// EM iterations (M-steps) of the winning restart.
    pub n_iter: u32,
    /// Whether the winning restart met `tol` before `max_iter`.
    pub converged: bool,
    /// Total (weighted) log-likelihood under the final parameters.
    pub log_likelihood: f32,
    /// `log_likelihood / total_weight`.
    pub mean_log_likelihood: f32,
    /// Points with a positive weight.
    pub n_points: usize,
    /// Sum of the weights (`n_points` for unweighted data).
    pub total_weight: f32,
    /// Which restart won (0-based).
    pub restart: u32,
    /// Restarts that failed (diverged or singular) and were skipped.
    pub failed_restarts: u32,
    /// Guards that fired in the winning restart.
    pub guards: Guards,
}

impl FitReport {
    /// All zero, for a workspace's result before its first fit.
    const ZERO: Self = Self {
        k: 0,
        n_iter: 0,
        converged: false,
        log_likelihood: 0.0,
        mean_log_likelihood: 0.0,
        n_points: 0,
        total_weight: 0.0,
        restart: 0,
        failed_restarts: 0,
        guards: Guards {
            reseeded: 0,
            floored: 0,
        },
    };

    /// The number of free parameters, `6k - 1`.
    #[must_use]
    pub const fn n_parameters(&self) -> usize {
        6 * self.k - 1
    }

    /// BIC of the fit on its data: `-2 ln L + (6k - 1) ln n`.
    #[must_use]
    pub fn bic(&self) -> f32 {
        crate::mixture::bic(self.log_likelihood, self.total_weight, self.k)
    }

    /// AIC of the fit on its data: `-2 ln L + 2 (6k - 1)`.
    #[must_use]
    pub fn aic(&self) -> f32 {
        crate::mixture::aic(self.log_likelihood, self.k)
    }
}

/// A fitted model and how the fit went.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Fit<const K: usize> {
    /// The model.
    pub model: Gmm<K>,
    /// How it was reached.
    pub report: FitReport,
}

/// EM from `ws.model` until `tol` or `max_iter`, updating it in place
/// (the statistics and the pass's buffers in `ws` too).
fn run_em<const K: usize, P: Points + ?Sized, T: Trace + ?Sized>(
    data: &P,
    summary: &Summary,
    config: &FitConfig,
    ws: &mut Workspace<K>,
    restart: u32,
    trace: &mut T,
) -> Result<FitReport, GmmError> {
    let Workspace {
        pass, stats, model, ..
    } = ws;
    let w = summary.total_weight;
    let mut guards = Guards::default();
    let mut n_iter = 0;
    let mut converged = false;
    let mut mean_ll = 0.0;
    loop {
        e_step(model, data, config.exp, pass, stats, false);
        let next = stats.log_likelihood / w;
        if !next.is_finite() {
            return Err(GmmError::Diverged);
        }
        trace.record(restart, n_iter, next, model.weights());
        let change = next - mean_ll;
        mean_ll = next;
        if n_iter > 0 && libm::fabsf(change) <= config.tol {
            converged = true;
            break;
        }
        if n_iter >= config.max_iter {
            break;
        }
        if stats.needs_worst() {
            // The same pass again (the same statistics), with the worst
            // point this time, for the M-step's re-seeding. (Two calls of
            // `e_step` in this function: with one, opt-level 3 inlined the
            // pass into the fit's caller, 5 KB more flash.)
            e_step(model, data, config.exp, pass, stats, true);
        }
        m_step_into(stats, config.reg_covar, &mut guards, model)?;
        n_iter += 1;
    }
    Ok(FitReport {
        k: model.k(),
        n_iter,
        converged,
        log_likelihood: stats.log_likelihood,
        mean_log_likelihood: mean_ll,
        n_points: summary.n_positive,
        total_weight: w,
        restart,
        failed_restarts: 0,
        guards,
    })
}

/// The checks every fit makes before EM: `k` against the capacity, the
/// configuration, every point and weight, and enough points for `k`.
pub(crate) fn validate<const K: usize, P: Points + ?Sized>(
    data: &P,
    config: &FitConfig,
    k: usize,
) -> Result<Summary, GmmError> {
    if k == 0 || k > K {
        return Err(GmmError::InvalidK { k, capacity: K });
    }
    config.validate()?;
    let summary = summarise(data)?;
    if summary.n_positive < k {
        return Err(GmmError::TooFewPoints {
            points: summary.n_positive,
            components: k,
        });
    }
    Ok(summary)
}

/// Validates, then runs every restart and keeps the best in `ws.best`.
pub(crate) fn fit<'w, const K: usize, P: Points + ?Sized, T: Trace + ?Sized>(
    ws: &'w mut Workspace<K>,
    data: &P,
    config: &FitConfig,
    warm: Option<&Gmm<K>>,
    trace: &mut T,
) -> Result<&'w Fit<K>, GmmError> {
    let k = warm.map_or(config.k, Gmm::k);
    let summary = validate::<K, P>(data, config, k)?;
    let config = FitConfig { k, ..*config };
    let runs = if warm.is_some() { 1 } else { config.n_init };
    let mut streams = Xoshiro128PlusPlus::seed_from_u64(config.seed);
    // The best restart so far and the one running: two models in the
    // workspace, whatever the number of restarts.
    let mut best: Option<FitReport> = None;
    let mut failed = 0;
    let mut last_error = GmmError::Diverged;
    for restart in 0..runs {
        let mut rng = streams.clone();
        streams.jump();
        let run = match warm {
            Some(g) => {
                ws.model = *g;
                Ok(())
            }
            None => crate::init::initialise(data, &summary, &config, &mut rng, ws),
        }
        .and_then(|()| run_em(data, &summary, &config, ws, restart, trace));
        match run {
            Ok(report) => {
                if best.is_none_or(|b| report.log_likelihood > b.log_likelihood) {
                    best = Some(report);
                    ws.best.model = ws.model;
                }
            }
            Err(e) => {
                failed += 1;
                last_error = e;
            }
        }
    }
    let mut report = best.ok_or(last_error)?;
    report.failed_restarts = failed;
    ws.best.report = report;
    Ok(&ws.best)
}

/// The memory a fit works in besides its stack: the E-step's sums and
/// block buffers, the statistics, and the model of the running restart
/// and the best one with its report: 2 676 bytes for `K = 8` on a
/// Cortex-M.
///
/// [`Gmm::fit`] and the other fits keep one on the stack. The `_in`
/// variants ([`Gmm::fit_in`], [`Gmm::refine_in`],
/// [`select_k_in`](crate::select_k_in),
/// [`Warmup::push_in`](crate::Warmup::push_in), and [`Gmm::e_step_in`]
/// for an EM loop of the caller's own) take it from the caller, so a
/// firmware can place it in a `static` and keep the fit's stack small
/// (under 1 KiB for `K = 8` on a Cortex-M4); reusing one needs no reset.
///
/// # Examples
/// ```
/// use gmm_core::{FitConfig, Gmm, Workspace};
/// let points = [[0.0, 0.1], [0.2, -0.1], [-0.1, 0.0], [5.0, 5.1], [5.2, 4.9], [4.9, 5.0]];
/// let mut ws = Workspace::<4>::new();
/// let fit = Gmm::fit_in(&mut ws, &points, &FitConfig::new(2))?;
/// assert_eq!(*fit, Gmm::<4>::fit(&points, &FitConfig::new(2))?);
/// # Ok::<(), gmm_core::GmmError>(())
/// ```
pub struct Workspace<const K: usize> {
    pub(crate) pass: PassWork<K>,
    pub(crate) stats: Stats<K>,
    pub(crate) model: Gmm<K>,
    pub(crate) best: Fit<K>,
}

impl<const K: usize> Workspace<K> {
    /// A workspace for fits of up to `K` components (`const`, for a
    /// `static`).
    #[must_use]
    pub const fn new() -> Self {
        Self {
            pass: PassWork::ZERO,
            stats: Stats::ZERO,
            model: Gmm::EMPTY,
            best: Fit {
                model: Gmm::EMPTY,
                report: FitReport::ZERO,
            },
        }
    }
}

impl<const K: usize> Default for Workspace<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const K: usize> core::fmt::Debug for Workspace<K> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Workspace")
            .field("capacity", &K)
            .finish_non_exhaustive()
    }
}

impl<const K: usize> Gmm<K> {
    /// Fits a `config.k`-component mixture to `data` by EM.
    ///
    /// Runs `config.n_init` restarts, each initialised by `config.init`
    /// from its own random stream, and keeps the one with the highest
    /// final log-likelihood (a restart that fails is skipped and counted).
    /// Memory is O(K) whatever the number of points; the data is walked
    /// once per iteration.
    ///
    /// # Errors
    /// [`GmmError::InvalidK`] for `k = 0` or `k > K`; [`GmmError::InvalidConfig`]
    /// for a bad `tol`, `reg_covar` or `n_init`; [`GmmError::NonFinitePoint`],
    /// [`GmmError::PointOutOfRange`], [`GmmError::InvalidWeight`] with the index
    /// of the first bad point; [`GmmError::ZeroTotalWeight`];
    /// [`GmmError::TooFewPoints`] when fewer points than `k` have a positive
    /// weight; [`GmmError::Overflow`] when the data's spread overflows f32;
    /// and, when every restart fails, [`GmmError::SingularCovariance`] or
    /// [`GmmError::Diverged`].
    ///
    /// # Examples
    /// ```
    /// use gmm_core::{FitConfig, Gmm};
    /// let points = [[0.0, 0.1], [0.2, -0.1], [-0.1, 0.0], [5.0, 5.1], [5.2, 4.9], [4.9, 5.0]];
    /// let fit = Gmm::<4>::fit(&points, &FitConfig::new(2).with_n_init(3))?;
    /// assert_ne!(fit.model.predict([0.0, 0.0]), fit.model.predict([5.0, 5.0]));
    /// # Ok::<(), gmm_core::GmmError>(())
    /// ```
    pub fn fit<P: Points + ?Sized>(data: &P, config: &FitConfig) -> Result<Fit<K>, GmmError> {
        Self::fit_in(&mut Workspace::new(), data, config).copied()
    }

    /// [`Gmm::fit`], calling `trace` once per iteration of every restart.
    ///
    /// # Errors
    /// As [`Gmm::fit`].
    pub fn fit_traced<P: Points + ?Sized, T: Trace + ?Sized>(
        data: &P,
        config: &FitConfig,
        trace: &mut T,
    ) -> Result<Fit<K>, GmmError> {
        Self::fit_traced_in(&mut Workspace::new(), data, config, trace).copied()
    }

    /// Continues EM from this model (a warm start: no initialisation, one
    /// run, `config.k`, `init`, `n_init` and `seed` ignored).
    /// With `max_iter = 0` the result is this model, with its
    /// log-likelihood on `data`.
    ///
    /// # Errors
    /// As [`Gmm::fit`].
    pub fn refine<P: Points + ?Sized, T: Trace + ?Sized>(
        &self,
        data: &P,
        config: &FitConfig,
        trace: &mut T,
    ) -> Result<Fit<K>, GmmError> {
        self.refine_in(&mut Workspace::new(), data, config, trace)
            .copied()
    }

    /// [`Gmm::fit`] in the caller's [`Workspace`] (for example a
    /// `static`) instead of one on the stack: the same result, bit for
    /// bit, left in the workspace (copy it, `*fit`, to keep it past the
    /// workspace's next fit). No model-sized value passes through the
    /// stack.
    ///
    /// # Errors
    /// As [`Gmm::fit`].
    pub fn fit_in<'w, P: Points + ?Sized>(
        ws: &'w mut Workspace<K>,
        data: &P,
        config: &FitConfig,
    ) -> Result<&'w Fit<K>, GmmError> {
        fit(ws, data, config, None, &mut ())
    }

    /// [`Gmm::fit_traced`] in the caller's [`Workspace`] (see
    /// [`Gmm::fit_in`]).
    ///
    /// # Errors
    /// As [`Gmm::fit`].
    pub fn fit_traced_in<'w, P: Points + ?Sized, T: Trace + ?Sized>(
        ws: &'w mut Workspace<K>,
        data: &P,
        config: &FitConfig,
        trace: &mut T,
    ) -> Result<&'w Fit<K>, GmmError> {
        fit(ws, data, config, None, trace)
    }

    /// [`Gmm::refine`] in the caller's [`Workspace`] (see
    /// [`Gmm::fit_in`]).
    ///
    /// # Errors
    /// As [`Gmm::fit`].
    pub fn refine_in<'w, P: Points + ?Sized, T: Trace + ?Sized>(
        &self,
        ws: &'w mut Workspace<K>,
        data: &P,
        config: &FitConfig,
        trace: &mut T,
    ) -> Result<&'w Fit<K>, GmmError> {
        fit(ws, data, config, Some(self), trace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`term_by_bits`] against [`term_or_one`]'s float tests, in every
    /// mode: special values, SKIP and its neighbours, and every f32 bit
    /// pattern from -0 to -inf with a stride of 4099.
    #[test]
    fn term_by_bits_matches_the_float_tests() {
        fn check<E: Exp>() {
            let same = |d: f32| {
                assert_eq!(
                    term_by_bits::<E>(d).to_bits(),
                    term_or_one::<E>(d).to_bits(),
                    "d = {d:e}"
                );
            };
            let skip = E::SKIP.to_bits();
            for d in [
                0.0,
                -0.0,
                f32::NEG_INFINITY,
                f32::NAN,
                -f32::NAN,
                E::SKIP,
                f32::from_bits(skip - 1),
                f32::from_bits(skip + 1),
                -f32::MIN_POSITIVE,
                -1e-45,
            ] {
                same(d);
            }
            let mut bits = (-0.0f32).to_bits();
            while bits <= f32::NEG_INFINITY.to_bits() {
                same(f32::from_bits(bits));
                bits += 4099;
            }
        }
        check::<LibmExp>();
        check::<FastExp>();
        #[cfg(feature = "micromath")]
        check::<MicroExp>();
    }

    /// A Cortex-M's `pow_row` writes 1 for a point's largest term
    /// without calling `pow`: the same bits as a vector target's only
    /// while every mode's power of 0 is exactly 1.
    #[test]
    fn every_power_of_zero_is_one() {
        fn check<E: Exp>() {
            for d in [0.0f32, -0.0] {
                assert_eq!(E::pow(d).to_bits(), 1.0f32.to_bits(), "pow({d:?})");
            }
        }
        check::<LibmExp>();
        check::<FastExp>();
        #[cfg(feature = "micromath")]
        check::<MicroExp>();
    }
}
