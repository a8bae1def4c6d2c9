//! The `gmm` command line: argument parsing and every subcommand but
//! `demo` (in [`crate::demo`]) and `rtt` (in [`crate::rtt`]).

use crate::data::{self, CliError, Dataset, PointTable};
use crate::engine::{self, CAPACITY, Engine, Outcome, Settings, Start};
use crate::plot;
use crate::reference::{self, Mixture64, RefConfig};
use clap::{Args, Parser, Subcommand, ValueEnum};
use gmm_core::InitMethod;
use indicatif::{ProgressBar, ProgressStyle};
use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro128PlusPlus;
use serde::Serialize;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Fit 2-D Gaussian mixture models by EM with gmm-core (f32, no heap), check
/// them against an f64 reference, and plot them.
#[derive(Debug, Parser)]
#[command(name = "gmm", version, about, max_term_width = 100)]
pub struct Cli {
    /// No progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Draw points from a mixture into a CSV file `x,y,label`.
    Sample(SampleArgs),
    /// Fit a mixture to the points of a CSV file.
    Fit(FitArgs),
    /// Fit k = 1..=k_max and choose k by BIC or AIC.
    Select(SelectArgs),
    /// Fit with the f32 core and the f64 reference from the same start and
    /// compare the results.
    Compare(CompareArgs),
    /// Label points with a fitted model: label, log-density, probabilities.
    Predict(PredictArgs),
    /// Learn a mixture one sample at a time (gmm-core's streaming EM) over
    /// a CSV in file order, printing a snapshot every N samples.
    Stream(crate::stream::StreamArgs),
    /// Draw a plot (SVG, or PNG by the output's extension).
    #[command(subcommand)]
    Plot(PlotCommand),
    /// The seed notebook end to end: sample, fit, compare with the truth,
    /// choose k, and plot everything.
    Demo(crate::demo::DemoArgs),
    /// Run the firmware in QEMU and check its RTT output against the host.
    Rtt(crate::rtt::RttArgs),
}

/// Arguments of `gmm sample`.
#[derive(Debug, Args)]
pub struct SampleArgs {
    /// Number of points.
    #[arg(long, default_value_t = 900)]
    pub n: usize,
    /// Seed of the xoshiro128++ stream (gmm-core's sampler, as on the device).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The mixture (JSON `{"weights","means","covariances"}`); default: the
    /// seed notebook's 3 components.
    #[arg(long)]
    pub spec: Option<PathBuf>,
    /// Output CSV (default: stdout).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
}

/// How each restart starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InitArg {
    /// k-means++ seeding, then one hard-assignment M-step.
    #[value(name = "kmeans++")]
    KMeansPlusPlus,
    /// k distinct random data points as centres.
    Random,
    /// The notebook's start: uniform weights, standard-normal means, identity covariances.
    StandardNormal,
    /// The parameters of `--init FILE` (implied by `--init`).
    Given,
}

/// The fitting knobs shared by `fit`, `select`, `compare`.
#[derive(Debug, Clone, Args)]
pub struct FitKnobs {
    /// Start exactly from these parameters (JSON, the format of `--spec`
    /// and of `fit --json`); a warm start, no other initialisation.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Initialisation of each restart.
    #[arg(long, value_enum)]
    pub init_method: Option<InitArg>,
    /// Restarts (the best final log-likelihood wins).
    #[arg(long, default_value_t = 1)]
    pub n_init: usize,
    /// Stop when the mean log-likelihood per point changes by at most this
    /// (scikit-learn's tol; 0 runs max-iter iterations).
    #[arg(long, default_value_t = 1e-3)]
    pub tol: f64,
    /// Maximum EM iterations (M-steps) per restart.
    #[arg(long, default_value_t = 100)]
    pub max_iter: usize,
    /// Added to every covariance diagonal.
    #[arg(long, default_value_t = 1e-6)]
    pub reg_covar: f64,
    /// Seed of the initialisation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Name of a CSV column of per-point weights.
    #[arg(long)]
    pub weights_column: Option<String>,
}

impl FitKnobs {
    /// The settings for `k` components (`None`: from `--init`).
    ///
    /// # Errors
    /// [`CliError::input`] for contradicting or missing options and
    /// unreadable init files.
    pub fn settings(&self, k: Option<usize>) -> Result<Settings, CliError> {
        let start = match (&self.init, self.init_method) {
            (Some(p), None | Some(InitArg::Given)) => Start::Given(read_core_mixture(p)?),
            (Some(_), Some(_)) => {
                return Err(CliError::input(
                    "--init starts from given parameters; drop --init-method or use --init-method given",
                ));
            }
            (None, Some(InitArg::Given)) => {
                return Err(CliError::input("--init-method given needs --init FILE"));
            }
            (None, m) => Start::Method(match m {
                Some(InitArg::Random) => InitMethod::RandomFromData,
                Some(InitArg::StandardNormal) => InitMethod::StandardNormal,
                _ => InitMethod::KMeansPlusPlus,
            }),
        };
        let k = match (&start, k) {
            (Start::Given(m), Some(k)) if k != m.k() => {
                return Err(CliError::input(format!(
                    "--k {k} differs from the {} components of --init",
                    m.k()
                )));
            }
            (Start::Given(m), _) => m.k(),
            (Start::Method(_), Some(k)) => k,
            (Start::Method(_), None) => {
                return Err(CliError::input("--k is required (or give --init FILE)"));
            }
        };
        if k > CAPACITY {
            return Err(engine::capacity_error(k));
        }
        Ok(Settings {
            k,
            tol: self.tol,
            max_iter: self.max_iter,
            reg_covar: self.reg_covar,
            n_init: self.n_init,
            seed: self.seed,
            start,
        })
    }
}

