//! The faults of an arm (Jepsen's nemesis): each waits for its trigger (`at`, `after_step`,
//! `on_log` by polling the guest file past its size at the start, `on_frame` by an `Observe`
//! switch rule), is started, and is ended by the harness (`duration`, `until_step`) or by a
//! step (`heal_step`). Its own counters — nft packets, a disk's requests — are read when it
//! is healed, or after the workload for one that stays on. Disk faults are driven by
//! [`crate::run::disks`].
//!
//! Invariants: this module gathers a fault's proof data ([`FaultRun`]) and never decides
//! whether the fault fired: that is [`crate::run::proof`]'s (pure). A fault the harness ends
//! is healed before the workload returns; a fault whose trigger never happened is left with
//! the trigger it waited for.

use std::time::Duration;

use crate::case::{End, Fault, FaultKind, ServiceAction, Trigger};
use crate::results::EventKind;
use crate::run::context::{watch_log, Ctx, State, GUEST_DIR};
use crate::run::record::{snippet, FaultRun, WireRun};
use crate::wire::rules::{Action, Rule, RuleStats};

/// One fault from its trigger to its end; what was gathered about it.
pub(crate) async fn run(ctx: &Ctx<'_>, st: &State, f: &Fault, begun: Option<FaultRun>) -> FaultRun {
    let mut run = match begun {
        Some(r) => r,
        None => {
            let fired = tokio::select! {
                why = trigger(ctx, st, f) => Some(why),
                _ = st.wait_done() => None,
            };
            match fired {
                Some(Ok(why)) => start(ctx, f, Some(why)).await,
                // Not watched is not fired: from an unknown offset a line written before
                // the workload could be taken for the trigger.
                Some(Err(why)) => {
                    return FaultRun {
                        name: f.name.clone(),
                        evidence: vec![format!(
                            "its trigger ({}) could not be watched: {why}",
                            describe_trigger(&f.start)
                        )],
                        ..FaultRun::default()
                    }
                }
                None => {
                    return FaultRun {
                        name: f.name.clone(),
                        evidence: vec![format!(
                            "its trigger ({}) did not happen before the workload ended",
                            describe_trigger(&f.start)
                        )],
                        ..FaultRun::default()
                    }
                }
            }
        }
    };
    if !run.started_ok && run.wire.is_none() {
        return run;
    }
    match &f.end {
        End::Never => {}
        End::Duration { duration } => {
            tokio::select! {
                _ = tokio::time::sleep(*duration) => {}
                _ = st.wait_done() => run.evidence.push("healed early: the workload ended first".into()),
            }
            heal(ctx, f, &mut run).await;
        }
        End::UntilStep { step } => {
            tokio::select! {
                _ = st.wait_step_end(step) => {}
                _ = st.wait_done() => {}
            }
            heal(ctx, f, &mut run).await;
        }
        End::HealStep { step } => {
            let t = st.wait_step_end(step).await;
            run.ended_s = Some(t);
            ctx.history.event(
                EventKind::FaultEnd,
                &f.name,
                f.kind.guest(),
                None,
                Some(format!("healed by step {step}")),
            );
        }
    }
    run
}

