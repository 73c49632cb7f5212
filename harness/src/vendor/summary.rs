//! `SUMMARY.md` of a vendor bundle: one arm of a run as Markdown to paste into a bug tracker —
//! what was run and its story, the versions, the failing checks next to the same checks in the
//! fixed or baseline arm, the faults and their proof, the cited frames (numbered as in the
//! bundle's cut pcapng, with the original numbers) and log lines, and how to run it again.
//!
//! Architecture invariant: pure (records and cut results in, text out); host paths and names
//! are taken out afterwards by `vendor::scrub`, by the caller.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use crate::case::Verdict;
use crate::results::{ArmRecord, CheckRecord, RunRecord};
use crate::vendor::cite::rewrite_frames;
use crate::vendor::cut::CutFrame;
use crate::vendor::scrub::rerun_relative;

/// Frames kept either side of a cited frame.
pub const CONTEXT_FRAMES: u64 = 3;
/// Lines shown either side of a cited line.
pub const CONTEXT_LINES: u64 = 3;

/// Everything `SUMMARY.md` says.
#[derive(Debug, Clone)]
pub struct Summary<'a> {
    pub run: &'a RunRecord,
    pub arm: ArmView<'a>,
    /// The fixed or baseline arm of the same case in the same run, if it holds one.
    pub compare: Option<ArmView<'a>>,
}

/// One arm with what the bundle cut out of its folder.
#[derive(Debug, Clone)]
pub struct ArmView<'a> {
    pub record: &'a ArmRecord,
    /// One per pcapng the arm cites.
    pub cuts: Vec<CutView>,
    /// One per cited line.
    pub lines: Vec<LineExcerpt>,
    /// The workload's start (`history.jsonl`), to give frames the times steps have.
    pub workload_start_unix: Option<f64>,
}

/// The cited frames of one trace and the file they were cut into.
#[derive(Debug, Clone)]
pub struct CutView {
    /// The trace, relative to the arm's folder (`wire/lan.pcapng`).
    pub original: String,
    /// The cut's name in the bundle.
    pub file: String,
    /// Original frame number → who cites it.
    pub citers: BTreeMap<u64, BTreeSet<String>>,
    /// The cut, or why there is none.
    pub result: Result<CutDone, String>,
}

/// What a cut holds (its bytes are written by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutDone {
    pub frames: Vec<CutFrame>,
    pub original_frames: u64,
    pub missing: Vec<u64>,
}

/// A cited line with the lines around it.
#[derive(Debug, Clone)]
pub struct LineExcerpt {
    /// Relative to the arm's folder.
    pub file: String,
    pub line: u64,
    pub citers: BTreeSet<String>,
    /// (line number, text), or why the file could not be read.
    pub lines: Result<Vec<(u64, String)>, String>,
}

impl ArmView<'_> {
    /// Original → cut frame number, per trace, for rewriting sentences.
    fn frame_map(&self) -> BTreeMap<String, BTreeMap<u64, u64>> {
        self.cuts
            .iter()
            .filter_map(|c| {
                let done = c.result.as_ref().ok()?;
                Some((
                    c.original.clone(),
                    done.frames.iter().map(|f| (f.original, f.cut)).collect(),
                ))
            })
            .collect()
    }

    fn check(&self, name: &str) -> Option<&CheckRecord> {
        self.record.checks.iter().find(|c| c.name == name)
    }
}

