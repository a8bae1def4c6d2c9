//! `gmm stream`: gmm-core's streaming (stepwise) EM over a CSV file in file
//! order, printing a snapshot of the live model every N samples.

use crate::data::{self, CliError, Dataset};
use crate::engine::{self, CAPACITY, Engine};
use crate::reference::{self, Mixture64};
use clap::{Args, ValueEnum};
use gmm_core::{FitConfig, GmmError, Point, StepSchedule, StreamConfig, StreamingGmm, Warmup};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

/// The warm-up lengths this build offers: `Warmup<K, M>` takes `M` as a
/// const generic (its buffer has a fixed capacity, as on the device). 100
/// is the firmware example's (`firmware_example::WARMUP_POINTS`).
pub const WARMUPS: [usize; 9] = [32, 64, 100, 128, 256, 512, 1024, 2048, 4096];

/// The step-size schedule of `gmm stream`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScheduleArg {
    /// `gamma_t = (t + t0)^(-alpha)`: settles on a stationary stream.
    Decaying,
    /// `gamma_t = step`: forgets with a memory of about 1/step samples;
    /// follows a drifting sensor.
    Constant,
}

/// Arguments of `gmm stream`.
#[derive(Debug, Args)]
#[command(after_help = "\
Snapshots come at every multiple of --every samples once the warm-up is over, and at the end \
(the last sample), so a file of n rows gives ceil(n / every) of them when every >= warmup.

Keys of a --json snapshot: those of `gmm fit --json`, defined for a stream as follows, plus \
n_seen, n_rejected, reseeded, threshold, n_anomalies, warmup, schedule.
  n, n_seen      rows read so far / samples the model has learnt from (equal: the file is checked first)
  log_likelihood the prequential log-likelihood: the sum over the samples seen of ln p(x) under the
                 model as it was when x arrived, before learning from it (the warm-up samples under
                 the warm-up fit). O(1) per sample, as on the device; a batch fit's in-sample
                 log-likelihood is higher by the price of learning.
  mean_log_likelihood  log_likelihood / n_seen
  bic, aic       -2 log_likelihood + (6k-1) ln n_seen, -2 log_likelihood + 2 (6k-1)
  n_iter         stepwise-EM steps so far (n_seen - warmup, or batches with --batch); converged: always false (no stopping rule)
  fit_seconds    wall time of the warm-up fit and the updates so far (not reading or printing)
  threshold      the anomaly threshold: running --false-alarm-rate quantile of the log-densities seen
  n_anomalies    updates whose sample scored below the threshold in force before it")]
pub struct StreamArgs {
    /// CSV file of points (columns `x`,`y`, else the first two), read in file order.
    pub data: PathBuf,
    /// Number of components (1..=16).
    #[arg(long)]
    pub k: usize,
    /// A snapshot every this many samples (and one at the end).
    #[arg(long, default_value_t = 1000)]
    pub every: usize,
    /// Step sizes (default: decaying, or constant when --step is given).
    #[arg(long, value_enum)]
    pub schedule: Option<ScheduleArg>,
    /// Exponent of the decaying schedule, in (0.5, 1] [default: 0.9].
    #[arg(long)]
    pub alpha: Option<f64>,
    /// Offset of the decaying schedule, >= 0 [default: 2].
    #[arg(long)]
    pub t0: Option<f64>,
    /// The constant step, in (0, 1) [default: 0.001].
    #[arg(long)]
    pub step: Option<f64>,
    /// The first this many samples are fitted by batch EM (k-means++,
    /// --n-init restarts), which starts the stream: one of 32, 64, 100,
    /// 128, 256, 512, 1024, 2048, 4096.
    #[arg(long, default_value_t = 256)]
    pub warmup: usize,
    /// Restarts of the warm-up fit: stepwise EM rarely leaves a poor
    /// start (with 1 restart, 1 of 20 seed-mixture files kept a component
    /// of weight 0.009 after 20 000 samples; 3 fixed it).
    #[arg(long, default_value_t = 3)]
    pub n_init: usize,
    /// Added to every covariance diagonal (warm-up fit and stream).
    #[arg(long, default_value_t = 1e-6)]
    pub reg_covar: f64,
    /// The anomaly threshold is set for this share of false alarms.
    #[arg(long, default_value_t = 0.01)]
    pub false_alarm_rate: f64,
    /// Learn from mini-batches of this many samples, one step each
    /// (`StreamingGmm::update_batch`; a batch never crosses a snapshot);
    /// 1: one step per sample (`update`). With batches, a sample is scored
    /// and flagged under the model and threshold from before its batch.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Seed of the warm-up fit's initialisation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON object per snapshot, one per line.
    #[arg(long)]
    pub json: bool,
}

