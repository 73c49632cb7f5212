//! `report.html`: one self-contained page (no network) made from a run record.
//!
//! The page is opened from the run folder, often on a machine without network access and
//! sometimes long after the run, so it carries its own CSS, needs no script, and links only to
//! the arm folders next to it. Everything shown may hold guest-derived text (explanations,
//! evidence, op details), so every piece of text goes through [`esc`] and every link through
//! [`href`].

use std::collections::HashSet;

use super::escape::html as esc;
use super::merge::MergeRecord;
use super::sweep::SweepRecord;
use super::variants::VariantTable;
use super::{ArmRecord, Event, EventKind, RunRecord};
use crate::case::Verdict;
use crate::metrics::ArmMetrics;

pub fn render(run: &RunRecord, histories: &[Vec<Event>]) -> String {
    render_with_metrics(run, histories, &[])
}

/// The page, with each arm's series over time (`metrics[i]` for `run.arms[i]`, where read)
/// drawn under its timeline.
pub fn render_with_metrics(
    run: &RunRecord,
    histories: &[Vec<Event>],
    metrics: &[Option<ArmMetrics>],
) -> String {
    let anchors = anchors(&run.arms);
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str(&format!("<title>faultline run {}</title>\n", esc(&run.run_id)));
    out.push_str(&format!(
        "<style>{CSS}{}</style>\n</head>\n<body>\n",
        super::plots::CSS
    ));
    header(&mut out, run);
    summary(&mut out, run, &anchors);
    if let Some(table) = &run.variants {
        variants(&mut out, table, run, &anchors);
    }
    for sw in &run.sweeps {
        sweep_section(&mut out, sw, run, &anchors);
    }
    for (i, arm) in run.arms.iter().enumerate() {
        let history = histories.get(i).map(Vec::as_slice).unwrap_or_default();
        let m = metrics.get(i).and_then(Option::as_ref);
        arm_section(&mut out, arm, &anchors[i], history, m);
    }
    out.push_str("</body>\n</html>\n");
    out
}

