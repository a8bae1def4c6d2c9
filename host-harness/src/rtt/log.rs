//! The firmware's log as data: each defmt frame becomes a tag (the first
//! word of its format string) and its rendered parameters, which are then
//! gathered into what the device did (plan, data, fits, streaming runs,
//! costs).
//!
//! Exact values come from the `{=u32:#010x}` bits the firmware logs next
//! to every f32; the rendered f32 is only cross-checked against them.

use std::collections::BTreeMap;

/// One decoded frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// First word of the format string (`fit`, `comp`, ...).
    pub tag: String,
    /// Every parameter as the decoder rendered it.
    pub params: Vec<String>,
}

/// A fit's configuration as the device logged it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FitCfg {
    /// Components.
    pub k: usize,
    /// Restarts.
    pub n_init: u32,
    /// Seed of the restarts' streams.
    pub seed: u64,
    /// Tolerance.
    pub tol: f32,
    /// Iteration limit.
    pub max_iter: u32,
    /// Covariance regularisation.
    pub reg_covar: f32,
    /// Exponential (0 libm, 1 fast, 2 micromath).
    pub exp: u8,
    /// Warm start: -1 none, -2 the seed mixture.
    pub warm: i32,
    /// Whether the device logs this fit's iterations.
    pub traced: bool,
}

/// A fit's outcome as the device logged it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FitOut {
    /// k, n_iter, converged (0/1), restart, failed restarts, reseeded, floored.
    pub ints: [u64; 7],
    /// Bits of the total and mean log-likelihood and the BIC.
    pub floats: [u32; 3],
    /// Per component: bits of weight, mean x, mean y, cov xx, xy, yy.
    pub comps: Vec<[u32; 6]>,
}

/// Everything logged about one fit.
#[derive(Clone, Debug, PartialEq)]
pub struct DevFit {
    /// Its configuration.
    pub cfg: FitCfg,
    /// (restart, iteration, bits of the mean log-likelihood) per iteration.
    pub iters: Vec<(u32, u32, u32)>,
    /// Trace entries the device could not keep.
    pub dropped: u64,
    /// The result, or the error text.
    pub out: Option<Result<FitOut, String>>,
    /// SysTick ticks and stack bytes of the fit.
    pub cost: Option<(u64, u64)>,
    /// Whether the fit's workspace was on the stack (`Gmm::fit`), not the
    /// firmware's static one (`Gmm::fit_in` and the other `_in` fits).
    pub on_stack: bool,
}

/// One benchmark pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bench {
    /// Exponential code.
    pub exp: u8,
    /// Points.
    pub n: u64,
    /// Components.
    pub k: u64,
    /// The short and the long fit.
    pub fits: [u32; 2],
}

/// A streaming run's configuration as the device logged it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StreamCfg {
    /// The fit whose model the stream starts from, or -1 for a warm-up
    /// fit of the stream's first `warmup` samples.
    pub start_fit: i32,
    /// Warm-up samples (0 when starting from a fit).
    pub warmup: u32,
    /// Active components.
    pub k: usize,
    /// Seed of the stream's sample generator.
    pub seed: u64,
    /// Samples learnt.
    pub n: u32,
    /// A snapshot every this many samples.
    pub every: u32,
    /// Step schedule code (0 decaying, 1 constant) and its two values.
    pub schedule: (u8, f32, f32),
    /// Covariance regularisation.
    pub reg_covar: f32,
    /// Re-seeding mass.
    pub min_mass: f32,
    /// Anomaly false-alarm rate.
    pub false_alarm_rate: f32,
    /// Updates counted as seen at the start.
    pub prior_updates: u32,
    /// Every this many samples a glitch (x = NaN) replaces the sample; 0
    /// for none.
    pub glitch_every: u32,
}

/// The live streaming model at one point of the stream.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Samples learnt so far.
    pub n_seen: u64,
    /// Samples rejected so far.
    pub rejected: u64,
    /// Components re-seeded so far.
    pub reseeded: u32,
    /// Samples flagged as anomalies so far (scored before their update).
    pub anomalies: u32,
    /// Bits of the anomaly threshold (NaN: none yet).
    pub threshold: u32,
    /// Per component: bits of weight, mean x, mean y, cov xx, xy, yy.
    pub comps: Vec<[u32; 6]>,
}

