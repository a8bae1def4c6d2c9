//! Sample sources: a small trait, the seeded mixture, and collection into
//! a fixed-capacity buffer.

use core::convert::Infallible;
use gmm_core::{Gmm, GmmError, Point, SymMat2};
use rand_xoshiro::Xoshiro128PlusPlus;
use rand_xoshiro::rand_core::SeedableRng;

/// Something that yields 2-D points one at a time: a generator, a sensor.
pub trait SampleSource {
    /// Why a point could not be had.
    type Error;
    /// The next point.
    ///
    /// # Errors
    /// Whatever the source cannot deliver (a bus error, a timeout).
    fn next_point(&mut self) -> Result<Point, Self::Error>;
}

/// Fills `buffer` to its capacity from `source`, in order.
///
/// # Errors
/// The source's first error; the points read before it stay in `buffer`.
pub fn collect<S: SampleSource, const N: usize>(
    source: &mut S,
    buffer: &mut heapless::Vec<Point, N>,
) -> Result<(), S::Error> {
    while !buffer.is_full() {
        let p = source.next_point()?;
        // Not full, checked above.
        let _ = buffer.push(p);
    }
    Ok(())
}

/// FNV-1a over the bits of every coordinate: a fingerprint the device logs
/// so the host knows it regenerated the same data before comparing fits.
#[must_use]
pub fn checksum(points: &[Point]) -> u32 {
    let mut h = Checksum::new();
    for &p in points {
        h.add(p);
    }
    h.value()
}

/// [`checksum`] one point at a time, for a stream that is not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checksum(u32);

impl Checksum {
    /// The checksum of no points.
    #[must_use]
    pub const fn new() -> Self {
        Self(0x811c_9dc5)
    }

    /// Adds the next point.
    pub fn add(&mut self, p: Point) {
        for v in p {
            for byte in v.to_bits().to_le_bytes() {
                self.0 ^= u32::from(byte);
                self.0 = self.0.wrapping_mul(0x0100_0193);
            }
        }
    }

    /// The checksum of the points added so far.
    #[must_use]
    pub const fn value(self) -> u32 {
        self.0
    }
}

impl Default for Checksum {
    fn default() -> Self {
        Self::new()
    }
}

/// Draws from a fixed mixture with a seeded xoshiro128++ generator: the
/// same seed gives the same points, bit for bit, on the device and the
/// host (gmm-core's sampler uses only libm and plain f32 arithmetic).
#[derive(Clone, Debug)]
pub struct MixtureSource<const K: usize> {
    model: Gmm<K>,
    rng: Xoshiro128PlusPlus,
}

impl<const K: usize> MixtureSource<K> {
    /// Draws from `model`, seeding the generator from `seed`.
    #[must_use]
    pub fn new(model: Gmm<K>, seed: u64) -> Self {
        Self {
            model,
            rng: Xoshiro128PlusPlus::seed_from_u64(seed),
        }
    }
}

impl MixtureSource<3> {
    /// The seed notebook's three-component mixture
    /// ([`crate::SEED_WEIGHTS`], [`crate::SEED_MEANS`],
    /// [`crate::SEED_COVARIANCES`]).
    ///
    /// # Errors
    /// None in practice: the constants are a valid mixture; the `Result`
    /// comes from [`Gmm::new`].
    pub fn seed_mixture(seed: u64) -> Result<Self, GmmError> {
        let covs = crate::SEED_COVARIANCES.map(|[xx, xy, yy]| SymMat2::new(xx, xy, yy));
        let model = Gmm::new(&crate::SEED_WEIGHTS, &crate::SEED_MEANS, &covs)?;
        Ok(Self::new(model, seed))
    }
}

impl<const K: usize> SampleSource for MixtureSource<K> {
    type Error = Infallible;

    fn next_point(&mut self) -> Result<Point, Infallible> {
        Ok(self.model.sample(&mut self.rng).0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_points_other_seed_other_points() {
        let mut a: heapless::Vec<Point, 64> = heapless::Vec::new();
        let mut b: heapless::Vec<Point, 64> = heapless::Vec::new();
        let mut c: heapless::Vec<Point, 64> = heapless::Vec::new();
        collect(&mut MixtureSource::seed_mixture(1).unwrap(), &mut a).unwrap();
        collect(&mut MixtureSource::seed_mixture(1).unwrap(), &mut b).unwrap();
        collect(&mut MixtureSource::seed_mixture(2).unwrap(), &mut c).unwrap();
        assert!(a.is_full());
        assert_eq!(checksum(&a), checksum(&b));
        assert_ne!(checksum(&a), checksum(&c));
        assert!(a.iter().all(|p| p[0].is_finite() && p[1].is_finite()));
    }

    #[test]
    fn points_follow_the_seed_mixture() {
        // 900 points as on the device: the overall mean is
        // 0.3*(-4,0) + 0.5*(0,4) + 0.2*(4,0) = (-0.4, 2.0); its standard
        // error is about 3/sqrt(900) = 0.1, so 0.5 is a 5-sigma bound.
        let mut v: heapless::Vec<Point, { crate::N_POINTS }> = heapless::Vec::new();
        collect(
            &mut MixtureSource::seed_mixture(crate::DATA_SEED).unwrap(),
            &mut v,
        )
        .unwrap();
        let n = v.len() as f64;
        let mx = v.iter().map(|p| f64::from(p[0])).sum::<f64>() / n;
        let my = v.iter().map(|p| f64::from(p[1])).sum::<f64>() / n;
        assert!(
            (mx + 0.4).abs() < 0.5 && (my - 2.0).abs() < 0.5,
            "{mx} {my}"
        );
    }

    #[test]
    fn checksum_sees_single_bits() {
        let a = [[1.0f32, 2.0]];
        let b = [[f32::from_bits(1.0f32.to_bits() ^ 1), 2.0]];
        assert_ne!(checksum(&a), checksum(&b));
        assert_eq!(checksum(&[]), 0x811c_9dc5);
    }

    #[test]
    fn running_checksum_equals_the_slice_checksum() {
        let pts = [[1.0f32, -2.0], [0.5, 3.25], [f32::MAX, 0.0]];
        let mut c = Checksum::new();
        for &p in &pts {
            c.add(p);
        }
        assert_eq!(c.value(), checksum(&pts));
        assert_ne!(c.value(), checksum(&pts[..2]));
    }

    struct Failing(u32);
    impl SampleSource for Failing {
        type Error = &'static str;
        fn next_point(&mut self) -> Result<Point, &'static str> {
            if self.0 == 0 {
                return Err("dry");
            }
            self.0 -= 1;
            Ok([0.0, 0.0])
        }
    }

    #[test]
    fn collect_stops_at_the_first_error_keeping_what_it_read() {
        let mut v: heapless::Vec<Point, 8> = heapless::Vec::new();
        assert_eq!(collect(&mut Failing(3), &mut v), Err("dry"));
        assert_eq!(v.len(), 3);
    }
}
