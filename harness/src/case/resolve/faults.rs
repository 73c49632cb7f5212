//! `[faults.*]`: what each fault does (a wire rule, an nft ruleset, a command, a systemd
//! action, a disk or shelf that fails, slows, stalls or loses power), when it starts and when
//! it ends.

use std::time::Duration;

use super::guests::Lab;
use super::matches::{frame_match, on_segment};
use super::steps::Steps;
use super::{Cx, Names, DEFAULT_TIMEOUT};
use crate::case::raw::{Named, RawEnd, RawFault, RawStart, RawWire, Str, S};
use crate::case::{DiskTarget, End, Fault, FaultKind, ServiceAction, Trigger};
use crate::disks::ErrorRate;
use crate::wire::rules::Action;

/// The faults of a case, and their names for references.
pub(super) struct Faults {
    pub list: Vec<Fault>,
    pub names: Names,
}

pub(super) fn build(cx: &mut Cx, raw: &Named<RawFault>, lab: &Lab, steps: &Steps) -> Faults {
    let mut faults = Vec::new();
    for (name, f) in &raw.0 {
        cx.name(name, "fault");
        let start = build_start(cx, &f.start, lab, &steps.names);
        let end = build_end(cx, f.end.as_ref(), &steps.names);
        // An end at a step must come after a start at a step.
        if let (Some(RawEnd::Table(t)), Trigger::AfterStep { step: from }) =
            (f.end.as_ref().map(|e| e.get_ref()), &start)
        {
            if let Some(to) = t.until_step.as_ref().or(t.heal_step.as_ref()) {
                if let (Some(a), Some(b)) = (steps.index(from), steps.index(to.get_ref())) {
                    if b <= a {
                        cx.at(
                            to,
                            format!(
                                "fault `{}` starts after step `{from}` but ends at step `{}`, which does not come after it",
                                name.get_ref(),
                                to.get_ref()
                            ),
                        );
                    }
                }
            }
        }
        let kind = build_fault_kind(cx, name, f, &start, &end, lab);
        faults.push(Fault {
            name: name.get_ref().clone(),
            kind,
            start,
            end,
        });
    }
    let names = Names::new("fault", faults.iter().map(|f| f.name.clone()));
    Faults { list: faults, names }
}

fn is_unit_name(s: &str) -> bool {
    const KINDS: [&str; 5] = [".service", ".socket", ".timer", ".target", ".mount"];
    KINDS.iter().any(|k| s.len() > k.len() && s.ends_with(k))
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@_.-:\\".contains(&b))
}

fn build_start(cx: &mut Cx, start: &S<RawStart>, lab: &Lab, steps: &Names) -> Trigger {
    let t = start.get_ref();
    let which = cx.one_of(
        start.span(),
        "`start`",
        &[
            ("at", t.at.as_ref().map(|v| v.span())),
            ("after_step", t.after_step.as_ref().map(|v| v.span())),
            ("on_log", t.on_log.as_ref().map(|v| v.span())),
            ("on_frame", t.on_frame.as_ref().map(|v| v.span())),
        ],
    );
    match which {
        Some("at") => Trigger::At {
            offset: cx.duration(t.at.as_ref().expect("given")).unwrap_or_default(),
        },
        Some("after_step") => {
            let s = t.after_step.as_ref().expect("given");
            steps.refer(cx, s);
            Trigger::AfterStep {
                step: s.get_ref().clone(),
            }
        }
        Some("on_log") => {
            let l = t.on_log.as_ref().expect("given").get_ref();
            lab.guest_names.refer(cx, &l.guest);
            cx.absolute(&l.file, "file");
            Trigger::OnLog {
                guest: l.guest.get_ref().clone(),
                file: l.file.get_ref().clone(),
                pattern: cx.pattern(&l.pattern),
            }
        }
        Some(_) => {
            let f = t.on_frame.as_ref().expect("given").get_ref();
            let on = lab
                .segment_names
                .refer(cx, &f.segment)
                .then(|| lab.members(f.segment.get_ref()))
                .flatten();
            Trigger::OnFrame {
                segment: f.segment.get_ref().clone(),
                matcher: frame_match(cx, &f.matcher(), &lab.guest_names, &f.segment, on.as_deref()),
            }
        }
        None => Trigger::At {
            offset: Duration::ZERO,
        },
    }
}