/// Wait for the fault's trigger; returns a sentence saying what happened, or why the trigger
/// cannot be watched.
async fn trigger(ctx: &Ctx<'_>, st: &State, f: &Fault) -> Result<String, String> {
    let why = match &f.start {
        Trigger::At { offset } => {
            tokio::time::sleep(offset.saturating_sub(Duration::from_secs_f64(ctx.history.t()))).await;
            format!("at t={:.1} s as planned", offset.as_secs_f64())
        }
        Trigger::AfterStep { step } => {
            let t = st.wait_step_end(step).await;
            format!("after step {step} ended at t={t:.1} s")
        }
        Trigger::OnLog { guest, file, pattern } => {
            let line = watch_log(ctx, st, guest, file, pattern).await?;
            format!("on {guest}:{file} line: {}", snippet(&line, 160))
        }
        Trigger::OnFrame { segment, matcher } => {
            let id = ctx
                .switch
                .add_rule(Rule {
                    name: format!("trigger:{}", f.name),
                    matcher: matcher.clone(),
                    action: Action::Observe,
                })
                .await;
            loop {
                let stats = ctx.switch.stats().await;
                if let Some(first) = stats
                    .rules
                    .iter()
                    .find(|r| r.id == id && r.matched > 0)
                    .and_then(|r| r.frames.first().copied())
                {
                    ctx.switch.remove_rule(id).await;
                    break format!("on {segment}.pcapng frame {first}");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    Ok(why)
}

fn describe_trigger(t: &Trigger) -> String {
    match t {
        Trigger::At { offset } => format!("at {:.1} s", offset.as_secs_f64()),
        Trigger::AfterStep { step } => format!("after step {step}"),
        Trigger::OnLog { guest, file, pattern } => {
            format!("a line matching \"{}\" in {guest}:{file}", pattern.as_str())
        }
        Trigger::OnFrame { segment, matcher } => {
            format!("{} on {segment}", crate::run::checks::describe_match(matcher))
        }
    }
}

/// Turn the fault on.
pub(crate) async fn start(ctx: &Ctx<'_>, f: &Fault, why: Option<String>) -> FaultRun {
    let mut run = FaultRun {
        name: f.name.clone(),
        ..FaultRun::default()
    };
    let t = ctx.history.t();
    run.started_s = Some(t);
    let limit = ctx.accel.scale(Duration::from_secs(30));
    let (ok, said) = match &f.kind {
        FaultKind::Wire { segment, .. } => {
            let rule = crate::case::wire_rule(f).expect("a wire fault has a rule");
            // The switch's own word for what the rule does to a frame, for its proof.
            let verb = rule.action.verb();
            run.wire = Some(WireRun {
                rule: ctx.switch.add_rule(rule).await,
                verb,
                stats: None,
            });
            (true, format!("rule added on segment {segment}"))
        }
        FaultKind::GuestNft { guest, ruleset, .. } => {
            let path = format!("{GUEST_DIR}/fault-{}.nft", f.name);
            match ctx.guests.write_file(guest, &path, ruleset.as_bytes()).await {
                Err(e) => (false, format!("could not put the ruleset in {guest}: {e}")),
                Ok(()) => exec_said(ctx, guest, &format!("nft -f {path}"), limit).await,
            }
        }
        FaultKind::GuestExec {
            guest,
            command,
            timeout,
            ..
        } => exec_said(ctx, guest, command, ctx.accel.scale(*timeout)).await,
        FaultKind::Service { guest, unit, action } => {
            let unit = unit.as_deref().unwrap_or_default();
            let script = match action {
                ServiceAction::Stop => format!(
                    "systemctl stop {unit}; rc=$?; echo \"now $(systemctl is-active {unit})\"; \
                     [ $rc = 0 ] && ! systemctl is-active --quiet {unit}"
                ),
                ServiceAction::Kill => format!(
                    "systemctl kill -s KILL {unit}; rc=$?; sleep 1; \
                     echo \"now $(systemctl is-active {unit})\"; [ $rc = 0 ]"
                ),
                ServiceAction::Restart => {
                    format!("systemctl restart {unit} && echo \"now $(systemctl is-active {unit})\"")
                }
                ServiceAction::Reboot => String::new(),
            };
            if *action == ServiceAction::Reboot {
                (
                    false,
                    "rebooting a guest is not supported by the runner yet".to_string(),
                )
            } else {
                exec_said(ctx, guest, &script, limit).await
            }
        }
        FaultKind::DiskError { .. }
        | FaultKind::DiskDelay { .. }
        | FaultKind::DiskPause { .. }
        | FaultKind::PowerCut { .. } => crate::run::disks::start(ctx, f, &mut run).await,
    };
    run.started_ok = ok;
    let mut sentence = String::new();
    if let Some(w) = why {
        sentence.push_str(&format!("started {w}; "));
    } else {
        sentence.push_str("in place before the first step; ");
    }
    sentence.push_str(&said);
    run.evidence.push(sentence);
    ctx.history.event(
        EventKind::FaultStart,
        &f.name,
        f.kind.guest(),
        Some(ok),
        Some(said),
    );
    if f.kind.instant_end() {
        run.ended_s = Some(ctx.history.t());
    }
    run
}

/// Turn a fault off (a fault the harness ends).
async fn heal(ctx: &Ctx<'_>, f: &Fault, run: &mut FaultRun) {
    let limit = ctx.accel.scale(Duration::from_secs(30));
    let said = match &f.kind {
        FaultKind::Wire { .. } => {
            if let Some(w) = &run.wire {
                ctx.switch.remove_rule(w.rule).await;
            }
            "rule removed".to_string()
        }
        FaultKind::GuestNft { guest, tables, .. } => {
            counters(ctx, f, run).await;
            let script = tables
                .iter()
                .map(|t| format!("nft delete table {t}"))
                .collect::<Vec<_>>()
                .join(" && ");
            exec_said(ctx, guest, &script, limit).await.1
        }
        FaultKind::GuestExec {
            guest,
            heal: Some(h),
            timeout,
            ..
        } => exec_said(ctx, guest, h, ctx.accel.scale(*timeout)).await.1,
        FaultKind::Service {
            guest, unit: Some(u), ..
        } => {
            exec_said(ctx, guest, &format!("systemctl start {u}"), limit)
                .await
                .1
        }
        FaultKind::DiskError { .. }
        | FaultKind::DiskDelay { .. }
        | FaultKind::DiskPause { .. }
        | FaultKind::PowerCut { .. } => crate::run::disks::heal(ctx, f, run).await,
        _ => "nothing to heal".to_string(),
    };
    run.ended_s = Some(ctx.history.t());
    run.evidence
        .push(format!("healed at t={:.1} s: {said}", ctx.history.t()));
    ctx.history
        .event(EventKind::FaultEnd, &f.name, f.kind.guest(), None, Some(said));
}

/// What a fault's own counters say it did (nft rules' packets, a disk's requests),
/// read once: when it is healed, or after the workload for one that stays on.
pub(crate) async fn counters(ctx: &Ctx<'_>, f: &Fault, run: &mut FaultRun) {
    if f.kind.disk_target().is_some() {
        crate::run::disks::counters(ctx, f, run).await;
        return;
    }
    let FaultKind::GuestNft { guest, tables, .. } = &f.kind else {
        return;
    };
    if run.nft_packets.is_some() || !run.started_ok {
        return;
    }
    let script = tables
        .iter()
        .map(|t| format!("nft list table {t}"))
        .collect::<Vec<_>>()
        .join("; ");
    // Without a count the fault did not provably fire (run::proof): say why there is none.
    match ctx
        .guests
        .exec(guest, &script, ctx.accel.scale(Duration::from_secs(10)))
        .await
    {
        Ok(out) if out.ok() && !nft_packet_counts(&out.stdout).is_empty() => {
            let counters = nft_packet_counts(&out.stdout);
            let total: u64 = counters.iter().sum();
            run.nft_packets = Some(total);
            run.evidence.push(format!(
                "{guest}'s nft counters: {total} packets ({})",
                counters.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
            ));
        }
        Ok(out) => run.evidence.push(format!(
            "{guest}'s nft counters could not be read: `{}` exited {} with no `counter packets N` in its output",
            snippet(&script, 120),
            out.exit_code
        )),
        Err(e) => run.evidence.push(format!(
            "{guest}'s nft counters could not be read: {}",
            snippet(&e.to_string(), 160)
        )),
    }
}

/// Each wire fault's rule counts from the switch's statistics, read once the lab has stopped
/// (so every frame the rule acted on is counted).
pub(crate) fn rule_counts(runs: &mut [FaultRun], rules: &[RuleStats]) {
    for w in runs.iter_mut().filter_map(|r| r.wire.as_mut()) {
        w.stats = rules.iter().find(|r| r.id == w.rule).cloned();
    }
}

/// The `counter packets N` values of an `nft list` output.
pub fn nft_packet_counts(listing: &str) -> Vec<u64> {
    let words: Vec<&str> = listing.split_whitespace().collect();
    words
        .windows(3)
        .filter(|w| w[0] == "counter" && w[1] == "packets")
        .filter_map(|w| w[2].parse().ok())
        .collect()
}

/// Run a fault's command; (it exited 0, a clause saying how it went).
async fn exec_said(ctx: &Ctx<'_>, guest: &str, script: &str, limit: Duration) -> (bool, String) {
    match ctx.guests.exec(guest, script, limit).await {
        Ok(o) => {
            let out = format!("{} {}", o.stdout.trim(), o.stderr.trim());
            let out = snippet(out.trim(), 160);
            let tail = if out.is_empty() {
                String::new()
            } else {
                format!(" ({out})")
            };
            (
                o.ok(),
                format!(
                    "`{}` on {guest} exited {}{tail}",
                    snippet(script, 120),
                    o.exit_code
                ),
            )
        }
        Err(e) => (false, format!("`{}` on {guest}: {e}", snippet(script, 120))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nft_counters_are_read() {
        let listing = "table inet x {\n chain in {\n udp dport 4045 counter packets 3 bytes 180 drop\n \
                       counter packets 0 bytes 0\n }\n}\n";
        assert_eq!(nft_packet_counts(listing), vec![3, 0]);
    }
}
