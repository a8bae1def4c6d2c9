//! One `Workspace` reused across fits of every kind gives the same bits as
//! the fits that keep their workspace on the stack: nothing stale in it
//! (a smaller k after a larger one, another start, another exponential,
//! weights, a warm start, a failed fit) leaks into the next fit.

mod common;

use gmm_core::{
    Criterion, ExpMode, FitConfig, Gmm, GmmError, InitMethod, Point, Weighted, Workspace, select_k,
    select_k_in,
};

const K: usize = 5;

fn points() -> Vec<Point> {
    common::seed_data(203, 17).0
}

/// Weights 0, 0.5, 1 and 1.5 in turn: zero weights and weighted blocks.
fn weights(n: usize) -> Vec<f32> {
    (0..n).map(|i| (i % 4) as f32 * 0.5).collect()
}

fn same(a: &Result<gmm_core::Fit<K>, GmmError>, b: &Result<gmm_core::Fit<K>, GmmError>) {
    match (a, b) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.model, b.model);
            assert_eq!(a.report, b.report);
        }
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("one fit failed and the other did not: {a:?} / {b:?}"),
    }
}

#[test]
fn a_reused_workspace_gives_the_bits_of_a_fresh_one() {
    let pts = points();
    let weights = weights(pts.len());
    let weighted = Weighted::new(&pts[..], &weights).unwrap();
    let mut ws = Workspace::<K>::new();
    let inits = [
        InitMethod::KMeansPlusPlus,
        InitMethod::RandomFromData,
        InitMethod::StandardNormal,
    ];
    let exps = [ExpMode::Libm, ExpMode::Fast];
    let mut fits = 0;
    // k goes down and up so that a smaller fit follows a larger one.
    for (round, k) in [5, 2, 4, 1, 3, 5, 1].into_iter().enumerate() {
        let config = FitConfig::new(k)
            .with_n_init(2)
            .with_seed(round as u64)
            .with_init(inits[round % 3])
            .with_exp(exps[round % 2]);
        same(
            &Gmm::<K>::fit_in(&mut ws, &pts[..], &config).copied(),
            &Gmm::<K>::fit(&pts[..], &config),
        );
        same(
            &Gmm::<K>::fit_in(&mut ws, &weighted, &config).copied(),
            &Gmm::<K>::fit(&weighted, &config),
        );
        // A fit that fails (more components than points) leaves nothing
        // that changes the next one.
        same(
            &Gmm::<K>::fit_in(&mut ws, &pts[..k - 1], &config).copied(),
            &Gmm::<K>::fit(&pts[..k - 1], &config),
        );
        let start = Gmm::<K>::fit(&pts[..], &config.with_max_iter(2))
            .unwrap()
            .model;
        same(
            &start
                .refine_in(&mut ws, &pts[..], &config, &mut ())
                .copied(),
            &start.refine(&pts[..], &config, &mut ()),
        );
        fits += 4;
    }
    assert_eq!(fits, 28);
    let config = FitConfig::new(1).with_n_init(2);
    assert_eq!(
        select_k_in(&mut ws, &pts[..], &config, K, Criterion::Bic).unwrap(),
        select_k::<K, _>(&pts[..], &config, K, Criterion::Bic).unwrap()
    );
}

/// `Warmup::push_in` starts the same stream as `Warmup::push`, bit for
/// bit, with a workspace that earlier fits left full.
#[test]
fn a_warm_up_in_a_workspace_starts_the_same_stream() {
    use gmm_core::{StreamConfig, Warmup};
    let pts = points();
    let mut ws = Workspace::<K>::new();
    let _ = Gmm::<K>::fit_in(&mut ws, &pts[..], &FitConfig::new(5)).unwrap();
    let fit = FitConfig::new(3).with_n_init(2).with_seed(3);
    let mut plain = Warmup::<K, 60>::new(&fit, &StreamConfig::new()).unwrap();
    let mut in_ws = Warmup::<K, 60>::new(&fit, &StreamConfig::new()).unwrap();
    let mut started = 0;
    for (i, &x) in pts.iter().take(60).enumerate() {
        let a = plain.push(x).unwrap();
        let b = in_ws.push_in(&mut ws, x).unwrap();
        assert_eq!(a, b, "sample {i}");
        started += usize::from(a.is_some());
    }
    assert_eq!(started, 1);
}

/// `Gmm::e_step_in` gives the statistics of `Gmm::e_step`, bit for bit,
/// with a workspace that a fit and a larger model left full.
#[test]
fn an_e_step_in_a_workspace_gives_the_same_statistics() {
    let pts = points();
    let weights = weights(pts.len());
    let weighted = Weighted::new(&pts[..], &weights).unwrap();
    let mut ws = Workspace::<K>::new();
    let _ = Gmm::<K>::fit_in(&mut ws, &pts[..], &FitConfig::new(5)).unwrap();
    for (k, exp) in [(5, ExpMode::Fast), (2, ExpMode::Libm), (3, ExpMode::Fast)] {
        let model = Gmm::<K>::fit(&pts[..], &FitConfig::new(k).with_max_iter(3))
            .unwrap()
            .model;
        // Whole, in uneven chunks (the last block of each padded), and weighted.
        let (a, b) = pts.split_at(37);
        let whole = (
            model.e_step(&pts[..], exp),
            model.e_step_in(&mut ws, &pts[..], exp),
        );
        let first = (model.e_step(a, exp), model.e_step_in(&mut ws, a, exp));
        let second = (model.e_step(b, exp), model.e_step_in(&mut ws, b, exp));
        let weighted = (
            model.e_step(&weighted, exp),
            model.e_step_in(&mut ws, &weighted, exp),
        );
        for (plain, in_ws) in [whole, first, second, weighted] {
            assert_eq!(
                plain.log_likelihood().to_bits(),
                in_ws.log_likelihood().to_bits()
            );
            assert_eq!(
                plain.total_weight().to_bits(),
                in_ws.total_weight().to_bits()
            );
            assert_eq!(plain.count(), in_ws.count());
            assert_eq!(plain.m_step(1e-6), in_ws.m_step(1e-6), "k = {k}");
        }
    }
}