fn build_end(cx: &mut Cx, end: Option<&S<RawEnd>>, steps: &Names) -> End {
    let Some(end) = end else { return End::Never };
    let RawEnd::Table(t) = end.get_ref() else {
        return End::Never;
    };
    let which = cx.one_of(
        end.span(),
        "`end`",
        &[
            ("duration", t.duration.as_ref().map(|v| v.span())),
            ("until_step", t.until_step.as_ref().map(|v| v.span())),
            ("heal_step", t.heal_step.as_ref().map(|v| v.span())),
        ],
    );
    match which {
        Some("duration") => End::Duration {
            duration: cx.positive(t.duration.as_ref(), Duration::from_secs(1)),
        },
        Some(k) => {
            let s = if k == "until_step" {
                t.until_step.as_ref()
            } else {
                t.heal_step.as_ref()
            }
            .expect("given");
            steps.refer(cx, s);
            let step = s.get_ref().clone();
            if k == "until_step" {
                End::UntilStep { step }
            } else {
                End::HealStep { step }
            }
        }
        None => End::Never,
    }
}

fn build_fault_kind(
    cx: &mut Cx,
    name: &Str,
    f: &RawFault,
    start: &Trigger,
    end: &End,
    lab: &Lab,
) -> FaultKind {
    let what = format!("fault `{}`", name.get_ref());
    let which = cx.one_of(
        name.span(),
        &what,
        &[
            ("wire", f.wire.as_ref().map(|v| v.span())),
            ("guest_nft", f.guest_nft.as_ref().map(|v| v.span())),
            ("guest_exec", f.guest_exec.as_ref().map(|v| v.span())),
            ("service", f.service.as_ref().map(|v| v.span())),
            ("disk_error", f.disk_error.as_ref().map(|v| v.span())),
            ("disk_delay", f.disk_delay.as_ref().map(|v| v.span())),
            ("disk_pause", f.disk_pause.as_ref().map(|v| v.span())),
            ("power_cut", f.power_cut.as_ref().map(|v| v.span())),
        ],
    );
    // The span of the `end` value (for errors about the end as a whole) and of a heal_step.
    let end_span = f.end.as_ref().map(|e| e.span());
    let heal_step = match f.end.as_ref().map(|e| e.get_ref()) {
        Some(RawEnd::Table(t)) => t.heal_step.as_ref(),
        _ => None,
    };
    let harness_heals = |cx: &mut Cx, kind: &str| {
        if let Some(h) = heal_step {
            cx.at(
                h,
                format!("a {kind} fault is removed by the harness, not by a step: use until_step"),
            );
        }
    };
    match which {
        Some("wire") => {
            harness_heals(cx, "wire");
            let w = f.wire.as_ref().expect("given").get_ref();
            let on = lab
                .segment_names
                .refer(cx, &w.segment)
                .then(|| lab.members(w.segment.get_ref()))
                .flatten();
            let matcher = frame_match(cx, &w.matcher(), &lab.guest_names, &w.segment, on.as_deref());
            let action = wire_action(cx, w, &lab.guest_names, on.as_deref());
            FaultKind::Wire {
                segment: w.segment.get_ref().clone(),
                matcher,
                action,
            }
        }
        Some("guest_nft") => {
            let n = f.guest_nft.as_ref().expect("given").get_ref();
            lab.guest_names.refer(cx, &n.guest);
            let tables = nft_tables(n.ruleset.get_ref());
            if tables.is_empty() {
                cx.at(
                    &n.ruleset,
                    "the ruleset declares no table: write `table inet NAME { ... }`, so that the harness can delete it to heal the fault",
                );
            }
            if !has_counter(n.ruleset.get_ref()) {
                cx.at(
                    &n.ruleset,
                    "the ruleset has no `counter`: put one in the rule that does the harm (`... counter drop`), since a loaded ruleset proves nothing and only a packet it counted shows the fault fired",
                );
            }
            FaultKind::GuestNft {
                guest: n.guest.get_ref().clone(),
                ruleset: n.ruleset.get_ref().clone(),
                tables,
            }
        }
        Some("guest_exec") => {
            let g = f.guest_exec.as_ref().expect("given").get_ref();
            lab.guest_names.refer(cx, &g.guest);
            cx.nonblank(&g.command, "command");
            let harness_ends = matches!(end, End::Duration { .. } | End::UntilStep { .. });
            match (&g.heal, harness_ends) {
                (Some(h), true) => cx.nonblank(h, "heal"),
                (Some(h), false) => cx.at(
                    h,
                    "`heal` runs only when the harness ends the fault (end.duration or end.until_step)",
                ),
                (None, true) => cx.err(
                    end_span.clone().unwrap_or_else(|| name.span()),
                    format!("{what} is ended by the harness, so its guest_exec needs a `heal` command"),
                ),
                (None, false) => {}
            }
            FaultKind::GuestExec {
                guest: g.guest.get_ref().clone(),
                command: g.command.get_ref().clone(),
                heal: g.heal.as_ref().map(|h| h.get_ref().clone()),
                timeout: cx.positive(g.timeout.as_ref(), DEFAULT_TIMEOUT),
            }
        }
        Some("service") => {
            let s = f.service.as_ref().expect("given").get_ref();
            lab.guest_names.refer(cx, &s.guest);
            let action = match s.action.get_ref().as_str() {
                "stop" => ServiceAction::Stop,
                "kill" => ServiceAction::Kill,
                "restart" => ServiceAction::Restart,
                "reboot" => ServiceAction::Reboot,
                other => {
                    cx.at(
                        &s.action,
                        format!(
                            "action must be \"stop\", \"kill\", \"restart\" or \"reboot\", not {other:?}"
                        ),
                    );
                    ServiceAction::Stop
                }
            };
            match (&s.unit, action) {
                (Some(u), ServiceAction::Reboot) => {
                    cx.at(u, "a reboot takes no unit: it restarts the whole guest")
                }
                (None, ServiceAction::Reboot) => {}
                (None, _) => cx.at(
                    &s.action,
                    format!("a {} needs the `unit` to act on", s.action.get_ref()),
                ),
                (Some(u), _) => {
                    if !is_unit_name(u.get_ref()) {
                        cx.at(
                            u,
                            format!(
                                "{:?} is not a systemd unit name (e.g. nfs-server.service)",
                                u.get_ref()
                            ),
                        );
                    }
                }
            }
            if action.instant() && *end != End::Never {
                if let Some(span) = end_span.clone() {
                    cx.err(
                        span,
                        format!("a {} is over at once: it takes no `end`", s.action.get_ref()),
                    );
                }
            }
            FaultKind::Service {
                guest: s.guest.get_ref().clone(),
                unit: s.unit.as_ref().map(|u| u.get_ref().clone()),
                action,
            }
        }
        Some("disk_error") => {
            harness_heals(cx, "disk_error");
            let d = f.disk_error.as_ref().expect("given");
            let on = disk_target(cx, lab, d, &d.get_ref().disk, &d.get_ref().shelf, "disk_error");
            let rate = d
                .get_ref()
                .rate
                .as_ref()
                .and_then(|r| ErrorRate::parse(r.get_ref()).map_err(|m| cx.at(r, m)).ok());
            FaultKind::DiskError { on, rate }
        }
        Some("disk_delay") => {
            let d = f.disk_delay.as_ref().expect("given");
            let on = disk_target(cx, lab, d, &d.get_ref().disk, &d.get_ref().shelf, "disk_delay");
            let (r, w) = (&d.get_ref().read, &d.get_ref().write);
            if r.is_none() && w.is_none() {
                cx.at(
                    d,
                    "a disk_delay needs `read`, `write` or both (e.g. read = \"200ms\")",
                );
            }
            let read = r.as_ref().map(|r| cx.positive(Some(r), Duration::ZERO));
            let write = w.as_ref().map(|w| cx.positive(Some(w), Duration::ZERO));
            // nbdkit's delay filter is set when the disk's nbdkit starts (1.32 has no run-time
            // switch for it): the fault is the disk's from its start, and restarts nothing.
            const FIXED: &str = "nbdkit's delay filter is fixed when the disk is served, so a disk_delay is in place from the start of the workload to its end";
            if *start
                != (Trigger::At {
                    offset: Duration::ZERO,
                })
            {
                cx.at(&f.start, format!("{FIXED}: start it with at = \"0s\""));
            }
            if let Some(e) = &f.end {
                if *end != End::Never {
                    cx.at(e, format!("{FIXED}: it takes no end"));
                }
            }
            FaultKind::DiskDelay { on, read, write }
        }
        Some("disk_pause") => {
            harness_heals(cx, "disk_pause");
            let d = f.disk_pause.as_ref().expect("given");
            let on = disk_target(cx, lab, d, &d.get_ref().disk, &d.get_ref().shelf, "disk_pause");
            if *end == End::Never && heal_step.is_none() {
                cx.err(
                    end_span.clone().unwrap_or_else(|| name.span()),
                    format!("{what} stalls its disks until the harness ends it: give it end.duration or end.until_step (the requests it holds complete, and prove it, only then)"),
                );
            }
            FaultKind::DiskPause { on }
        }
        Some(_) => {
            harness_heals(cx, "power_cut");
            let p = f.power_cut.as_ref().expect("given");
            let on = disk_target(cx, lab, p, &p.get_ref().disk, &p.get_ref().shelf, "power_cut");
            let hold = match &p.get_ref().hold {
                None => Duration::ZERO,
                Some(h) => match cx.duration(h) {
                    Some(d) if d.subsec_millis() != 0 || d > Duration::from_secs(3600) => {
                        cx.at(
                            h,
                            format!(
                                "hold {:?} is QEMU's reconnect-delay, whole seconds from 0s to 1h",
                                h.get_ref()
                            ),
                        );
                        Duration::ZERO
                    }
                    Some(d) => d,
                    None => Duration::ZERO,
                },
            };
            FaultKind::PowerCut { on, hold }
        }
        None => FaultKind::DiskError {
            on: DiskTarget::Disk(String::new()),
            rate: None,
        },
    }
}

