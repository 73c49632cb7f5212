//! Cases: one TOML file per scenario in `cases/`, parsed and validated into a [`Case`] plan —
//! guests, segments, disks, workload steps, faults with their triggers, evidence, checks and
//! arms. The field-by-field reference is docs/cases.md.
//!
//! A case file may `include` files holding parts several cases share (`include`).
//!
//! Pure apart from reading the case file and its includes: no process is started, no image is
//! looked up.
//!
//! Architecture invariant: every rejected case produces exactly one error, `file:line:column:
//! message`, at the value (or key) that is wrong — for a reference, the referring value — in
//! the file that holds it. Shape errors (TOML syntax, unknown keys, wrong types) come first, as
//! the TOML reader meets them; then the meaning error that comes first in the files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::disks::{ErrorRate, WriteCache};
use crate::span::PosError;
use crate::wire::rules::{Action, Match, Rule};

pub mod duration;
mod include;
pub mod pattern;
mod raw;
mod resolve;
mod source;
pub mod verdict;

pub use pattern::Pattern;
pub use verdict::{
    arm_outcome, measured_outcome, ArmExpectation, ArmOutcome, CheckResult, FaultProof, Verdict,
};

/// The names guests can have: those with an address in the images' `/etc/hosts`.
pub const LAB_GUESTS: [&str; 5] = ["filer", "imap1", "imap2", "imap3", "client"];

