//! A guest sampler's output (`run/guest/sampler.pl`) turned into series: gauges as read,
//! cumulative counters as per-second rates, CPU tick counters as percentages, and the
//! sampler's own cost over its lifetime.
//!
//! The output is line-based text the guest wrote, so it is hostile input: a line that does not
//! parse is skipped and counted, never a panic; a sample whose time does not move forward is
//! dropped (series times are strictly increasing).
//!
//! Architecture invariant: pure (text in, series out). A figure missing from a sample is a
//! missing point, never 0; a rate needs two samples that both hold its counter, and a counter
//! that went backwards (a restart) gives no point for that interval.

use std::collections::BTreeMap;

use super::{Origin, Point, Series};

/// What one guest's sampler output holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SamplerRead {
    pub series: Vec<Series>,
    /// The sampler's own CPU time (its children's included) over its lifetime, as a
    /// percentage of one CPU; `None` when it did not end on its own (no `end` line).
    pub overhead_pct: Option<f64>,
    /// What could not be read: a missing header, lines skipped, a capped file.
    pub problems: Vec<String>,
}

struct Sample<'a> {
    t: f64,
    gauges: Vec<(&'a str, f64)>,
    counters: Vec<(&'a str, f64)>,
}

/// The series in `text`, a sampler's output from guest `guest`; times are made relative to
/// `workload_unix`, the workload's start in unix seconds.
pub fn parse(text: &str, guest: &str, workload_unix: f64) -> SamplerRead {
    let mut read = SamplerRead::default();
    let mut clk_tck = 100.0;
    let mut header = false;
    let mut skipped = 0usize;
    let mut limits: BTreeMap<String, f64> = BTreeMap::new();
    let mut samples: Vec<Sample> = Vec::new();
    let mut end: Option<(f64, f64)> = None;
    for line in text.lines() {
        let mut words = line.split_ascii_whitespace();
        match words.next() {
            Some("faultline-sampler") => {
                header = true;
                for (k, v) in words.filter_map(|w| w.split_once('=')) {
                    match (k, number(v)) {
                        ("clk_tck", Some(v)) if v > 0.0 => clk_tck = v,
                        _ => {}
                    }
                }
            }
            Some("limit") => match (words.next(), words.next().and_then(number)) {
                (Some(metric), Some(v)) if v >= 0.0 => {
                    limits.insert(metric.to_string(), v);
                }
                _ => skipped += 1,
            },
            Some("s") => {
                let Some(unix) = words.next().and_then(number) else {
                    skipped += 1;
                    continue;
                };
                let t = round(unix - workload_unix, 100.0);
                if samples.last().is_some_and(|s| s.t >= t) {
                    skipped += 1;
                    continue;
                }
                let mut s = Sample {
                    t,
                    gauges: Vec::new(),
                    counters: Vec::new(),
                };
                for w in words {
                    if let Some((k, v)) = w.split_once("+=") {
                        match number(v) {
                            Some(v) if !k.is_empty() => s.counters.push((k, v)),
                            _ => skipped += 1,
                        }
                    } else if let Some((k, v)) = w.split_once('=') {
                        match number(v) {
                            Some(v) if !k.is_empty() => s.gauges.push((k, v)),
                            _ => skipped += 1,
                        }
                    } else {
                        skipped += 1;
                    }
                }
                samples.push(s);
            }
            Some("end") => {
                let mut ticks = None;
                let mut age = None;
                for (k, v) in words.filter_map(|w| w.split_once('=')) {
                    match k {
                        "ticks" => ticks = number(v),
                        "age" => age = number(v),
                        _ => {}
                    }
                }
                if let (Some(t), Some(a)) = (ticks, age) {
                    end = Some((t, a));
                }
            }
            Some("capped") => read
                .problems
                .push(format!("{guest}: the sampler stopped writing at its size cap")),
            None => {}
            Some(_) => skipped += 1,
        }
    }
    if !header {
        read.problems
            .push(format!("{guest}: the sampler's output has no header line"));
    }
    if skipped > 0 {
        read.problems.push(format!(
            "{guest}: {skipped} unreadable line(s) or figure(s) in the sampler's output skipped"
        ));
    }
    read.overhead_pct = end
        .filter(|(_, age)| *age > 0.0)
        .map(|(ticks, age)| round(ticks / (age * clk_tck) * 100.0, 1000.0));

    let mut out = SeriesSet::new(guest);
    for s in &samples {
        for (k, v) in &s.gauges {
            out.push(k, gauge_unit(k), s.t, *v);
        }
    }
    for pair in samples.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let dt = b.t - a.t;
        let before = |k: &str| a.counters.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        let delta = |k: &str| {
            let now = b.counters.iter().find(|(n, _)| *n == k)?.1;
            let d = now - before(k)?;
            (d >= 0.0).then_some(d)
        };
        for (k, _) in &b.counters {
            let Some(d) = delta(k) else { continue };
            if *k == "cpu.total" {
                continue;
            }
            if k.starts_with("cpu.") {
                if let Some(total) = delta("cpu.total").filter(|t| *t > 0.0) {
                    out.push(k, "%", b.t, d / total * 100.0);
                }
            } else if let Some(name) = k.strip_suffix(".ticks") {
                if dt > 0.0 {
                    let cpu = format!("{name}.cpu");
                    out.push(&cpu, "% of a CPU", b.t, d / (dt * clk_tck) * 100.0);
                }
            } else if dt > 0.0 {
                out.push(k, "per s", b.t, d / dt);
            }
        }
    }
    read.series = out.finish(&limits);
    read
}