/// The `disk` or `shelf` a disk fault names (exactly one, and it exists).
fn disk_target<T>(
    cx: &mut Cx,
    lab: &Lab,
    table: &S<T>,
    disk: &Option<Str>,
    shelf: &Option<Str>,
    kind: &str,
) -> DiskTarget {
    let which = cx.one_of(
        table.span(),
        &format!("`{kind}`"),
        &[
            ("disk", disk.as_ref().map(|v| v.span())),
            ("shelf", shelf.as_ref().map(|v| v.span())),
        ],
    );
    match (which, disk, shelf) {
        (Some("disk"), Some(d), _) => {
            lab.disk_names.refer(cx, d);
            DiskTarget::Disk(d.get_ref().clone())
        }
        (Some(_), _, Some(s)) => {
            lab.shelf_names.refer(cx, s);
            DiskTarget::Shelf(s.get_ref().clone())
        }
        _ => DiskTarget::Disk(String::new()),
    }
}

/// The disks a target acts on (what exists of them).
fn target_disks<'a>(lab: &'a Lab, on: &DiskTarget) -> Vec<&'a str> {
    match on {
        DiskTarget::Disk(d) => lab.disk(d).map(|d| d.name.as_str()).into_iter().collect(),
        DiskTarget::Shelf(s) => lab
            .shelf_disks(s)
            .unwrap_or_default()
            .iter()
            .map(String::as_str)
            .collect(),
    }
}