/// Why a case could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error(transparent)]
    At(#[from] PosError),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

impl CaseError {
    /// The exit code for a rejected case (README.md: usage or input error, nothing started).
    pub const EXIT_CODE: u8 = crate::exit::Exit::Input.code();
}

/// Read and validate the case at `path`.
pub fn load(path: &Path) -> Result<Case, CaseError> {
    let text = std::fs::read_to_string(path).map_err(|source| CaseError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Validate case text as if read from `path` (whose file stem the case's name must equal);
/// the files it includes are read relative to `path`.
pub fn parse(path: &Path, text: &str) -> Result<Case, CaseError> {
    let (sources, raw) = include::read(path, text)?;
    Ok(resolve::resolve(&sources, raw)?)
}

/// The switch rule for a wire fault (named after the fault); `None` for other kinds.
pub fn wire_rule(fault: &Fault) -> Option<Rule> {
    match &fault.kind {
        FaultKind::Wire { matcher, action, .. } => Some(Rule {
            name: fault.name.clone(),
            matcher: matcher.clone(),
            action: action.clone(),
        }),
        _ => None,
    }
}

// ---- the plan ------------------------------------------------------------------------------

/// A validated case. Lists keep the order of the file; every name in it refers to something
/// that exists (steps, guests, segments, disks, faults, checks, evidence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Case {
    pub name: String,
    pub summary: String,
    /// The file it was read from.
    #[serde(skip)]
    pub file: PathBuf,
    pub guests: Vec<Guest>,
    pub segments: Vec<Segment>,
    pub disks: Vec<Disk>,
    /// Sets of disks behind one controller: a shelf fault acts on all of them at once.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shelves: Vec<Shelf>,
    pub steps: Vec<Step>,
    pub faults: Vec<Fault>,
    pub evidence: EvidencePlan,
    pub checks: Vec<Check>,
    /// Figures every arm reports (counts, latencies) without judging them.
    pub measures: Vec<Measure>,
    pub arms: Vec<Arm>,
    /// The arm whose series are the normal range of every other arm's (the earliest-warning
    /// table): the same workload with no fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthy_arm: Option<String>,
    /// One arm run at several population sizes and measured against the cascade model
    /// (`[sweep]`); run only when asked (`faultline run --sweep`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sweep: Option<Sweep>,
}

impl Case {
    pub fn guest(&self, name: &str) -> Option<&Guest> {
        self.guests.iter().find(|g| g.name == name)
    }

    pub fn segment(&self, name: &str) -> Option<&Segment> {
        self.segments.iter().find(|s| s.name == name)
    }

    pub fn disk(&self, name: &str) -> Option<&Disk> {
        self.disks.iter().find(|d| d.name == name)
    }

    pub fn shelf(&self, name: &str) -> Option<&Shelf> {
        self.shelves.iter().find(|s| s.name == name)
    }

    /// The disks a disk fault acts on: its disk, or every disk of its shelf in the shelf's
    /// order. Empty for other faults.
    pub fn fault_disks(&self, kind: &FaultKind) -> Vec<&Disk> {
        match kind.disk_target() {
            Some(DiskTarget::Disk(d)) => self.disk(d).into_iter().collect(),
            Some(DiskTarget::Shelf(s)) => self
                .shelf(s)
                .map(|s| s.disks.iter().filter_map(|d| self.disk(d)).collect())
                .unwrap_or_default(),
            None => Vec::new(),
        }
    }

    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.name == name)
    }

    pub fn fault(&self, name: &str) -> Option<&Fault> {
        self.faults.iter().find(|f| f.name == name)
    }

    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    pub fn arm(&self, name: &str) -> Option<&Arm> {
        self.arms.iter().find(|a| a.name == name)
    }

    /// The faults an arm turns on, in the arm's order.
    pub fn faults_of<'a>(&'a self, arm: &'a Arm) -> impl Iterator<Item = &'a Fault> + 'a {
        arm.faults.iter().filter_map(|n| self.fault(n))
    }

    /// The sweep's arms, one per scale (none without a `[sweep]`): its arm with each of the
    /// sweep's populations `scale` times as large as the arm runs it, named `<arm>@x<scale>`.
    pub fn sweep_arms(&self) -> Vec<Arm> {
        let Some(sweep) = &self.sweep else {
            return Vec::new();
        };
        let Some(base) = self.arm(&sweep.arm) else {
            return Vec::new();
        };
        sweep
            .scale
            .iter()
            .map(|&scale| {
                let mut arm = base.clone();
                arm.name = sweep.arm_name(scale);
                let mut users = BTreeMap::new();
                for step in &sweep.populations {
                    let Some(StepKind::Population(p)) = self.step(step).map(|s| &s.kind) else {
                        continue;
                    };
                    let n = scaled_users(base.population(step, p).users, scale);
                    arm.setup.populations.entry(step.clone()).or_default().users = Some(n);
                    users.insert(step.clone(), n);
                }
                arm.sweep = Some(SweepSize {
                    arm: sweep.arm.clone(),
                    scale,
                    users,
                });
                arm
            })
            .collect()
    }

    /// This case with its sweep's arms in place of its own: what `faultline run --sweep`
    /// runs. `None` without a `[sweep]`.
    pub fn sweep_case(&self) -> Option<Case> {
        self.sweep.as_ref()?;
        Some(Case {
            arms: self.sweep_arms(),
            ..self.clone()
        })
    }

    /// Each check's `requires`, in the shape [`verdict::apply_requires`] takes.
    pub fn requires(&self) -> Vec<(String, Vec<String>)> {
        self.checks
            .iter()
            .filter(|c| !c.requires.is_empty())
            .map(|c| (c.name.clone(), c.requires.clone()))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Guest {
    /// A lab name ([`LAB_GUESTS`]): the guest gets that name's address.
    pub name: String,
    /// An image name (`images/<image>.toml`); an arm's `setup.images` may replace it.
    pub image: String,
    /// What the guest is in this scenario (for reports); defaults to the image name.
    pub role: String,
}

/// One switch segment and the guests with a port on it (each guest has one NIC, so it is on
/// exactly one segment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Segment {
    pub name: String,
    pub guests: Vec<String>,
}

/// An extra disk for a guest, served by nbdkit through the listed filters (and those the
/// faults acting on it need).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Disk {
    pub name: String,
    pub guest: String,
    pub size_bytes: u64,
    pub nbdkit_filters: Vec<String>,
    /// Its own or its shelf's.
    #[serde(skip_serializing_if = "WriteCache::is_none")]
    pub write_cache: WriteCache,
}

/// A set of disks behind one controller (`[shelves.NAME]`), all on one guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shelf {
    pub name: String,
    pub disks: Vec<String>,
}

/// What a disk fault acts on: one disk, or every disk of a shelf at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskTarget {
    Disk(String),
    Shelf(String),
}

