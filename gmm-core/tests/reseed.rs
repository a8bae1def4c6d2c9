//! A fit looks for the worst-explained point, where an emptied component
//! is re-seeded, only when its next M-step re-seeds one (it then runs that
//! E-step pass again): the same steps, bit for bit, as EM through the
//! public API with `Gmm::e_step`, whose every pass looks for that point,
//! and as EM with `Gmm::e_step_without_worst` and
//! `SufficientStats::needs_worst`.

mod common;

use gmm_core::{ExpMode, FitConfig, Gmm, SymMat2};

#[test]
fn a_fit_that_reseeds_takes_the_steps_of_em_through_the_public_api() {
    let pts = common::seed_data(203, 17).0;
    // The seed mixture and two components far from every point with tiny
    // weights: both empty in the first M-step (one re-seeded at the worst
    // point, the other at the data mean), and the re-seeded ones may
    // empty again later.
    let mut weights = common::TRUE_WEIGHTS.to_vec();
    weights.extend([1e-6, 1e-6]);
    let mut means = common::TRUE_MEANS.to_vec();
    means.extend([[60.0, -60.0], [-50.0, 70.0]]);
    let mut covs = common::TRUE_COVS.to_vec();
    covs.extend([SymMat2::new(0.01, 0.0, 0.01); 2]);
    let start = Gmm::<5>::new(&weights, &means, &covs).unwrap();
    for exp in [ExpMode::Libm, ExpMode::Fast] {
        let config = FitConfig::new(5)
            .with_exp(exp)
            .with_max_iter(8)
            .with_tol(0.0);
        let fit = start.refine(&pts[..], &config, &mut ()).unwrap();
        let mut model = start;
        let mut reseeded = 0;
        for _ in 0..config.max_iter {
            let stats = model.e_step(&pts[..], exp);
            let (next, guards) = stats.m_step(config.reg_covar).unwrap();
            model = next;
            reseeded += guards.reseeded;
        }
        assert!(reseeded >= 2, "{exp:?}: the start must empty components");
        assert_eq!(fit.report.guards.reseeded, reseeded, "{exp:?}");
        assert_eq!(fit.report.n_iter, config.max_iter, "{exp:?}");
        assert_eq!(fit.model, model, "{exp:?}");
        // The lean E-step, redone with the search where the M-step needs
        // it, as `host_harness::parallel` runs it: the same steps again.
        let mut lean = start;
        let mut redone = 0;
        for _ in 0..config.max_iter {
            let mut stats = lean.e_step_without_worst(&pts[..], exp);
            if stats.needs_worst() {
                stats = lean.e_step(&pts[..], exp);
                redone += 1;
            }
            lean = stats.m_step(config.reg_covar).unwrap().0;
        }
        assert!(redone >= 1, "{exp:?}");
        assert_eq!(lean, model, "{exp:?}");
    }
}
