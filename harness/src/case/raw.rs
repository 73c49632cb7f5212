//! The shape of a case file as written: serde with `deny_unknown_fields` everywhere, and spans
//! on every value so that validation can point at it. [`RawFile`] is one file; [`RawCase`] is
//! a case file with its includes merged in (`case::include`).

use std::fmt;
use std::marker::PhantomData;

use super::source::Spanned;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

pub(super) type S<T> = Spanned<T>;
pub(super) type Str = Spanned<String>;

/// A table whose keys are names (`[guests.filer]`, `[arms.baseline]`), kept in file order and
/// with the span of each key.
pub(super) struct Named<T>(pub Vec<(Str, T)>);

impl<T> Default for Named<T> {
    fn default() -> Self {
        Named(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Named<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Named<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table of names")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Named<T>, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = map.next_key::<Str>()? {
                    out.push((k, map.next_value::<T>()?));
                }
                Ok(Named(out))
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

/// One file as written: a case file or a file it includes. Every key may be left to another
/// file; what a case must have is checked once they are merged.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    pub name: Option<Str>,
    pub summary: Option<Str>,
    pub healthy_arm: Option<Str>,
    #[serde(default)]
    pub include: Vec<Str>,
    pub guests: Option<Named<RawGuest>>,
    pub segments: Option<Named<RawSegment>>,
    #[serde(default)]
    pub disks: Named<RawDisk>,
    #[serde(default)]
    pub shelves: Named<RawShelf>,
    #[serde(default)]
    pub steps: Vec<RawStep>,
    #[serde(default)]
    pub faults: Named<RawFault>,
    #[serde(default)]
    pub evidence: RawEvidence,
    pub checks: Option<Named<RawCheck>>,
    #[serde(default)]
    pub measures: Named<RawMeasure>,
    pub arms: Option<Named<RawArm>>,
    pub sweep: Option<S<RawSweep>>,
}

/// A case: its file and the files it includes, merged.
pub(super) struct RawCase {
    pub name: Str,
    pub summary: Str,
    pub healthy_arm: Option<Str>,
    // Not `Spanned<Named<…>>`: toml_edit cannot give spanned keys inside a spanned header
    // table, so an empty table is found by the resolver's `key_offset`.
    pub guests: Named<RawGuest>,
    pub segments: Option<Named<RawSegment>>,
    pub disks: Named<RawDisk>,
    pub shelves: Named<RawShelf>,
    pub steps: Vec<RawStep>,
    pub faults: Named<RawFault>,
    pub evidence: RawEvidence,
    pub checks: Named<RawCheck>,
    pub measures: Named<RawMeasure>,
    pub arms: Named<RawArm>,
    pub sweep: Option<S<RawSweep>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGuest {
    pub image: Str,
    pub role: Option<Str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSegment {
    pub guests: S<Vec<Str>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDisk {
    pub guest: Str,
    pub size: Str,
    #[serde(default)]
    pub nbdkit_filters: Vec<Str>,
    pub write_cache: Option<Str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawShelf {
    pub disks: S<Vec<Str>>,
    pub write_cache: Option<Str>,
}

// ---- steps ---------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStep {
    pub name: Str,
    pub guest: Option<Str>,
    pub background: Option<S<bool>>,
    pub exec: Option<S<RawExec>>,
    pub lock_probe: Option<S<RawLockProbe>>,
    pub imap: Option<S<RawSession>>,
    pub pop3: Option<S<RawSession>>,
    pub wait: Option<S<RawWait>>,
    pub wait_for_log: Option<S<RawWaitForLog>>,
    pub capture: Option<S<RawCapture>>,
    pub population: Option<S<RawPopulation>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExec {
    pub command: Str,
    pub timeout: Option<Str>,
    pub expect_exit: Option<S<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLockProbe {
    pub path: Str,
    pub mode: Str,
    pub seconds: S<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSession {
    pub server: Option<Str>,
    pub port: Option<S<i64>>,
    pub user: Str,
    pub password: Str,
    #[serde(default)]
    pub commands: Vec<Str>,
    pub close: Option<Str>,
    pub stop_after_lines: Option<S<i64>>,
    pub stop_after: Option<Str>,
    pub stop_on_log: Option<S<RawLogLine>>,
    pub hold: Option<Str>,
    pub timeout: Option<Str>,
    pub connections: Option<S<i64>>,
}

impl RawSession {
    pub fn end(&self) -> RawEndRef<'_> {
        RawEndRef {
            close: self.close.as_ref(),
            stop_after_lines: self.stop_after_lines.as_ref(),
            stop_after: self.stop_after.as_ref(),
            stop_on_log: self.stop_on_log.as_ref(),
            hold: self.hold.as_ref(),
        }
    }
}

/// An arm's change to how one of the case's mail sessions ends.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSessionEnd {
    pub close: Option<Str>,
    pub stop_after_lines: Option<S<i64>>,
    pub stop_after: Option<Str>,
    pub stop_on_log: Option<S<RawLogLine>>,
    pub hold: Option<Str>,
}

impl RawSessionEnd {
    pub fn end(&self) -> RawEndRef<'_> {
        RawEndRef {
            close: self.close.as_ref(),
            stop_after_lines: self.stop_after_lines.as_ref(),
            stop_after: self.stop_after.as_ref(),
            stop_on_log: self.stop_on_log.as_ref(),
            hold: self.hold.as_ref(),
        }
    }
}

/// The keys saying how a session ends, wherever they were written.
pub(super) struct RawEndRef<'a> {
    pub close: Option<&'a Str>,
    pub stop_after_lines: Option<&'a S<i64>>,
    pub stop_after: Option<&'a Str>,
    pub stop_on_log: Option<&'a S<RawLogLine>>,
    pub hold: Option<&'a Str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWait {
    pub duration: Str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCapture {
    pub command: Option<Str>,
    pub files: Option<S<Vec<Str>>>,
    pub timeout: Option<Str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPopulation {
    pub protocol: Str,
    pub server: Option<Str>,
    pub port: Option<S<i64>>,
    pub user: Str,
    pub password: Str,
    pub users: S<i64>,
    #[serde(default)]
    pub commands: Vec<Str>,
    pub arrivals: Option<Str>,
    pub attempt_timeout: Option<Str>,
    pub close: Option<Str>,
    pub retry: Option<S<RawRetry>>,
    pub duration: Str,
    pub repeat_after: Option<Str>,
    pub hold: Option<Str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetry {
    pub policy: Str,
    pub delay: Option<Str>,
    pub max_delay: Option<Str>,
    pub jitter: Option<S<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWaitForLog {
    pub file: Str,
    pub pattern: Str,
    pub timeout: Option<Str>,
}

// ---- frame matches (wire faults, on_frame triggers, frames checks) --------------------------

/// The match keys, by reference, whichever table they were written in.
pub(super) struct RawMatch<'a> {
    pub from: Option<&'a Str>,
    pub to: Option<&'a Str>,
    pub ethertype: Option<&'a S<toml::Value>>,
    pub ip_proto: Option<&'a S<toml::Value>>,
    pub src_ip: Option<&'a Str>,
    pub dst_ip: Option<&'a Str>,
    pub src_port: Option<&'a S<i64>>,
    pub dst_port: Option<&'a S<i64>>,
    pub tcp_flags: Option<&'a S<toml::Value>>,
    pub rpc_program: Option<&'a S<toml::Value>>,
    pub rpc_version: Option<&'a S<i64>>,
    pub rpc_procedure: Option<&'a S<toml::Value>>,
    pub rpc_kind: Option<&'a Str>,
    pub nlm_reclaim: Option<&'a S<bool>>,
    pub nlm_stat: Option<&'a S<toml::Value>>,
    pub payload_contains: Option<&'a Str>,
}

/// A table with `segment`, the match keys, and `$extra` fields: serde's `flatten` would lose
/// both `deny_unknown_fields` and the spans.
macro_rules! frame_match_table {
    ($name:ident { $($field:ident : $ty:ty),* $(,)? }) => {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(super) struct $name {
            pub segment: Str,
            pub from: Option<Str>,
            pub to: Option<Str>,
            pub ethertype: Option<S<toml::Value>>,
            pub ip_proto: Option<S<toml::Value>>,
            pub src_ip: Option<Str>,
            pub dst_ip: Option<Str>,
            pub src_port: Option<S<i64>>,
            pub dst_port: Option<S<i64>>,
            pub tcp_flags: Option<S<toml::Value>>,
            pub rpc_program: Option<S<toml::Value>>,
            pub rpc_version: Option<S<i64>>,
            pub rpc_procedure: Option<S<toml::Value>>,
            pub rpc_kind: Option<Str>,
            pub nlm_reclaim: Option<S<bool>>,
            pub nlm_stat: Option<S<toml::Value>>,
            pub payload_contains: Option<Str>,
            $(pub $field: $ty,)*
        }

        impl $name {
            pub fn matcher(&self) -> RawMatch<'_> {
                RawMatch {
                    from: self.from.as_ref(),
                    to: self.to.as_ref(),
                    ethertype: self.ethertype.as_ref(),
                    ip_proto: self.ip_proto.as_ref(),
                    src_ip: self.src_ip.as_ref(),
                    dst_ip: self.dst_ip.as_ref(),
                    src_port: self.src_port.as_ref(),
                    dst_port: self.dst_port.as_ref(),
                    tcp_flags: self.tcp_flags.as_ref(),
                    rpc_program: self.rpc_program.as_ref(),
                    rpc_version: self.rpc_version.as_ref(),
                    rpc_procedure: self.rpc_procedure.as_ref(),
                    rpc_kind: self.rpc_kind.as_ref(),
                    nlm_reclaim: self.nlm_reclaim.as_ref(),
                    nlm_stat: self.nlm_stat.as_ref(),
                    payload_contains: self.payload_contains.as_ref(),
                }
            }
        }
    };
}

frame_match_table!(RawWire {
    action: Str,
    delay: Option<Str>,
    jitter: Option<Str>,
    groups: Option<S<Vec<S<Vec<Str>>>>>,
});
frame_match_table!(RawOnFrame {});
frame_match_table!(RawFrames {
    count_at_least: Option<S<i64>>,
    count_equals: Option<S<i64>>,
    during: Option<Str>,
    delivered: Option<S<bool>>,
});

// ---- faults --------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFault {
    pub start: S<RawStart>,
    pub end: Option<S<RawEnd>>,
    pub wire: Option<S<RawWire>>,
    pub guest_nft: Option<S<RawNft>>,
    pub guest_exec: Option<S<RawGuestExec>>,
    pub service: Option<S<RawService>>,
    pub disk_error: Option<S<RawDiskError>>,
    pub disk_delay: Option<S<RawDiskDelay>>,
    pub disk_pause: Option<S<RawDiskPause>>,
    pub power_cut: Option<S<RawPowerCut>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStart {
    pub at: Option<Str>,
    pub after_step: Option<Str>,
    pub on_log: Option<S<RawLogLine>>,
    pub on_frame: Option<S<RawOnFrame>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLogLine {
    pub guest: Str,
    pub file: Str,
    pub pattern: Str,
}

/// `end = "never"`, or a table with one of the end keys.
pub(super) enum RawEnd {
    Never,
    Table(RawEndTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEndTable {
    pub duration: Option<Str>,
    pub until_step: Option<Str>,
    pub heal_step: Option<Str>,
}

impl<'de> Deserialize<'de> for RawEnd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawEnd;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"never\" or a table with one of duration, until_step, heal_step")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawEnd, E> {
                if v == "never" {
                    Ok(RawEnd::Never)
                } else {
                    Err(E::invalid_value(de::Unexpected::Str(v), &self))
                }
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawEnd, A::Error> {
                RawEndTable::deserialize(de::value::MapAccessDeserializer::new(map)).map(RawEnd::Table)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNft {
    pub guest: Str,
    pub ruleset: Str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGuestExec {
    pub guest: Str,
    pub command: Str,
    pub heal: Option<Str>,
    pub timeout: Option<Str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    pub guest: Str,
    pub unit: Option<Str>,
    pub action: Str,
}

// Disk faults act on one `disk` or on every disk of a `shelf`.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDiskError {
    pub disk: Option<Str>,
    pub shelf: Option<Str>,
    pub rate: Option<Str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDiskDelay {
    pub disk: Option<Str>,
    pub shelf: Option<Str>,
    pub read: Option<Str>,
    pub write: Option<Str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDiskPause {
    pub disk: Option<Str>,
    pub shelf: Option<Str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPowerCut {
    pub disk: Option<Str>,
    pub shelf: Option<Str>,
    pub hold: Option<Str>,
}

// ---- evidence ------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEvidence {
    #[serde(default)]
    pub before: Vec<RawEvidenceItem>,
    #[serde(default)]
    pub after: Vec<RawEvidenceItem>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEvidenceItem {
    pub name: Str,
    pub guest: Str,
    pub command: Option<Str>,
    pub file: Option<Str>,
    pub timeout: Option<Str>,
}

// ---- measures ------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMeasure {
    pub what: Str,
    pub step_output: Option<Str>,
    pub duration: Option<Str>,
    pub unit: Option<Str>,
}

// ---- checks --------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCheck {
    #[serde(default)]
    pub requires: Vec<Str>,
    pub step_ok: Option<S<RawStepRef>>,
    pub step_failed: Option<S<RawStepFailed>>,
    pub step_output: Option<S<RawStepOutput>>,
    pub exec_output: Option<S<RawExecOutput>>,
    pub duration_at_most: Option<S<RawDurationAtMost>>,
    pub log_absent: Option<S<RawLogAbsent>>,
    pub frames: Option<S<RawFrames>>,
    pub faster: Option<S<RawFaster>>,
    pub success_rate: Option<S<RawSuccessRate>>,
    pub drains_within: Option<S<RawDrainsWithin>>,
    pub series_peak: Option<S<RawSeriesPeak>>,
    pub fail_when: Option<S<RawReason>>,
}

/// `success_rate`: the share of a population's attempts that succeeded in a window of its run.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSuccessRate {
    pub population: Str,
    pub at_least: S<toml::Value>,
    pub from: Option<Str>,
    pub to: Option<Str>,
}

/// `drains_within`: a population's failure rate falls under a bound and stays there.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDrainsWithin {
    pub population: Str,
    pub within: Str,
    pub failure_rate_below: S<toml::Value>,
    pub window: Option<Str>,
}

/// `series_peak`: a sampled series' highest value, in a step's run or the whole workload.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSeriesPeak {
    pub series: Str,
    pub at_most: S<toml::Value>,
    pub during: Option<Str>,
}

/// `step_failed`: the step, and what its failure must look like (each key optional).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStepFailed {
    pub step: Str,
    pub exit: Option<S<i64>>,
    pub output_equals: Option<Str>,
    pub output_contains: Option<Str>,
    pub output_matches: Option<Str>,
    pub stderr_equals: Option<Str>,
    pub stderr_contains: Option<Str>,
    pub stderr_matches: Option<Str>,
}

/// A check's `fail_when`: what its failure must look like (at least one key).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReason {
    pub exit: Option<S<i64>>,
    pub output_equals: Option<Str>,
    pub output_contains: Option<Str>,
    pub output_matches: Option<Str>,
    pub stderr_equals: Option<Str>,
    pub stderr_contains: Option<Str>,
    pub stderr_matches: Option<Str>,
}

impl RawStepFailed {
    /// The reason keys, as a `fail_when` would give them.
    pub fn reason(&self) -> RawReasonRef<'_> {
        RawReasonRef {
            exit: self.exit.as_ref(),
            output: [&self.output_equals, &self.output_contains, &self.output_matches],
            stderr: [&self.stderr_equals, &self.stderr_contains, &self.stderr_matches],
        }
    }
}

impl RawReason {
    pub fn reason(&self) -> RawReasonRef<'_> {
        RawReasonRef {
            exit: self.exit.as_ref(),
            output: [&self.output_equals, &self.output_contains, &self.output_matches],
            stderr: [&self.stderr_equals, &self.stderr_contains, &self.stderr_matches],
        }
    }
}

/// The reason keys of `step_failed` or `fail_when`: `exit`, then `_equals`, `_contains`,
/// `_matches` for the output and for stderr.
pub(super) struct RawReasonRef<'a> {
    pub exit: Option<&'a S<i64>>,
    pub output: [&'a Option<Str>; 3],
    pub stderr: [&'a Option<Str>; 3],
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFaster {
    pub step: Str,
    pub than: Str,
    pub factor: S<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStepRef {
    pub step: Str,
}

/// `equals`, `contains`, `matches`: exactly one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStepOutput {
    pub step: Str,
    pub equals: Option<Str>,
    pub contains: Option<Str>,
    pub matches: Option<Str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExecOutput {
    pub evidence: Option<Str>,
    pub guest: Option<Str>,
    pub command: Option<Str>,
    pub timeout: Option<Str>,
    pub equals: Option<Str>,
    pub contains: Option<Str>,
    pub matches: Option<Str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDurationAtMost {
    pub step: Str,
    pub limit: Str,
    pub since_end_of: Option<Str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLogAbsent {
    pub evidence: Option<Str>,
    pub guest: Option<Str>,
    pub file: Option<Str>,
    pub pattern: Str,
    pub control: Option<Str>,
}

// ---- arms ----------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawArm {
    #[serde(default)]
    pub faults: Vec<Str>,
    pub expect: Str,
    pub failing_checks: Option<S<Vec<Str>>>,
    #[serde(default)]
    pub skip_checks: Vec<Str>,
    #[serde(default)]
    pub report_only: Vec<Str>,
    pub finding: Option<Str>,
    pub story: Option<Str>,
    #[serde(default)]
    pub setup: RawSetup,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSetup {
    #[serde(default)]
    pub skip_steps: Vec<Str>,
    #[serde(default)]
    pub images: Named<Str>,
    #[serde(default)]
    pub sessions: Named<S<RawSessionEnd>>,
    #[serde(default)]
    pub populations: Named<S<RawPopulationChange>>,
}

/// An arm's change to one of the case's populations: the keys it gives replace the step's.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPopulationChange {
    pub users: Option<S<i64>>,
    pub arrivals: Option<Str>,
    pub attempt_timeout: Option<Str>,
    pub retry: Option<S<RawRetry>>,
    pub repeat_after: Option<Str>,
}

// ---- the sweep -----------------------------------------------------------------------------

/// `[sweep]`: an arm run at several population sizes, measured against the cascade model.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSweep {
    pub arm: Str,
    pub populations: S<Vec<Str>>,
    pub scale: S<Vec<S<toml::Value>>>,
    pub damaged: Str,
    pub model: S<RawSweepModel>,
}

/// `[sweep.model]`: the model's inputs the case states.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSweepModel {
    pub slots: S<i64>,
    pub cpus: Option<S<toml::Value>>,
    pub login: Str,
    pub rebuild: Str,
    pub abandoned_work: Str,
    pub notice: Option<Str>,
    pub seed: Option<S<i64>>,
}