/// The Markdown text.
pub fn render(s: &Summary) -> String {
    let a = s.arm.record;
    let mut o = String::new();
    let map = s.arm.frame_map();
    let _ = writeln!(o, "# {}::{} — {}\n", a.case, a.arm, verdict_line(a));
    let _ = writeln!(o, "{}\n", a.summary);
    if let Some(story) = &a.story {
        let _ = writeln!(o, "**Story of this arm.** {story}\n");
    }
    if let Some(f) = &a.finding {
        let _ = writeln!(o, "**Finding.** {f}\n");
    }
    let _ = writeln!(o, "| | |\n|---|---|");
    let _ = writeln!(o, "| Case | `{}` (`{}`) |", a.case, case_file(a));
    let _ = writeln!(o, "| Arm | `{}` |", a.arm);
    let _ = writeln!(o, "| Expected | {} |", expected(a));
    let _ = writeln!(
        o,
        "| Got | **{}**{} |",
        a.verdict,
        if a.met {
            " (as expected)"
        } else {
            " (NOT as expected)"
        }
    );
    if let Some(c) = &s.compare {
        let _ = writeln!(
            o,
            "| Compared with | arm `{}`: expected {}, got **{}** |",
            c.record.arm, c.record.expected, c.record.verdict
        );
    }
    let _ = writeln!(o, "| Run | `{}`, accelerator {} |", s.run.run_id, s.run.accel);
    let _ = writeln!(
        o,
        "| Time | arm {:.1} s, lab ready {:.1} s, workload {:.1} s |\n",
        a.duration_s, a.lab_ready_s, a.workload_s
    );
    let _ = writeln!(
        o,
        "**Verdict.** {}\n",
        cell_text(&rewrite_frames(&a.explanation, &map))
    );

    versions(&mut o, s.run);
    checks(&mut o, s);
    faults(&mut o, s);
    for view in std::iter::once(&s.arm).chain(&s.compare) {
        frames(&mut o, view);
    }
    for view in std::iter::once(&s.arm).chain(&s.compare) {
        lines(&mut o, view);
    }
    reproduce(&mut o, s);
    contents(&mut o, s);
    o
}

/// The case file the arm's re-run command names, relative to the project.
fn case_file(a: &ArmRecord) -> String {
    rerun_relative(&a.rerun)
        .split(' ')
        .find(|w| w.ends_with(".toml"))
        .map_or_else(|| format!("cases/{}.toml", a.case), str::to_string)
}

fn verdict_line(a: &ArmRecord) -> String {
    format!(
        "{} (expected {}{})",
        a.verdict,
        a.expected,
        if a.met { "" } else { ": NOT met" }
    )
}

fn expected(a: &ArmRecord) -> String {
    if a.expected == Verdict::Fail && !a.failing_checks.is_empty() {
        let named: Vec<String> = a.failing_checks.iter().map(|c| format!("`{c}`")).collect();
        format!("**fail**, on {}", named.join(", "))
    } else {
        format!("**{}**", a.expected)
    }
}

fn versions(o: &mut String, run: &RunRecord) {
    let _ = writeln!(o, "## Versions\n");
    let _ = writeln!(
        o,
        "As the run recorded them (the images' manifests, QEMU, faultline). `<image>.recipe` is the \
         image's recipe hash: the cache key of the exact image.\n"
    );
    let _ = writeln!(o, "| component | version |\n|---|---|");
    for (k, v) in &run.versions {
        let _ = writeln!(o, "| {} | `{}` |", cell(k), cell(v));
    }
    o.push('\n');
}

fn checks(o: &mut String, s: &Summary) {
    let a = &s.arm;
    let map = a.frame_map();
    let cmp_map = s.compare.as_ref().map(ArmView::frame_map).unwrap_or_default();
    let failing: Vec<&CheckRecord> = a
        .record
        .checks
        .iter()
        .filter(|c| c.verdict != Verdict::Pass)
        .collect();
    let _ = writeln!(o, "## Failing checks\n");
    if failing.is_empty() {
        let _ = writeln!(o, "None: every check of this arm passed.\n");
    }
    for c in &failing {
        let _ = writeln!(
            o,
            "### `{}` — {}{}\n",
            c.name,
            c.verdict,
            if c.counted {
                ""
            } else {
                " (reported only, not counted)"
            }
        );
        let why = c.explanation.as_deref().unwrap_or("no explanation recorded");
        let _ = writeln!(
            o,
            "- **{}**: {}",
            a.record.arm,
            cell_text(&rewrite_frames(why, &map))
        );
        if let Some(cmp) = &s.compare {
            let line = match cmp.check(&c.name) {
                Some(cc) => format!(
                    "{}{}",
                    cc.verdict,
                    cc.explanation
                        .as_deref()
                        .map(|e| format!(": {}", cell_text(&rewrite_frames(e, &cmp_map))))
                        .unwrap_or_default()
                ),
                None if cmp.record.skipped_checks.contains(&c.name) => {
                    "not judged (the arm skips it)".to_string()
                }
                None => "not in this arm".to_string(),
            };
            let _ = writeln!(o, "- **{}**: {line}", cmp.record.arm);
        }
        o.push('\n');
    }
    let cited: Vec<&CheckRecord> = a
        .record
        .checks
        .iter()
        .filter(|c| c.verdict == Verdict::Pass && c.explanation.is_some())
        .collect();
    if !cited.is_empty() {
        let _ = writeln!(o, "## Passing checks that point at evidence\n");
        for c in cited {
            let why = c.explanation.as_deref().unwrap_or_default();
            let _ = writeln!(o, "- `{}`: {}", c.name, cell_text(&rewrite_frames(why, &map)));
        }
        o.push('\n');
    }
    let _ = writeln!(o, "## All checks\n");
    match &s.compare {
        Some(cmp) => {
            let _ = writeln!(
                o,
                "| check | {} | {} |\n|---|---|---|",
                a.record.arm, cmp.record.arm
            );
        }
        None => {
            let _ = writeln!(o, "| check | {} |\n|---|---|", a.record.arm);
        }
    }
    let mut names: Vec<&str> = a.record.checks.iter().map(|c| c.name.as_str()).collect();
    names.extend(a.record.skipped_checks.iter().map(String::as_str));
    if let Some(cmp) = &s.compare {
        for c in &cmp.record.checks {
            if !names.contains(&c.name.as_str()) {
                names.push(&c.name);
            }
        }
    }
    for name in names {
        let mut row = format!("| `{name}` | {} |", check_cell(a, name));
        if let Some(cmp) = &s.compare {
            let _ = write!(row, " {} |", check_cell(cmp, name));
        }
        let _ = writeln!(o, "{row}");
    }
    o.push('\n');
}