const CSS: &str = "
body{font:14px/1.45 system-ui,sans-serif;color:#222;max-width:1150px;margin:0 auto;padding:1rem 1.5rem}
h1{font-size:1.4rem;margin:.2rem 0}h2{font-size:1.15rem;margin:.3rem 0}h3{font-size:1rem;margin:1rem 0 .3rem}
table{border-collapse:collapse;margin:.3rem 0 .8rem}
th,td{border:1px solid #ddd;padding:.2rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}
td.num{text-align:right;font-variant-numeric:tabular-nums}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.9em}
pre{background:#f6f6f6;border:1px solid #e4e4e4;padding:.4rem .6rem;white-space:pre-wrap;word-break:break-all}
a{color:#1c5fb8}
.badge{display:inline-block;min-width:3.6em;text-align:center;padding:0 .4em;border-radius:.6em;color:#fff;font-weight:600;font-size:.85em}
.v-pass{background:#2f9e44}.v-fail{background:#c92a2a}.v-error{background:#7b2cbf}.v-unknown{background:#b7791f}
.yes{color:#2f9e44;font-weight:700}.no{color:#c92a2a;font-weight:700}
.tag{font-size:.8em;color:#555;border:1px solid #bbb;border-radius:.3em;padding:0 .3em;margin-left:.4em;white-space:nowrap}
.muted{color:#666}
section.arm{border-top:2px solid #ddd;margin-top:1.6rem;padding-top:.4rem}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.05rem 1rem;margin:.4rem 0}
dl.facts dt{font-weight:600}dl.facts dd{margin:0}
.explanation{font-size:1.02em;margin:.5rem 0}
.finding{border-left:4px solid #e8590c;background:#fff4e6;padding:.4rem .8rem;margin:.6rem 0}
.finding strong{display:block;color:#d9480f}
.notice{border-left:4px solid #c92a2a;background:#fff5f5;padding:.4rem .8rem;margin:.6rem 0}
.notice strong{display:block;color:#c92a2a}
svg.tl{width:100%;height:auto;font:10px system-ui,sans-serif;border:1px solid #e4e4e4}
.tl .lane{fill:#fafafa;stroke:#eee}.tl .name{fill:#333}
.tl .grid{stroke:#eee}.tl .axis{stroke:#888}.tl .tick{fill:#555}
.tl .ok{fill:#2f9e44}.tl .bad{fill:#c92a2a}.tl .plain{fill:#5c7080}.tl .open{fill:#b0b0b0}
.tl .bar{fill:#fff}
.tl .ready{stroke:#fff;stroke-width:2}
.tl .fault{fill:#e03131;fill-opacity:.12;stroke:#e03131;stroke-opacity:.5}
.tl .fault.unfired{fill-opacity:.05;stroke-dasharray:4 3}
.tl .flabel{fill:#c92a2a}
.tl .op{stroke:#333}.tl .op.badop{stroke:#c92a2a;stroke-width:2}
.tl .mark{stroke:#1c5fb8;stroke-dasharray:3 3}
.legend{font-size:.85em;color:#555;margin:.2rem 0 .6rem}
table.variants td{min-width:9em}table.variants .m{display:block;font-size:.85em;color:#444}
section.sweep{border-top:2px solid #ddd;margin-top:1.6rem;padding-top:.4rem}
.legend i{display:inline-block;width:1em;height:.7em;margin:0 .25em 0 .8em;vertical-align:middle}
";

fn header(out: &mut String, run: &RunRecord) {
    let met = run.arms.iter().filter(|a| a.met).count();
    let (date, time) = super::utc(run.started_unix.max(0.0) as u64);
    out.push_str(&format!(
        "<header>\n<h1>faultline run <code>{}</code></h1>\n",
        esc(&run.run_id)
    ));
    out.push_str(&format!(
        "<p>Started {}-{}-{} {}:{}:{} UTC · accel <code>{}</code> · {} arm{}: \
         <span class=\"yes\">{met} met</span> their expectation, <span class=\"{}\">{} did not</span></p>\n",
        &date[..4],
        &date[4..6],
        &date[6..],
        &time[..2],
        &time[2..4],
        &time[4..],
        esc(&run.accel),
        run.arms.len(),
        if run.arms.len() == 1 { "" } else { "s" },
        if met == run.arms.len() { "muted" } else { "no" },
        run.arms.len() - met,
    ));
    if let Some(m) = &run.merged {
        merged(out, m);
    }
    if run.versions.is_empty() {
        out.push_str("<p class=\"muted\">No versions recorded.</p>\n");
    } else {
        out.push_str("<table class=\"versions\">\n<tr><th>Component</th><th>Version</th></tr>\n");
        for (component, version) in &run.versions {
            out.push_str(&format!(
                "<tr><td>{}</td><td><code>{}</code></td></tr>\n",
                esc(component),
                esc(version)
            ));
        }
        out.push_str("</table>\n");
    }
    out.push_str(&format!(
        "<p>Run these arms again:</p>\n<pre><code>{}</code></pre>\n</header>\n",
        esc(&run.rerun)
    ));
}

/// Where a merged run's arms came from, and (in a notice that cannot be missed) its
/// duplicates and version mismatches.
fn merged(out: &mut String, m: &MergeRecord) {
    let notices = m.notices();
    if !notices.is_empty() {
        out.push_str(&format!(
            "<div class=\"notice\"><strong>The merged runs do not agree: {} duplicate arm{}, {} \
             version mismatch{}</strong>\n<ul>\n",
            m.duplicates.len(),
            if m.duplicates.len() == 1 { "" } else { "s" },
            m.mismatches.len(),
            if m.mismatches.len() == 1 { "" } else { "es" },
        ));
        for n in &notices {
            out.push_str(&format!("<li>{}</li>\n", esc(n)));
        }
        out.push_str("</ul></div>\n");
    }
    out.push_str(&format!(
        "<p>Merged from {} run{}{}:</p>\n<table class=\"sources\">\n\
         <tr><th>Folder</th><th>Run</th><th>Arms kept</th><th>Command</th></tr>\n",
        m.sources.len(),
        if m.sources.len() == 1 { "" } else { "s" },
        if notices.is_empty() {
            " (no duplicate arms, every version the same)"
        } else {
            ""
        },
    ));
    for s in &m.sources {
        out.push_str(&format!(
            "<tr><td>{}</td><td><code>{}</code></td><td class=\"num\">{} of {}</td><td><code>{}</code></td></tr>\n",
            esc(&s.name),
            esc(&s.run_id),
            s.kept,
            s.arms,
            esc(&s.rerun)
        ));
    }
    out.push_str("</table>\n");
}

fn summary(out: &mut String, run: &RunRecord, anchors: &[String]) {
    out.push_str("<section id=\"summary\">\n<h2>Summary</h2>\n");
    if run.arms.is_empty() {
        out.push_str("<p class=\"muted\">No arm finished.</p>\n</section>\n");
        return;
    }
    out.push_str(
        "<table>\n<tr><th>Case</th><th>Arm</th><th>Expected</th><th>Verdict</th><th>Met</th>\
         <th>Finding</th></tr>\n",
    );
    for (arm, anchor) in run.arms.iter().zip(anchors) {
        out.push_str(&format!(
            "<tr><td>{}</td><td><a href=\"#{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            esc(&arm.case),
            esc(anchor),
            esc(&arm.arm),
            expected_cell(arm),
            badge(arm.verdict),
            met_mark(arm.met),
            if arm.finding.is_some() { "yes" } else { "" },
        ));
    }
    out.push_str("</table>\n</section>\n");
}

/// Image × arm: one row per arm, one column per image, each cell the verdict (linked to the
/// arm's section), whether it met its expectation, and the arm's measures.
fn variants(out: &mut String, t: &VariantTable, run: &RunRecord, anchors: &[String]) {
    out.push_str(
        "<section id=\"variants\">\n<h2>Variants</h2>\n<table class=\"variants\">\n<tr><th>Arm</th>",
    );
    for image in &t.images {
        out.push_str(&format!("<th>{}</th>", esc(image)));
    }
    out.push_str("</tr>\n");
    for row in &t.arms {
        out.push_str(&format!("<tr><th>{}</th>", esc(row)));
        for image in &t.images {
            let Some(c) = t.cell(row, image) else {
                out.push_str("<td class=\"muted\">not run</td>");
                continue;
            };
            let verdict = match run.arms.iter().position(|a| a.dir == c.dir) {
                Some(i) => format!("<a href=\"#{}\">{}</a>", esc(&anchors[i]), badge(c.verdict)),
                None => badge(c.verdict),
            };
            out.push_str(&format!("<td>{verdict} {}", met_mark(c.met)));
            for m in &c.measures {
                let value = match (&m.value, &m.unit) {
                    (Some(v), Some(u)) => format!("{} {}", esc(v), esc(u)),
                    (Some(v), None) => esc(v),
                    (None, _) => "—".into(),
                };
                out.push_str(&format!("<span class=\"m\">{}: {value}</span>", esc(&m.name)));
            }
            out.push_str("</td>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n</section>\n");
}

fn arm_section(
    out: &mut String,
    arm: &ArmRecord,
    anchor: &str,
    history: &[Event],
    metrics: Option<&ArmMetrics>,
) {
    out.push_str(&format!(
        "<section class=\"arm\" id=\"{}\">\n<h2>{} / {} {}</h2>\n<p class=\"muted\">{}</p>\n",
        esc(anchor),
        esc(&arm.case),
        esc(&arm.arm),
        badge(arm.verdict),
        esc(&arm.summary),
    ));
    let expected_checks = if arm.failing_checks.is_empty() {
        String::new()
    } else {
        format!(" (failing: {})", esc(&arm.failing_checks.join(", ")))
    };
    let expected = match &arm.sweep {
        Some(p) => format!(
            "not judged: size ×{} of the sweep of arm <code>{}</code> ({} users){}",
            p.scale,
            esc(&p.arm),
            p.users,
            match (&p.measured, &p.problem) {
                (Some(m), _) if m.drained =>
                    format!(", drained in {}", secs(m.drain_time_s.unwrap_or_default())),
                (Some(_), _) => format!(
                    ", did not drain ({} of {} users logged in)",
                    p.users_ok.unwrap_or_default(),
                    p.users
                ),
                (None, Some(why)) => format!(", not measured: {}", esc(why)),
                (None, None) => ", not measured".into(),
            }
        ),
        None => format!("{}{expected_checks}", badge(arm.expected)),
    };
    out.push_str(&format!(
        "<dl class=\"facts\">\n<dt>Verdict</dt><dd>{}</dd>\n<dt>Expected</dt><dd>{expected}</dd>\n\
         <dt>Met</dt><dd>{}</dd>\n<dt>Duration</dt><dd>{} (lab ready {}, workload {})</dd>\n</dl>\n",
        badge(arm.verdict),
        met_mark(arm.met),
        secs(arm.duration_s),
        secs(arm.lab_ready_s),
        secs(arm.workload_s),
    ));
    if let Some(story) = &arm.story {
        out.push_str(&format!(
            "<p class=\"story\"><strong>The scenario:</strong> {}</p>\n",
            esc(story)
        ));
    }
    out.push_str(&format!(
        "<p class=\"explanation\"><strong>Observed:</strong> {}</p>\n",
        esc(&arm.explanation)
    ));
    if let Some(finding) = &arm.finding {
        out.push_str(&format!(
            "<div class=\"finding\"><strong>Finding</strong>{}</div>\n",
            esc(finding)
        ));
    }
    checks_table(out, arm);
    measures_table(out, arm);
    faults_table(out, arm);
    out.push_str("<h3>Timeline</h3>\n");
    if history.is_empty() && arm.faults.iter().all(|f| f.started_s.is_none()) {
        out.push_str("<p class=\"muted\">No history recorded.</p>\n");
    } else {
        out.push_str(&timeline(arm, history));
        out.push_str(LEGEND);
    }
    history_table(out, history);
    if let Some(m) = metrics {
        out.push_str("<h3>Metrics over time</h3>\n");
        out.push_str(&super::plots::arm_plots(arm, m));
    }
    warnings_table(out, arm);
    out.push_str("<h3>Evidence</h3>\n<ul>\n");
    for (file, what) in [
        ("history.jsonl", "history (one event per line)"),
        ("wire/", "wire captures (pcapng)"),
        ("evidence/", "before/after evidence"),
        ("guests/", "guest logs (console, journal, dmesg, dovecot)"),
    ] {
        out.push_str(&format!(
            "<li><a href=\"{}\">{}/{file}</a> — {what}</li>\n",
            esc(&href(&arm.dir, file)),
            esc(&arm.dir),
        ));
    }
    out.push_str(&format!(
        "</ul>\n<p>Run this arm again:</p>\n<pre><code>{}</code></pre>\n\
         <p><a href=\"#summary\">↑ summary</a></p>\n</section>\n",
        esc(&arm.rerun)
    ));
}

const LEGEND: &str = "<p class=\"legend\">Steps:<i style=\"background:#2f9e44\"></i>ok\
<i style=\"background:#c92a2a\"></i>not ok<i style=\"background:#5c7080\"></i>no outcome\
<i style=\"background:#b0b0b0\"></i>never ended · white line: ready · ticks: operations (red: failed) · \
red bands: faults (dashed: did not fire) · blue dashes: workload start and end</p>\n";

fn checks_table(out: &mut String, arm: &ArmRecord) {
    out.push_str("<h3>Checks</h3>\n");
    let missing: Vec<&String> = arm
        .failing_checks
        .iter()
        .filter(|n| !arm.checks.iter().any(|c| &c.name == *n))
        .collect();
    if arm.checks.is_empty() && missing.is_empty() {
        out.push_str("<p class=\"muted\">No check was evaluated.</p>\n");
        return;
    }
    out.push_str("<table>\n<tr><th>Check</th><th>Verdict</th><th>Explanation</th></tr>\n");
    let expected_tag = "<span class=\"tag\">expected to fail</span>";
    for check in &arm.checks {
        let tag = if arm.failing_checks.contains(&check.name) {
            expected_tag
        } else if !check.counted {
            "<span class=\"tag\">report only: not counted in this arm</span>"
        } else {
            ""
        };
        out.push_str(&format!(
            "<tr><td>{}{tag}</td><td>{}</td><td>{}</td></tr>\n",
            esc(&check.name),
            badge(check.verdict),
            esc(check.explanation.as_deref().unwrap_or("")),
        ));
    }
    for name in &arm.skipped_checks {
        out.push_str(&format!(
            "<tr><td>{}</td><td>—</td><td class=\"muted\">not applicable in this arm (skipped)</td></tr>\n",
            esc(name)
        ));
    }
    // A named failing check that never ran is why an expected failure was not met: show it.
    for name in missing {
        out.push_str(&format!(
            "<tr><td>{}{expected_tag}</td><td>—</td><td class=\"muted\">not evaluated</td></tr>\n",
            esc(name)
        ));
    }
    out.push_str("</table>\n");
}

/// The case's figures for this arm; nothing when the case asks for none.
fn measures_table(out: &mut String, arm: &ArmRecord) {
    if arm.measures.is_empty() {
        return;
    }
    out.push_str(
        "<h3>Measures</h3>\n<table>\n<tr><th>Measure</th><th>Value</th><th>What</th><th>From</th></tr>\n",
    );
    for m in &arm.measures {
        let value = match (&m.value, &m.unit) {
            (Some(v), Some(u)) => format!("{} {}", esc(v), esc(u)),
            (Some(v), None) => esc(v),
            (None, _) => "—".into(),
        };
        let problem = m
            .problem
            .as_deref()
            .map(|p| format!(" <span class=\"no\">({})</span>", esc(p)))
            .unwrap_or_default();
        out.push_str(&format!(
            "<tr><td>{}</td><td class=\"num\">{value}</td><td>{}{problem}</td><td class=\"muted\">{}</td></tr>\n",
            esc(&m.name),
            esc(&m.what),
            esc(&m.source),
        ));
    }
    out.push_str("</table>\n");
}

fn faults_table(out: &mut String, arm: &ArmRecord) {
    out.push_str("<h3>Faults</h3>\n");
    if arm.faults.is_empty() {
        out.push_str("<p class=\"muted\">No fault turned on.</p>\n");
        return;
    }
    out.push_str(
        "<table>\n<tr><th>Fault</th><th>Fired</th><th>Start</th><th>End</th><th>Evidence</th></tr>\n",
    );
    for fault in &arm.faults {
        let when = |t: Option<f64>| t.map(secs).unwrap_or_else(|| "—".into());
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>\n",
            esc(&fault.name),
            if fault.fired {
                "<span class=\"yes\">yes</span>"
            } else {
                "<span class=\"no\">no</span>"
            },
            when(fault.started_s),
            when(fault.ended_s),
            esc(&fault.evidence),
        ));
    }
    out.push_str("</table>\n");
}

/// The raw history, folded away: the timeline shows its shape, this its every word.
fn history_table(out: &mut String, history: &[Event]) {
    if history.is_empty() {
        return;
    }
    out.push_str(&format!(
        "<details>\n<summary>History ({} events)</summary>\n<table>\n\
         <tr><th>t (s)</th><th>Event</th><th>Guest</th><th>Name</th><th>Ok</th><th>Detail</th></tr>\n",
        history.len()
    ));
    for e in history {
        out.push_str(&format!(
            "<tr><td class=\"num\">{:.3}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            e.t,
            kind_name(e.kind),
            esc(e.guest.as_deref().unwrap_or("")),
            esc(&e.name),
            match e.ok {
                Some(true) => "<span class=\"yes\">✓</span>",
                Some(false) => "<span class=\"no\">✗</span>",
                None => "",
            },
            esc(e.detail.as_deref().unwrap_or("")),
        ));
    }
    out.push_str("</table>\n</details>\n");
}

/// As in `history.jsonl`.
fn kind_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::WorkloadStart => "workload-start",
        EventKind::WorkloadEnd => "workload-end",
        EventKind::StepStart => "step-start",
        EventKind::StepReady => "step-ready",
        EventKind::StepEnd => "step-end",
        EventKind::Op => "op",
        EventKind::FaultStart => "fault-start",
        EventKind::FaultEnd => "fault-end",
        EventKind::Evidence => "evidence",
    }
}

/// A step's bar on the timeline.
#[derive(Debug, Clone, PartialEq)]
struct Bar {
    lane: usize,
    name: String,
    start: f64,
    end: Option<f64>,
    ok: Option<bool>,
    ready: Option<f64>,
    /// Row within the lane: steps of one guest may overlap (a background step under the next).
    row: usize,
}

const WIDTH: f64 = 960.0;
const GUTTER: f64 = 120.0;
const RIGHT: f64 = 16.0;
const ROW: f64 = 16.0;
const BAR: f64 = 12.0;
/// Room under a lane's bars for its op ticks.
const OPS: f64 = 9.0;
const FAULT_ROW: f64 = 14.0;
const AXIS: f64 = 22.0;

/// The arm's timeline as inline SVG: one lane per guest, steps as bars, faults as bands across
/// every lane, ops as ticks; x is seconds since the workload started.
fn timeline(arm: &ArmRecord, history: &[Event]) -> String {
    let events: Vec<&Event> = history.iter().filter(|e| e.t.is_finite()).collect();
    let faults: Vec<(&str, bool, f64, Option<f64>)> = arm
        .faults
        .iter()
        .filter_map(|f| {
            let start = f.started_s.filter(|s| s.is_finite())?;
            Some((
                f.name.as_str(),
                f.fired,
                start,
                f.ended_s.filter(|s| s.is_finite()),
            ))
        })
        .collect();

    let mut lo: f64 = 0.0;
    let mut hi: f64 = if arm.workload_s.is_finite() {
        arm.workload_s.max(0.0)
    } else {
        0.0
    };
    for t in events
        .iter()
        .map(|e| e.t)
        .chain(faults.iter().flat_map(|f| [Some(f.2), f.3]).flatten())
    {
        lo = lo.min(t);
        hi = hi.max(t);
    }
    if hi - lo < 1e-6 {
        hi = lo + 1.0;
    }
    let plot = WIDTH - GUTTER - RIGHT;
    let x = |t: f64| GUTTER + (t - lo) / (hi - lo) * plot;

    let (lanes, bars) = steps(&events);
    let rows: Vec<usize> = (0..lanes.len())
        .map(|l| {
            bars.iter()
                .filter(|b| b.lane == l)
                .map(|b| b.row + 1)
                .max()
                .unwrap_or(1)
        })
        .collect();
    let top = 4.0 + FAULT_ROW * faults.len() as f64;
    let mut lane_top = Vec::with_capacity(lanes.len());
    let mut y = top;
    for r in &rows {
        lane_top.push(y);
        y += *r as f64 * ROW + OPS;
    }
    // An arm with faults but no steps still gets a strip for its bands.
    let bottom = if lanes.is_empty() { top + ROW } else { y };
    let height = bottom + AXIS;

    let mut s = format!(
        "<svg class=\"tl\" viewBox=\"0 0 {WIDTH} {}\" role=\"img\" aria-label=\"timeline of {}\">\n",
        n(height),
        esc(&arm.arm)
    );
    for (l, name) in lanes.iter().enumerate() {
        let h = rows[l] as f64 * ROW + OPS;
        s.push_str(&format!(
            "<rect class=\"lane\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>\
             <text class=\"name\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n",
            n(GUTTER),
            n(lane_top[l]),
            n(plot),
            n(h),
            n(GUTTER - 6.0),
            n(lane_top[l] + h / 2.0 + 3.5),
            esc(&fit(name, 19)),
        ));
    }
    let step = tick_step(hi - lo);
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    let first = (lo / step).ceil() as i64;
    // Bounded so that a corrupt time cannot make the loop run away.
    for k in (first..).take(40) {
        let t = k as f64 * step;
        if t > hi + step * 1e-9 {
            break;
        }
        let tx = n(x(t));
        s.push_str(&format!(
            "<line class=\"grid\" x1=\"{tx}\" y1=\"{}\" x2=\"{tx}\" y2=\"{}\"/>\
             <text class=\"tick\" x=\"{tx}\" y=\"{}\" text-anchor=\"middle\">{t:.decimals$}</text>\n",
            n(top),
            n(bottom + 4.0),
            n(bottom + 15.0),
        ));
    }
    s.push_str(&format!(
        "<line class=\"axis\" x1=\"{}\" y1=\"{b}\" x2=\"{}\" y2=\"{b}\"/>\
         <text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">s</text>\n",
        n(GUTTER),
        n(GUTTER + plot),
        n(GUTTER - 6.0),
        n(bottom + 15.0),
        b = n(bottom),
    ));
    // Bands go under the bars so that the bars' tooltips stay reachable.
    for (i, (name, fired, start, end)) in faults.iter().enumerate() {
        let x0 = x(*start);
        let w = (x(end.unwrap_or(hi)) - x0).max(1.0);
        let class = if *fired { "fault" } else { "fault unfired" };
        let label = if *fired {
            esc(name)
        } else {
            format!("{} (did not fire)", esc(name))
        };
        s.push_str(&format!(
            "<rect class=\"{class}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"><title>{label}</title></rect>\
             <text class=\"flabel\" x=\"{}\" y=\"{}\">{label}</text>\n",
            n(x0),
            n(4.0 + FAULT_ROW * i as f64),
            n(w),
            n(bottom - 4.0 - FAULT_ROW * i as f64),
            n(x0 + 2.0),
            n(4.0 + FAULT_ROW * i as f64 + 10.0),
        ));
    }
    let workload_end = events
        .iter()
        .rev()
        .find(|e| e.kind == EventKind::WorkloadEnd)
        .map(|e| e.t)
        .or((arm.workload_s > 0.0).then_some(arm.workload_s));
    for t in std::iter::once(0.0).chain(workload_end) {
        let tx = n(x(t));
        s.push_str(&format!(
            "<line class=\"mark\" x1=\"{tx}\" y1=\"{}\" x2=\"{tx}\" y2=\"{}\"/>\n",
            n(top - 2.0),
            n(bottom)
        ));
    }

    for bar in &bars {
        let x0 = x(bar.start);
        let w = (x(bar.end.unwrap_or(hi)) - x0).max(1.0);
        let y0 = lane_top[bar.lane] + bar.row as f64 * ROW + (ROW - BAR) / 2.0;
        let class = match (bar.end, bar.ok) {
            (None, _) => "open",
            (Some(_), Some(true)) => "ok",
            (Some(_), Some(false)) => "bad",
            (Some(_), None) => "plain",
        };
        let outcome = match (bar.end, bar.ok) {
            (None, _) => "never ended".to_string(),
            (Some(end), ok) => format!(
                "{}–{}{}",
                secs(bar.start),
                secs(end),
                match ok {
                    Some(true) => ", ok",
                    Some(false) => ", not ok",
                    None => "",
                }
            ),
        };
        s.push_str(&format!(
            "<rect class=\"{class}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{BAR}\"><title>{} on {}: {}</title></rect>\n",
            n(x0),
            n(y0),
            n(w),
            esc(&bar.name),
            esc(&lanes[bar.lane]),
            outcome,
        ));
        if let Some(ready) = bar.ready {
            let rx = n(x(ready));
            s.push_str(&format!(
                "<line class=\"ready\" x1=\"{rx}\" y1=\"{}\" x2=\"{rx}\" y2=\"{}\"/>\n",
                n(y0),
                n(y0 + BAR)
            ));
        }
        // Roughly 6 px a character at this size; a name that does not fit is in the tooltip.
        let label = fit(&bar.name, ((w - 4.0) / 6.0) as usize);
        if label.chars().count() >= 2 {
            s.push_str(&format!(
                "<text class=\"bar\" x=\"{}\" y=\"{}\">{}</text>\n",
                n(x0 + 2.0),
                n(y0 + BAR - 3.0),
                esc(&label)
            ));
        }
    }

    for e in events.iter().filter(|e| e.kind == EventKind::Op) {
        let lane = lane_of(&lanes, e.guest.as_deref());
        let base = lane_top[lane] + rows[lane] as f64 * ROW + OPS - 1.5;
        let tx = n(x(e.t));
        let class = if e.ok == Some(false) { "op badop" } else { "op" };
        let detail = e
            .detail
            .as_deref()
            .map(|d| format!(": {}", esc(&fit(d, 200))))
            .unwrap_or_default();
        s.push_str(&format!(
            "<line class=\"{class}\" x1=\"{tx}\" y1=\"{}\" x2=\"{tx}\" y2=\"{}\"><title>{} {}{detail}</title></line>\n",
            n(base - 6.0),
            n(base),
            secs(e.t),
            esc(&e.name),
        ));
    }

    s.push_str("</svg>\n");
    s
}

/// The lanes (guests, in first-appearance order; events without a guest share one lane) and
/// the step bars, packed into rows so that overlapping steps of a guest do not hide each other.
fn steps(events: &[&Event]) -> (Vec<String>, Vec<Bar>) {
    let mut lanes: Vec<String> = Vec::new();
    let mut bars: Vec<Bar> = Vec::new();
    for e in events {
        if !matches!(
            e.kind,
            EventKind::StepStart | EventKind::StepReady | EventKind::StepEnd | EventKind::Op
        ) {
            continue;
        }
        let name = e.guest.clone().unwrap_or_else(|| HARNESS.to_string());
        let lane = match lanes.iter().position(|l| *l == name) {
            Some(l) => l,
            None => {
                lanes.push(name);
                lanes.len() - 1
            }
        };
        // Steps repeat by name (a loop), so an end or ready belongs to the oldest open one.
        let open = bars
            .iter()
            .position(|b| b.lane == lane && b.name == e.name && b.end.is_none());
        match (e.kind, open) {
            (EventKind::StepStart, _) => bars.push(Bar {
                lane,
                name: e.name.clone(),
                start: e.t,
                end: None,
                ok: None,
                ready: None,
                row: 0,
            }),
            (EventKind::StepReady, Some(i)) => bars[i].ready = Some(e.t),
            (EventKind::StepEnd, Some(i)) => {
                bars[i].end = Some(e.t.max(bars[i].start));
                bars[i].ok = e.ok;
            }
            // An end whose start is missing from the history: shown as an instant, not dropped.
            (EventKind::StepEnd, None) => bars.push(Bar {
                lane,
                name: e.name.clone(),
                start: e.t,
                end: Some(e.t),
                ok: e.ok,
                ready: None,
                row: 0,
            }),
            _ => {}
        }
    }
    for lane in 0..lanes.len() {
        let mut order: Vec<usize> = (0..bars.len()).filter(|&i| bars[i].lane == lane).collect();
        order.sort_by(|&a, &b| bars[a].start.total_cmp(&bars[b].start));
        // Where each row is free from; a bar with no end holds its row to the end.
        let mut free: Vec<f64> = Vec::new();
        for i in order {
            let end = bars[i].end.unwrap_or(f64::INFINITY);
            let row = match free.iter().position(|&f| f <= bars[i].start) {
                Some(r) => r,
                None => {
                    free.push(0.0);
                    free.len() - 1
                }
            };
            free[row] = end;
            bars[i].row = row;
        }
    }
    (lanes, bars)
}

/// The lane of events that name no guest.
const HARNESS: &str = "(harness)";

fn lane_of(lanes: &[String], guest: Option<&str>) -> usize {
    let name = guest.unwrap_or(HARNESS);
    lanes.iter().position(|l| l == name).unwrap_or(0)
}

/// A 1-2-5 step giving at most about ten ticks.
fn tick_step(span: f64) -> f64 {
    let raw = span / 10.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude)
}

/// Each arm's section id, `case--arm`, made safe for an id and a fragment and unique.
fn anchors(arms: &[ArmRecord]) -> Vec<String> {
    let mut seen = HashSet::new();
    arms.iter()
        .map(|a| {
            let base = anchor(&format!("{}--{}", a.case, a.arm));
            let mut id = base.clone();
            let mut k = 2;
            while !seen.insert(id.clone()) {
                id = format!("{base}-{k}");
                k += 1;
            }
            id
        })
        .collect()
}

/// A relative link to `file` inside the arm folder. Percent-encoding every byte but the
/// unreserved ones and `/` means no scheme (`javascript:`) can appear, and a leading `/` is
/// made `./` so that `//host` cannot turn into a network address.
fn href(dir: &str, file: &str) -> String {
    let path = format!("{}/{file}", dir.trim_end_matches('/'));
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.starts_with('/') {
        out.insert(0, '.');
    }
    out
}

/// A summary row's expectation: a sweep size is measured, not judged.
fn expected_cell(arm: &ArmRecord) -> String {
    match &arm.sweep {
        Some(_) => "<span class=\"tag\">sweep size: measured</span>".into(),
        None => badge(arm.expected),
    }
}

/// An id for an `href="#…"`: letters, digits, '-', '_' and '.' kept, anything else '_'.
fn anchor(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A case's sweep: the model's inputs and where each came from, each size measured beside
/// predicted, the thresholds, and drain time against users drawn.
fn sweep_section(out: &mut String, sw: &SweepRecord, run: &RunRecord, anchors: &[String]) {
    let id = anchor(&format!("sweep--{}--{}", sw.case, sw.arm));
    let names = |l: &[String]| {
        l.iter()
            .map(|n| format!("<code>{}</code>", esc(n)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let scales: Vec<String> = sw.scale.iter().map(|s| format!("×{s}")).collect();
    out.push_str(&format!(
        "<section class=\"sweep\" id=\"{}\">\n<h2>Sweep: {}::{}</h2>\n\
         <p class=\"muted\">Arm <code>{}</code> with populations {} scaled {} (damaged mailboxes in \
         <code>{}</code>); each size is a measurement, set against the cascade model \
         (docs/cascade-model.md).</p>\n",
        esc(&id),
        esc(&sw.case),
        esc(&sw.arm),
        esc(&sw.arm),
        names(&sw.populations),
        esc(&scales.join(", ")),
        esc(&sw.damaged),
    ));
    out.push_str("<h3>Model inputs</h3>\n<table>\n<tr><th>Input</th><th>Value</th><th>From</th></tr>\n");
    for i in &sw.inputs {
        out.push_str(&format!(
            "<tr><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>\n",
            esc(&i.symbol),
            esc(&i.value),
            esc(&i.source)
        ));
    }
    out.push_str("</table>\n");

    out.push_str(
        "<h3>Sizes</h3>\n<table>\n<tr><th>Scale</th><th>Arm</th><th>Users</th><th>Verdict</th>\
         <th>Measured</th><th>Drain time</th><th>Model</th><th>Model drain time</th><th>Agree</th></tr>\n",
    );
    let yes_no = |b: bool, yes: &str, no: &str| {
        if b {
            format!("<span class=\"yes\">{yes}</span>")
        } else {
            format!("<span class=\"no\">{no}</span>")
        }
    };
    let time = |t: Option<f64>| t.map_or_else(|| "—".to_string(), secs);
    for size in &sw.measured {
        let arm = match run.arms.iter().position(|a| a.dir == size.dir) {
            Some(i) => format!("<a href=\"#{}\">{}</a>", esc(&anchors[i]), esc(&size.arm)),
            None => esc(&size.arm),
        };
        let measured = match (&size.measured, &size.problem) {
            (Some(m), _) if m.drained => yes_no(true, "drained", ""),
            (Some(m), _) => format!(
                "{} <span class=\"muted\">({} of {} logged in)</span>",
                yes_no(false, "", "did not drain"),
                size.users_ok.unwrap_or_default(),
                m.users
            ),
            (None, why) => format!(
                "<span class=\"muted\">not measured: {}</span>",
                esc(why.as_deref().unwrap_or("no measurement"))
            ),
        };
        let p = sw.predictions.iter().find(|p| p.users == size.users);
        let row = sw
            .comparison
            .as_ref()
            .and_then(|c| c.rows.iter().find(|r| r.users == size.users));
        out.push_str(&format!(
            "<tr><td class=\"num\">×{}</td><td>{arm}</td><td class=\"num\">{}</td><td>{}</td><td>{measured}</td>\
             <td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>\n",
            size.scale,
            size.users,
            badge(size.verdict),
            time(size.measured.and_then(|m| m.drain_time_s)),
            p.map_or_else(
                || "—".to_string(),
                |p| yes_no(p.drains, "drains", "does not drain")
            ),
            time(p.and_then(|p| p.drain_time_s)),
            row.map_or_else(
                || "—".to_string(),
                |r| yes_no(r.agree, "✓ yes", "✗ no")
            ),
        ));
    }
    out.push_str("</table>\n");

    out.push_str("<h3>Thresholds</h3>\n<dl class=\"facts\">\n");
    let users =
        |u: Option<u32>| u.map_or_else(|| "none among the sizes".to_string(), |u| format!("{u} users"));
    if let Some(c) = &sw.comparison {
        out.push_str(&format!(
            "<dt>Measured</dt><dd>{}</dd>\n<dt>Model (simulated)</dt><dd>{}</dd>\n",
            users(c.measured_threshold),
            users(c.predicted_threshold)
        ));
    }
    if let Some(cf) = &sw.closed_form {
        let t = cf
            .threshold_users
            .map_or_else(|| "none".to_string(), |u| format!("{u:.0} users"));
        out.push_str(&format!(
            "<dt>Closed form</dt><dd>{t} <span class=\"muted\">({})</span></dd>\n",
            esc(&cf.rule)
        ));
    }
    if let Some(c) = &sw.comparison {
        out.push_str(&format!("<dt>Agreement</dt><dd>{}</dd>\n", esc(&c.note)));
    }
    out.push_str("</dl>\n");
    out.push_str(&super::plots::sweep_plot(sw));
    if !sw.problems.is_empty() {
        out.push_str("<ul class=\"muted\">\n");
        for p in &sw.problems {
            out.push_str(&format!("<li>{}</li>\n", esc(p)));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("<p><a href=\"#summary\">↑ summary</a></p>\n</section>\n");
}

fn badge(v: Verdict) -> String {
    format!("<span class=\"badge v-{v}\">{v}</span>")
}

fn met_mark(met: bool) -> &'static str {
    if met {
        "<span class=\"yes\">✓ met</span>"
    } else {
        "<span class=\"no\">✗ not met</span>"
    }
}

fn secs(s: f64) -> String {
    format!("{s:.1} s")
}

/// SVG numbers: a tenth of a pixel is plenty.
fn n(v: f64) -> String {
    format!("{v:.1}")
}

/// At most `max` characters, the last an ellipsis when cut.
fn fit(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The earliest-warning table: the monitoring points that left their normal range, earliest
/// first, with their lead over the first user-visible failure.
fn warnings_table(out: &mut String, arm: &ArmRecord) {
    let Some(t) = &arm.warnings else { return };
    out.push_str("<h3>Earliest warning</h3>\n");
    let first = match t.first_failure_s {
        Some(f) => format!("the first user-visible failure at t={f:.1} s"),
        None => "no user-visible failure".to_string(),
    };
    out.push_str(&format!(
        "<p class=\"muted\">Normal range: {}. Against {}: {} series left it, {} stayed in it, {} could not be judged.</p>\n",
        esc(&t.baseline),
        first,
        t.rows.len(),
        t.in_range,
        t.not_judged
    ));
    if t.rows.is_empty() {
        return;
    }
    out.push_str("<table>\n<tr><th>Series</th><th>Left its range at</th><th>Lead</th><th>Value</th><th>Normal (median ± σ)</th></tr>\n");
    let num = |v: Option<f64>| v.map_or_else(|| "–".to_string(), |v| format!("{v:.1}"));
    for w in &t.rows {
        let lead = match w.lead_s {
            Some(l) if l > 0.0 => format!("{l:.1} s before"),
            Some(l) => format!("{:.1} s after", -l),
            None => "–".into(),
        };
        let dir = match w.direction {
            Some(crate::metrics::warning::Direction::Up) => " ↑",
            Some(crate::metrics::warning::Direction::Down) => " ↓",
            None => "",
        };
        out.push_str(&format!(
            "<tr><td>{}</td><td>t={} s</td><td>{}</td><td>{}{} {}</td><td>{} ± {}</td></tr>\n",
            esc(&w.series),
            num(w.first_out_s),
            lead,
            num(w.value),
            dir,
            esc(&w.unit),
            num(w.baseline.median),
            num(w.baseline.sigma)
        ));
    }
    out.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::junit::tests::fixture;

    fn ev(
        t: f64,
        kind: EventKind,
        name: &str,
        guest: Option<&str>,
        ok: Option<bool>,
        detail: Option<&str>,
    ) -> Event {
        Event {
            t,
            unix: 1_795_893_350.0 + t,
            kind,
            name: name.into(),
            guest: guest.map(String::from),
            ok,
            detail: detail.map(String::from),
        }
    }

    fn histories() -> Vec<Vec<Event>> {
        use EventKind::*;
        let baseline = vec![
            ev(0.0, WorkloadStart, "workload", None, None, None),
            ev(0.1, StepStart, "lock", Some("imap1"), None, None),
            ev(
                0.4,
                Op,
                "fcntl F_SETLKW",
                Some("imap1"),
                Some(true),
                Some("granted"),
            ),
            ev(3.0, StepEnd, "lock", Some("imap1"), Some(true), None),
            ev(3.1, StepStart, "unlock", Some("imap2"), None, None),
            ev(4.0, StepEnd, "unlock", Some("imap2"), Some(true), None),
            ev(12.0, WorkloadEnd, "workload", None, None, None),
        ];
        let grant_lost = vec![
            ev(-1.5, Evidence, "locks-before", Some("filer"), Some(true), None),
            ev(0.0, WorkloadStart, "workload", None, None, None),
            ev(0.2, StepStart, "hold", Some("imap1"), None, None),
            ev(1.0, StepReady, "hold", Some("imap1"), None, None),
            ev(1.2, StepStart, "wait", Some("imap1"), None, None),
            ev(
                5.0,
                Op,
                "LOCK",
                Some("imap1"),
                Some(false),
                Some("<script>alert('x')</script> & \u{0}"),
            ),
            ev(9.0, StepEnd, "wait", Some("imap1"), Some(false), None),
            ev(2.0, FaultStart, "grant-lost", None, None, None),
            ev(8.0, FaultEnd, "grant-lost", None, None, None),
            ev(10.0, StepStart, "mount <b>", Some("imap2"), None, None),
            ev(14.0, StepEnd, "mount <b>", Some("imap2"), Some(true), None),
        ];
        vec![baseline, grant_lost]
    }

    #[test]
    fn variants_table_html() {
        let run = crate::results::variants::tests::variant_run();
        let mut out = String::new();
        variants(
            &mut out,
            run.variants.as_ref().unwrap(),
            &run,
            &anchors(&run.arms),
        );
        insta::assert_snapshot!(out);
        let page = render(&run, &[]);
        assert!(page.contains("<section id=\"variants\">"));
    }

    #[test]
    fn a_run_without_variant_arms_has_no_variants_section() {
        let page = render(&fixture(), &histories());
        assert!(!page.contains("id=\"variants\""));
    }

    #[test]
    fn the_page_is_self_contained_and_escaped() {
        let run = fixture();
        let page = render(&run, &histories());
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; \u{fffd}bye"),
            "explanation"
        );
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)"), "op detail");
        assert!(!page.to_lowercase().contains("<script"));
        assert!(!page.contains("http://") && !page.contains("https://"));
        assert!(!page.contains("url("));
        assert!(!page.contains('\u{0}') && !page.contains('\u{7}'));
        assert!(page.contains("<svg"));
        for id in [
            "nfs-lock--baseline",
            "nfs-lock--grant-lost",
            "imap-idle--partition",
        ] {
            assert!(page.contains(&format!("id=\"{id}\"")), "{id}");
            assert!(page.contains(&format!("href=\"#{id}\"")), "{id}");
        }
        assert!(
            page.contains("<strong>Finding</strong>lockd drops a GRANTED callback &amp; never retries it.")
        );
        assert!(page.contains("prompt<span class=\"tag\">expected to fail</span>"));
        assert!(page.contains("ghost<span class=\"tag\">expected to fail</span>"));
        assert!(page.contains("<a href=\"nfs-lock/grant-lost/wire/\">"));
        assert!(page.contains("<code>faultline run --case nfs-lock --arm grant-lost</code>"));
        assert!(page.contains("<span class=\"badge v-error\">error</span>"));
        // The third arm has no history: a note, not an empty chart.
        assert!(page.contains("No history recorded."));
        assert_eq!(page.matches("<svg").count(), 2);
        assert_eq!(page.matches("</svg>").count(), 2);
        assert_eq!(
            page.matches("<section").count(),
            page.matches("</section>").count()
        );
    }

    #[test]
    fn timeline_svg() {
        let run = fixture();
        insta::assert_snapshot!(timeline(&run.arms[1], &histories()[1]));
    }

    #[test]
    fn overlapping_steps_get_their_own_rows() {
        let h = &histories()[1];
        let events: Vec<&Event> = h.iter().collect();
        let (lanes, bars) = steps(&events);
        // Evidence is not a step: the filer, seen only in evidence, gets no lane.
        assert_eq!(lanes, ["imap1", "imap2"].map(String::from).to_vec());
        let bar = |name: &str, lane, start, end, ok, ready, row| Bar {
            lane,
            name: name.into(),
            start,
            end,
            ok,
            ready,
            row,
        };
        assert_eq!(
            bars,
            [
                bar("hold", 0, 0.2, None, None, Some(1.0), 0),
                bar("wait", 0, 1.2, Some(9.0), Some(false), None, 1),
                bar("mount <b>", 1, 10.0, Some(14.0), Some(true), None, 0),
            ]
        );
    }

    #[test]
    fn links_stay_local() {
        assert_eq!(href("a b/c", "wire/"), "a%20b/c/wire/");
        assert_eq!(href("javascript:alert(1)", "x"), "javascript%3Aalert%281%29/x");
        assert_eq!(href("//evil.example/x", "y"), ".//evil.example/x/y");
        let mut run = fixture();
        run.arms[1].arm = "baseline".into();
        run.arms[2].case = "nfs-lock <x>".into();
        assert_eq!(
            anchors(&run.arms),
            [
                "nfs-lock--baseline",
                "nfs-lock--baseline-2",
                "nfs-lock__x_--partition"
            ]
        );
    }

    #[test]
    fn tick_steps_are_round() {
        assert_eq!(tick_step(12.0), 2.0);
        assert_eq!(tick_step(1.0), 0.1);
        assert_eq!(tick_step(63.5), 10.0);
        assert_eq!(tick_step(300.0), 50.0);
    }

    #[test]
    fn sweep_section_html() {
        let run = crate::results::sweep::tests::sweep_run();
        let page = render(&run, &[]);
        let start = page.find("<section class=\"sweep\"").expect("a sweep section");
        let end = start + page[start..].find("</section>").unwrap() + "</section>".len();
        insta::assert_snapshot!(&page[start..end]);
        // Its sizes are measurements: shown so in the summary and their own sections.
        assert!(page.contains("sweep size: measured"));
        assert!(page.contains("not judged: size ×3.5 of the sweep of arm <code>storm</code> (39 users), did not drain (30 of 39 users logged in)"));
        assert!(!page.contains("<script"));
        // A run without sweeps has no such section.
        let plain = render(&fixture(), &[]);
        assert!(!plain.contains("class=\"sweep\""));
    }
}