/// The schedule as it appears in a snapshot: `{"kind":"decaying","alpha":..,"t0":..}`
/// or `{"kind":"constant","step":..}`. (A plain struct: serde's internally
/// tagged enums cannot read numbers back under serde_json's
/// `arbitrary_precision`, which a dependency of this package turns on.)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleJson {
    /// `decaying` or `constant`.
    pub kind: String,
    /// Exponent of the decaying schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// Offset of the decaying schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t0: Option<f64>,
    /// The constant step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<f64>,
}

impl ScheduleJson {
    /// A short description, e.g. `steps (t + 2)^-0.9` or `constant step 0.002`.
    #[must_use]
    pub fn describe(&self) -> String {
        match (self.alpha, self.t0, self.step) {
            (Some(alpha), Some(t0), _) => format!("steps (t + {t0})^-{alpha}"),
            (_, _, Some(step)) => format!("constant step {step}"),
            _ => self.kind.clone(),
        }
    }
}

/// One snapshot: the keys of `gmm fit --json` and the stream's own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Components.
    pub k: usize,
    /// Rows read so far.
    pub n: u64,
    /// Mixing weights.
    pub weights: Vec<f64>,
    /// Means.
    pub means: Vec<[f64; 2]>,
    /// Full 2x2 covariances.
    pub covariances: Vec<[[f64; 2]; 2]>,
    /// Prequential log-likelihood (see the help text).
    pub log_likelihood: f64,
    /// Per sample seen.
    pub mean_log_likelihood: f64,
    /// Stepwise-EM steps so far (one per sample, or per batch).
    pub n_iter: u64,
    /// Always false: streaming EM has no stopping rule.
    pub converged: bool,
    /// `-2 lnL + (6k-1) ln n_seen` with the prequential lnL.
    pub bic: f64,
    /// `-2 lnL + 2 (6k-1)` with the prequential lnL.
    pub aic: f64,
    /// Always `core`.
    pub engine: String,
    /// Wall time of the warm-up fit and the updates so far.
    pub fit_seconds: f64,
    /// Samples learnt from.
    pub n_seen: u64,
    /// Samples the core rejected (none from a checked file).
    pub n_rejected: u64,
    /// Components re-seeded because they starved.
    pub reseeded: u32,
    /// The anomaly threshold on the log-density (`null` before any sample).
    pub threshold: Option<f64>,
    /// Updates flagged as anomalies.
    pub n_anomalies: u64,
    /// Samples of the warm-up fit.
    pub warmup: usize,
    /// The step schedule.
    pub schedule: ScheduleJson,
}

impl Snapshot {
    /// The live mixture of this snapshot.
    #[must_use]
    pub fn mixture(&self) -> Mixture64 {
        Mixture64 {
            weights: self.weights.clone(),
            means: self.means.clone(),
            covariances: self.covariances.clone(),
        }
    }
}

/// The shortest decimal that reads back as the same f32, as `fit --json`
/// prints the core's numbers.
fn short(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(f64::from(v))
}

/// The step schedule from the options.
///
/// # Errors
/// [`CliError::input`] for options of the other schedule.
pub fn schedule(a: &StreamArgs) -> Result<StepSchedule, CliError> {
    let kind = a.schedule.unwrap_or(if a.step.is_some() {
        ScheduleArg::Constant
    } else {
        ScheduleArg::Decaying
    });
    match kind {
        ScheduleArg::Decaying => {
            if a.step.is_some() {
                return Err(CliError::input(
                    "--step sets a constant step; it does not go with --schedule decaying",
                ));
            }
            Ok(StepSchedule::Decaying {
                alpha: a.alpha.unwrap_or(0.9) as f32,
                t0: a.t0.unwrap_or(2.0) as f32,
            })
        }
        ScheduleArg::Constant => {
            if a.alpha.is_some() || a.t0.is_some() {
                return Err(CliError::input(
                    "--alpha and --t0 shape the decaying schedule; they do not go with --schedule constant",
                ));
            }
            Ok(StepSchedule::Constant(a.step.unwrap_or(1e-3) as f32))
        }
    }
}

fn schedule_json(s: StepSchedule) -> ScheduleJson {
    match s {
        StepSchedule::Decaying { alpha, t0 } => ScheduleJson {
            kind: "decaying".into(),
            alpha: Some(short(alpha)),
            t0: Some(short(t0)),
            step: None,
        },
        StepSchedule::Constant(g) => ScheduleJson {
            kind: "constant".into(),
            alpha: None,
            t0: None,
            step: Some(short(g)),
        },
    }
}