/// Series in first-seen order, by metric.
struct SeriesSet<'g> {
    guest: &'g str,
    series: Vec<Series>,
    index: BTreeMap<String, usize>,
}

impl<'g> SeriesSet<'g> {
    fn new(guest: &'g str) -> Self {
        SeriesSet {
            guest,
            series: Vec::new(),
            index: BTreeMap::new(),
        }
    }

    fn push(&mut self, metric: &str, unit: &str, t: f64, v: f64) {
        if !v.is_finite() {
            return;
        }
        let i = *self.index.entry(metric.to_string()).or_insert_with(|| {
            self.series.push(Series {
                origin: Origin::Guest(self.guest.to_string()),
                metric: metric.to_string(),
                unit: unit.to_string(),
                limit: None,
                points: Vec::new(),
            });
            self.series.len() - 1
        });
        let points = &mut self.series[i].points;
        if points.last().is_none_or(|p| p.t < t) {
            points.push(Point {
                t,
                v: round(v, 1000.0),
            });
        }
    }

    fn finish(mut self, limits: &BTreeMap<String, f64>) -> Vec<Series> {
        for s in &mut self.series {
            s.limit = limits.get(&s.metric).copied();
        }
        self.series
    }
}

/// The unit of a gauge the sampler writes (unknown ones have none).
fn gauge_unit(metric: &str) -> &'static str {
    match metric {
        "load1" => "load",
        "tasks" | "running" | "blocked" => "processes",
        "mem.available" => "MiB",
        "locks" => "locks",
        "lockd.grace" => "in grace",
        m if m.starts_with("procs.") => "processes",
        m if m.starts_with("disk.") && m.ends_with(".inflight") => "requests",
        _ => "",
    }
}

