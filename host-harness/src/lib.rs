//! Host-side tools around `gmm-core`.