impl std::fmt::Display for DiskTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DiskTarget::Disk(d) => write!(f, "disk {d}"),
            DiskTarget::Shelf(s) => write!(f, "shelf {s}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub name: String,
    /// The guest it runs in; `None` only for `wait`.
    pub guest: Option<String>,
    /// Started without waiting for it to finish: the next step starts once it is ready.
    pub background: bool,
    #[serde(flatten)]
    pub kind: StepKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepKind {
    /// `sh -c command` as root; ok when it exits `expect_exit` within `timeout`.
    Exec {
        command: String,
        #[serde(serialize_with = "duration::serialize")]
        timeout: Duration,
        expect_exit: u8,
    },
    /// A POSIX (fcntl) write lock on `path`. `hold`: take it (waiting up to 60 s), keep it
    /// `seconds`, release it. `wait`: take it, waiting at most `seconds`, release it at once.
    LockProbe {
        path: String,
        mode: LockMode,
        seconds: u32,
    },
    Imap(Session),
    Pop3(Session),
    Wait {
        #[serde(serialize_with = "duration::serialize")]
        duration: Duration,
    },
    /// Until a line matching `pattern` is written to `file` (since the workload started).
    WaitForLog {
        file: String,
        pattern: Pattern,
        #[serde(serialize_with = "duration::serialize")]
        timeout: Duration,
    },
    /// Evidence taken at this point of the workload: `command`'s stdout (the step's output)
    /// and a copy of every file matching `files` (shell globs in the last components).
    Capture {
        command: Option<String>,
        files: Vec<String>,
        #[serde(serialize_with = "duration::serialize")]
        timeout: Duration,
    },
    /// Many simulated mail users in the step's guest, each a client with a timeout and
    /// retries: ok when the client ran to its end, however many attempts failed.
    Population(Population),
}

/// A client population: `users` mail users against `server`, each connecting, logging in and
/// sending `commands` like a mail client, giving up after `attempt_timeout` and retrying as
/// `retry` says, until `duration` has passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Population {
    pub protocol: MailProtocol,
    /// A guest of the case; the step's own guest means `localhost`.
    pub server: String,
    pub port: u16,
    /// `%i` is the user's number, 1..=`users`.
    pub user: String,
    pub password: String,
    pub users: u32,
    /// After the login, one by one (IMAP: untagged); every one answered OK is a success.
    pub commands: Vec<String>,
    /// The users' first attempts are spread evenly over this (zero: all at once).
    #[serde(serialize_with = "duration::serialize")]
    pub arrivals: Duration,
    /// An attempt not done after this is given up: the client disconnects as `close` says.
    #[serde(serialize_with = "duration::serialize")]
    pub attempt_timeout: Duration,
    /// `Fin` or `Rst`: how a client that gives up disconnects.
    pub close: CloseMode,
    pub retry: Retry,
    /// No attempt starts after this (from the client's start); open ones run to their end.
    #[serde(serialize_with = "duration::serialize")]
    pub duration: Duration,
    /// A user that succeeded comes back this long after logging out (a polling client);
    /// `None`: one success and it is done.
    #[serde(serialize_with = "duration::serialize_opt")]
    pub repeat_after: Option<Duration>,
    /// After the last answer, stay logged in this long before logging out.
    #[serde(serialize_with = "duration::serialize_opt")]
    pub hold: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MailProtocol {
    Imap,
    Pop3,
}

/// What a population's user does after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Retry {
    pub policy: RetryPolicy,
    /// The wait after a failure (`Fixed`), or after the first one (`Exponential`: doubled
    /// after each further failure, up to `max_delay`).
    #[serde(serialize_with = "duration::serialize")]
    pub delay: Duration,
    #[serde(serialize_with = "duration::serialize")]
    pub max_delay: Duration,
    /// Wait a uniformly random part of the delay instead of all of it ("full jitter").
    pub jitter: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RetryPolicy {
    /// A failed user gives up.
    None,
    Fixed,
    Exponential,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    Hold,
    Wait,
}

/// An IMAP or POP3 client session run in the step's guest against `server`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Session {
    /// A guest of the case; the step's own guest means `localhost`.
    pub server: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    /// Sent one by one after logging in (IMAP: untagged, the client adds tags); every one
    /// must be answered OK / +OK.
    pub commands: Vec<String>,
    /// How the session ends.
    pub close: CloseMode,
    /// Cut the last command's answer short (the client then closes as `close` says).
    pub stop: Option<SessionStop>,
    /// Keep the connection open this long after the last answer, before closing.
    #[serde(serialize_with = "duration::serialize_opt")]
    pub hold: Option<Duration>,
    #[serde(serialize_with = "duration::serialize")]
    pub timeout: Duration,
    /// How many copies of the session run at once, each on its own connection.
    pub connections: u32,
}