/// Runs the warm-up `Warmup<CAPACITY, M>` over the first `M` points.
fn warm_up<const M: usize>(
    points: &[Point],
    fit: &FitConfig,
    config: &StreamConfig,
) -> Result<StreamingGmm<CAPACITY>, GmmError> {
    let mut warm = Warmup::<CAPACITY, M>::new(fit, config)?;
    for &p in points.iter().take(M) {
        if let Some(stream) = warm.push(p)? {
            return Ok(stream);
        }
    }
    Err(GmmError::TooFewPoints {
        points: points.len(),
        components: M,
    })
}

/// `Warmup<CAPACITY, m>` over the first `m` points; `None` when `m` is
/// not one of [`WARMUPS`].
fn warm_up_any(
    m: usize,
    points: &[Point],
    fit: &FitConfig,
    config: &StreamConfig,
) -> Option<Result<StreamingGmm<CAPACITY>, GmmError>> {
    macro_rules! dispatch {
        ($($n:literal),*) => {
            match m {
                $($n => Some(warm_up::<$n>(points, fit, config)),)*
                _ => None,
            }
        };
    }
    dispatch!(32, 64, 100, 128, 256, 512, 1024, 2048, 4096)
}

/// The schedule, stream and warm-up configurations, every option checked.
///
/// # Errors
/// [`CliError::input`] naming the bad option, or the file when it has too
/// few rows.
pub fn configs(
    a: &StreamArgs,
    data: &Dataset,
) -> Result<(StepSchedule, StreamConfig, FitConfig), CliError> {
    engine::check_k(a.k, data)?;
    if a.every == 0 {
        return Err(CliError::input("--every must be at least 1"));
    }
    if a.batch == 0 {
        return Err(CliError::input("--batch must be at least 1"));
    }
    if !WARMUPS.contains(&a.warmup) {
        return Err(CliError::input(format!(
            "--warmup {} is not one of {WARMUPS:?} (the warm-up buffer's size is fixed at build time, as on the device)",
            a.warmup
        )));
    }
    if data.points.len() < a.warmup {
        return Err(CliError::input(format!(
            "{}: {} rows is fewer than the {} samples of the warm-up fit (choose a smaller --warmup)",
            data.path,
            data.points.len(),
            a.warmup
        )));
    }
    let schedule = schedule(a)?;
    let config = StreamConfig::new()
        .with_schedule(schedule)
        .with_reg_covar(a.reg_covar as f32)
        .with_false_alarm_rate(a.false_alarm_rate as f32);
    let n_init = u32::try_from(a.n_init)
        .map_err(|_| CliError::input("--n-init is larger than 4294967295"))?;
    let fit = FitConfig::new(a.k)
        .with_seed(a.seed)
        .with_n_init(n_init)
        .with_reg_covar(a.reg_covar as f32);
    config
        .validate()
        .and_then(|()| fit.validate())
        .map_err(|e| CliError::input(format!("{e}")))?;
    Ok((schedule, config, fit))
}