/// Why two faults of one arm cannot both act on a disk, if they cannot: what they set is
/// fixed when the disk's nbdkit starts (the error filter's rate, the delay filter) or when it
/// is plugged in (QEMU's reconnect-delay), so one arm's faults of a kind agree on a disk.
pub(super) fn disk_conflict(lab: &Lab, a: &Fault, b: &Fault) -> Option<String> {
    let (Some(ta), Some(tb)) = (a.kind.disk_target(), b.kind.disk_target()) else {
        return None;
    };
    let on_a = target_disks(lab, ta);
    let shared = target_disks(lab, tb).into_iter().find(|d| on_a.contains(d))?;
    let why = match (&a.kind, &b.kind) {
        (FaultKind::DiskError { rate: ra, .. }, FaultKind::DiskError { rate: rb, .. }) if ra != rb => {
            let show = |r: &Option<ErrorRate>| r.unwrap_or(ErrorRate::EVERY).to_string();
            format!(
                "with different error rates ({} and {}): nbdkit's error-rate is fixed when the disk is served",
                show(ra),
                show(rb)
            )
        }
        (FaultKind::DiskDelay { .. }, FaultKind::DiskDelay { .. }) => {
            "each with a delay: nbdkit's delay filter has one setting, fixed when the disk is served"
                .to_string()
        }
        (FaultKind::PowerCut { hold: ha, .. }, FaultKind::PowerCut { hold: hb, .. }) if ha != hb => format!(
            "with different holds ({} and {}): QEMU's reconnect-delay is fixed when the disk is plugged in",
            crate::case::duration::format(*ha),
            crate::case::duration::format(*hb)
        ),
        _ => return None,
    };
    Some(format!(
        "faults `{}` and `{}` both act on disk `{shared}` {why}; put them in different arms",
        a.name, b.name
    ))
}

