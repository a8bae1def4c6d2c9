//! The one error type of the crate.

use core::fmt;

/// Everything that can go wrong in this crate. No function panics on user
/// data; each failure is one of these values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum GmmError {
    /// A coordinate is NaN or infinite.
    NonFinitePoint {
        /// Index of the offending point in visiting order.
        index: usize,
    },
    /// A coordinate is finite but larger in magnitude than
    /// [`MAX_ABS_COORDINATE`](crate::MAX_ABS_COORDINATE), where f32 sums of
    /// squares could overflow.
    PointOutOfRange {
        /// Index of the offending point in visiting order.
        index: usize,
    },
    /// A point weight is negative, NaN, infinite, above
    /// [`MAX_WEIGHT`](crate::MAX_WEIGHT), or positive but below
    /// [`MIN_POSITIVE_WEIGHT`](crate::MIN_POSITIVE_WEIGHT).
    InvalidWeight {
        /// Index of the offending weight.
        index: usize,
    },
    /// The number of weights differs from the number of points.
    WeightCountMismatch {
        /// Number of points.
        points: usize,
        /// Number of weights.
        weights: usize,
    },
    /// Every weight is zero (or there are no points at all).
    ZeroTotalWeight,
    /// Fewer points with a positive weight than components.
    TooFewPoints {
        /// Points with a positive weight.
        points: usize,
        /// Components asked for.
        components: usize,
    },
    /// `k` is 0 or larger than the capacity `K`.
    InvalidK {
        /// The `k` asked for.
        k: usize,
        /// The capacity `K`.
        capacity: usize,
    },
    /// A configuration value is out of range.
    InvalidConfig {
        /// Which field, and what it must be.
        reason: &'static str,
    },
    /// Parameters given to build a model are invalid (weights not
    /// positive or not summing to 1, non-finite means, covariance not
    /// positive definite, length mismatch).
    InvalidParameters {
        /// What is wrong.
        reason: &'static str,
    },
    /// A component's covariance stayed singular although it was
    /// regularised (only possible with `reg_covar = 0` on degenerate data,
    /// or with data whose spread f32 cannot resolve).
    SingularCovariance {
        /// The component.
        component: usize,
    },
    /// The data's weighted spread (sum of squared deviations) overflows
    /// f32: extreme coordinates combined with large weights.
    Overflow,
    /// The likelihood or the parameters became non-finite (every restart
    /// failed this way).
    Diverged,
}

impl fmt::Display for GmmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NonFinitePoint { index } => {
                write!(f, "point {index} has a NaN or infinite coordinate")
            }
            Self::PointOutOfRange { index } => write!(
                f,
                "point {index} has a coordinate larger in magnitude than {:e}",
                crate::MAX_ABS_COORDINATE
            ),
            Self::InvalidWeight { index } => {
                write!(
                    f,
                    "weight {index} is not 0 or in [{:e}, {:e}]",
                    crate::MIN_POSITIVE_WEIGHT,
                    crate::MAX_WEIGHT
                )
            }
            Self::WeightCountMismatch { points, weights } => {
                write!(f, "{points} points but {weights} weights")
            }
            Self::ZeroTotalWeight => f.write_str("no points with a positive weight"),
            Self::TooFewPoints { points, components } => write!(
                f,
                "{points} points with positive weight is fewer than the {components} components asked for"
            ),
            Self::InvalidK { k, capacity } => {
                write!(f, "k = {k} is not in 1..={capacity} (the model's capacity)")
            }
            Self::InvalidConfig { reason } => write!(f, "invalid configuration: {reason}"),
            Self::InvalidParameters { reason } => write!(f, "invalid model parameters: {reason}"),
            Self::SingularCovariance { component } => write!(
                f,
                "the covariance of component {component} is singular even after regularisation; increase reg_covar"
            ),
            Self::Overflow => {
                f.write_str("the data's spread overflows f32 (coordinates or weights too large)")
            }
            Self::Diverged => {
                f.write_str("the fit diverged (non-finite likelihood) in every restart")
            }
        }
    }
}

impl core::error::Error for GmmError {}