fn check_cell(view: &ArmView, name: &str) -> String {
    match view.check(name) {
        Some(c) if c.verdict == Verdict::Pass && c.counted => "pass".into(),
        Some(c) if c.counted => format!("**{}**", c.verdict),
        Some(c) => format!("{} (reported only)", c.verdict),
        None if view.record.skipped_checks.iter().any(|s| s == name) => "skipped".into(),
        None => "—".into(),
    }
}

fn faults(o: &mut String, s: &Summary) {
    let _ = writeln!(o, "## Faults\n");
    for view in std::iter::once(&s.arm).chain(&s.compare) {
        let a = view.record;
        let map = view.frame_map();
        if a.faults.is_empty() {
            let _ = writeln!(o, "- **{}**: no fault injected.", a.arm);
            continue;
        }
        for f in &a.faults {
            let when = match (f.started_s, f.ended_s) {
                (Some(b), Some(e)) => format!("t={b:.1}–{e:.1} s"),
                (Some(b), None) => format!("from t={b:.1} s"),
                _ => "never started".into(),
            };
            let _ = writeln!(
                o,
                "- **{}** `{}`: {} ({when}). Proof: {}",
                a.arm,
                f.name,
                if f.fired { "fired" } else { "did NOT fire" },
                cell_text(&rewrite_frames(&f.evidence, &map))
            );
        }
    }
    o.push('\n');
}

fn frames(o: &mut String, view: &ArmView) {
    let a = view.record;
    for c in &view.cuts {
        let _ = writeln!(o, "## Frames of `{}`: `{}`\n", a.arm, c.file);
        let done = match &c.result {
            Err(why) => {
                let _ = writeln!(
                    o,
                    "The arm's `{}` could not be cut: {}\n",
                    c.original,
                    cell_text(why)
                );
                continue;
            }
            Ok(d) => d,
        };
        let _ = writeln!(
            o,
            "Cut from the arm's `{}` ({} frames): each cited frame with up to {CONTEXT_FRAMES} frames \
             either side, {} frames in all. `#` is the frame's number in `{}` (what Wireshark and \
             tshark show); `orig.` its number in the arm's own trace, which every frame's comment \
             also gives. `t` is seconds since the workload started, as in the step times above.\n",
            c.original,
            done.original_frames,
            done.frames.len(),
            c.file
        );
        if !done.missing.is_empty() {
            let list: Vec<String> = done.missing.iter().map(u64::to_string).collect();
            let _ = writeln!(o, "Cited but not in the trace: frames {}.\n", list.join(", "));
        }
        let _ = writeln!(
            o,
            "| # | orig. | t | recorded on | cited by |\n|---|---|---|---|---|"
        );
        for f in done.frames.iter().filter(|f| f.wanted) {
            let by: Vec<String> = c
                .citers
                .get(&f.original)
                .map(|s| s.iter().map(|n| format!("`{n}`")).collect())
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} ({}) | {} |",
                f.cut,
                f.original,
                time(f.timestamp_ns, view.workload_start_unix),
                cell(&f.port),
                match f.direction {
                    crate::wire::pcapng::Direction::Inbound => "from it",
                    crate::wire::pcapng::Direction::Outbound => "to it",
                },
                by.join(", ")
            );
        }
        let wanted: Vec<String> = done
            .frames
            .iter()
            .filter(|f| f.wanted)
            .map(|f| f.cut.to_string())
            .collect();
        let _ = writeln!(
            o,
            "\n```\ntshark -r {} -Y 'frame.number in {{{}}}'\n```\n",
            c.file,
            // Commas: Wireshark 4.0 reads no other set separator.
            wanted.join(",")
        );
    }
}