/// Streams `data` through gmm-core's `StreamingGmm` and calls `emit` with a
/// snapshot at every multiple of `a.every` samples past the warm-up and at
/// the end; stops early when `emit` returns `false` (its reader is gone).
///
/// # Errors
/// [`CliError::input`] for bad options or too few rows;
/// [`CliError::failed`] when the warm-up fit or an update fails, or
/// `emit` does.
pub fn run(
    a: &StreamArgs,
    data: &Dataset,
    emit: &mut dyn FnMut(&Snapshot) -> Result<bool, CliError>,
) -> Result<(), CliError> {
    let (schedule, config, fit) = configs(a, data)?;
    let m = a.warmup;
    let points = data.points_f32();
    let t_start = Instant::now();
    let mut stream = warm_up_any(m, &points, &fit, &config)
        .unwrap_or(Err(GmmError::InvalidConfig {
            reason: "warm-up length not offered",
        }))
        .map_err(|e| match engine::core_error(e, data) {
            e if e.code == 1 => CliError::failed(format!(
                "the warm-up fit of the first {m} samples failed: {}",
                e.message.trim_start_matches("the core's fit failed: ")
            )),
            e => e,
        })?;
    let mut seconds = t_start.elapsed().as_secs_f64();
    // The warm-up samples are scored under the warm-up fit (the scores
    // `Warmup` gave the anomaly threshold).
    let mut ll = 0.0f64;
    for (i, &p) in points[..m].iter().enumerate() {
        let d = stream.log_density(p);
        if !d.is_finite() {
            return Err(non_finite_density(data, i));
        }
        ll += f64::from(d);
    }
    let mut anomalies = 0u64;
    let mut steps = 0u64;
    let sched = schedule_json(schedule);
    let k = a.k;
    let snapshot =
        |s: &StreamingGmm<CAPACITY>, ll: f64, anomalies: u64, steps: u64, seconds: f64| {
            let model = s.model();
            let n_seen = s.n_seen();
            let n = n_seen as f64;
            Snapshot {
                k,
                n: n_seen + s.n_rejected(),
                weights: model.weights().iter().map(|&w| short(w)).collect(),
                means: model
                    .components()
                    .iter()
                    .map(|c| c.mean().map(short))
                    .collect(),
                covariances: model
                    .components()
                    .iter()
                    .map(|c| c.covariance().to_rows().map(|r| r.map(short)))
                    .collect(),
                log_likelihood: ll,
                mean_log_likelihood: ll / n,
                n_iter: steps,
                converged: false,
                bic: reference::bic(ll, n, k),
                aic: reference::aic(ll, k),
                engine: Engine::Core.name().to_string(),
                fit_seconds: seconds,
                n_seen,
                n_rejected: s.n_rejected(),
                reseeded: s.reseeded(),
                threshold: s.threshold().map(short),
                n_anomalies: anomalies,
                warmup: m,
                schedule: sched.clone(),
            }
        };
    let every = a.every;
    let total = points.len();
    // Snapshots at every multiple of `every` past the warm-up, and at the end.
    let mut at = m;
    if (m.is_multiple_of(every) || m == total)
        && !emit(&snapshot(&stream, ll, anomalies, steps, seconds))?
    {
        return Ok(());
    }
    while at < total {
        let end = (at / every + 1).saturating_mul(every).min(total);
        let t = Instant::now();
        let batch = a.batch.max(1);
        let mut from = at;
        while from < end {
            let to = (from + batch).min(end);
            let update_error = |e: GmmError| {
                CliError::failed(format!(
                    "{}:{}: the streaming update failed: {e}",
                    data.path,
                    data.line_of(from)
                ))
            };
            if batch == 1 {
                let u = stream.update(points[from]).map_err(update_error)?;
                if !u.log_density.is_finite() {
                    return Err(non_finite_density(data, from));
                }
                ll += f64::from(u.log_density);
                anomalies += u64::from(u.anomaly);
                steps += 1;
            } else {
                // Scored under the model before the batch, against the
                // threshold in force before it.
                let threshold = stream.threshold();
                for (i, &p) in points[from..to].iter().enumerate() {
                    let d = stream.log_density(p);
                    if !d.is_finite() {
                        return Err(non_finite_density(data, from + i));
                    }
                    ll += f64::from(d);
                    anomalies += u64::from(threshold.is_some_and(|t| d < t));
                }
                stream
                    .update_batch(&points[from..to])
                    .map_err(update_error)?;
                steps += 1;
            }
            from = to;
        }
        seconds += t.elapsed().as_secs_f64();
        at = end;
        if !emit(&snapshot(&stream, ll, anomalies, steps, seconds))? {
            return Ok(());
        }
    }
    Ok(())
}

fn non_finite_density(data: &Dataset, i: usize) -> CliError {
    CliError::failed(format!(
        "{}:{}: the log-density of the sample is not finite in f32; nothing more printed",
        data.path,
        data.line_of(i)
    ))
}

/// `gmm stream`: reads the file (checking every row first, so bad input
/// fails before any output), then prints each snapshot as it comes.
///
/// # Errors
/// As [`run`], and unreadable or malformed files.
pub fn command(a: &StreamArgs) -> Result<(), CliError> {
    let data = data::read_points(&a.data, None)?;
    if !a.json {
        let (schedule, ..) = configs(a, &data)?;
        let text = format!(
            "streaming EM over {} ({} points) in file order: k = {}, {}, warm-up: batch fit of the first {} samples\n",
            data.path,
            data.points.len(),
            a.k,
            schedule_json(schedule).describe(),
            a.warmup
        );
        if !print_line(&text)? {
            return Ok(());
        }
    }
    run(a, &data, &mut |snap| {
        let line = if a.json {
            serde_json::to_string(snap).map_err(|e| CliError::failed(format!("JSON: {e}")))?
        } else {
            snapshot_line(snap)
        };
        print_line(&line)
    })
}

/// Prints a line and flushes it (a snapshot is seen as it comes); `false`
/// when stdout is a closed pipe (`gmm stream .. | head`), which ends the
/// run quietly like other line-oriented tools.
fn print_line(line: &str) -> Result<bool, CliError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{}", line.trim_end()).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(CliError::failed(format!("stdout: {e}"))),
    }
}

