//! `gmm demo`: the seed notebook (../shared/SEED.md) end to end, with its
//! mistakes fixed: log-domain EM, the label permutation resolved before
//! comparing with the truth, k chosen by BIC instead of by eye, seeded.

use crate::cli::{self, CriterionArg, SelectJson};
use crate::data::{self, CliError};
use crate::engine::{self, Engine, Outcome, Settings, Start};
use crate::plot;
use crate::reference::Mixture64;
use gmm_core::InitMethod;
use plotters::prelude::SeriesLabelPosition;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::PathBuf;

/// Arguments of `gmm demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Folder for the data, models, plots and summary (created if missing).
    #[arg(long, short, default_value = "gmm-demo")]
    pub out: PathBuf,
    /// Seed of the sample and of the initialisations.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Number of points (the notebook's 900).
    #[arg(long, default_value_t = 900)]
    pub n: usize,
    /// Largest k of the model selection (the notebook's 14; at most 16).
    #[arg(long, default_value_t = 14)]
    pub k_max: usize,
    /// SVG only (PNG copies are drawn with the embedded font by default).
    #[arg(long)]
    pub no_png: bool,
}

/// `m` with its components reordered: component `j` of the result is
/// component `perm[j]` of `m`.
#[must_use]
pub fn permuted(m: &Mixture64, perm: &[usize]) -> Mixture64 {
    Mixture64 {
        weights: perm.iter().map(|&i| m.weights[i]).collect(),
        means: perm.iter().map(|&i| m.means[i]).collect(),
        covariances: perm.iter().map(|&i| m.covariances[i]).collect(),
    }
}

/// One fit of k = 3 as the summary reports it.
#[derive(Debug, Serialize)]
pub struct DemoFit {
    /// How it started.
    pub init: &'static str,
    /// The fitted mixture in the engine's component order.
    pub fitted: Mixture64,
    /// `perm[j]`: the fitted component matched to true component `j`.
    pub matching: Vec<usize>,
    /// Iterations.
    pub n_iter: usize,
    /// Whether it met tol.
    pub converged: bool,
    /// Mean log-likelihood per point.
    pub mean_log_likelihood: f64,
    /// Share of points whose predicted component (after matching) is
    /// their true component.
    pub label_agreement: f64,
    /// Largest |fitted - true| weight after matching.
    pub max_weight_error: f64,
    /// Largest |fitted - true| mean coordinate after matching.
    pub max_mean_error: f64,
}

/// What `gmm demo` writes to `summary.json`.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Points sampled.
    pub n: usize,
    /// Seed.
    pub seed: u64,
    /// The true mixture.
    pub truth: Mixture64,
    /// Mean log-likelihood of the data under the truth.
    pub truth_mean_log_likelihood: f64,
    /// k = 3 from the notebook's start and from k-means++.
    pub fits: Vec<DemoFit>,
    /// The model selection.
    pub selection: SelectJson,
    /// The core against the reference from the naive start.
    pub compare: cli::Comparison,
    /// Files written.
    pub files: Vec<String>,
}