/// Whether some rule of an nft ruleset counts packets (`counter`, outside `#` comments).
fn has_counter(ruleset: &str) -> bool {
    ruleset
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default())
        .flat_map(str::split_whitespace)
        .any(|w| w == "counter")
}

/// `"FAMILY NAME"` of every `table FAMILY NAME` line of an nft ruleset.
fn nft_tables(ruleset: &str) -> Vec<String> {
    const FAMILIES: [&str; 6] = ["ip", "ip6", "inet", "arp", "bridge", "netdev"];
    let mut out = Vec::new();
    for line in ruleset.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("table") {
            continue;
        }
        let (Some(family), Some(name)) = (words.next(), words.next()) else {
            continue;
        };
        let name = name.trim_end_matches('{');
        if FAMILIES.contains(&family) && !name.is_empty() {
            let t = format!("{family} {name}");
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    out
}

fn wire_action(cx: &mut Cx, w: &RawWire, guests: &Names, on: Option<&[String]>) -> Action {
    let action = w.action.get_ref().as_str();
    let only = |cx: &mut Cx, v: &Option<Str>, key: &str, with: &str| {
        if let Some(v) = v {
            cx.at(v, format!("`{key}` only goes with action = \"{with}\""));
        }
    };
    if action != "delay" {
        only(cx, &w.delay, "delay", "delay");
        only(cx, &w.jitter, "jitter", "delay");
    }
    if action != "partition" {
        if let Some(g) = &w.groups {
            cx.at(g, "`groups` only goes with action = \"partition\"");
        }
    }
    match action {
        "drop" => Action::Drop,
        "duplicate" => Action::Duplicate,
        "delay" => {
            let delay = match &w.delay {
                Some(d) => cx.duration(d).unwrap_or_default(),
                None => {
                    cx.at(&w.action, "a delay action needs `delay` (e.g. \"200ms\")");
                    Duration::ZERO
                }
            };
            let jitter = w.jitter.as_ref().and_then(|j| cx.duration(j)).unwrap_or_default();
            if let (Some(d), true) = (&w.delay, delay.is_zero() && jitter.is_zero()) {
                cx.at(d, "a delay of 0 with no jitter does nothing");
            }
            Action::Delay { fixed: delay, jitter }
        }
        "partition" => {
            let mut groups = Vec::new();
            match &w.groups {
                None => cx.at(
                    &w.action,
                    "a partition needs `groups`, e.g. [[\"filer\"], [\"imap1\", \"imap2\"]]",
                ),
                Some(gs) => {
                    if gs.get_ref().is_empty() {
                        cx.at(gs, "`groups` needs at least one group");
                    }
                    let mut seen: Vec<String> = Vec::new();
                    for g in gs.get_ref() {
                        if g.get_ref().is_empty() {
                            cx.at(g, "a group needs at least one guest");
                        }
                        let mut members = Vec::new();
                        for m in g.get_ref() {
                            if !guests.refer(cx, m) || !on_segment(cx, m, &w.segment, on) {
                                continue;
                            }
                            if seen.contains(m.get_ref()) {
                                cx.at(m, format!("guest `{}` is in two groups", m.get_ref()));
                                continue;
                            }
                            seen.push(m.get_ref().clone());
                            members.push(m.get_ref().clone());
                        }
                        groups.push(members.into_iter().collect());
                    }
                }
            }
            Action::Partition { groups }
        }
        other => {
            cx.at(
                &w.action,
                format!("action must be \"drop\", \"delay\", \"duplicate\" or \"partition\", not {other:?}"),
            );
            Action::Drop
        }
    }
}