/// Arguments of `gmm fit`.
#[derive(Debug, Args)]
pub struct FitArgs {
    /// CSV file with a header; columns `x`,`y` (else the first two).
    pub data: PathBuf,
    /// Number of components (1..=16).
    #[arg(long)]
    pub k: Option<usize>,
    /// The fitting knobs.
    #[command(flatten)]
    pub knobs: FitKnobs,
    /// Which implementation fits.
    #[arg(long, value_enum, default_value_t = Engine::Core)]
    pub engine: Engine,
    /// Print one JSON object (usable as `--init` and as a model for `predict`).
    #[arg(long)]
    pub json: bool,
    /// Write every iteration (restart, iteration, mean log-likelihood, weights) as CSV.
    #[arg(long)]
    pub trace: Option<PathBuf>,
}

/// Criterion of `gmm select`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CriterionArg {
    /// Bayesian information criterion.
    Bic,
    /// Akaike information criterion.
    Aic,
}

/// Arguments of `gmm select`.
#[derive(Debug, Args)]
pub struct SelectArgs {
    /// CSV file of points.
    pub data: PathBuf,
    /// Largest k tried (1..=16).
    #[arg(long)]
    pub k_max: usize,
    /// Which criterion chooses k (lower is better).
    #[arg(long, value_enum, default_value_t = CriterionArg::Bic)]
    pub criterion: CriterionArg,
    /// The fitting knobs (`--init` is not allowed here).
    #[command(flatten)]
    pub knobs: FitKnobs,
    /// Which implementation fits.
    #[arg(long, value_enum, default_value_t = Engine::Core)]
    pub engine: Engine,
    /// Print JSON `{"best_k", "criterion", "rows": [..]}`.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `gmm compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// CSV file of points.
    pub data: PathBuf,
    /// Number of components (or from `--init`).
    #[arg(long)]
    pub k: Option<usize>,
    /// The fitting knobs; the start comes from `--init` or from the core's
    /// initialisation (restart 0), and both engines run from it.
    #[command(flatten)]
    pub knobs: FitKnobs,
    /// Pass when every weight, mean and covariance entry and the mean
    /// log-likelihood agree within `atol + rtol * |reference value|`
    /// (exit code 1 otherwise). Measured differences: <= 6e-7 on data near
    /// the origin (900 to 100 000 points, k = 3..8, up to 83 iterations),
    /// 2.3e-5 on means near 1000 (half an f32 ulp there); the default
    /// leaves a margin of 4x or more over those.
    #[arg(long, default_value_t = 1e-4)]
    pub atol: f64,
    /// See `--atol`.
    #[arg(long, default_value_t = 1e-4)]
    pub rtol: f64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `gmm predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// A model: the output of `gmm fit --json` (or any mixture JSON).
    pub model: PathBuf,
    /// CSV file of points.
    pub data: PathBuf,
    /// Output CSV (default: stdout).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
}

/// `gmm plot` subcommands.
#[derive(Debug, Subcommand)]
pub enum PlotCommand {
    /// Points, coloured by their `label` column when there is one.
    Data {
        /// CSV file of points.
        data: PathBuf,
        /// Output .svg or .png.
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Points coloured by predicted component, with 1/2/3-sigma ellipses.
    Fit {
        /// CSV file of points.
        data: PathBuf,
        /// The model (`fit --json` output).
        model: PathBuf,
        /// A true mixture to draw dashed.
        #[arg(long)]
        truth: Option<PathBuf>,
        /// Output .svg or .png.
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Mean log-likelihood per iteration from a `fit --trace` file.
    Trace {
        /// The trace CSV.
        trace: PathBuf,
        /// Draw the mixing weights per iteration instead.
        #[arg(long)]
        weights: bool,
        /// True weights to mark (a mixture JSON), with `--weights`.
        #[arg(long)]
        truth: Option<PathBuf>,
        /// With `--weights`: which restart (default: the one with the
        /// highest final log-likelihood, the one the fit keeps).
        #[arg(long)]
        restart: Option<usize>,
        /// Output .svg or .png.
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Each component's mean over the snapshots of `gmm stream --json`:
    /// its path, over the points streamed.
    Stream {
        /// The snapshots: the output of `gmm stream --json`, one per line.
        snapshots: PathBuf,
        /// The CSV that was streamed, drawn under the paths.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Output .svg or .png.
        #[arg(long, short)]
        out: PathBuf,
    },
    /// BIC, AIC and log-likelihood against k from a `select --json` file.
    Select {
        /// The JSON of `gmm select --json`.
        selection: PathBuf,
        /// Output .svg or .png.
        #[arg(long, short)]
        out: PathBuf,
    },
}

/// A progress bar on stderr, only when it is a terminal and not `--quiet`.
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// A bar of `len` steps with `message`; hidden when `hidden`.
    #[must_use]
    pub fn new(len: usize, message: &str, hidden: bool) -> Self {
        if hidden || !std::io::stderr().is_terminal() {
            return Self(None);
        }
        let bar = ProgressBar::new(len as u64).with_message(message.to_string());
        if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}") {
            bar.set_style(style.progress_chars("=> "));
        }
        Self(Some(bar))
    }

    /// Marks `pos` steps done.
    pub fn set(&self, pos: usize) {
        if let Some(b) = &self.0 {
            b.set_position(pos as u64);
        }
    }

    /// Replaces the text before the bar.
    pub fn message(&self, text: &str) {
        if let Some(b) = &self.0 {
            b.set_message(text.to_string());
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

/// Parses the arguments and runs; returns the exit code.
#[must_use]
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
                || matches!(
                    e.kind(),
                    ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                )
            {
                let _ = e.print();
                return if e.use_stderr() { 2 } else { 0 };
            }
            // One line, like every other error of the command line: clap's
            // first paragraph (it may list missing arguments on lines of
            // their own) joined.
            let text = e.render().to_string();
            let first = text.split("\n\n").next().unwrap_or("invalid arguments");
            let first = first.split_whitespace().collect::<Vec<_>>().join(" ");
            let first = first.strip_prefix("error: ").unwrap_or(&first);
            eprintln!("gmm: error: {first} (see --help)");
            return 2;
        }
    };
    let result = match &cli.command {
        Command::Sample(a) => sample(a),
        Command::Fit(a) => fit(a, cli.quiet),
        Command::Select(a) => select(a, cli.quiet),
        Command::Compare(a) => compare(a),
        Command::Predict(a) => predict(a),
        Command::Stream(a) => crate::stream::command(a),
        Command::Plot(p) => plot_command(p),
        Command::Demo(a) => crate::demo::run(a, cli.quiet),
        Command::Rtt(a) => return crate::rtt::run(a),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("gmm: error: {}", e.message);
            e.code
        }
    }
}

/// Reads a mixture and checks that the core can hold it (k <= 16, valid
/// in f32); errors name the file.
///
/// # Errors
/// [`CliError::input`] naming the file.
pub fn read_core_mixture(path: &Path) -> Result<Mixture64, CliError> {
    let m = data::read_mixture(path)?;
    engine::to_core(&m)
        .map_err(|e| CliError::input(format!("{}: {}", path.display(), e.message)))?;
    Ok(m)
}

fn sample(a: &SampleArgs) -> Result<(), CliError> {
    let spec = match &a.spec {
        Some(p) => read_core_mixture(p)?,
        None => Mixture64::seed_mixture(),
    };
    let text = sample_csv(&spec, a.n, a.seed)?;
    data::write_output(a.out.as_deref(), &text)
}

/// `n` points of `spec` drawn by the core's sampler as CSV `x,y,label`.
///
/// # Errors
/// [`CliError::input`] when the mixture does not fit the core.
pub fn sample_csv(spec: &Mixture64, n: usize, seed: u64) -> Result<String, CliError> {
    let model = engine::to_core(spec)?;
    let mut rng = Xoshiro128PlusPlus::seed_from_u64(seed);
    let mut text = String::with_capacity(24 * n + 12);
    text.push_str("x,y,label\n");
    for _ in 0..n {
        let (p, label) = model.sample(&mut rng);
        let _ = writeln!(text, "{},{},{label}", p[0], p[1]);
    }
    Ok(text)
}

/// The JSON of `gmm fit --json`: exactly these keys.
#[derive(Debug, Serialize)]
pub struct FitJson<'a> {
    /// Components.
    pub k: usize,
    /// Points (rows of the data file).
    pub n: usize,
    /// Mixing weights.
    pub weights: &'a [f64],
    /// Means.
    pub means: &'a [[f64; 2]],
    /// Full 2x2 covariances.
    pub covariances: &'a [[[f64; 2]; 2]],
    /// Total log-likelihood under the final parameters.
    pub log_likelihood: f64,
    /// Per unit weight.
    pub mean_log_likelihood: f64,
    /// M-steps.
    pub n_iter: usize,
    /// Met `tol`.
    pub converged: bool,
    /// BIC.
    pub bic: f64,
    /// AIC.
    pub aic: f64,
    /// `core` or `reference`.
    pub engine: &'static str,
    /// Wall time of the fit alone.
    pub fit_seconds: f64,
}

/// Refuses to print a non-finite number (a defect, never expected).
fn check_finite(o: &Outcome) -> Result<(), CliError> {
    let scalars = [o.log_likelihood, o.mean_log_likelihood, o.bic(), o.aic()];
    if engine::all_finite(&o.mixture) && scalars.iter().all(|v| v.is_finite()) {
        Ok(())
    } else {
        Err(CliError::failed(
            "the fit produced a non-finite number; nothing printed",
        ))
    }
}

fn fit(a: &FitArgs, quiet: bool) -> Result<(), CliError> {
    let settings = a.knobs.settings(a.k)?;
    let data = read_for(a.engine, &a.data, a.knobs.weights_column.as_deref())?;
    let data = &*data;
    // A bar over restarts, shown for several restarts or many points.
    let show = settings.n_init > 1 || data.n_points() >= 100_000;
    let progress = Progress::new(settings.n_init, "fit", quiet || !show);
    let outcome = engine::run(a.engine, data, &settings, &mut |r, i| {
        progress.set(r);
        progress.message(&format!("restart {r} iteration {i}"));
    })?;
    progress.finish();
    check_finite(&outcome)?;
    if let Some(p) = &a.trace {
        data::write_output(Some(p), &trace_csv(&outcome))?;
    }
    let text = if a.json {
        fit_json(&outcome, data.n_points())? + "\n"
    } else {
        fit_table(&outcome, data, &settings)
    };
    data::write_output(None, &text)
}

/// Reads the points for a fit with `engine`: straight into f32 for the
/// core (8 bytes a point, 4 more a weight, nothing else per point), as f64
/// for the reference, which holds N x K responsibilities anyway.
fn read_for(
    engine: Engine,
    path: &std::path::Path,
    weights_column: Option<&str>,
) -> Result<Box<dyn PointTable>, CliError> {
    Ok(match engine {
        Engine::Core => Box::new(data::read_compact(path, weights_column)?),
        Engine::Reference => Box::new(data::read_points(path, weights_column)?),
    })
}

/// The `fit --json` object for an outcome on `n` points.
///
/// # Errors
/// [`CliError::failed`] if serialisation fails.
pub fn fit_json(o: &Outcome, n: usize) -> Result<String, CliError> {
    // The core's numbers are f32: print the shortest decimal that reads
    // back as the same f32 (0.29871187, not 0.2987118661403656), so a
    // round trip through the file gives the core the same bits.
    let short = |v: f64| -> f64 {
        let f = v as f32;
        if o.engine == Engine::Core && f64::from(f) == v {
            f.to_string().parse().unwrap_or(v)
        } else {
            v
        }
    };
    let m = &o.mixture;
    let weights: Vec<f64> = m.weights.iter().map(|&w| short(w)).collect();
    let means: Vec<[f64; 2]> = m.means.iter().map(|p| p.map(short)).collect();
    let covariances: Vec<[[f64; 2]; 2]> = m
        .covariances
        .iter()
        .map(|c| c.map(|r| r.map(short)))
        .collect();
    let j = FitJson {
        k: m.k(),
        n,
        weights: &weights,
        means: &means,
        covariances: &covariances,
        log_likelihood: short(o.log_likelihood),
        mean_log_likelihood: short(o.mean_log_likelihood),
        n_iter: o.n_iter,
        converged: o.converged,
        bic: o.bic(),
        aic: o.aic(),
        engine: o.engine.name(),
        fit_seconds: o.fit_seconds,
    };
    serde_json::to_string(&j).map_err(|e| CliError::failed(format!("JSON: {e}")))
}

/// The trace as CSV: `restart,iteration,mean_log_likelihood,w0,..`.
#[must_use]
pub fn trace_csv(o: &Outcome) -> String {
    let mut s = String::from("restart,iteration,mean_log_likelihood");
    for j in 0..o.mixture.k() {
        let _ = write!(s, ",w{j}");
    }
    s.push('\n');
    for r in &o.trace {
        let _ = write!(s, "{},{},{}", r.restart, r.iteration, r.mean_log_likelihood);
        for w in &r.weights {
            let _ = write!(s, ",{w}");
        }
        s.push('\n');
    }
    s
}

/// The readable summary of a fit.
#[must_use]
pub fn fit_table(o: &Outcome, data: &dyn PointTable, s: &Settings) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "engine {}; {} points from {} (total weight {})",
        o.engine.name(),
        data.n_points(),
        data.path(),
        o.total_weight
    );
    let _ = writeln!(
        t,
        "{} after {} iterations (tol {:e}, max {}); restart {} of {} won, {} failed; fit took {:.3} ms",
        if o.converged {
            "converged"
        } else {
            "NOT converged"
        },
        o.n_iter,
        s.tol,
        s.max_iter,
        o.restart,
        if matches!(s.start, Start::Given(_)) {
            1
        } else {
            s.n_init
        },
        o.failed_restarts,
        o.fit_seconds * 1e3
    );
    let _ = writeln!(
        t,
        "log-likelihood {:.6} (mean {:.6}); BIC {:.3}; AIC {:.3}",
        o.log_likelihood,
        o.mean_log_likelihood,
        o.bic(),
        o.aic()
    );
    t.push_str(&mixture_table(&o.mixture));
    t
}

/// One row per component: weight, mean, covariance.
#[must_use]
pub fn mixture_table(m: &Mixture64) -> String {
    let mut t = format!(
        "{:>9} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
        "component", "weight", "mean x", "mean y", "cov xx", "cov xy", "cov yy"
    );
    for j in 0..m.k() {
        let (mu, c) = (m.means[j], m.covariances[j]);
        let _ = writeln!(
            t,
            "{j:>9} {:>8.4} {:>9.4} {:>9.4} {:>9.4} {:>9.4} {:>9.4}",
            m.weights[j], mu[0], mu[1], c[0][0], c[0][1], c[1][1]
        );
    }
    t
}

/// One row of the model-selection table.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct SelectRow {
    /// Components.
    pub k: usize,
    /// Total log-likelihood.
    pub log_likelihood: f64,
    /// BIC.
    pub bic: f64,
    /// AIC.
    pub aic: f64,
    /// M-steps.
    pub n_iter: usize,
    /// Met `tol`.
    pub converged: bool,
}

/// The JSON of `gmm select --json`.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct SelectJson {
    /// The chosen k.
    pub best_k: usize,
    /// `bic` or `aic`.
    pub criterion: String,
    /// One row per k fitted.
    pub rows: Vec<SelectRow>,
}

/// Fits k = 1..=k_max and picks the k with the lowest criterion. A k
/// whose fit fails is reported on stderr and left out; k above the number
/// of points is not tried (like `gmm_core::select_k`).
///
/// # Errors
/// [`CliError::input`] for `k_max` outside 1..=16 or bad settings;
/// [`CliError::failed`] when no k could be fitted.
pub fn select_rows(
    data: &dyn PointTable,
    base: &Settings,
    engine: Engine,
    k_max: usize,
    criterion: CriterionArg,
    quiet: bool,
) -> Result<(SelectJson, Vec<Outcome>), CliError> {
    if k_max == 0 || k_max > CAPACITY {
        return Err(CliError::input(format!(
            "--k-max {k_max} is not in 1..={CAPACITY} (this build's capacity)"
        )));
    }
    let top = k_max.min(data.n_positive());
    let progress = Progress::new(top, "k", quiet || top < 2);
    let mut rows = Vec::new();
    let mut fits = Vec::new();
    for k in 1..=top {
        progress.set(k - 1);
        let s = Settings { k, ..base.clone() };
        match engine::run(engine, data, &s, &mut |_, _| {}) {
            Ok(o) => {
                check_finite(&o)?;
                rows.push(SelectRow {
                    k,
                    log_likelihood: o.log_likelihood,
                    bic: o.bic(),
                    aic: o.aic(),
                    n_iter: o.n_iter,
                    converged: o.converged,
                });
                fits.push(o);
            }
            Err(e) if e.code == 1 => eprintln!("gmm: k = {k} skipped: {}", e.message),
            Err(e) => return Err(e),
        }
    }
    progress.finish();
    let value = |r: &SelectRow| match criterion {
        CriterionArg::Bic => r.bic,
        CriterionArg::Aic => r.aic,
    };
    let best = rows
        .iter()
        .min_by(|a, b| value(a).total_cmp(&value(b)))
        .ok_or_else(|| CliError::failed("no k could be fitted"))?;
    Ok((
        SelectJson {
            best_k: best.k,
            criterion: format!("{criterion:?}").to_lowercase(),
            rows,
        },
        fits,
    ))
}

fn select(a: &SelectArgs, quiet: bool) -> Result<(), CliError> {
    if a.knobs.init.is_some() {
        return Err(CliError::input(
            "select fits several k; --init (one fixed k) does not apply",
        ));
    }
    let base = a.knobs.settings(Some(1))?;
    let data = read_for(a.engine, &a.data, a.knobs.weights_column.as_deref())?;
    let (sel, _) = select_rows(&*data, &base, a.engine, a.k_max, a.criterion, quiet)?;
    let text = if a.json {
        serde_json::to_string(&sel).map_err(|e| CliError::failed(format!("JSON: {e}")))? + "\n"
    } else {
        select_table(&sel)
    };
    data::write_output(None, &text)
}

/// The readable model-selection table.
#[must_use]
pub fn select_table(sel: &SelectJson) -> String {
    let mut t = format!(
        "{:>3} {:>16} {:>14} {:>14} {:>6} {:>9}\n",
        "k", "log-likelihood", "BIC", "AIC", "iters", "converged"
    );
    for r in &sel.rows {
        let _ = writeln!(
            t,
            "{:>3} {:>16.4} {:>14.4} {:>14.4} {:>6} {:>9}{}",
            r.k,
            r.log_likelihood,
            r.bic,
            r.aic,
            r.n_iter,
            r.converged,
            if r.k == sel.best_k { "  <- best" } else { "" }
        );
    }
    let _ = writeln!(
        t,
        "best k by {}: {}",
        sel.criterion.to_uppercase(),
        sel.best_k
    );
    t
}

/// The largest differences between two fits of the same start.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Diff {
    /// What is compared.
    pub what: &'static str,
    /// Largest `|core - reference|`.
    pub max_abs: f64,
    /// Largest `|core - reference| / |reference|` (over nonzero references).
    pub max_rel: f64,
    /// Whether every entry is within `atol + rtol * |reference|`.
    pub ok: bool,
}

fn diff(what: &'static str, pairs: &[(f64, f64)], atol: f64, rtol: f64) -> Diff {
    let mut d = Diff {
        what,
        max_abs: 0.0,
        max_rel: 0.0,
        ok: true,
    };
    for &(c, r) in pairs {
        let a = (c - r).abs();
        d.max_abs = d.max_abs.max(a);
        if r != 0.0 {
            d.max_rel = d.max_rel.max(a / r.abs());
        }
        d.ok &= a <= atol + rtol * r.abs();
    }
    d
}

/// The comparison of a core and a reference fit from one start.
#[derive(Debug, Serialize)]
pub struct Comparison {
    /// Per parameter group and the log-likelihood.
    pub diffs: Vec<Diff>,
    /// M-steps of the core (the reference runs as many).
    pub n_iter: usize,
    /// The iteration at which the reference alone would have met `tol`.
    pub reference_converged_at: Option<usize>,
    /// Whether everything is within tolerance.
    pub ok: bool,
    /// `atol` used.
    pub atol: f64,
    /// `rtol` used.
    pub rtol: f64,
}

/// Runs the core from `settings`, then the reference from the same start
/// for the same number of M-steps, and compares.
///
/// # Errors
/// Input errors, and either engine failing.
pub fn compare_fits(
    data: &Dataset,
    settings: &Settings,
    atol: f64,
    rtol: f64,
) -> Result<Comparison, CliError> {
    let k = settings.components();
    engine::check_k(k, data)?;
    // One start for both: the given parameters, or the core's own
    // initialisation (its fit with max_iter = 0).
    let start = match &settings.start {
        Start::Given(m) => m.clone(),
        Start::Method(_) => {
            let s0 = Settings {
                max_iter: 0,
                n_init: 1,
                ..settings.clone()
            };
            engine::run(Engine::Core, data, &s0, &mut |_, _| {})?.mixture
        }
    };
    // The reference gets the f32-rounded points and start the core sees,
    // so only the arithmetic differs.
    let start = engine::from_core(&engine::to_core(&start)?);
    let rounded = Dataset {
        points: data.points_f32().iter().map(|p| p.map(f64::from)).collect(),
        weights: data
            .weights_f32()
            .map(|w| w.iter().map(|&v| f64::from(v)).collect()),
        ..data.clone()
    };
    let core_settings = Settings {
        start: Start::Given(start.clone()),
        n_init: 1,
        ..settings.clone()
    };
    let core = engine::run(Engine::Core, &rounded, &core_settings, &mut |_, _| {})?;
    let rc = RefConfig {
        tol: 0.0,
        max_iter: core.n_iter,
        reg_covar: f64::from(settings.reg_covar as f32),
    };
    let r = reference::fit(&rounded.points, rounded.weights.as_deref(), &start, &rc)
        .map_err(|e| CliError::failed(format!("the reference fit failed: {e}")))?;
    let tol = f64::from(settings.tol as f32);
    let reference_converged_at = r
        .trace
        .windows(2)
        .position(|w| (w[1] - w[0]).abs() <= tol)
        .map(|i| i + 1);
    let (cm, rm) = (&core.mixture, &r.mixture);
    let weights: Vec<(f64, f64)> = cm
        .weights
        .iter()
        .copied()
        .zip(rm.weights.iter().copied())
        .collect();
    let means: Vec<(f64, f64)> = cm
        .means
        .iter()
        .flatten()
        .copied()
        .zip(rm.means.iter().flatten().copied())
        .collect();
    let covs: Vec<(f64, f64)> = cm
        .covariances
        .iter()
        .flatten()
        .flatten()
        .copied()
        .zip(rm.covariances.iter().flatten().flatten().copied())
        .collect();
    let diffs = vec![
        diff("weights", &weights, atol, rtol),
        diff("means", &means, atol, rtol),
        diff("covariances", &covs, atol, rtol),
        diff(
            "mean_log_likelihood",
            &[(core.mean_log_likelihood, r.mean_log_likelihood)],
            atol,
            rtol,
        ),
        diff(
            "log_likelihood",
            &[(core.log_likelihood, r.log_likelihood)],
            atol,
            rtol,
        ),
    ];
    let ok = diffs.iter().all(|d| d.ok);
    Ok(Comparison {
        diffs,
        n_iter: core.n_iter,
        reference_converged_at,
        ok,
        atol,
        rtol,
    })
}

fn compare(a: &CompareArgs) -> Result<(), CliError> {
    let settings = a.knobs.settings(a.k)?;
    if !(a.atol >= 0.0 && a.rtol >= 0.0) {
        return Err(CliError::input("--atol and --rtol must be >= 0"));
    }
    let data = data::read_points(&a.data, a.knobs.weights_column.as_deref())?;
    let c = compare_fits(&data, &settings, a.atol, a.rtol)?;
    let text = if a.json {
        serde_json::to_string(&c).map_err(|e| CliError::failed(format!("JSON: {e}")))? + "\n"
    } else {
        let mut t = format!(
            "core (f32) vs reference (f64), same start, {} iterations each{}\n",
            c.n_iter,
            match c.reference_converged_at {
                Some(i) => format!("; the reference alone would meet tol at iteration {i}"),
                None => "; the reference alone would not have met tol yet".into(),
            }
        );
        let _ = writeln!(
            t,
            "{:<20} {:>12} {:>12}  within {:e} + {:e} * |reference|",
            "", "max abs diff", "max rel diff", c.atol, c.rtol
        );
        for d in &c.diffs {
            let _ = writeln!(
                t,
                "{:<20} {:>12.3e} {:>12.3e}  {}",
                d.what,
                d.max_abs,
                d.max_rel,
                if d.ok { "ok" } else { "EXCEEDED" }
            );
        }
        t
    };
    data::write_output(None, &text)?;
    if c.ok {
        Ok(())
    } else {
        Err(CliError::failed(format!(
            "core and reference differ by more than {:e} + {:e} * |reference|",
            a.atol, a.rtol
        )))
    }
}

fn predict(a: &PredictArgs) -> Result<(), CliError> {
    let mixture = read_core_mixture(&a.model)?;
    let model = engine::to_core(&mixture)?;
    let data = data::read_points(&a.data, None)?;
    let k = model.k();
    let mut t = String::from("x,y,label,log_density");
    for j in 0..k {
        let _ = write!(t, ",p{j}");
    }
    t.push('\n');
    for p in data.points_f32() {
        let ld = model.log_density(p);
        if !ld.is_finite() {
            return Err(CliError::failed(format!(
                "the log-density at ({}, {}) is not finite in f32",
                p[0], p[1]
            )));
        }
        let _ = write!(t, "{},{},{},{}", p[0], p[1], model.predict(p), ld);
        for q in model.predict_proba(p).iter().take(k) {
            let _ = write!(t, ",{q}");
        }
        t.push('\n');
    }
    data::write_output(a.out.as_deref(), &t)
}

/// The predicted label of every point under a mixture (core, f32).
///
/// # Errors
/// [`CliError::input`] when the mixture does not fit the core.
pub fn predict_labels(m: &Mixture64, points: &[[f64; 2]]) -> Result<Vec<usize>, CliError> {
    let model = engine::to_core(m)?;
    Ok(points
        .iter()
        .map(|p| model.predict([p[0] as f32, p[1] as f32]))
        .collect())
}

/// Reads a trace CSV written by `fit --trace`.
/// One row of a trace file: restart, iteration, mean log-likelihood, weights.
type TraceLine = (usize, usize, f64, Vec<f64>);

fn read_trace(path: &Path) -> Result<Vec<TraceLine>, CliError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| CliError::input(format!("{name}: {e}")))?;
    let mut r = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(bytes.as_slice());
    let header = r
        .headers()
        .map_err(|e| CliError::input(format!("{name}: {e}")))?
        .clone();
    if header.get(0) != Some("restart") || header.get(2) != Some("mean_log_likelihood") {
        return Err(CliError::input(format!(
            "{name}:1: not a trace (expected the header restart,iteration,mean_log_likelihood,w0,..)"
        )));
    }
    let mut rows = Vec::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map_or(0, csv::Position::line);
            CliError::input(format!("{name}:{line}: {e}"))
        })?;
        let line = rec.position().map_or(0, csv::Position::line);
        let num = |i: usize| -> Result<f64, CliError> {
            rec.get(i)
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|v| v.is_finite())
                .ok_or_else(|| {
                    CliError::input(format!(
                        "{name}:{line}: field `{}` is not a finite number",
                        header.get(i).unwrap_or("?")
                    ))
                })
        };
        let index = |i: usize| -> Result<usize, CliError> {
            let v = num(i)?;
            // Restarts and iterations count rows, so they are below 2^32.
            if v >= 0.0 && v.fract() == 0.0 && v < 4_294_967_296.0 {
                Ok(v as usize)
            } else {
                Err(CliError::input(format!(
                    "{name}:{line}: field `{}` is not a count",
                    header.get(i).unwrap_or("?")
                )))
            }
        };
        let restart = index(0)?;
        let iteration = index(1)?;
        let ll = num(2)?;
        let w = (3..rec.len()).map(num).collect::<Result<Vec<_>, _>>()?;
        rows.push((restart, iteration, ll, w));
    }
    if rows.is_empty() {
        return Err(CliError::input(format!("{name}: no rows after the header")));
    }
    Ok(rows)
}

fn plot_command(p: &PlotCommand) -> Result<(), CliError> {
    match p {
        PlotCommand::Data { data, out } => {
            let d = data::read_points(data, None)?;
            let title = format!("{} points from {}", d.points.len(), d.path);
            plot::scatter(
                out,
                &plot::Scatter {
                    points: &d.points,
                    labels: d.labels.as_deref(),
                    names: None,
                    title: &title,
                },
            )
        }
        PlotCommand::Fit {
            data,
            model,
            truth,
            out,
        } => {
            let d = data::read_points(data, None)?;
            let m = read_core_mixture(model)?;
            let t = truth.as_deref().map(data::read_mixture).transpose()?;
            let labels = predict_labels(&m, &d.points)?;
            let names = component_names(&m);
            let title = format!("k = {} fit: points coloured by predicted component", m.k());
            plot::fit(
                out,
                &plot::Scatter {
                    points: &d.points,
                    labels: Some(&labels),
                    names: Some(&names),
                    title: &title,
                },
                &plot::Ellipses {
                    fitted: &m,
                    truth: t.as_ref(),
                    label: "fit: 1, 2 (thick), 3 sigma; x = mean",
                },
            )
        }
        PlotCommand::Trace {
            trace,
            weights,
            truth,
            restart,
            out,
        } => {
            let rows = read_trace(trace)?;
            let restarts: std::collections::BTreeSet<usize> = rows.iter().map(|r| r.0).collect();
            let multi = restarts.len() > 1;
            let mut series = Vec::new();
            if *weights {
                let k = rows.first().map_or(0, |r| r.3.len());
                // The last row of each restart holds its final likelihood.
                let best = restarts
                    .iter()
                    .filter_map(|&r| rows.iter().rfind(|x| x.0 == r).map(|x| (r, x.2)))
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .map_or(0, |b| b.0);
                let r = restart.unwrap_or(best);
                if !restarts.contains(&r) {
                    return Err(CliError::input(format!(
                        "{}: no restart {r} in the trace",
                        trace.display()
                    )));
                }
                for j in 0..k {
                    series.push(plot::Series {
                        name: format!("w{j}"),
                        values: rows
                            .iter()
                            .filter(|x| x.0 == r)
                            .map(|x| (x.1 as f64, x.3.get(j).copied().unwrap_or(0.0)))
                            .collect(),
                        dashed: false,
                        colour: j,
                    });
                }
                let title = if multi {
                    format!(
                        "Mixing weights per EM iteration (restart {r} of {})",
                        restarts.len()
                    )
                } else {
                    "Mixing weights per EM iteration".to_string()
                };
                let last = rows
                    .iter()
                    .filter(|x| x.0 == r)
                    .map(|x| x.1)
                    .max()
                    .unwrap_or(1) as f64;
                if let Some(t) = truth {
                    let t = data::read_mixture(t)?;
                    for (j, w) in t.weights.iter().enumerate() {
                        series.push(plot::Series {
                            name: format!("true weight {w}"),
                            values: vec![(0.0, *w), (last, *w)],
                            dashed: true,
                            colour: k + j,
                        });
                    }
                }
                plot::lines(
                    out,
                    &plot::Lines {
                        title: &title,
                        x_desc: "iteration",
                        y_desc: "mixing weight",
                        series: &series,
                        marks: &[],
                        legend: plotters::prelude::SeriesLabelPosition::UpperRight,
                        headroom: 0.5,
                    },
                )
            } else {
                for (i, &r) in restarts.iter().enumerate() {
                    series.push(plot::Series {
                        name: format!("restart {r}"),
                        values: rows
                            .iter()
                            .filter(|x| x.0 == r)
                            .map(|x| (x.1 as f64, x.2))
                            .collect(),
                        dashed: false,
                        colour: i,
                    });
                }
                plot::lines(
                    out,
                    &plot::Lines {
                        title: "Mean log-likelihood per EM iteration",
                        x_desc: "iteration",
                        y_desc: "mean log-likelihood per point",
                        series: &series,
                        marks: &[],
                        legend: plotters::prelude::SeriesLabelPosition::LowerRight,
                        headroom: 0.0,
                    },
                )
            }
        }
        PlotCommand::Stream {
            snapshots,
            data,
            out,
        } => {
            let snaps = crate::stream::read_snapshots(snapshots)?;
            let points = match data {
                Some(d) => data::read_points(d, None)?.points,
                None => Vec::new(),
            };
            crate::stream::plot_paths(out, &snaps, &points)
        }
        PlotCommand::Select { selection, out } => {
            let name = selection.display().to_string();
            let text = std::fs::read_to_string(selection)
                .map_err(|e| CliError::input(format!("{name}: {e}")))?;
            let sel: SelectJson = serde_json::from_str(&text).map_err(|e| {
                CliError::input(format!(
                    "{name}:{}:{}: {}",
                    e.line(),
                    e.column(),
                    data::strip_position(&e.to_string())
                ))
            })?;
            selection_plot(out, &sel)
        }
    }
}

/// Legend names "component j: w = .., mean (.., ..)".
#[must_use]
pub fn component_names(m: &Mixture64) -> Vec<String> {
    (0..m.k())
        .map(|j| {
            format!(
                "component {j}: w = {:.3}, mean ({:.2}, {:.2})",
                m.weights[j], m.means[j][0], m.means[j][1]
            )
        })
        .collect()
}

/// BIC and AIC against k with the best marked, and the log-likelihood.
///
/// # Errors
/// As [`plot::lines`].
pub fn selection_plot(out: &Path, sel: &SelectJson) -> Result<(), CliError> {
    let pts = |f: fn(&SelectRow) -> f64| -> Vec<(f64, f64)> {
        sel.rows.iter().map(|r| (r.k as f64, f(r))).collect()
    };
    let series = vec![
        plot::Series {
            name: "BIC = -2 lnL + (6k-1) ln n".into(),
            values: pts(|r| r.bic),
            dashed: false,
            colour: 0,
        },
        plot::Series {
            name: "AIC = -2 lnL + 2(6k-1)".into(),
            values: pts(|r| r.aic),
            dashed: false,
            colour: 1,
        },
        plot::Series {
            name: "-2 lnL (the fit alone)".into(),
            values: pts(|r| -2.0 * r.log_likelihood),
            dashed: false,
            colour: 2,
        },
    ];
    let best = sel.rows.iter().find(|r| r.k == sel.best_k);
    let marks: Vec<(f64, f64, String)> = best
        .map(|r| {
            let v = if sel.criterion == "aic" { r.aic } else { r.bic };
            vec![(
                r.k as f64,
                v,
                format!("  best k = {} by {}", r.k, sel.criterion.to_uppercase()),
            )]
        })
        .unwrap_or_default();
    plot::lines(
        out,
        &plot::Lines {
            title: "Choosing k: information criteria vs number of components",
            x_desc: "number of components k",
            y_desc: "criterion (lower is better)",
            series: &series,
            marks: &marks,
            legend: plotters::prelude::SeriesLabelPosition::UpperRight,
            headroom: 0.1,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use gmm_core::{Criterion, FitConfig, select_k};

    #[test]
    fn select_rows_is_the_cores_select_k() {
        let csv = sample_csv(&Mixture64::seed_mixture(), 300, 4).unwrap();
        let data = data::parse_points("s.csv", csv.as_bytes(), None).unwrap();
        let base = Settings {
            n_init: 2,
            seed: 9,
            ..Settings::new(1)
        };
        let (sel, _) = select_rows(&data, &base, Engine::Core, 5, CriterionArg::Bic, true).unwrap();
        let points = data.points_f32();
        let config = FitConfig::new(1).with_n_init(2).with_seed(9);
        let core = select_k::<CAPACITY, _>(points.as_slice(), &config, 5, Criterion::Bic).unwrap();
        assert_eq!(sel.best_k, core.best_k);
        assert_eq!(sel.rows.len(), core.rows.len());
        for (a, b) in sel.rows.iter().zip(&core.rows) {
            // The same fits, bit for bit (the f32 value widened to f64).
            assert_eq!(a.log_likelihood, f64::from(b.log_likelihood));
            assert_eq!(a.n_iter, b.n_iter as usize);
        }
    }
}
