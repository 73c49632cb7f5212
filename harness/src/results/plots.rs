//! An arm's series over time drawn for `report.html`: one small inline SVG per metric group
//! (Dovecot processes against their limits, load, CPU, NFS RPCs, the wire's SYNs and RSTs,
//! NLM and NSM calls, locks, memory, disks, each client population, anything else by origin
//! and unit), the arm's faults as shaded bands, the first user-visible failure as a line.
//!
//! Architecture invariant: pure (series in, markup out) and light: no script, no network
//! address, every name escaped; a long series is reduced to at most [`MAX_POINTS`] per line
//! (each bucket's lowest and highest sample, so peaks survive); a gap (missing samples)
//! (more than one missing sample) breaks its line rather than being drawn across; series
//! that are zero throughout are listed, not drawn.

use std::collections::BTreeMap;

use super::escape::html as esc;
use super::sweep::SweepRecord;
use super::ArmRecord;
use crate::metrics::{first_user_failure, ArmMetrics, Origin, Point, Series};

/// Most points drawn per line.
pub const MAX_POINTS: usize = 240;
/// Most lines per plot (the largest kept).
const MAX_LINES: usize = 8;

const W: f64 = 540.0;
const H: f64 = 160.0;
const LEFT: f64 = 46.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 8.0;
const BOTTOM: f64 = 20.0;

const PALETTE: [&str; 8] = [
    "#1c5fb8", "#e8590c", "#2f9e44", "#7b2cbf", "#c92a2a", "#0c8599", "#b7791f", "#495057",
];

