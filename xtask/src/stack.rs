//! The deepest stack a function can reach, from the disassembly of a
//! Thumb-2 ELF: each function's frame from its prologue (`push`, `vpush`,
//! `sub sp`), and the deepest chain of direct calls below it.
//!
//! A bound for what painting the stack cannot show (paths a given run
//! does not take), with two caveats printed with it: indirect calls
//! (`blx rN`) are not followed, and recursion is cut at the first repeat.
//! A tail call (a branch other than `bl` to another function's entry)
//! runs after its caller's frame is gone: it adds its own depth in place
//! of the caller's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Frames and direct callees of every function of a disassembly.
#[derive(Debug, Default)]
pub struct CallGraph {
    frames: BTreeMap<String, u64>,
    calls: BTreeMap<String, BTreeSet<String>>,
    tail_calls: BTreeMap<String, BTreeSet<String>>,
}

/// The number in `#0x1a0` or `#416`.
fn immediate(operand: &str) -> Option<u64> {
    let v = operand.trim().trim_start_matches('#');
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

/// Bytes pushed by a register list such as `{r4, r5, lr}` or
/// `{d8, d9, d10, d11}` (`d` registers are 8 bytes, the others 4).
fn pushed(list: &str) -> u64 {
    let inner = list.trim().trim_start_matches('{').trim_end_matches('}');
    inner
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| {
            let width = if r.starts_with('d') { 8 } else { 4 };
            // A range `d8-d15`.
            let count = match r.split_once('-') {
                Some((a, b)) => {
                    let n = |s: &str| s.trim()[1..].parse::<u64>().unwrap_or(0);
                    n(b).saturating_sub(n(a)) + 1
                }
                None => 1,
            };
            width * count
        })
        .sum()
}

/// The bytes an instruction of a prologue takes from the stack, or
/// `None` when it is not a stack adjustment.
fn frame_bytes(mnemonic: &str, operands: &str) -> Option<u64> {
    match mnemonic {
        "push" | "push.w" | "vpush" => Some(pushed(operands)),
        "sub" | "sub.w" | "subw" => {
            let ops: Vec<&str> = operands.split(',').map(str::trim).collect();
            match ops.as_slice() {
                ["sp", imm] | ["sp", "sp", imm] => immediate(imm),
                _ => None,
            }
        }
        _ => None,
    }
}

/// The symbol a branch targets: `0x8001 <name>` or `0x8001 <name+0x10>`.
fn target(operands: &str) -> Option<&str> {
    let start = operands.find('<')? + 1;
    let end = operands[start..].find(['>', '+'])? + start;
    Some(&operands[start..end])
}

impl CallGraph {
    /// Parses `llvm-objdump -d --demangle --no-show-raw-insn` output.
    pub fn parse(disassembly: &str) -> Self {
        let mut g = Self::default();
        let mut current: Option<String> = None;
        let mut in_prologue = false;
        for line in disassembly.lines() {
            if let Some(name) = line
                .strip_suffix(">:")
                .and_then(|l| l.split_once(" <"))
                .map(|(_, n)| n.to_string())
            {
                g.frames.insert(name.clone(), 0);
                g.calls.insert(name.clone(), BTreeSet::new());
                current = Some(name);
                in_prologue = true;
                continue;
            }
            let Some(name) = current.as_ref() else {
                continue;
            };
            // `addr:  \tmnemonic\toperands`
            let mut fields = line.split('\t').map(str::trim).filter(|f| !f.is_empty());
            let (Some(_addr), Some(mnemonic)) = (fields.next(), fields.next()) else {
                continue;
            };
            let operands = fields.next().unwrap_or("");
            if in_prologue {
                match frame_bytes(mnemonic, operands) {
                    Some(bytes) => *g.frames.entry(name.clone()).or_insert(0) += bytes,
                    // `add r7, sp, #n` (frame pointer) and moves keep the
                    // prologue going; anything that branches ends it.
                    None if mnemonic.starts_with('b') || mnemonic.starts_with("cb") => {
                        in_prologue = false;
                    }
                    None => {}
                }
            }
            let branch = mnemonic.starts_with('b') && !matches!(mnemonic, "bx" | "blx" | "bic");
            if branch
                && let Some(t) = target(operands)
                && t != name
            {
                let kind = if mnemonic == "bl" {
                    &mut g.calls
                } else {
                    &mut g.tail_calls
                };
                kind.entry(name.clone()).or_default().insert(t.to_string());
            }
        }
        // Branches inside a function name it with an offset (no `<name>`
        // of another function); keep only branches to functions' entries.
        let known: BTreeSet<String> = g.frames.keys().cloned().collect();
        for callees in g.calls.values_mut().chain(g.tail_calls.values_mut()) {
            callees.retain(|c| known.contains(c));
        }
        g
    }

    /// The deepest chain of frames from `root` (its own frame included),
    /// not entering functions for which `skip` is true.
    pub fn deepest(&self, root: &str, skip: &dyn Fn(&str) -> bool) -> (u64, Vec<(String, u64)>) {
        let mut on_path = BTreeSet::new();
        self.walk(root, skip, &mut on_path)
    }