/// Runs the demo.
///
/// # Errors
/// [`CliError`] when a file cannot be written or a fit fails.
pub fn run(a: &DemoArgs, quiet: bool) -> Result<(), CliError> {
    let mut report = String::new();
    let out = &a.out;
    std::fs::create_dir_all(out)
        .map_err(|e| CliError::input(format!("{}: cannot create: {e}", out.display())))?;
    let mut files = Vec::new();
    let mut write = |name: &str, text: &str| -> Result<PathBuf, CliError> {
        let p = out.join(name);
        data::write_output(Some(&p), text)?;
        files.push(name.to_string());
        Ok(p)
    };

    // 1. Data from the known mixture.
    let truth = Mixture64::seed_mixture();
    let csv = cli::sample_csv(&truth, a.n, a.seed)?;
    let data_path = write("data.csv", &csv)?;
    let truth_json =
        serde_json::to_string_pretty(&truth).map_err(|e| CliError::failed(format!("JSON: {e}")))?;
    write("truth.json", &(truth_json + "\n"))?;
    let data = data::parse_points(&data_path.display().to_string(), csv.as_bytes(), None)?;
    let true_labels = data.labels.clone().unwrap_or_default();
    let truth_ll = crate::reference::log_likelihood(&data.points, None, &truth) / a.n as f64;
    let _ = writeln!(
        report,
        "1. sampled {} points from the notebook's mixture (seed {}); mean log-likelihood under the truth {truth_ll:.4}",
        a.n, a.seed
    );
    let _ = writeln!(report, "{}", cli::mixture_table(&truth));

    // 2. k = 3 from the notebook's start and from k-means++, notebook
    // stopping rule (tol 1e-9 on the mean log-likelihood, 400 iterations).
    let settings = |method: InitMethod| Settings {
        k: 3,
        tol: 1e-9,
        max_iter: 400,
        reg_covar: 1e-6,
        n_init: 1,
        seed: a.seed,
        start: Start::Method(method),
    };
    let naive_settings = settings(InitMethod::StandardNormal);
    let mut fits = Vec::new();
    let mut outcomes: Vec<(&'static str, Outcome)> = Vec::new();
    for (name, method) in [
        ("standard-normal", InitMethod::StandardNormal),
        ("kmeans++", InitMethod::KMeansPlusPlus),
    ] {
        let o = engine::run(Engine::Core, &data, &settings(method), &mut |_, _| {})?;
        let perm = engine::match_components(&truth, &o.mixture)
            .ok_or_else(|| CliError::failed("matching failed"))?;
        let matched = permuted(&o.mixture, &perm);
        let predicted = cli::predict_labels(&o.mixture, &data.points)?;
        // perm[j] = fitted index of true j; invert to map fitted -> true.
        let mut to_true = vec![0; perm.len()];
        for (j, &i) in perm.iter().enumerate() {
            to_true[i] = j;
        }
        let agree = predicted
            .iter()
            .zip(&true_labels)
            .filter(|&(&p, &t)| to_true[p] == t)
            .count();
        let max_w = (0..3)
            .map(|j| (matched.weights[j] - truth.weights[j]).abs())
            .fold(0.0, f64::max);
        let max_m = (0..3)
            .flat_map(|j| (0..2).map(move |d| (j, d)))
            .map(|(j, d)| (matched.means[j][d] - truth.means[j][d]).abs())
            .fold(0.0, f64::max);
        let fit_json = cli::fit_json(&o, data.points.len())?;
        write(&format!("fit-{name}.json"), &(fit_json + "\n"))?;
        fits.push(DemoFit {
            init: name,
            fitted: o.mixture.clone(),
            matching: perm,
            n_iter: o.n_iter,
            converged: o.converged,
            mean_log_likelihood: o.mean_log_likelihood,
            label_agreement: agree as f64 / data.points.len() as f64,
            max_weight_error: max_w,
            max_mean_error: max_m,
        });
        outcomes.push((name, o));
    }
    let _ = writeln!(
        report,
        "2. k = 3 fitted by the core (tol 1e-9, at most 400 iterations):"
    );
    for f in &fits {
        let _ = writeln!(
            report,
            "   from {:<15}: {} after {:>3} iterations, mean log-likelihood {:.4}",
            f.init,
            if f.converged { "converged" } else { "stopped" },
            f.n_iter,
            f.mean_log_likelihood
        );
    }
    let _ = writeln!(
        report,
        "\n3. truth vs fit. The fit's component order is arbitrary (the notebook compared\n   weights index by index and missed this); components are matched to the truth\n   by the permutation minimising the distance between means."
    );
    for f in &fits {
        let raw: Vec<String> = f.fitted.weights.iter().map(|w| format!("{w:.3}")).collect();
        let _ = writeln!(
            report,
            "   {}: weights in fit order [{}]; fit component matched to true 0,1,2: {:?}",
            f.init,
            raw.join(", "),
            f.matching
        );
    }
    let _ = writeln!(
        report,
        "   {:>4} {:>7} {:>8} {:>8} {:>17} {:>17} {:>17}",
        "true", "true w", "w (s-n)", "w (k++)", "true mean", "mean (s-n)", "mean (k++)"
    );
    let m0 = permuted(&fits[0].fitted, &fits[0].matching);
    let m1 = permuted(&fits[1].fitted, &fits[1].matching);
    let pt = |p: [f64; 2]| format!("({:.3}, {:.3})", p[0], p[1]);
    for j in 0..3 {
        let _ = writeln!(
            report,
            "   {j:>4} {:>7.3} {:>8.3} {:>8.3} {:>17} {:>17} {:>17}",
            truth.weights[j],
            m0.weights[j],
            m1.weights[j],
            pt(truth.means[j]),
            pt(m0.means[j]),
            pt(m1.means[j])
        );
    }
    for f in &fits {
        let _ = writeln!(
            report,
            "   {}: largest weight error {:.3}, largest mean error {:.3}, {:.1}% of points get their true component",
            f.init,
            f.max_weight_error,
            f.max_mean_error,
            100.0 * f.label_agreement
        );
    }

    // 4. The core against the f64 reference from the notebook's start.
    let comparison = cli::compare_fits(&data, &naive_settings, 1e-4, 1e-4)?;
    let diffs: Vec<String> = comparison
        .diffs
        .iter()
        .map(|d| format!("{} {:.1e} (relative {:.1e})", d.what, d.max_abs, d.max_rel))
        .collect();
    let _ = writeln!(
        report,
        "\n4. the f32 core vs the f64 reference from the same standard-normal start, {} iterations each;\n   largest differences: {}\n   {}",
        comparison.n_iter,
        diffs.join(", "),
        if comparison.ok {
            "all within 1e-4 + 1e-4 * |reference|"
        } else {
            "SOME EXCEED 1e-4 + 1e-4 * |reference|"
        }
    );

    // 5. k unknown: BIC over k = 1..=k_max.
    let base = Settings {
        k: 1,
        tol: 1e-4,
        max_iter: 800,
        reg_covar: 1e-6,
        n_init: 3,
        seed: a.seed,
        start: Start::Method(InitMethod::KMeansPlusPlus),
    };
    let (selection, _) = cli::select_rows(
        &data,
        &base,
        Engine::Core,
        a.k_max,
        CriterionArg::Bic,
        quiet,
    )?;
    let sel_json = serde_json::to_string_pretty(&selection)
        .map_err(|e| CliError::failed(format!("JSON: {e}")))?;
    write("selection.json", &(sel_json + "\n"))?;
    let _ = writeln!(
        report,
        "\n5. k = 1..={} by BIC (k-means++, 3 restarts, tol 1e-4, at most 800 iterations):",
        a.k_max
    );
    for line in cli::select_table(&selection).lines() {
        let _ = writeln!(report, "   {line}");
    }

    // 6. Plots.
    let exts: &[&str] = if a.no_png { &["svg"] } else { &["svg", "png"] };
    let truth_names: Vec<String> = (0..3)
        .map(|j| {
            format!(
                "true component {j}: w = {}, mean ({}, {})",
                truth.weights[j], truth.means[j][0], truth.means[j][1]
            )
        })
        .collect();
    let mut plots = Vec::new();
    for ext in exts {
        let p = |stem: &str| -> (PathBuf, String) {
            let name = format!("{stem}.{ext}");
            (out.join(&name), name)
        };
        let (path, name) = p("samples");
        let title = format!(
            "{} samples from the true mixture, coloured by true component",
            a.n
        );
        plot::scatter(
            &path,
            &plot::Scatter {
                points: &data.points,
                labels: Some(&true_labels),
                names: Some(&truth_names),
                title: &title,
            },
        )?;
        plots.push(name);
        // The notebook's second look: the true densities' contours over the
        // samples (1, 2 and 3 standard deviations).
        let (path, name) = p("samples-truth");
        let title = "The samples with the true components' 1/2/3-sigma ellipses";
        plot::fit(
            &path,
            &plot::Scatter {
                points: &data.points,
                labels: Some(&true_labels),
                names: Some(&truth_names),
                title,
            },
            &plot::Ellipses {
                fitted: &truth,
                truth: None,
                label: "truth: 1, 2 (thick), 3 sigma; x = mean",
            },
        )?;
        plots.push(name);
        for (f, (stem, o)) in fits.iter().zip(&outcomes) {
            let matched = permuted(&o.mixture, &f.matching);
            let labels = cli::predict_labels(&matched, &data.points)?;
            let names = cli::component_names(&matched);
            let title = format!("k = 3 fit from {stem} init: ellipses and predicted components");
            let (path, name) = p(&format!("fit-{stem}"));
            plot::fit(
                &path,
                &plot::Scatter {
                    points: &data.points,
                    labels: Some(&labels),
                    names: Some(&names),
                    title: &title,
                },
                &plot::Ellipses {
                    fitted: &matched,
                    truth: Some(&truth),
                    label: "fit: 1, 2 (thick), 3 sigma; x = mean",
                },
            )?;
            plots.push(name);
        }
        let ll_series: Vec<plot::Series> = outcomes
            .iter()
            .enumerate()
            .map(|(i, (stem, o))| plot::Series {
                name: format!("from {stem} init ({} iterations)", o.n_iter),
                values: o
                    .trace
                    .iter()
                    .map(|r| (r.iteration as f64, r.mean_log_likelihood))
                    .collect(),
                dashed: false,
                colour: i,
            })
            .chain(std::iter::once(plot::Series {
                name: format!("under the true parameters ({truth_ll:.3})"),
                values: vec![
                    (0.0, truth_ll),
                    (
                        outcomes.iter().map(|(_, o)| o.n_iter).max().unwrap_or(1) as f64,
                        truth_ll,
                    ),
                ],
                dashed: true,
                colour: 7,
            }))
            .collect();
        let (path, name) = p("loglik-trace");
        plot::lines(
            &path,
            &plot::Lines {
                title: "EM convergence: mean log-likelihood per iteration (k = 3)",
                x_desc: "EM iteration (0 = start)",
                y_desc: "mean log-likelihood per point",
                series: &ll_series,
                marks: &[],
                legend: SeriesLabelPosition::LowerRight,
                headroom: 0.0,
            },
        )?;
        plots.push(name);
        for (f, (stem, o)) in fits.iter().zip(&outcomes) {
            let last = o.n_iter as f64;
            let mut series = Vec::new();
            for (j, &i) in f.matching.iter().enumerate() {
                series.push(plot::Series {
                    name: format!("fitted weight of true component {j}"),
                    values: o
                        .trace
                        .iter()
                        .map(|r| (r.iteration as f64, r.weights[i]))
                        .collect(),
                    dashed: false,
                    colour: j,
                });
                series.push(plot::Series {
                    name: format!("true weight {}", truth.weights[j]),
                    values: vec![(0.0, truth.weights[j]), (last, truth.weights[j])],
                    dashed: true,
                    colour: j,
                });
            }
            let title = format!("Mixing weights per EM iteration, from {stem} init");
            let (path, name) = p(&format!("weights-trace-{stem}"));
            plot::lines(
                &path,
                &plot::Lines {
                    title: &title,
                    x_desc: "EM iteration (0 = start)",
                    y_desc: "mixing weight",
                    series: &series,
                    marks: &[],
                    legend: SeriesLabelPosition::UpperRight,
                    headroom: 0.6,
                },
            )?;
            plots.push(name);
        }
        let (path, name) = p("selection");
        cli::selection_plot(&path, &selection)?;
        plots.push(name);
    }
    files.extend(plots);
    let _ = writeln!(report, "\n6. wrote into {}:", out.display());
    for f in &files {
        let _ = writeln!(report, "   {f}");
    }
    let summary = Summary {
        n: a.n,
        seed: a.seed,
        truth,
        truth_mean_log_likelihood: truth_ll,
        fits,
        selection,
        compare: comparison,
        files: files.clone(),
    };
    let text = serde_json::to_string_pretty(&summary)
        .map_err(|e| CliError::failed(format!("JSON: {e}")))?;
    data::write_output(Some(&out.join("summary.json")), &(text + "\n"))?;
    let _ = writeln!(report, "   summary.json");
    data::write_output(None, &report)?;
    Ok(())
}