/// How a mail session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CloseMode {
    /// LOGOUT / QUIT, then close.
    Quit,
    /// Close the socket without a goodbye (FIN).
    Fin,
    /// Close with SO_LINGER 0 (RST).
    Rst,
    /// Drop every packet the socket would still send, then close: the server hears nothing
    /// more (a half-open connection on its side).
    Silent,
}

/// Where a session stops reading the last command's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStop {
    /// After this many lines of the answer (status line included).
    AfterLines(u32),
    /// This long after sending the command.
    After(#[serde(serialize_with = "duration::serialize")] Duration),
    /// When a line matching `pattern` is written to `file` in `guest`.
    OnLog {
        guest: String,
        file: String,
        pattern: Pattern,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fault {
    pub name: String,
    #[serde(flatten)]
    pub kind: FaultKind,
    pub start: Trigger,
    pub end: End,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// A switch rule on `segment`: see [`wire_rule`].
    Wire {
        segment: String,
        #[serde(rename = "match")]
        matcher: Match,
        /// Never `Observe`: the case language has no such action.
        action: Action,
    },
    /// `ruleset` loaded with `nft -f`; healed by deleting `tables` (`"FAMILY NAME"`).
    GuestNft {
        guest: String,
        ruleset: String,
        tables: Vec<String>,
    },
    /// `command` run at the start, `heal` at the end (when the harness ends the fault).
    GuestExec {
        guest: String,
        command: String,
        heal: Option<String>,
        #[serde(serialize_with = "duration::serialize")]
        timeout: Duration,
    },
    /// systemd action on a unit (or the whole guest, for `reboot`).
    Service {
        guest: String,
        unit: Option<String>,
        action: ServiceAction,
    },
    /// I/O to the disk (or every disk of the shelf) fails while the fault is on (nbdkit's
    /// `error` filter): every request, or `rate` of them.
    DiskError {
        #[serde(flatten)]
        on: DiskTarget,
        #[serde(skip_serializing_if = "Option::is_none")]
        rate: Option<ErrorRate>,
    },
    /// Reads and writes are slowed (nbdkit's `delay` filter), from the disk's start.
    DiskDelay {
        #[serde(flatten)]
        on: DiskTarget,
        #[serde(serialize_with = "duration::serialize_opt")]
        read: Option<Duration>,
        #[serde(serialize_with = "duration::serialize_opt")]
        write: Option<Duration>,
    },
    /// Requests hang until the fault ends (nbdkit's `pause` filter): a stalled controller.
    DiskPause {
        #[serde(flatten)]
        on: DiskTarget,
    },
    /// nbdkit is killed; when the fault ends it serves the disk again from what was
    /// persisted. QEMU holds requests `hold` (whole seconds) before failing them.
    PowerCut {
        #[serde(flatten)]
        on: DiskTarget,
        #[serde(serialize_with = "duration::serialize")]
        hold: Duration,
    },
}

impl FaultKind {
    /// The guest the fault acts in, if it acts in one guest.
    pub fn guest(&self) -> Option<&str> {
        match self {
            FaultKind::GuestNft { guest, .. }
            | FaultKind::GuestExec { guest, .. }
            | FaultKind::Service { guest, .. } => Some(guest),
            FaultKind::Wire { .. }
            | FaultKind::DiskError { .. }
            | FaultKind::DiskDelay { .. }
            | FaultKind::DiskPause { .. }
            | FaultKind::PowerCut { .. } => None,
        }
    }

    /// The disk or shelf a disk fault acts on.
    pub fn disk_target(&self) -> Option<&DiskTarget> {
        match self {
            FaultKind::DiskError { on, .. }
            | FaultKind::DiskDelay { on, .. }
            | FaultKind::DiskPause { on }
            | FaultKind::PowerCut { on, .. } => Some(on),
            _ => None,
        }
    }

    /// Whether the fault is over as soon as it has happened (a restart, a reboot).
    pub fn instant_end(&self) -> bool {
        matches!(self, FaultKind::Service { action, .. } if action.instant())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceAction {
    /// `systemctl stop`; healed with `systemctl start`.
    Stop,
    /// `systemctl kill -s KILL`; healed with `systemctl start`.
    Kill,
    /// `systemctl restart`: over at once, no end.
    Restart,
    /// The guest reboots: over at once, no end.
    Reboot,
}

impl ServiceAction {
    /// Whether the action is over at once (and so takes no `end`).
    pub fn instant(self) -> bool {
        matches!(self, ServiceAction::Restart | ServiceAction::Reboot)
    }
}

/// When a fault starts. Times and lines count from the start of the workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "on", rename_all = "snake_case")]
pub enum Trigger {
    /// This long after the workload starts; `0s` faults are in place before the first step.
    At {
        #[serde(serialize_with = "duration::serialize")]
        offset: Duration,
    },
    /// When the step finishes (whether or not it succeeded).
    AfterStep { step: String },
    /// When a line matching `pattern` is written to `file` in `guest`.
    OnLog {
        guest: String,
        file: String,
        pattern: Pattern,
    },
    /// When the first frame matching is seen on `segment`.
    OnFrame {
        segment: String,
        #[serde(rename = "match")]
        matcher: Match,
    },
}

/// When a fault ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "end", rename_all = "snake_case")]
pub enum End {
    /// It stays on through the after-evidence, until the lab stops.
    Never,
    /// The harness heals it this long after it started.
    Duration {
        #[serde(serialize_with = "duration::serialize")]
        duration: Duration,
    },
    /// The harness heals it when the step finishes.
    UntilStep { step: String },
    /// The step heals it (e.g. `systemctl start`); it ends when the step finishes.
    HealStep { step: String },
}

/// What to capture before the workload starts and after it ends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EvidencePlan {
    pub before: Vec<EvidenceItem>,
    /// Includes what checks declared inline (named `check:<check>`).
    pub after: Vec<EvidenceItem>,
}

impl EvidencePlan {
    pub fn item(&self, name: &str) -> Option<&EvidenceItem> {
        self.before.iter().chain(&self.after).find(|e| e.name == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EvidenceItem {
    pub name: String,
    pub guest: String,
    #[serde(flatten)]
    pub source: EvidenceSource,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EvidenceSource {
    /// The command's stdout, stderr and exit status.
    Command {
        command: String,
        #[serde(serialize_with = "duration::serialize")]
        timeout: Duration,
    },
    /// The file copied out of the guest.
    File { path: String },
}

/// A figure an arm reports: read from a step, never judged (checks judge).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Measure {
    pub name: String,
    /// What it is, in words: "messages the second login opened".
    pub what: String,
    #[serde(flatten)]
    pub source: MeasureSource,
    /// Shown after the value ("messages", "s").
    pub unit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MeasureSource {
    /// The step's output, trimmed (its last line when it has several).
    StepOutput { step: String },
    /// The step's own duration (a mail session's last command; else start to end), seconds.
    Duration { step: String },
}

impl MeasureSource {
    pub fn step(&self) -> &str {
        match self {
            MeasureSource::StepOutput { step } | MeasureSource::Duration { step } => step,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    #[serde(flatten)]
    pub kind: CheckKind,
    /// Checks that must pass for this one to be judged; otherwise it is unknown.
    pub requires: Vec<String>,
    /// The evidence the check is judged on; missing evidence makes it unknown.
    pub needs: Vec<Need>,
    /// What the check's failure must look like (`step_ok`, `step_output`, `exec_output`): a
    /// failure that does not look like this is `unknown`, not `fail`, so an arm expecting the
    /// check to fail meets its expectation only for the reason its story gives.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_when: Option<FailureReason>,
}

/// What a failure must look like for a check to count it: every part given must hold of the
/// step's (or evidence item's) exit status, output (stdout) and stderr.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FailureReason {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<TextExpect>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr: Option<TextExpect>,
}

impl FailureReason {
    /// No part given: any failure will do.
    pub fn is_empty(&self) -> bool {
        self.exit.is_none() && self.output.is_none() && self.stderr.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CheckKind {
    StepOk {
        step: String,
    },
    /// The step ran and failed (not timed out) — for `reason`, when it gives any part.
    StepFailed {
        step: String,
        #[serde(flatten)]
        reason: FailureReason,
    },
    /// The step's output (stdout; the session transcript for imap/pop3).
    StepOutput {
        step: String,
        expect: TextExpect,
    },
    /// An evidence item's text (command output or file).
    ExecOutput {
        evidence: String,
        expect: TextExpect,
    },
    /// The step succeeded within `limit` of starting — or, with `since_end_of`, of that other
    /// step's end (e.g. a lock granted within 5 s of its holder's release).
    DurationAtMost {
        step: String,
        #[serde(serialize_with = "duration::serialize")]
        limit: Duration,
        #[serde(skip_serializing_if = "Option::is_none")]
        since_end_of: Option<String>,
    },
    /// No line of the evidence item matches `pattern`, and (when given) some line matches
    /// `control`: a line that is always there when the text is what it claims to be (a
    /// command's output must have one; a file read whole needs none).
    LogAbsent {
        evidence: String,
        pattern: Pattern,
        #[serde(skip_serializing_if = "Option::is_none")]
        control: Option<Pattern>,
    },
    /// `step` took at most 1/`factor` of `than`'s time (each step's own measure: a mail
    /// session's last command, a lock probe's wait, else start to end).
    Faster {
        step: String,
        than: String,
        /// The factor in thousandths (kept integral so the plan stays `Eq`).
        factor_milli: u64,
    },
    /// How many frames on `segment` match (only those seen while step `during` ran, when
    /// given: one session's disconnect among several sessions' ends).
    Frames {
        segment: String,
        #[serde(rename = "match")]
        matcher: Match,
        count: Count,
        #[serde(skip_serializing_if = "Option::is_none")]
        during: Option<String>,
        /// Count a frame toward `to` only where the switch sent it on: not where a rule
        /// dropped it. Without it, `to` means addressed to (where the switch would send it).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        delivered: bool,
    },
    /// At least `at_least_milli`/1000 of the attempts of population step `population` that
    /// ended between `from` and `to` after its start (`to`: its end) succeeded.
    SuccessRate {
        population: String,
        at_least_milli: u64,
        #[serde(serialize_with = "duration::serialize")]
        from: Duration,
        #[serde(
            skip_serializing_if = "Option::is_none",
            serialize_with = "duration::serialize_opt"
        )]
        to: Option<Duration>,
    },
    /// Within `within` of the population's start, its failure rate (failed attempts / ended
    /// attempts, over sliding windows of `window`) fell under `below_milli`/1000 and stayed
    /// under it to the population's end.
    DrainsWithin {
        population: String,
        #[serde(serialize_with = "duration::serialize")]
        within: Duration,
        below_milli: u64,
        #[serde(serialize_with = "duration::serialize")]
        window: Duration,
    },
    /// The series' highest sample (in step `during`'s run, when given) is at most
    /// `at_most_milli`/1000.
    SeriesPeak {
        series: String,
        at_most_milli: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        during: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TextExpect {
    /// The whole text, trailing white space removed, equals this.
    Equals(String),
    /// The text contains this.
    Contains(String),
    /// Some line of the text matches this.
    Matches(Pattern),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Count {
    AtLeast(u64),
    Equals(u64),
}

/// A piece of evidence a check is judged on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Need {
    /// The step's record: outcome, times, output.
    Step { step: String },
    /// An item of the evidence plan.
    Evidence { evidence: String },
    /// The segment's pcapng trace.
    Trace { segment: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Arm {
    pub name: String,
    /// The faults it turns on.
    pub faults: Vec<String>,
    pub expect: ArmExpectation,
    /// Checks that do not apply in this arm (e.g. reclaim after a restart the arm does not
    /// do): not judged, not counted.
    pub skip_checks: Vec<String>,
    /// Checks judged and reported in this arm but not counted into its verdict: damage the
    /// fault may or may not cause on a given run (counted over repeated runs instead).
    pub report_only: Vec<String>,
    /// A finding about stock software written down for this arm (shown in reports).
    pub finding: Option<String>,
    /// What the arm shows, for a reader who does not know the harness: "Let … Then …
    /// because …" (shown in reports with what was observed).
    pub story: Option<String>,
    pub setup: Setup,
    /// For one size of the case's sweep (made by [`Case::sweep_arms`], never written in a
    /// case file): a measurement, whose verdict is recorded but not judged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepSize>,
}

/// What makes an arm one size of its case's sweep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SweepSize {
    /// The case's arm it is a size of.
    pub arm: String,
    pub scale: Milli,
    /// Each scaled population step's users at this size.
    pub users: BTreeMap<String, u32>,
}

/// `[sweep]`: one arm of the case run once per scale, each time with some of its populations
/// that many times as large, and the storm's drain at each size measured against the cascade
/// model (`metrics::model`, docs/cascade-model.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sweep {
    /// The arm of this case that is swept.
    pub arm: String,
    /// Population steps whose users are scaled (none skipped in the arm).
    pub populations: Vec<String>,
    /// Positive, strictly ascending.
    pub scale: Vec<Milli>,
    /// Which of `populations` holds the damaged mailboxes.
    pub damaged: String,
    pub model: SweepModel,
}

impl Sweep {
    /// The name of the sweep's arm at `scale`: `<arm>@x<scale>` (`cascade@x2`, `cascade@x1.5`),
    /// a name that is safe in a folder name, a JUnit name and a shell word.
    pub fn arm_name(&self, scale: Milli) -> String {
        format!("{}@x{scale}", self.arm)
    }
}

/// `[sweep.model]`: the model's inputs that the case states (the rest are measured or read
/// from the damaged population).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SweepModel {
    /// N: sessions the server runs at once.
    pub slots: u32,
    /// CPUs the sessions share; `None`: only the slots limit them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<Milli>,
    /// The step whose duration is S0 (a healthy login), and the one whose duration is Sr (a
    /// login that rebuilds a damaged mailbox).
    pub login: String,
    pub rebuild: String,
    pub abandoned_work: AbandonedWork,
    /// How long after its client left a session notices; `None`: it runs to its end.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "duration::serialize_opt"
    )]
    pub notice: Option<Duration>,
    pub seed: u64,
}

/// What becomes of a rebuild whose client left (the model's `AbandonedWork`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AbandonedWork {
    /// Committed anyway (stock Dovecot 2.3).
    Kept,
    /// Thrown away (the 2008 build).
    Lost,
}

/// A number as a case writes it (`scale = [1, 1.5]`, `cpus = 1.5`), in thousandths so that
/// the plan stays `Eq`. Shown as the shortest decimal (`2`, `1.5`); serialized as a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Milli(pub u64);

impl Milli {
    pub fn get(self) -> f64 {
        self.0 as f64 / 1000.0
    }
}

impl std::fmt::Display for Milli {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.get())
    }
}

impl Serialize for Milli {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.get())
    }
}

/// A population's users at `scale`: rounded to the nearest whole user, at least one.
pub fn scaled_users(users: u32, scale: Milli) -> u32 {
    let n = (u64::from(users) * scale.0 + 500) / 1000;
    u32::try_from(n).unwrap_or(u32::MAX).max(1)
}

/// How an arm's lab or workload differs from the case's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Setup {
    pub skip_steps: Vec<String>,
    /// Guest → image replacing the case's (e.g. a Dovecot with a fix).
    pub images: BTreeMap<String, String>,
    /// Session step → how it ends in this arm instead (e.g. a client that vanishes).
    pub sessions: BTreeMap<String, SessionEnd>,
    /// Population step → what this arm changes in it (its size, its clients' retries).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub populations: BTreeMap<String, PopulationChange>,
}

/// An arm's change to a population (`setup.populations`): each key given replaces the step's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PopulationChange {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users: Option<u32>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "duration::serialize_opt"
    )]
    pub arrivals: Option<Duration>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "duration::serialize_opt"
    )]
    pub attempt_timeout: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "duration::serialize_opt"
    )]
    pub repeat_after: Option<Duration>,
}

/// How a mail session ends; an arm may replace a session's (`setup.sessions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionEnd {
    pub close: CloseMode,
    pub stop: Option<SessionStop>,
    #[serde(serialize_with = "duration::serialize_opt")]
    pub hold: Option<Duration>,
}

impl Arm {
    /// A population step as this arm runs it.
    pub fn population(&self, step: &str, p: &Population) -> Population {
        let Some(c) = self.setup.populations.get(step) else {
            return p.clone();
        };
        Population {
            users: c.users.unwrap_or(p.users),
            arrivals: c.arrivals.unwrap_or(p.arrivals),
            attempt_timeout: c.attempt_timeout.unwrap_or(p.attempt_timeout),
            retry: c.retry.unwrap_or(p.retry),
            repeat_after: c.repeat_after.or(p.repeat_after),
            ..p.clone()
        }
    }

    /// A session step as this arm runs it.
    pub fn session(&self, step: &str, s: &Session) -> Session {
        match self.setup.sessions.get(step) {
            None => s.clone(),
            Some(e) => Session {
                close: e.close,
                stop: e.stop.clone(),
                hold: e.hold,
                ..s.clone()
            },
        }
    }
}

#[cfg(test)]
mod tests;
