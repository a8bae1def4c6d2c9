//! Where the points come from: anything that can be walked again.
//!
//! EM makes one pass over the data per iteration and keeps nothing per
//! point, so the data need not be in RAM: it can be a slice, a table in
//! flash, or a generator that replays the same points from a seed.

use crate::GmmError;

/// A point in the plane.
pub type Point = [f32; 2];

/// A re-iterable source of weighted points.
///
/// `visit` must call `f` with the same points and weights, in the same
/// order, every time it is called: EM walks the source once per iteration.
/// Weights are the per-point multiplicities: a weight of 2 counts like the
/// point twice, a weight of 0 like no point.
///
/// # Examples
/// A source that regenerates its points instead of storing them:
/// ```
/// use gmm_core::{FitConfig, Gmm, Point, Points};
///
/// struct Grid;
/// impl Points for Grid {
///     fn visit<F: FnMut(Point, f32)>(&self, mut f: F) {
///         for i in 0..20 {
///             for j in 0..20 {
///                 let offset = if i < 10 { -5.0 } else { 5.0 };
///                 f([offset + (i % 10) as f32 * 0.1, j as f32 * 0.1], 1.0);
///             }
///         }
///     }
/// }
/// let fit = Gmm::<2>::fit(&Grid, &FitConfig::new(2))?;
/// assert_eq!(fit.model.k(), 2);
/// # Ok::<(), gmm_core::GmmError>(())
/// ```
pub trait Points {
    /// Calls `f(point, weight)` once for every point, in a fixed order.
    fn visit<F: FnMut(Point, f32)>(&self, f: F);

    /// The same points as one slice, every weight 1, when they are stored
    /// that way: the E-step then reads them a block at a time instead of
    /// one call per point (same results). `None` by default; a source
    /// that returns `Some` must return exactly the points `visit` gives,
    /// in the same order, with weight 1.
    #[inline]
    fn as_point_slice(&self) -> Option<&[Point]> {
        None
    }
}

impl Points for [Point] {
    #[inline]
    fn visit<F: FnMut(Point, f32)>(&self, mut f: F) {
        for &p in self {
            f(p, 1.0);
        }
    }

    #[inline]
    fn as_point_slice(&self) -> Option<&[Point]> {
        Some(self)
    }
}

impl<const N: usize> Points for [Point; N] {
    #[inline]
    fn visit<F: FnMut(Point, f32)>(&self, f: F) {
        self.as_slice().visit(f);
    }

    #[inline]
    fn as_point_slice(&self) -> Option<&[Point]> {
        Some(self)
    }
}

impl<T: Points + ?Sized> Points for &T {
    #[inline]
    fn visit<F: FnMut(Point, f32)>(&self, f: F) {
        (**self).visit(f);
    }

    #[inline]
    fn as_point_slice(&self) -> Option<&[Point]> {
        (**self).as_point_slice()
    }
}

impl<const N: usize> Points for heapless::Vec<Point, N> {
    #[inline]
    fn visit<F: FnMut(Point, f32)>(&self, f: F) {
        self.as_slice().visit(f);
    }

    #[inline]
    fn as_point_slice(&self) -> Option<&[Point]> {
        Some(self)
    }
}

/// Points with a weight each (sample weights, counts, importance).
#[derive(Clone, Copy, Debug)]
pub struct Weighted<'a> {
    points: &'a [Point],
    weights: &'a [f32],
}

impl<'a> Weighted<'a> {
    /// Pairs `points[i]` with `weights[i]`.
    ///
    /// # Errors
    /// [`GmmError::WeightCountMismatch`] when the lengths differ. Negative
    /// or non-finite weights are reported by the fit, with their index.
    pub fn new(points: &'a [Point], weights: &'a [f32]) -> Result<Self, GmmError> {
        if points.len() == weights.len() {
            Ok(Self { points, weights })
        } else {
            Err(GmmError::WeightCountMismatch {
                points: points.len(),
                weights: weights.len(),
            })
        }
    }
}

impl Points for Weighted<'_> {
    #[inline]
    fn visit<F: FnMut(Point, f32)>(&self, mut f: F) {
        for (&p, &w) in self.points.iter().zip(self.weights) {
            f(p, w);
        }
    }
}