pub const CSS: &str = "
.plots{display:grid;grid-template-columns:repeat(auto-fill,minmax(500px,1fr));gap:.5rem 1.2rem}
figure.plot{margin:0}figure.plot figcaption{font-weight:600;font-size:.9em}
svg.mp{width:100%;height:auto;font:10px system-ui,sans-serif;border:1px solid #e4e4e4}
.mp .grid{stroke:#eee}.mp .axis{stroke:#888}.mp .tick{fill:#555}
.mp .band{fill:#e03131;fill-opacity:.1}.mp .flabel{fill:#c92a2a}
.mp .fail{stroke:#c92a2a;stroke-width:1.5;stroke-dasharray:5 3}
.mp polyline{fill:none;stroke-width:1.4}.mp .limit{stroke-width:1;stroke-dasharray:6 3}
.mp .meas{fill:#1c5fb8}.mp .nodrain{stroke:#c92a2a;stroke-width:2}.mp .model{fill:none;stroke:#e8590c;stroke-width:1.6}
.mp .pred{fill:#fff;stroke:#e8590c;stroke-width:1.4}.mp .unmeasured{fill:#888}.mp .horizon{stroke:#888;stroke-dasharray:6 3}
.mlegend{font-size:.8em;color:#444}.mlegend i{display:inline-block;width:.9em;height:.25em;margin:0 .25em 0 .6em;vertical-align:middle}
";

/// One plot: a title, what its values are, its lines.
struct Group<'a> {
    order: u8,
    title: String,
    series: Vec<&'a Series>,
}

/// The plots of one arm's series, with a line on the samplers' cost, the first failure and
/// what could not be had.
pub fn arm_plots(arm: &ArmRecord, m: &ArmMetrics) -> String {
    let mut out = String::new();
    let fail = first_user_failure(m);
    let mut facts = Vec::new();
    if let Some(rec) = &arm.metrics {
        if !rec.sampler_overhead_pct.is_empty() {
            let each: Vec<String> = rec
                .sampler_overhead_pct
                .iter()
                .map(|(g, p)| format!("{} {p:.1} %", esc(g)))
                .collect();
            facts.push(format!("sampler cost (of one CPU): {}", each.join(", ")));
        }
    }
    if let Some(t) = fail {
        facts.push(format!("first user-visible failure at {t:.1} s"));
    }
    if !facts.is_empty() {
        out.push_str(&format!("<p class=\"muted\">{}</p>\n", facts.join(" · ")));
    }
    if let Some(rec) = &arm.metrics {
        if !rec.problems.is_empty() {
            out.push_str("<ul class=\"muted\">\n");
            for p in &rec.problems {
                out.push_str(&format!("<li>{}</li>\n", esc(p)));
            }
            out.push_str("</ul>\n");
        }
    }

    let (lo, hi) = x_range(arm, m);
    let bands: Vec<(String, f64, f64)> = arm
        .faults
        .iter()
        .filter_map(|f| {
            let start = f.started_s.filter(|s| s.is_finite())?;
            let end = f.ended_s.filter(|s| s.is_finite()).unwrap_or(hi);
            Some((f.name.clone(), start, end.max(start)))
        })
        .collect();
    let (groups, zero) = groups(m);
    out.push_str("<div class=\"plots\">\n");
    for g in &groups {
        out.push_str(&plot(g, lo, hi, &bands, fail, m.interval_s));
    }
    out.push_str("</div>\n");
    if !zero.is_empty() {
        out.push_str(&format!(
            "<p class=\"muted\">Zero throughout (not drawn): {}</p>\n",
            esc(&zero.join(", "))
        ));
    }
    out
}

/// From the earlier of 0 and the first sample to the later of the workload's end and the
/// last sample.
fn x_range(arm: &ArmRecord, m: &ArmMetrics) -> (f64, f64) {
    let mut lo: f64 = 0.0;
    let mut hi: f64 = if arm.workload_s.is_finite() {
        arm.workload_s.max(0.0)
    } else {
        0.0
    };
    for p in m
        .series
        .iter()
        .flat_map(|s| &s.points)
        .filter(|p| p.t.is_finite())
    {
        lo = lo.min(p.t);
        hi = hi.max(p.t);
    }
    if hi - lo < 1e-6 {
        hi = lo + 1.0;
    }
    (lo, hi)
}

/// The group of a series: known metrics by family, anything else by origin and unit.
fn group_of(s: &Series) -> (u8, String) {
    let m = s.metric.as_str();
    match &s.origin {
        Origin::Guest(g) if m.starts_with("procs.") => (0, format!("Dovecot processes on {g}")),
        Origin::Population(p) => (1, format!("Clients: {p} ({})", s.unit)),
        Origin::Guest(_) if matches!(m, "load1" | "running" | "blocked") => {
            (2, "Load and runnable processes".into())
        }
        Origin::Guest(_) if m.starts_with("cpu.") || m.ends_with(".cpu") => (3, "CPU (%)".into()),
        Origin::Guest(_) if m.starts_with("nfs.") || m.starts_with("nfsd.") => (
            4,
            "NFS RPCs per second (client calls, retransmissions; server calls)".into(),
        ),
        Origin::Wire(w) if matches!(m, "syn" | "rst") => (5, format!("Wire {w}: SYNs and RSTs per second")),
        Origin::Wire(w) if m.starts_with("nlm.") || m.starts_with("nsm.") => {
            (6, format!("Wire {w}: NLM and NSM calls per second"))
        }
        Origin::Guest(_) if m == "locks" || m.starts_with("lockd.") => {
            (7, "Locks (/proc/locks lines), lockd grace".into())
        }
        Origin::Guest(_) if m == "mem.available" => (8, "Memory available (MiB)".into()),
        Origin::Guest(_) if m == "tasks" => (9, "Tasks".into()),
        Origin::Guest(_) if m.starts_with("disk.") => (10, format!("Disk I/O ({})", s.unit)),
        o => (11, format!("{} ({})", o.name(), s.unit)),
    }
}

/// The plots in order, and the full names of the series zero throughout. Totals that the per-procedure lines add up to (`nlm.calls`, `nsm.calls`) are not
/// drawn.
fn groups(m: &ArmMetrics) -> (Vec<Group<'_>>, Vec<String>) {
    let mut by: BTreeMap<(u8, String), Vec<&Series>> = BTreeMap::new();
    let mut zero = Vec::new();
    for s in &m.series {
        if matches!(s.origin, Origin::Wire(_)) && s.metric.ends_with(".calls") {
            continue;
        }
        if s.points.iter().all(|p| p.v == 0.0 || !p.v.is_finite()) {
            zero.push(s.full_name());
            continue;
        }
        by.entry(group_of(s)).or_default().push(s);
    }
    let groups = by
        .into_iter()
        .map(|((order, title), mut series)| {
            if series.len() > MAX_LINES {
                series.sort_by(|a, b| peak(b).total_cmp(&peak(a)));
                series.truncate(MAX_LINES);
            }
            Group { order, title, series }
        })
        .collect::<Vec<_>>();
    debug_assert!(groups.windows(2).all(|w| w[0].order <= w[1].order));
    (groups, zero)
}

fn peak(s: &Series) -> f64 {
    s.points
        .iter()
        .map(|p| p.v)
        .filter(|v| v.is_finite())
        .fold(f64::MIN, f64::max)
}

fn plot(
    g: &Group,
    lo: f64,
    hi: f64,
    bands: &[(String, f64, f64)],
    fail: Option<f64>,
    interval: f64,
) -> String {
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let x = |t: f64| LEFT + (t - lo) / (hi - lo) * pw;
    let mut ymin: f64 = 0.0;
    let mut ymax: f64 = 0.0;
    for s in &g.series {
        for v in s.points.iter().map(|p| p.v).filter(|v| v.is_finite()) {
            ymin = ymin.min(v);
            ymax = ymax.max(v);
        }
    }
    // A limit is drawn where the data come near it (within 3×); one far above would flatten
    // the lines, so it is only named in the legend.
    let near = 3.0 * ymax.max(1.0);
    let shown = move |l: f64| l.is_finite() && l <= near;
    for l in g.series.iter().filter_map(|s| s.limit).filter(|l| shown(*l)) {
        ymax = ymax.max(l);
    }
    let ystep = nice_step((ymax - ymin).max(1e-9) / 4.0);
    let ymax = if ymax - ymin < 1e-9 {
        ymin + 1.0
    } else {
        (ymax / ystep).ceil() * ystep
    };
    let ymin = (ymin / ystep).floor() * ystep;
    let y = |v: f64| TOP + ph - (v - ymin) / (ymax - ymin) * ph;

    let mut s = format!(
        "<figure class=\"plot\"><figcaption>{}</figcaption>\n\
         <svg class=\"mp\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\">\n",
        esc(&g.title),
        esc(&g.title)
    );
    for (name, a, b) in bands {
        let (x0, x1) = (x(a.max(lo)), x(b.min(hi)));
        s.push_str(&format!(
            "<rect class=\"band\" x=\"{}\" y=\"{TOP}\" width=\"{}\" height=\"{ph}\"><title>fault {} ({a:.1}–{b:.1} s)</title></rect>\n",
            n(x0),
            n((x1 - x0).max(1.0)),
            esc(name),
        ));
    }
    // Y grid and labels.
    y_grid(&mut s, ymin, ymax, ystep, pw, &y);
    // X ticks.
    let xstep = nice_step((hi - lo) / 8.0);
    let first = (lo / xstep).ceil() as i64;
    for k in (first..).take(40) {
        let t = k as f64 * xstep;
        if t > hi + xstep * 1e-9 {
            break;
        }
        s.push_str(&format!(
            "<text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
            n(x(t)),
            n(H - 6.0),
            label(t, xstep)
        ));
    }
    s.push_str(&format!(
        "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{b}\" x2=\"{}\" y2=\"{b}\"/>\
         <text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">s</text>\n",
        n(LEFT + pw),
        n(LEFT - 4.0),
        n(H - 6.0),
        b = n(TOP + ph),
    ));
    for (i, series) in g.series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let name = esc(&series.full_name());
        if let Some(l) = series.limit.filter(|l| shown(*l)) {
            let yy = n(y(l));
            s.push_str(&format!(
                "<line class=\"limit\" stroke=\"{color}\" x1=\"{LEFT}\" y1=\"{yy}\" x2=\"{}\" y2=\"{yy}\"><title>{name} limit {}</title></line>\
                 <text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">limit {}</text>\n",
                n(LEFT + pw),
                label(l, 1.0),
                n(LEFT + pw - 2.0),
                // Above the line, or under it where the top would clip the text.
                n(if y(l) - 2.0 < TOP + 9.0 { y(l) + 10.0 } else { y(l) - 2.0 }),
                label(l, 1.0),
            ));
        }
        for run in runs(&series.points, interval) {
            let pts = downsample(&run);
            if pts.len() == 1 {
                s.push_str(&format!(
                    "<circle cx=\"{}\" cy=\"{}\" r=\"1.5\" fill=\"{color}\"><title>{name}</title></circle>\n",
                    n(x(pts[0].t)),
                    n(y(pts[0].v))
                ));
                continue;
            }
            // Whole pixels: lines are most of the page's weight.
            let coords: Vec<String> = pts
                .iter()
                .map(|p| format!("{:.0},{:.0}", x(p.t), y(p.v)))
                .collect();
            s.push_str(&format!(
                "<polyline stroke=\"{color}\" points=\"{}\"><title>{name}</title></polyline>\n",
                coords.join(" ")
            ));
        }
    }
    if let Some(t) = fail.filter(|t| *t >= lo && *t <= hi) {
        let fx = n(x(t));
        s.push_str(&format!(
            "<line class=\"fail\" x1=\"{fx}\" y1=\"{TOP}\" x2=\"{fx}\" y2=\"{}\"><title>first user-visible failure at {t:.1} s</title></line>\
             <text class=\"flabel\" x=\"{}\" y=\"{}\">first failure</text>\n",
            n(TOP + ph),
            n(x(t) + 3.0),
            n(TOP + 9.0),
        ));
    }
    s.push_str("</svg>\n<div class=\"mlegend\">");
    for (i, series) in g.series.iter().enumerate() {
        let last = series
            .points
            .last()
            .map(|p| label(p.v, 0.001))
            .unwrap_or_default();
        let unit = if series.unit.is_empty() {
            String::new()
        } else {
            format!(" {}", series.unit)
        };
        let limit = series
            .limit
            .map(|l| format!(", limit {}", label(l, 1.0)))
            .unwrap_or_default();
        s.push_str(&format!(
            "<i style=\"background:{}\"></i>{} (max {}, last {last}{}{limit})",
            PALETTE[i % PALETTE.len()],
            esc(&series.full_name()),
            label(peak(series), 0.001),
            esc(&unit),
        ));
    }
    s.push_str("</div></figure>\n");
    s
}

/// A sweep's drain time against users: the measured sizes as points, the model's prediction as
/// a line (broken where it does not drain), and sizes that did not drain marked in a row above
/// the plot (measured: a red cross; the model: a hollow circle). The horizon is a dashed line;
/// a size that was not measured is a grey `?` in the top row.
pub fn sweep_plot(sw: &SweepRecord) -> String {
    const SH: f64 = 220.0;
    const ROW: f64 = 20.0;
    let pw = W - LEFT - RIGHT;
    let top = TOP + ROW;
    let ph = SH - top - BOTTOM - 6.0;
    let horizon = sw.params.as_ref().map(|p| p.horizon_s).filter(|h| h.is_finite());
    let max_users = sw
        .measured
        .iter()
        .map(|m| m.users)
        .chain(sw.predictions.iter().map(|p| p.users))
        .max()
        .unwrap_or(1)
        .max(1);
    let xstep = nice_step(f64::from(max_users) / 6.0);
    let xmax = (f64::from(max_users) * 1.05 / xstep).ceil() * xstep;
    let times = sw
        .measured
        .iter()
        .filter_map(|m| m.measured.and_then(|m| m.drain_time_s))
        .chain(sw.predictions.iter().filter_map(|p| p.drain_time_s))
        .chain(horizon)
        .filter(|t| t.is_finite())
        .fold(1.0_f64, f64::max);
    let ystep = nice_step(times / 4.0);
    let ymax = (times / ystep).ceil() * ystep;
    let x = |u: f64| LEFT + u / xmax * pw;
    let y = |t: f64| top + ph - t / ymax * ph;
    let row = TOP + ROW / 2.0;
    let mut s = format!(
        "<figure class=\"plot\"><figcaption>Drain time against users: {}::{}</figcaption>\n\
         <svg class=\"mp\" viewBox=\"0 0 {W} {SH}\" role=\"img\" aria-label=\"drain time against users\">\n",
        esc(&sw.case),
        esc(&sw.arm)
    );
    y_grid(&mut s, 0.0, ymax, ystep, pw, &y);
    s.push_str(&format!(
        "<text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">no drain</text>\n",
        n(LEFT - 4.0),
        n(row + 3.5)
    ));
    for k in 0..=((xmax / xstep).round() as i64) {
        let u = k as f64 * xstep;
        s.push_str(&format!(
            "<text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
            n(x(u)),
            n(top + ph + 13.0),
            label(u, xstep)
        ));
    }
    s.push_str(&format!(
        "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{b}\" x2=\"{}\" y2=\"{b}\"/>\
         <text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">users</text>\
         <text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">s</text>\n",
        n(LEFT + pw),
        n(LEFT + pw / 2.0),
        n(SH - 4.0),
        n(LEFT - 4.0),
        n(top + ph + 13.0),
        b = n(top + ph),
    ));
    if let Some(h) = horizon {
        let yy = n(y(h));
        s.push_str(&format!(
            "<line class=\"horizon\" x1=\"{LEFT}\" y1=\"{yy}\" x2=\"{}\" y2=\"{yy}\"><title>horizon H = {} s</title></line>\
             <text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">H {}</text>\n",
            n(LEFT + pw),
            label(h, 0.001),
            n(LEFT + pw - 2.0),
            n(y(h) - 2.0),
            label(h, 0.001),
        ));
    }
    // The model: a line through the sizes it drains, broken where it does not.
    let mut preds: Vec<&crate::metrics::model::Prediction> = sw.predictions.iter().collect();
    preds.sort_by_key(|p| p.users);
    let mut stretch: Vec<String> = Vec::new();
    let flush = |s: &mut String, stretch: &mut Vec<String>| {
        if stretch.len() > 1 {
            s.push_str(&format!(
                "<polyline class=\"model\" points=\"{}\"/>\n",
                stretch.join(" ")
            ));
        }
        stretch.clear();
    };
    for p in &preds {
        match p.drain_time_s.filter(|t| p.drains && t.is_finite()) {
            Some(t) => {
                stretch.push(format!("{:.1},{:.1}", x(f64::from(p.users)), y(t)));
                s.push_str(&format!(
                    "<circle class=\"pred\" cx=\"{}\" cy=\"{}\" r=\"2.5\"><title>model: {} users drain in {:.1} s</title></circle>\n",
                    n(x(f64::from(p.users))),
                    n(y(t)),
                    p.users,
                    t
                ));
            }
            None => {
                flush(&mut s, &mut stretch);
                s.push_str(&format!(
                    "<circle class=\"pred\" cx=\"{}\" cy=\"{}\" r=\"4\"><title>model: {} users do not drain</title></circle>\n",
                    n(x(f64::from(p.users))),
                    n(row),
                    p.users
                ));
            }
        }
    }
    flush(&mut s, &mut stretch);
    // The lab.
    for m in &sw.measured {
        let xx = x(f64::from(m.users));
        match m.measured {
            Some(me) if me.drained => {
                let t = me.drain_time_s.unwrap_or_default();
                s.push_str(&format!(
                    "<circle class=\"meas\" cx=\"{}\" cy=\"{}\" r=\"3.5\"><title>{}: {} users drained in {:.1} s</title></circle>\n",
                    n(xx),
                    n(y(t)),
                    esc(&m.arm),
                    m.users,
                    t
                ));
            }
            Some(_) => s.push_str(&format!(
                "<path class=\"nodrain\" d=\"M{} {}L{} {}M{} {}L{} {}\"><title>{}: {} users did not drain</title></path>\n",
                n(xx - 4.0),
                n(row - 4.0),
                n(xx + 4.0),
                n(row + 4.0),
                n(xx - 4.0),
                n(row + 4.0),
                n(xx + 4.0),
                n(row - 4.0),
                esc(&m.arm),
                m.users
            )),
            None => s.push_str(&format!(
                "<text class=\"unmeasured\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">?<title>{}: {} users, not measured</title></text>\n",
                n(xx),
                n(row + 3.5),
                esc(&m.arm),
                m.users
            )),
        }
    }
    s.push_str(
        "</svg>\n<div class=\"mlegend\"><i style=\"background:#1c5fb8\"></i>measured: drained \
         <i style=\"background:#c92a2a\"></i>measured: did not drain (×, top row) \
         <i style=\"background:#e8590c\"></i>model (hollow circle in the top row: does not drain) \
         <i style=\"background:#888\"></i>horizon H; ? not measured</div></figure>\n",
    );
    s
}

/// The stretches of `points` (finite ones only) without a gap in between: a step of more than
/// 2.5 intervals (more than one sample missing; a late sample followed by an early one is
/// not a gap).
fn runs(points: &[Point], interval: f64) -> Vec<Vec<Point>> {
    let interval = if interval > 0.0 { interval } else { 1.0 };
    let mut out: Vec<Vec<Point>> = Vec::new();
    let mut prev: Option<f64> = None;
    for p in points.iter().filter(|p| p.t.is_finite() && p.v.is_finite()) {
        match (prev, out.last_mut()) {
            (Some(t), Some(run)) if p.t - t <= 2.5 * interval => run.push(*p),
            _ => out.push(vec![*p]),
        }
        prev = Some(p.t);
    }
    out
}

/// At most [`MAX_POINTS`]: each of `MAX_POINTS / 2` buckets keeps its lowest and highest
/// sample, in time order.
fn downsample(run: &[Point]) -> Vec<Point> {
    if run.len() <= MAX_POINTS {
        return run.to_vec();
    }
    let buckets = MAX_POINTS / 2;
    let mut out = Vec::with_capacity(MAX_POINTS);
    for b in 0..buckets {
        let part = &run[b * run.len() / buckets..(b + 1) * run.len() / buckets];
        let (Some(lo), Some(hi)) = (
            part.iter().min_by(|a, b| a.v.total_cmp(&b.v)),
            part.iter().max_by(|a, b| a.v.total_cmp(&b.v)),
        ) else {
            continue;
        };
        if lo.t <= hi.t {
            out.push(*lo);
            if hi.t != lo.t {
                out.push(*hi);
            }
        } else {
            out.push(*hi);
            out.push(*lo);
        }
    }
    out
}

/// A 1-2-5 step at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude)
}

/// A tick or value label: as many decimals as `step` needs, thousands as `k`.
/// Horizontal grid lines with their labels, from `ymin` to `ymax` every `ystep`.
fn y_grid(s: &mut String, ymin: f64, ymax: f64, ystep: f64, pw: f64, y: &dyn Fn(f64) -> f64) {
    for k in 0..=((ymax - ymin) / ystep).round() as i64 {
        let v = ymin + k as f64 * ystep;
        let yy = n(y(v));
        s.push_str(&format!(
            "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{yy}\" x2=\"{}\" y2=\"{yy}\"/>\
             <text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n",
            n(LEFT + pw),
            n(LEFT - 4.0),
            n(y(v) + 3.5),
            label(v, ystep)
        ));
    }
}

fn label(v: f64, step: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    if v.abs() >= 10_000.0 {
        return format!("{}k", (v / 1000.0).round());
    }
    let decimals = if step >= 1.0 {
        0
    } else {
        ((-step.log10()).ceil() as usize).min(3)
    };
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// SVG numbers: a tenth of a pixel is plenty.
fn n(v: f64) -> String {
    format!("{v:.1}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::summary::MetricsRecord;
    use crate::results::junit::tests::fixture;

    fn series(origin: Origin, metric: &str, unit: &str, limit: Option<f64>, pts: &[(f64, f64)]) -> Series {
        Series {
            origin,
            metric: metric.into(),
            unit: unit.into(),
            limit,
            points: pts.iter().map(|&(t, v)| Point { t, v }).collect(),
        }
    }

    /// A small arm: imap-login processes filling toward their limit during a fault, a
    /// client population whose timeouts start at 6 s, a gap in the CPU samples, a series
    /// that stays zero, and a hostile name.
    pub(crate) fn small() -> ArmMetrics {
        let g = |n: &str| Origin::Guest(n.into());
        ArmMetrics {
            interval_s: 1.0,
            series: vec![
                series(
                    g("imap1"),
                    "procs.imap-login",
                    "processes",
                    Some(10.0),
                    &[
                        (1.0, 1.0),
                        (2.0, 3.0),
                        (3.0, 6.0),
                        (4.0, 9.0),
                        (5.0, 10.0),
                        (6.0, 10.0),
                        (7.0, 10.0),
                        (8.0, 4.0),
                    ],
                ),
                series(
                    g("imap1"),
                    "procs.imap",
                    "processes",
                    Some(20.0),
                    &[(1.0, 1.0), (4.0, 2.0), (8.0, 1.0)],
                ),
                series(
                    g("imap1"),
                    "cpu.busy",
                    "%",
                    None,
                    &[(1.0, 10.0), (2.0, 95.0), (5.0, 100.0), (6.0, 40.0)],
                ),
                series(g("filer"), "locks", "locks", None, &[(1.0, 0.0), (2.0, 0.0)]),
                series(
                    Origin::Wire("lan".into()),
                    "syn",
                    "frames/s",
                    None,
                    &[(1.0, 0.0), (2.0, 12.0), (3.0, 30.0), (4.0, 2.0)],
                ),
                series(
                    Origin::Wire("lan".into()),
                    "nlm.calls",
                    "calls/s",
                    None,
                    &[(1.0, 0.0), (2.0, 1.0)],
                ),
                series(
                    Origin::Population("storm".into()),
                    "timeouts",
                    "per s",
                    None,
                    &[(5.0, 0.0), (6.0, 3.0), (7.0, 8.0)],
                ),
                series(
                    Origin::Population("<b>x</b>".into()),
                    "latency.p99",
                    "ms",
                    None,
                    &[(6.0, 250.5)],
                ),
            ],
        }
    }

    fn arm() -> ArmRecord {
        let mut arm = fixture().arms[1].clone();
        arm.workload_s = 8.0;
        arm.faults.truncate(1);
        arm.faults[0].started_s = Some(2.0);
        arm.faults[0].ended_s = Some(5.0);
        arm.metrics = Some(MetricsRecord {
            file: "metrics.json".into(),
            sampler_overhead_pct: [("imap1".to_string(), 1.25)].into(),
            problems: vec!["client: no samples: <gone>".into()],
            ..MetricsRecord::default()
        });
        arm
    }

    #[test]
    fn plots_svg() {
        insta::assert_snapshot!(arm_plots(&arm(), &small()));
    }

    #[test]
    fn the_plots_are_escaped_grouped_and_light() {
        let out = arm_plots(&arm(), &small());
        assert!(!out.contains("<b>") && out.contains("&lt;b&gt;x&lt;/b&gt;"));
        assert!(out.contains("&lt;gone&gt;"));
        assert!(!out.to_lowercase().contains("<script") && !out.contains("http"));
        // Dovecot, CPU, SYN, two populations; locks are zero, nlm.calls a total.
        assert_eq!(out.matches("<svg").count(), 5, "{out}");
        assert!(out.contains("Zero throughout (not drawn): filer.locks"));
        assert!(!out.contains("lan.nlm.calls"));
        assert!(out.contains("first user-visible failure at 6.0 s"));
        assert!(out.contains("limit 10"));
        assert_eq!(out.matches("class=\"band\"").count(), 5);
    }

    #[test]
    fn a_gap_breaks_the_line_and_long_series_keep_their_peaks() {
        let pts: Vec<Point> = [
            (1.0, 1.0),
            (2.0, 2.0),
            (5.0, 3.0),
            (6.0, 4.0),
            (7.6, 1.0),
            (8.0, 1.0),
        ]
        .iter()
        .map(|&(t, v)| Point { t, v })
        .collect();
        let r = runs(&pts, 1.0);
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].len(), r[1].len()), (2, 4));
        let long: Vec<Point> = (0..10_000)
            .map(|i| Point {
                t: i as f64,
                v: if i == 4321 { 99.0 } else { (i % 7) as f64 },
            })
            .collect();
        let d = downsample(&long);
        assert!(d.len() <= MAX_POINTS);
        assert!(d.iter().any(|p| p.v == 99.0));
        assert!(d.windows(2).all(|w| w[0].t < w[1].t));
    }

    #[test]
    fn labels_and_steps_are_round() {
        assert_eq!(nice_step(0.0), 1.0);
        assert_eq!(nice_step(2.5), 5.0);
        assert_eq!(nice_step(0.3), 0.5);
        assert_eq!(label(12.0, 5.0), "12");
        assert_eq!(label(0.25, 0.05), "0.25");
        assert_eq!(label(12345.0, 1000.0), "12k");
        assert_eq!(label(f64::NAN, 1.0), "—");
    }

    #[test]
    fn sweep_plot_svg() {
        let run = crate::results::sweep::tests::sweep_run();
        let svg = sweep_plot(&run.sweeps[0]);
        insta::assert_snapshot!(svg);
        // One measured point drained, one cross for the size that did not drain, a `?` for
        // the one not measured, a model line through the two sizes it drains.
        assert_eq!(svg.matches("class=\"meas\"").count(), 1);
        assert_eq!(svg.matches("class=\"nodrain\"").count(), 1);
        assert_eq!(svg.matches("class=\"unmeasured\"").count(), 1);
        assert_eq!(svg.matches("<polyline class=\"model\"").count(), 1);
    }
}