fn time(ns: u64, start: Option<f64>) -> String {
    let unix = ns as f64 / 1e9;
    match start {
        Some(s) => format!("{:.3} s", unix - s),
        None => format!("unix {unix:.3}"),
    }
}

fn lines(o: &mut String, view: &ArmView) {
    let a = view.record;
    for l in &view.lines {
        let by: Vec<String> = l.citers.iter().map(|n| format!("`{n}`")).collect();
        let _ = writeln!(
            o,
            "## Log lines of `{}`: `{}` line {}\n\nCited by {}. The arm's `{}`, with up to \
             {CONTEXT_LINES} lines either side; `>` marks the cited line.\n",
            a.arm,
            l.file,
            l.line,
            by.join(", "),
            l.file
        );
        match &l.lines {
            Err(why) => {
                let _ = writeln!(o, "Not readable: {}\n", cell_text(why));
            }
            Ok(lines) => {
                let width = lines.last().map_or(1, |(n, _)| n.to_string().len());
                let _ = writeln!(o, "```");
                for (n, text) in lines {
                    let mark = if *n == l.line { '>' } else { ' ' };
                    let _ = writeln!(o, "{mark} {n:>width$}  {}", text.replace("```", "'''"));
                }
                let _ = writeln!(o, "```\n");
            }
        }
    }
}

fn reproduce(o: &mut String, s: &Summary) {
    let _ = writeln!(o, "## Reproduce\n");
    let _ = writeln!(
        o,
        "In a checkout of faultline (`make deps` installs the host's packages; QEMU uses KVM \
         where it works, TCG otherwise): build the images from their recipes (a cache hit is \
         instant), then run the arm again, and the arm it is compared with.\n"
    );
    let _ = writeln!(
        o,
        "```\nmake deps      # host packages, once\nmake images    # = faultline images build"
    );
    for view in std::iter::once(&s.arm).chain(&s.compare) {
        let _ = writeln!(o, "{}", rerun_relative(&view.record.rerun));
    }
    let _ = writeln!(o, "```\n");
    let recipes: Vec<(&String, &String)> = s
        .run
        .versions
        .iter()
        .filter(|(k, _)| k.ends_with(".recipe"))
        .collect();
    if !recipes.is_empty() {
        let _ = writeln!(
            o,
            "The images this run used had these recipe hashes; `faultline images list` shows \
             the hashes of a checkout's recipes (the same hash is the same image):\n"
        );
        for (k, v) in recipes {
            let _ = writeln!(o, "- {}: `{}`", k.trim_end_matches(".recipe"), v);
        }
        o.push('\n');
    }
}

fn contents(o: &mut String, s: &Summary) {
    let _ = writeln!(o, "## This bundle\n");
    let _ = writeln!(o, "- `SUMMARY.md`: this text.");
    for view in std::iter::once(&s.arm).chain(&s.compare) {
        for c in view.cuts.iter().filter(|c| c.result.is_ok()) {
            let _ = writeln!(
                o,
                "- `{}`: frames cut from arm `{}`'s `{}`.",
                c.file, view.record.arm, c.original
            );
        }
    }
    let _ = writeln!(
        o,
        "- `run.json`: the run's record of these arms only (its frame numbers are the original \
         traces')."
    );
}

/// Text for one table cell: no line breaks, no column separators.
fn cell(s: &str) -> String {
    cell_text(s).replace('|', "\\|")
}

/// Guest text on one line.
fn cell_text(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests;