    fn walk(
        &self,
        f: &str,
        skip: &dyn Fn(&str) -> bool,
        on_path: &mut BTreeSet<String>,
    ) -> (u64, Vec<(String, u64)>) {
        let own = self.frames.get(f).copied().unwrap_or(0);
        if skip(f) || !on_path.insert(f.to_string()) {
            return (0, Vec::new());
        }
        let mut best = (own, vec![(f.to_string(), own)]);
        for c in self.calls.get(f).into_iter().flatten() {
            let below = self.walk(c, skip, on_path);
            if own + below.0 > best.0 {
                let mut path = vec![(f.to_string(), own)];
                path.extend(below.1);
                best = (own + below.0, path);
            }
        }
        for t in self.tail_calls.get(f).into_iter().flatten() {
            let instead = self.walk(t, skip, on_path);
            if instead.0 > best.0 {
                let mut path = vec![(format!("{f} (tail call below)"), 0)];
                path.extend(instead.1);
                best = (instead.0, path);
            }
        }
        on_path.remove(f);
        best
    }

    /// Functions whose name satisfies `pick`.
    pub fn functions(&self, pick: impl Fn(&str) -> bool) -> Vec<String> {
        self.frames.keys().filter(|f| pick(f)).cloned().collect()
    }
}

/// The call graph of `elf`, from the toolchain's `llvm-objdump`.
pub fn call_graph(elf: &Path) -> Result<CallGraph, String> {
    Ok(CallGraph::parse(&crate::panic_check::disassemble(
        elf,
        &[],
    )?))
}

/// libm's reduction of sine and cosine arguments beyond 9 pi / 4 (776
/// bytes of frame at opt-level 3): `sinf` and `cosf` call it only for
/// such arguments, and the core calls them only for the Box-Muller angle
/// `2 pi u`, `u` in [0, 1).
pub const UNREACHED: &str = "libm::math::rem_pio2f::";

/// The deepest path below any of the core's fit entry points in `g`
/// (`gmm_core::em::fit` and the `_in` fits, whichever the optimiser kept
/// as functions); with `all` false, not entering [`UNREACHED`].
pub fn deepest_fit(g: &CallGraph, all: bool) -> Result<(u64, Vec<(String, u64)>), String> {
    let roots = g.functions(|f| {
        f.starts_with("gmm_core::em::fit::")
            || ["fit_in::", "fit_traced_in::", "refine_in::"]
                .iter()
                .any(|n| f.contains(n) && f.starts_with("gmm_core::em::"))
    });
    let skip = |f: &str| !all && f.starts_with(UNREACHED);
    roots
        .iter()
        .map(|r| g.deepest(r, &skip))
        .max_by_key(|d| d.0)
        .ok_or_else(|| "no fit function found in the disassembly".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
00001000 <outer>:
    1000:      \tpush\t{r4, r5, r6, r7, lr}
    1002:      \tadd\tr7, sp, #0xc
    1004:      \tvpush\t{d8, d9}
    1008:      \tsub\tsp, #0x20
    100a:      \tbl\t0x2000 <leaf>
    100e:      \tbne\t0x1004 <outer+0x4>
    1010:      \tb.w\t0x3000 <deep>
00002000 <leaf>:
    2000:      \tpush\t{r7, lr}
    2002:      \tpop\t{r7, pc}
00003000 <deep>:
    3000:      \tpush.w\t{r4, r5, r6, r7, r8, r9, r10, r11, lr}
    3004:      \tsub.w\tsp, sp, #0x100
    3008:      \tbl\t0x1000 <outer>
    300c:      \tsub\tsp, #0x400
";

    #[test]
    fn frames_calls_and_the_deepest_chain() {
        let g = CallGraph::parse(SAMPLE);
        assert_eq!(g.frames["outer"], 20 + 16 + 32);
        assert_eq!(g.frames["leaf"], 8);
        // The `sub` after the call is not part of the prologue.
        assert_eq!(g.frames["deep"], 36 + 256);
        let (bytes, path) = g.deepest("outer", &|_| false);
        // outer tail-calls deep, which replaces its frame; deep -> outer
        // is a cycle and is cut.
        assert_eq!(bytes, 292);
        assert_eq!(
            path.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(),
            ["outer (tail call below)", "deep"]
        );
        // Not entering `deep`: outer -> leaf.
        assert_eq!(g.deepest("outer", &|f| f == "deep").0, 68 + 8);
        // A call adds the callee's depth to the caller's frame.
        assert_eq!(g.deepest("deep", &|_| false).0, 292 + 68 + 8);
    }

    #[test]
    fn register_lists_and_immediates() {
        assert_eq!(pushed("{d8, d9, d10, d11, d12, d13, d14, d15}"), 64);
        assert_eq!(pushed("{d8-d15}"), 64);
        assert_eq!(pushed("{r4, lr}"), 8);
        assert_eq!(immediate("#0x2a0"), Some(672));
        assert_eq!(immediate("#16"), Some(16));
        assert_eq!(frame_bytes("sub", "sp, r3"), None);
    }
}