/// A finite number, or nothing.
fn number(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// `v` rounded to `1/per` (keeps the stored file small; samples are not more precise).
fn round(v: f64, per: f64) -> f64 {
    (v * per).round() / per
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &str = "faultline-sampler 1 clk_tck=100 ncpu=1 interval=1
s 1000.00 load1=0.50 running=1 cpu.busy+=100 cpu.iowait+=10 cpu.total+=1000 mem.available=200.5 nfs.calls+=50 nfs.retrans+=0 sampler.ticks+=2
limit procs.imap-login 100
s 1001.00 load1=0.60 running=3 cpu.busy+=150 cpu.iowait+=30 cpu.total+=1100 mem.available=199.0 procs.imap-login=4 nfs.calls+=80 nfs.retrans+=1 sampler.ticks+=3
s 1003.00 load1=0.70 running=2 cpu.busy+=350 cpu.iowait+=30 cpu.total+=1300 procs.imap-login=7 nfs.calls+=20 sampler.ticks+=4
end 1003.50 ticks=6 age=4.00
";

    fn get<'a>(r: &'a SamplerRead, metric: &str) -> &'a Series {
        r.series
            .iter()
            .find(|s| s.metric == metric)
            .unwrap_or_else(|| panic!("no {metric} in {:?}", r.series))
    }

    fn points(s: &Series) -> Vec<(f64, f64)> {
        s.points.iter().map(|p| (p.t, p.v)).collect()
    }

    #[test]
    fn gauges_are_as_read_and_a_missing_figure_is_no_point() {
        let r = parse(OUT, "imap1", 999.0);
        assert_eq!(points(get(&r, "load1")), [(1.0, 0.5), (2.0, 0.6), (4.0, 0.7)]);
        assert_eq!(points(get(&r, "mem.available")), [(1.0, 200.5), (2.0, 199.0)]);
        let procs = get(&r, "procs.imap-login");
        assert_eq!(points(procs), [(2.0, 4.0), (4.0, 7.0)]);
        assert_eq!(procs.limit, Some(100.0));
        assert_eq!(procs.unit, "processes");
        assert_eq!(procs.full_name(), "imap1.procs.imap-login");
        assert!(r.problems.is_empty(), "{:?}", r.problems);
    }

    #[test]
    fn counters_become_rates_and_a_counter_that_went_back_gives_no_point() {
        let r = parse(OUT, "imap1", 999.0);
        // 30 calls in the first second; then the counter restarted (80 → 20): no point.
        assert_eq!(points(get(&r, "nfs.calls")), [(2.0, 30.0)]);
        // Missing from the last sample: no rate for that interval.
        assert_eq!(points(get(&r, "nfs.retrans")), [(2.0, 1.0)]);
        assert_eq!(get(&r, "nfs.calls").unit, "per s");
    }

    #[test]
    fn cpu_ticks_are_percentages_of_the_total_and_own_ticks_of_one_cpu() {
        let r = parse(OUT, "imap1", 999.0);
        assert_eq!(points(get(&r, "cpu.busy")), [(2.0, 50.0), (4.0, 100.0)]);
        assert_eq!(points(get(&r, "cpu.iowait")), [(2.0, 20.0), (4.0, 0.0)]);
        assert!(r.series.iter().all(|s| s.metric != "cpu.total"));
        // 1 tick in 1 s at 100 ticks/s; 1 tick in 2 s.
        assert_eq!(points(get(&r, "sampler.cpu")), [(2.0, 1.0), (4.0, 0.5)]);
        assert_eq!(get(&r, "sampler.cpu").unit, "% of a CPU");
        // 6 ticks over 4 s of life.
        assert_eq!(r.overhead_pct, Some(1.5));
    }

    #[test]
    fn garbage_is_skipped_and_counted_never_a_panic() {
        let text = "s\ns abc load1=1\ns 5 load1=x =3 junk load1=2\ns 5 load1=9\ns 4 load1=8\n\
                    limit procs.imap\n\u{0}\u{7}\ns 6 cpu.busy+=1 cpu.total+=0\ns 7 cpu.busy+=2 cpu.total+=0\nend x";
        let r = parse(text, "g", 0.0);
        assert_eq!(points(get(&r, "load1")), [(5.0, 2.0)]);
        // A total that did not move gives no percentage.
        assert!(r.series.iter().all(|s| s.metric != "cpu.busy"));
        assert_eq!(r.overhead_pct, None);
        assert_eq!(r.problems.len(), 2, "{:?}", r.problems);
        for len in 0..200 {
            let junk: String = (0..len)
                .map(|i| char::from(b" s=+.1e9x\n"[(i * 7) % 10]))
                .collect();
            let _ = parse(&junk, "g", 0.0);
        }
    }
}