/// Everything logged about one streaming run.
#[derive(Clone, Debug, PartialEq)]
pub struct DevStream {
    /// Its configuration.
    pub cfg: StreamCfg,
    /// Snapshots in stream order.
    pub snaps: Vec<Snapshot>,
    /// (at, error text) when the run stopped on an error.
    pub error: Option<(u64, String)>,
    /// Samples drawn, with their checksum, and the cost of the updates.
    pub cost: Option<StreamCost>,
}

/// The last line of a streaming run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamCost {
    /// Samples drawn (warm-up included).
    pub drawn: u64,
    /// Updates of the live model (timed).
    pub updates: u64,
    /// SysTick ticks of the updates.
    pub ticks: u64,
    /// Deepest stack of a chunk of updates.
    pub stack: u64,
    /// Checksum of the samples drawn.
    pub checksum: u32,
}

/// Bytes of the core's types on the device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TypeSizes {
    /// `Gmm<K>`.
    pub model: u64,
    /// `Fit<K>`.
    pub fit: u64,
    /// `SufficientStats<K>` (the batch EM's statistics).
    pub stats: u64,
    /// `StreamingGmm<K>`.
    pub stream: u64,
    /// `Workspace<K>` (the fits' static workspace).
    pub workspace: u64,
}

/// What the device reported over a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Run {
    /// (data seed, points, k_max, capacity).
    pub plan: Option<(u64, usize, usize, usize)>,
    /// (points, checksum, ticks to collect them).
    pub data: Option<(usize, u32, u64)>,
    /// Fits by id.
    pub fits: BTreeMap<u32, DevFit>,
    /// (best k, its fit id, bits of its BIC).
    pub select: Option<(usize, u32, u32)>,
    /// Benchmark pairs.
    pub benches: Vec<Bench>,
    /// Streaming runs by id.
    pub streams: BTreeMap<u32, DevStream>,
    /// (peak stack bytes, stack region bytes).
    pub stack: Option<(u64, u64)>,
    /// Bytes of the core's types.
    pub sizes: Option<TypeSizes>,
    /// The `done ok=` flag.
    pub done: Option<bool>,
    /// Lines that did not parse (a format mismatch between the firmware
    /// and this reader).
    pub problems: Vec<String>,
}

fn int<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("`{s}` is not an integer"))
}

fn bits(s: &str) -> Result<u32, String> {
    let hex = s
        .strip_prefix("0x")
        .ok_or_else(|| format!("`{s}` is not 0x-hex"))?;
    u32::from_str_radix(hex, 16).map_err(|_| format!("`{s}` is not 0x-hex"))
}

fn boolean(s: &str) -> Result<bool, String> {
    match s {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("`{s}` is not a bool")),
    }
}

/// The rendered f32 must parse to the logged bits (NaN: any NaN).
fn shown_matches(shown: &str, b: u32) -> Result<(), String> {
    let v: f32 = shown
        .parse()
        .map_err(|_| format!("`{shown}` is not an f32"))?;
    let want = f32::from_bits(b);
    if v.to_bits() == b || (v.is_nan() && want.is_nan()) {
        Ok(())
    } else {
        Err(format!("rendered {shown} but bits {b:#010x} ({want:e})"))
    }
}

impl Run {
    /// Adds one line; a malformed line is recorded in `problems`.
    pub fn add(&mut self, line: &Line) {
        if let Err(e) = self.try_add(line) {
            self.problems
                .push(format!("{} {:?}: {e}", line.tag, line.params));
        }
    }

    fn fit_mut(&mut self, id: &str) -> Result<&mut DevFit, String> {
        let id: u32 = int(id)?;
        self.fits
            .get_mut(&id)
            .ok_or_else(|| format!("fit {id} has no `fitcfg` line before it"))
    }

    fn stream_mut(&mut self, id: &str) -> Result<&mut DevStream, String> {
        let id: u32 = int(id)?;
        self.streams
            .get_mut(&id)
            .ok_or_else(|| format!("stream {id} has no `streamcfg` line before it"))
    }