/// One readable line for a snapshot.
#[must_use]
pub fn snapshot_line(s: &Snapshot) -> String {
    let mut t = format!("n_seen {:>8}: weights", s.n_seen);
    for w in &s.weights {
        let _ = write!(t, " {w:.3}");
    }
    t.push_str("; means");
    for m in &s.means {
        let _ = write!(t, " ({:.3}, {:.3})", m[0], m[1]);
    }
    let _ = write!(
        t,
        "; mean log-density {:.4}; threshold {}; {} anomalies; {} re-seeded",
        s.mean_log_likelihood,
        s.threshold.map_or("-".into(), |v| format!("{v:.3}")),
        s.n_anomalies,
        s.reseeded
    );
    t
}

/// Reads the snapshots of `gmm stream --json` (one object per line).
///
/// # Errors
/// [`CliError::input`] naming the file and line for malformed JSON, a
/// snapshot whose k differs from the first, an invalid mixture, or no
/// snapshots.
pub fn read_snapshots(path: &std::path::Path) -> Result<Vec<Snapshot>, CliError> {
    let name = path.display().to_string();
    let text =
        std::fs::read_to_string(path).map_err(|e| CliError::input(format!("{name}: {e}")))?;
    let mut snaps: Vec<Snapshot> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("{name}:{}", i + 1);
        let s: Snapshot = serde_json::from_str(line).map_err(|e| {
            CliError::input(format!(
                "{at}:{}: {} (expected one `gmm stream --json` snapshot per line)",
                e.column(),
                data::strip_position(&e.to_string())
            ))
        })?;
        let m = s.mixture();
        m.validate()
            .map_err(|e| CliError::input(format!("{at}: {e}")))?;
        if m.k() != s.k {
            return Err(CliError::input(format!(
                "{at}: k = {} but {} components",
                s.k,
                m.k()
            )));
        }
        if let Some(first) = snaps.first()
            && first.k != s.k
        {
            return Err(CliError::input(format!(
                "{at}: k = {} differs from the first snapshot's k = {}",
                s.k, first.k
            )));
        }
        snaps.push(s);
    }
    if snaps.is_empty() {
        return Err(CliError::input(format!(
            "{name}: no snapshots (expected the output of `gmm stream --json`)"
        )));
    }
    Ok(snaps)
}

/// Draws each component's mean path over the snapshots (a component keeps
/// its index for the whole stream), over `points`.
///
/// # Errors
/// As [`crate::plot::stream`].
pub fn plot_paths(
    out: &std::path::Path,
    snaps: &[Snapshot],
    points: &[[f64; 2]],
) -> Result<(), CliError> {
    let (Some(first), Some(last)) = (snaps.first(), snaps.last()) else {
        return Err(CliError::input("no snapshots to draw"));
    };
    let k = last.k;
    let paths: Vec<Vec<(f64, f64)>> = (0..k)
        .map(|j| {
            snaps
                .iter()
                .map(|s| (s.means[j][0], s.means[j][1]))
                .collect()
        })
        .collect();
    let names: Vec<String> = (0..k)
        .map(|j| {
            let (a, b) = (first.means[j], last.means[j]);
            format!(
                "component {j}: ({:.2}, {:.2}) -> ({:.2}, {:.2}), w = {:.3}",
                a[0], a[1], b[0], b[1], last.weights[j]
            )
        })
        .collect();
    let kind = last.schedule.describe();
    let title = format!(
        "Streaming EM: means at n = {}..{} ({} snapshots, {kind})",
        first.n_seen,
        last.n_seen,
        snaps.len()
    );
    crate::plot::stream(
        out,
        &crate::plot::StreamPaths {
            points,
            paths: &paths,
            names: &names,
            last: &last.mixture(),
            title: &title,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every length `--warmup` accepts has its `Warmup<CAPACITY, M>`
    /// (the two lists are kept by hand), the firmware's among them.
    #[test]
    fn every_offered_warmup_runs() {
        assert!(WARMUPS.contains(&firmware_example::WARMUP_POINTS));
        let points: Vec<Point> = (0..4096)
            .map(|i| {
                [
                    (i % 7) as f32 + if i % 2 == 0 { 0.0 } else { 9.0 },
                    (i % 5) as f32,
                ]
            })
            .collect();
        let fit = FitConfig::new(2);
        let config = StreamConfig::new();
        for m in WARMUPS {
            let stream = warm_up_any(m, &points, &fit, &config)
                .unwrap_or_else(|| panic!("no Warmup for {m}"))
                .unwrap();
            assert_eq!(stream.n_seen(), m as u64);
        }
    }
}
