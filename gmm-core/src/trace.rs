//! A record of each EM iteration, for convergence plots and logs.

/// Receives one call per EM iteration (and one for the starting
/// parameters, iteration 0) of every restart.
///
/// Implemented for `()` (record nothing) and for a fixed-capacity
/// `heapless::Vec<TraceEntry<K>, N>`, which keeps the first `N` entries.
/// Firmware can implement it to log each iteration as it happens.
pub trait Trace {
    /// Iteration `iteration` of restart `restart` reached this mean
    /// log-likelihood per point with these mixing weights.
    fn record(&mut self, restart: u32, iteration: u32, mean_log_likelihood: f32, weights: &[f32]);
}

impl Trace for () {
    #[inline]
    fn record(&mut self, _: u32, _: u32, _: f32, _: &[f32]) {}
}

/// One iteration as kept by the `heapless::Vec` trace.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TraceEntry<const K: usize> {
    /// Which restart (0-based).
    pub restart: u32,
    /// Iteration number: 0 for the starting parameters, then one per M-step.
    pub iteration: u32,
    /// Mean log-likelihood per point under the parameters of this iteration.
    pub mean_log_likelihood: f32,
    /// Mixing weights (entries past k are 0).
    pub weights: [f32; K],
}

impl<const K: usize, const N: usize> Trace for heapless::Vec<TraceEntry<K>, N> {
    fn record(&mut self, restart: u32, iteration: u32, mean_log_likelihood: f32, weights: &[f32]) {
        let mut w = [0.0; K];
        for (slot, &v) in w.iter_mut().zip(weights) {
            *slot = v;
        }
        // Full: the first N iterations are kept, later ones dropped.
        let _ = self.push(TraceEntry {
            restart,
            iteration,
            mean_log_likelihood,
            weights: w,
        });
    }
}