    fn try_add(&mut self, line: &Line) -> Result<(), String> {
        let p: Vec<&str> = line.params.iter().map(String::as_str).collect();
        match (line.tag.as_str(), p.as_slice()) {
            ("plan", [seed, n, k_max, cap]) => {
                self.plan = Some((int(seed)?, int(n)?, int(k_max)?, int(cap)?));
            }
            ("data", [n, sum, ticks]) => self.data = Some((int(n)?, bits(sum)?, int(ticks)?)),
            ("fitcfg", [id, k, n_init, seed, tol, max_iter, reg, exp, warm, traced]) => {
                let cfg = FitCfg {
                    k: int(k)?,
                    n_init: int(n_init)?,
                    seed: int(seed)?,
                    tol: f32::from_bits(bits(tol)?),
                    max_iter: int(max_iter)?,
                    reg_covar: f32::from_bits(bits(reg)?),
                    exp: int(exp)?,
                    warm: int(warm)?,
                    traced: boolean(traced)?,
                };
                let fit = DevFit {
                    cfg,
                    iters: Vec::new(),
                    dropped: 0,
                    out: None,
                    cost: None,
                    on_stack: false,
                };
                if self.fits.insert(int(id)?, fit).is_some() {
                    return Err("fit id logged twice".into());
                }
            }
            ("iter", [id, restart, i, shown, b]) => {
                let b = bits(b)?;
                shown_matches(shown, b)?;
                let entry = (int(restart)?, int(i)?, b);
                self.fit_mut(id)?.iters.push(entry);
            }
            ("iter", [id, dropped]) => self.fit_mut(id)?.dropped = int(dropped)?,
            (
                "fit",
                [
                    id,
                    k,
                    n_iter,
                    conv,
                    ll,
                    llb,
                    mll,
                    mllb,
                    bic,
                    bicb,
                    restart,
                    failed,
                    reseeded,
                    floored,
                ],
            ) => {
                let floats = [bits(llb)?, bits(mllb)?, bits(bicb)?];
                for (shown, &b) in [ll, mll, bic].iter().zip(&floats) {
                    shown_matches(shown, b)?;
                }
                let out = FitOut {
                    ints: [
                        int(k)?,
                        int(n_iter)?,
                        u64::from(boolean(conv)?),
                        int(restart)?,
                        int(failed)?,
                        int(reseeded)?,
                        int(floored)?,
                    ],
                    floats,
                    comps: Vec::new(),
                };
                self.fit_mut(id)?.out = Some(Ok(out));
            }
            ("comp", [id, j, rest @ ..]) if rest.len() == 12 => {
                let mut c = [0u32; 6];
                for (slot, (shown, b)) in c.iter_mut().zip(rest[..6].iter().zip(&rest[6..])) {
                    *slot = bits(b)?;
                    shown_matches(shown, *slot)?;
                }
                let j: usize = int(j)?;
                match &mut self.fit_mut(id)?.out {
                    Some(Ok(out)) if out.comps.len() == j => out.comps.push(c),
                    _ => return Err(format!("component {j} out of order")),
                }
            }
            ("cost", [id, ticks, stack]) => {
                let cost = (int(ticks)?, int(stack)?);
                self.fit_mut(id)?.cost = Some(cost);
            }
            ("fiterr", [id, _k, what]) => {
                let what = (*what).to_string();
                self.fit_mut(id)?.out = Some(Err(what));
            }
            ("select", [k, id, shown, b]) => {
                let b = bits(b)?;
                shown_matches(shown, b)?;
                self.select = Some((int(k)?, int(id)?, b));
            }
            ("bench", [exp, n, k, a, b]) => self.benches.push(Bench {
                exp: int(exp)?,
                n: int(n)?,
                k: int(k)?,
                fits: [int(a)?, int(b)?],
            }),
            ("stack", [peak, total]) => self.stack = Some((int(peak)?, int(total)?)),
            ("done", [ok]) => self.done = Some(boolean(ok)?),
            ("size", [model, fit, stats, stream, workspace]) => {
                self.sizes = Some(TypeSizes {
                    model: int(model)?,
                    fit: int(fit)?,
                    stats: int(stats)?,
                    stream: int(stream)?,
                    workspace: int(workspace)?,
                });
            }
            ("onstack", [id]) => self.fit_mut(id)?.on_stack = true,
            (
                "streamcfg",
                [
                    id,
                    start_fit,
                    warmup,
                    k,
                    seed,
                    n,
                    every,
                    code,
                    a,
                    b,
                    reg,
                    min_mass,
                    far,
                    prior,
                    glitch_every,
                ],
            ) => {
                let f = |s: &str| bits(s).map(f32::from_bits);
                let cfg = StreamCfg {
                    start_fit: int(start_fit)?,
                    warmup: int(warmup)?,
                    k: int(k)?,
                    seed: int(seed)?,
                    n: int(n)?,
                    every: int(every)?,
                    schedule: (int(code)?, f(a)?, f(b)?),
                    reg_covar: f(reg)?,
                    min_mass: f(min_mass)?,
                    false_alarm_rate: f(far)?,
                    prior_updates: int(prior)?,
                    glitch_every: int(glitch_every)?,
                };
                let stream = DevStream {
                    cfg,
                    snaps: Vec::new(),
                    error: None,
                    cost: None,
                };
                if self.streams.insert(int(id)?, stream).is_some() {
                    return Err("stream id logged twice".into());
                }
            }
            ("snap", [id, n_seen, rejected, reseeded, anomalies, shown, b]) => {
                let b = bits(b)?;
                shown_matches(shown, b)?;
                let snap = Snapshot {
                    n_seen: int(n_seen)?,
                    rejected: int(rejected)?,
                    reseeded: int(reseeded)?,
                    anomalies: int(anomalies)?,
                    threshold: b,
                    comps: Vec::new(),
                };
                self.stream_mut(id)?.snaps.push(snap);
            }
            ("scomp", [id, n_seen, j, rest @ ..]) if rest.len() == 12 => {
                let mut c = [0u32; 6];
                for (slot, (shown, b)) in c.iter_mut().zip(rest[..6].iter().zip(&rest[6..])) {
                    *slot = bits(b)?;
                    shown_matches(shown, *slot)?;
                }
                let (n_seen, j): (u64, usize) = (int(n_seen)?, int(j)?);
                match self.stream_mut(id)?.snaps.last_mut() {
                    Some(s) if s.n_seen == n_seen && s.comps.len() == j => s.comps.push(c),
                    _ => return Err(format!("snapshot component {j} out of order")),
                }
            }
            ("serr", [id, at, what]) => {
                let error = (int(at)?, (*what).to_string());
                self.stream_mut(id)?.error = Some(error);
            }
            ("scost", [id, drawn, updates, ticks, stack, sum]) => {
                let cost = StreamCost {
                    drawn: int(drawn)?,
                    updates: int(updates)?,
                    ticks: int(ticks)?,
                    stack: int(stack)?,
                    checksum: bits(sum)?,
                };
                self.stream_mut(id)?.cost = Some(cost);
            }
            (
                "plan" | "data" | "fitcfg" | "iter" | "fit" | "comp" | "cost" | "fiterr" | "select"
                | "bench" | "stack" | "done" | "size" | "streamcfg" | "snap" | "scomp" | "serr"
                | "scost",
                _,
            ) => {
                return Err(format!("unexpected number of parameters ({})", p.len()));
            }
            // Free text (greetings, warnings, panics): printed, not parsed.
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(tag: &str, params: &[&str]) -> Line {
        Line {
            tag: tag.into(),
            params: params.iter().map(|s| (*s).to_string()).collect(),
        }
    }

    #[test]
    fn gathers_a_fit_from_its_lines() {
        let mut run = Run::default();
        run.add(&line("plan", &["2024", "900", "5", "8"]));
        run.add(&line(
            "fitcfg",
            &[
                "0",
                "2",
                "3",
                "7",
                "0x3a83126f",
                "100",
                "0x358637bd",
                "0",
                "-1",
                "true",
            ],
        ));
        run.add(&line("iter", &["0", "0", "0", "-1.5", "0xbfc00000"]));
        run.add(&line(
            "fit",
            &[
                "0",
                "2",
                "4",
                "true",
                "-10",
                "0xc1200000",
                "-1.5",
                "0xbfc00000",
                "25",
                "0x41c80000",
                "1",
                "0",
                "0",
                "0",
            ],
        ));
        run.add(&line(
            "comp",
            &[
                "0",
                "0",
                "1",
                "0",
                "0",
                "1",
                "0",
                "1",
                "0x3f800000",
                "0x00000000",
                "0x00000000",
                "0x3f800000",
                "0x00000000",
                "0x3f800000",
            ],
        ));
        run.add(&line("cost", &["0", "1234", "560"]));
        run.add(&line("onstack", &["0"]));
        run.add(&line("size", &["228", "272", "280", "568", "2672"]));
        run.add(&line("gmm", &["qemu"]));
        assert!(run.problems.is_empty(), "{:?}", run.problems);
        assert!(run.fits[&0].on_stack);
        assert_eq!(run.sizes.map(|s| (s.fit, s.workspace)), Some((272, 2672)));
        assert_eq!(run.plan, Some((2024, 900, 5, 8)));
        let f = &run.fits[&0];
        assert_eq!(f.cfg.k, 2);
        assert_eq!(f.cfg.tol, 1e-3);
        assert_eq!(f.cfg.warm, -1);
        assert_eq!(f.iters, vec![(0, 0, 0xbfc0_0000)]);
        let out = f.out.clone().unwrap().unwrap();
        assert_eq!(out.ints, [2, 4, 1, 1, 0, 0, 0]);
        assert_eq!(
            out.comps,
            vec![[0x3f80_0000, 0, 0, 0x3f80_0000, 0, 0x3f80_0000]]
        );
        assert_eq!(f.cost, Some((1234, 560)));
    }

    #[test]
    fn gathers_a_streaming_run_from_its_lines() {
        let mut run = Run::default();
        run.add(&line(
            "streamcfg",
            &[
                "0",
                "-1",
                "100",
                "3",
                "2025",
                "2000",
                "250",
                "0",
                "0x3f666666",
                "0x40000000",
                "0x358637bd",
                "0x38d1b717",
                "0x3c23d70a",
                "0",
                "45",
            ],
        ));
        run.add(&line(
            "snap",
            &["0", "250", "1", "0", "3", "-8", "0xc1000000"],
        ));
        let mut comp = vec!["0", "250", "0", "1", "0", "0", "1", "0", "1"];
        comp.extend(["0x3f800000", "0x00000000", "0x00000000"]);
        comp.extend(["0x3f800000", "0x00000000", "0x3f800000"]);
        run.add(&line("scomp", &comp));
        // A component of a snapshot that was not announced.
        comp[1] = "500";
        run.add(&line("scomp", &comp));
        run.add(&line(
            "scost",
            &["0", "2000", "1900", "1234", "1424", "0x8bf4ff89"],
        ));
        assert_eq!(run.problems.len(), 1, "{:?}", run.problems);
        let s = &run.streams[&0];
        assert_eq!((s.cfg.start_fit, s.cfg.warmup, s.cfg.k), (-1, 100, 3));
        assert_eq!(s.cfg.glitch_every, 45);
        assert_eq!(s.cfg.schedule, (0, 0.9, 2.0));
        assert_eq!(s.cfg.false_alarm_rate, 0.01);
        assert_eq!(s.snaps.len(), 1);
        assert_eq!((s.snaps[0].n_seen, s.snaps[0].rejected), (250, 1));
        assert_eq!(s.snaps[0].threshold, 0xc100_0000);
        assert_eq!(s.snaps[0].comps.len(), 1);
        let cost = s.cost.unwrap();
        assert_eq!(
            (cost.drawn, cost.updates, cost.checksum),
            (2000, 1900, 0x8bf4_ff89)
        );
    }

    #[test]
    fn inconsistent_lines_are_problems_not_panics() {
        let mut run = Run::default();
        // No fitcfg before it.
        run.add(&line("cost", &["3", "1", "2"]));
        // Rendered value disagrees with its bits.
        run.add(&line("select", &["3", "0", "1.5", "0x3f800000"]));
        // Wrong arity, bad numbers.
        run.add(&line("done", &[]));
        run.add(&line("plan", &["x", "1", "2", "3"]));
        assert_eq!(run.problems.len(), 4, "{:?}", run.problems);
        assert_eq!(run.select, None);
    }

    #[test]
    fn nan_is_compared_by_is_nan_only() {
        assert!(shown_matches("NaN", 0x7fc0_0000).is_ok());
        assert!(shown_matches("NaN", 0xffc0_0000).is_ok());
        assert!(shown_matches("1", 0x7fc0_0000).is_err());
        assert!(shown_matches("-0", 0x0000_0000).is_err());
    }
}
