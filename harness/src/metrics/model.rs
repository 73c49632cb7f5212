//! The cascade threshold model: whether a login storm of `U` users drains, predicted from
//! measured inputs — slots, service times of a healthy and of a damaged login, the share of
//! damaged mailboxes, the client timeout and retry policy, how spread the arrivals are, and
//! whether a rebuild survives its client leaving. `docs/cascade-model.md` gives the rules, the
//! closed-form estimates next to them, and where each input is measured.
//!
//! The prediction is a small discrete-event simulation rather than the closed-form
//! inequalities alone, because retries and timeouts interact: an abandoned rebuild keeps its
//! slot (and its share of the CPUs) until the server notices, a retry queues behind it, and
//! whether the retry pays the rebuild again decides whether the wait ever falls back under the
//! timeout. Sessions may share CPUs (processor sharing): in the lab the front-end's CPU, not
//! its slots, is what concurrent rebuilds run out of first. Events are kept at their exact times (not 1 s
//! steps: a healthy login takes a fraction of a second), in a total order (time, kind, sequence).
//!
//! Architecture invariant: pure and deterministic — the same parameters and size give the same
//! prediction on every machine: arrivals and damaged mailboxes are placed by formula, back-off
//! jitter comes from a seeded hash of (seed, user, attempt), and no clock or I/O is used.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};

use serde::{Deserialize, Serialize};

/// Relative error within which a predicted threshold or drain time counts as a match.
pub const TOLERANCE: f64 = 0.25;
/// A simulation stops after this many events (a runaway storm), saying so.
pub const EVENT_CAP: u64 = 20_000_000;
/// [`extrapolate`] simulates one front-end only up to this many peak users; above, it gives
/// the closed-form figures alone.
pub const SIM_USERS_MAX: f64 = 100_000.0;

/// What a client does after its attempt timed out.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Retry {
    /// It gives up.
    None,
    /// It tries again after `delay_s`.
    Fixed { delay_s: f64 },
    /// After its k-th timeout it waits a uniform random time in `[0, min(max_s, base_s·2^(k−1))]`
    /// ("full jitter").
    Exponential { base_s: f64, max_s: f64 },
}

/// What becomes of a rebuild whose client left before it ended. The rebuild runs to its end
/// and keeps its slot either way (the server does not notice the client leaving until it
/// writes); what differs is whether its work counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AbandonedWork {
    /// Stock Dovecot 2.3: "finish syncing even when client has disconnected" — the rebuild is
    /// committed, so the retry finds a repaired mailbox and costs a healthy login.
    Kept,
    /// The 2008 build: the work is thrown away, and the retry pays the rebuild again.
    Lost,
}

/// The model's inputs (`docs/cascade-model.md` says where each is measured).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// N: sessions the server runs at once (the login/mail service's process limit).
    pub slots: u32,
    /// S0: server time of a login session on a healthy mailbox.
    pub login_s: f64,
    /// Sr: server time of a session whose mailbox needs a rebuild.
    pub rebuild_s: f64,
    /// The share of users whose mailbox is damaged, 0–1.
    pub damaged_fraction: f64,
    /// T: the client gives up on an attempt this long after it started (connecting included).
    pub timeout_s: f64,
    pub retry: Retry,
    /// Attempts per user before it gives up for good; `None`: it never does.
    pub max_attempts: Option<u32>,
    /// A: users' first attempts are spread evenly over this many seconds (0: all at once).
    pub arrival_spread_s: f64,
    /// How long a logged-in client keeps its session (and so its slot) after the login
    /// succeeded: fetching, idling. 0: it logs out at once.
    pub after_login_s: f64,
    /// A user that logged in comes back this long after logging out, like a polling client
    /// (its back-off starts over). `None`: a user is done after one login. Its first login is
    /// what the drain counts; the polls are load.
    #[serde(default)]
    pub repeat_after_s: Option<f64>,
    pub abandoned_work: AbandonedWork,
    /// CPUs the sessions share (processor sharing: with k sessions working, each progresses at
    /// `min(1, cpus/k)` of its own speed). `None`: sessions never slow each other, only the
    /// slots limit them.
    #[serde(default)]
    pub cpus: Option<f64>,
    /// How long after its client left a session working for it stops (the server notices when
    /// it next writes to the closed connection); the work done by then is committed (`Kept`)
    /// or thrown away (`Lost`). `None`: an abandoned session runs to its end.
    #[serde(default)]
    pub notice_s: Option<f64>,
    /// How long after the first arrival the storm must have drained (the lab's observation
    /// window); a storm still going then does not drain.
    pub horizon_s: f64,
    /// Seeds the back-off jitter.
    pub seed: u64,
}

/// What the model predicts for one population size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub users: u32,
    /// Every user logged in or gave up by the horizon.
    pub drains: bool,
    /// When the last user logged in or gave up (when it drains).
    pub drain_time_s: Option<f64>,
    pub peak_busy_slots: u32,
    /// The most attempts waiting for a slot at once (clients still waiting, not abandoned ones).
    pub peak_waiting: u32,
    pub attempts: u64,
    pub timeouts: u64,
    /// Timeouts of attempts on a mailbox that needed no rebuild: healthy users caught in the
    /// storm.
    pub healthy_timeouts: u64,
    pub first_timeout_s: Option<f64>,
    pub logged_in: u32,
    pub gave_up: u32,
    /// Rebuilds that ran to their end for a client that had left and were thrown away.
    pub wasted_rebuilds: u64,
    /// One sentence: why it drains or does not.
    pub why: String,
}

/// The closed-form estimates of the cascade reference's queueing view (§6), for the docs and
/// next to the simulated threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClosedForm {
    /// S_eff = (1−f)·S0 + f·Sr + H: a first attempt's mean slot time (H: `after_login_s`).
    pub mean_service_s: f64,
    /// Sessions per second the slots complete at most: N / S_eff.
    pub capacity_per_s: f64,
    /// Users from which the first wave makes a damaged login wait past T − Sr (timeouts
    /// begin): U·S_eff/N − A + Sr > T. 0 when Sr ≥ T (every damaged attempt fails alone).
    pub timeouts_from_users: f64,
    /// Users from which failing damaged users alone keep the slots full (lost work only):
    /// f·U·Sr/(T + d) ≥ N, d the retry delay (the cap for exponential back-off).
    pub sustained_from_users: Option<f64>,
    /// The estimated smallest population that does not drain within the horizon.
    pub threshold_users: Option<f64>,
    /// Which relation set the threshold.
    pub rule: String,
}

// ---- the simulation ----------------------------------------------------------------------

/// Work left under this is done (float noise of repeated subtraction).
const EPS: f64 = 1e-9;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A logged-in session ends and frees its slot.
    Release,
    Deadline(usize),
    /// The server notices that the client of this session left, and stops working for it.
    Notice(usize),
    Arrive(usize),
}

#[derive(Debug, Clone, Copy)]
struct Event {
    t: f64,
    kind: Kind,
    seq: u64,
}

impl PartialEq for Event {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Event {}
impl PartialOrd for Event {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Event {
    fn cmp(&self, o: &Self) -> Ordering {
        // At equal times (and after any session whose work is done, which the loop takes
        // first): a slot freed at t serves an attempt arriving at t, and a session ending
        // exactly at its client's deadline succeeds.
        let rank = |k: Kind| match k {
            Kind::Release => 0,
            Kind::Deadline(_) | Kind::Notice(_) => 1,
            Kind::Arrive(_) => 2,
        };
        self.t
            .total_cmp(&o.t)
            .then(rank(self.kind).cmp(&rank(o.kind)))
            .then(self.seq.cmp(&o.seq))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum AttemptState {
    /// In the queue, no slot yet.
    Waiting,
    /// Holds a slot and waits for the mailbox's running rebuild (its lock).
    Blocked,
    /// Holds a slot and works (shares the CPUs).
    Working,
    /// The client left while it waited for a slot: skipped when it reaches the head.
    Abandoned,
    /// Over (logged in, or ended after its client left).
    Done,
}

struct Attempt {
    user: usize,
    state: AttemptState,
    /// The client gave up on it; the session may still hold a slot and work.
    client_left: bool,
    /// This session runs the mailbox's rebuild.
    rebuilds: bool,
    /// The rebuild work in this session (done after the login's `login_s`).
    rebuild_part: f64,
    work: f64,
    remaining: f64,
}

struct User {
    /// Rebuild work the mailbox still needs (seconds of one CPU); 0 when healthy.
    rebuild_work: f64,
    /// The session rebuilding the mailbox now: others wait for its lock.
    rebuilder: Option<usize>,
    /// Sessions waiting for that lock, in the order they got their slots.
    blocked: VecDeque<usize>,
    attempts: u32,
    finished: bool,
}

impl User {
    fn damaged(&self) -> bool {
        self.rebuild_work > EPS
    }
}

struct Sim<'a> {
    p: &'a Params,
    now: f64,
    users: Vec<User>,
    attempts: Vec<Attempt>,
    queue: VecDeque<usize>,
    /// Sessions working now, in the order they started.
    working: Vec<usize>,
    events: BinaryHeap<Reverse<Event>>,
    seq: u64,
    busy: u32,
    waiting: u32,
    out: Prediction,
    unfinished: u32,
    last_outcome_s: f64,
}

/// User `i` of any population is damaged when the running count of damaged mailboxes
/// `floor((i+1)·f)` steps up at `i`: spread evenly, and the same users in every size.
fn is_damaged(i: usize, f: f64) -> bool {
    let f = f.clamp(0.0, 1.0);
    ((i + 1) as f64 * f).floor() > (i as f64 * f).floor()
}

/// A uniform number in [0, 1) from (seed, user, attempt): splitmix64's finaliser.
fn unit_hash(seed: u64, user: usize, attempt: u32) -> f64 {
    let mut z = seed ^ (user as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (u64::from(attempt) << 40);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

impl Sim<'_> {
    fn push(&mut self, t: f64, kind: Kind) {
        self.seq += 1;
        self.events.push(Reverse(Event {
            t,
            kind,
            seq: self.seq,
        }));
    }

    /// How fast each working session progresses: processor sharing over the CPUs.
    fn rate(&self) -> f64 {
        match self.p.cpus {
            Some(c) if !self.working.is_empty() => (c.max(1e-6) / self.working.len() as f64).min(1.0),
            _ => 1.0,
        }
    }

    /// When the working session with the least work left finishes, if nothing changes.
    fn next_completion(&self) -> Option<f64> {
        let least = self
            .working
            .iter()
            .map(|&id| self.attempts[id].remaining)
            .min_by(f64::total_cmp)?;
        Some(self.now + least.max(0.0) / self.rate())
    }

    /// Moves the clock to `t`, every working session progressing at the shared rate.
    fn advance(&mut self, t: f64) {
        let done = (t - self.now).max(0.0) * self.rate();
        for &id in &self.working {
            self.attempts[id].remaining -= done;
        }
        self.now = t;
    }

    fn finish(&mut self, user: usize, t: f64) {
        if self.users[user].finished {
            // A polling user's later logins and failures are load, not outcomes.
            return;
        }
        self.users[user].finished = true;
        self.unfinished -= 1;
        self.last_outcome_s = self.last_outcome_s.max(t);
    }

    fn arrive(&mut self, user: usize, t: f64) {
        let id = self.attempts.len();
        self.attempts.push(Attempt {
            user,
            state: AttemptState::Waiting,
            client_left: false,
            rebuilds: false,
            rebuild_part: 0.0,
            work: 0.0,
            remaining: 0.0,
        });
        self.users[user].attempts += 1;
        self.out.attempts += 1;
        self.queue.push_back(id);
        self.waiting += 1;
        self.push(t + self.p.timeout_s, Kind::Deadline(id));
        self.serve();
        self.out.peak_waiting = self.out.peak_waiting.max(self.waiting);
    }

    /// Free slots take attempts from the head of the queue; attempts whose client left cost
    /// nothing (the accepted connection is already closed).
    fn serve(&mut self) {
        while self.busy < self.p.slots {
            let Some(id) = self.queue.pop_front() else { break };
            if self.attempts[id].state != AttemptState::Waiting {
                continue;
            }
            self.waiting -= 1;
            self.busy += 1;
            self.out.peak_busy_slots = self.out.peak_busy_slots.max(self.busy);
            let u = self.attempts[id].user;
            if self.users[u].damaged() && self.users[u].rebuilder.is_some() {
                self.attempts[id].state = AttemptState::Blocked;
                self.users[u].blocked.push_back(id);
            } else {
                self.begin_work(id);
            }
        }
    }

    /// A session starts working: its login, and the rebuild its mailbox still needs.
    fn begin_work(&mut self, id: usize) {
        let u = self.attempts[id].user;
        let rebuild = if self.users[u].damaged() {
            self.users[u].rebuilder = Some(id);
            self.users[u].rebuild_work
        } else {
            0.0
        };
        let a = &mut self.attempts[id];
        a.state = AttemptState::Working;
        a.rebuilds = rebuild > 0.0;
        a.rebuild_part = rebuild;
        a.work = self.p.login_s + rebuild;
        a.remaining = a.work;
        self.working.push(id);
    }

    /// The mailbox's lock is free: the sessions waiting for it go on, the first one taking
    /// over the rebuild if the mailbox still needs it.
    fn wake(&mut self, u: usize) {
        let blocked = std::mem::take(&mut self.users[u].blocked);
        for id in blocked {
            if self.users[u].damaged() && self.users[u].rebuilder.is_some() {
                self.users[u].blocked.push_back(id);
            } else {
                self.begin_work(id);
            }
        }
    }

    /// A working session stops: done, or (`done_all` false) cut off after its client left.
    fn stop_working(&mut self, id: usize, t: f64, done_all: bool) {
        self.working.retain(|&w| w != id);
        let u = self.attempts[id].user;
        let a = &self.attempts[id];
        let client_stayed = !a.client_left;
        // The rebuild comes after the login: what of it was done.
        let rebuilt = if done_all {
            a.rebuild_part
        } else {
            (a.work - a.remaining - self.p.login_s).clamp(0.0, a.rebuild_part)
        };
        if a.rebuilds {
            if self.users[u].rebuilder == Some(id) {
                self.users[u].rebuilder = None;
            }
            if client_stayed || self.p.abandoned_work == AbandonedWork::Kept {
                let left = self.users[u].rebuild_work - rebuilt;
                self.users[u].rebuild_work = if left > EPS { left } else { 0.0 };
            } else if rebuilt > 0.0 {
                self.out.wasted_rebuilds += 1;
            }
        }
        self.attempts[id].state = AttemptState::Done;
        self.wake(u);
        if client_stayed {
            if !self.users[u].finished {
                self.out.logged_in += 1;
            }
            self.finish(u, t);
            if let Some(r) = self.p.repeat_after_s {
                self.users[u].attempts = 0;
                self.push(t + self.p.after_login_s.max(0.0) + r.max(0.0), Kind::Arrive(u));
            }
            if self.p.after_login_s > 0.0 {
                self.push(t + self.p.after_login_s, Kind::Release);
                return;
            }
        }
        self.release();
    }

    fn release(&mut self) {
        self.busy -= 1;
        self.serve();
    }

    /// The server notices a client that left: a session still working or waiting for its
    /// mailbox's lock stops.
    fn notice(&mut self, id: usize, t: f64) {
        match self.attempts[id].state {
            AttemptState::Working => self.stop_working(id, t, false),
            AttemptState::Blocked => {
                let u = self.attempts[id].user;
                self.users[u].blocked.retain(|&b| b != id);
                self.attempts[id].state = AttemptState::Done;
                self.release();
            }
            _ => {}
        }
    }

    fn deadline(&mut self, id: usize, t: f64) {
        let state = self.attempts[id].state;
        match state {
            AttemptState::Waiting => {
                self.waiting -= 1;
                self.attempts[id].state = AttemptState::Abandoned;
            }
            AttemptState::Blocked | AttemptState::Working => {
                // An attempt in service keeps its slot until the server notices (or to its end).
                self.attempts[id].client_left = true;
                if let Some(n) = self.p.notice_s {
                    self.push(t + n.max(0.0), Kind::Notice(id));
                }
            }
            AttemptState::Abandoned | AttemptState::Done => return,
        }
        self.out.timeouts += 1;
        self.out.first_timeout_s.get_or_insert(t);
        let u = self.attempts[id].user;
        if !self.attempts[id].rebuilds && !self.users[u].damaged() {
            self.out.healthy_timeouts += 1;
        }
        let k = self.users[u].attempts;
        let delay = match self.p.retry {
            Retry::None => None,
            _ if self.p.max_attempts.is_some_and(|m| k >= m) => None,
            Retry::Fixed { delay_s } => Some(delay_s.max(0.0)),
            Retry::Exponential { base_s, max_s } => {
                let cap = (base_s * 2f64.powi(k.saturating_sub(1).min(60) as i32))
                    .min(max_s)
                    .max(0.0);
                Some(cap * unit_hash(self.p.seed, u, k))
            }
        };
        match delay {
            Some(d) => self.push(t + d, Kind::Arrive(u)),
            None if !self.users[u].finished => {
                self.out.gave_up += 1;
                self.finish(u, t);
            }
            None => {}
        }
    }
}

/// Whether a storm of `users` drains, and how (module docs; rules in `docs/cascade-model.md`).
pub fn predict(p: &Params, users: u32) -> Prediction {
    let n = users as usize;
    // A damaged mailbox's session costs `rebuild_s` in all: its login and its rebuild.
    let rebuild_work = (p.rebuild_s - p.login_s).max(0.0);
    let mut sim = Sim {
        p,
        now: 0.0,
        users: (0..n)
            .map(|i| User {
                rebuild_work: if is_damaged(i, p.damaged_fraction) {
                    rebuild_work
                } else {
                    0.0
                },
                rebuilder: None,
                blocked: VecDeque::new(),
                attempts: 0,
                finished: false,
            })
            .collect(),
        attempts: Vec::new(),
        queue: VecDeque::new(),
        working: Vec::new(),
        events: BinaryHeap::new(),
        seq: 0,
        busy: 0,
        waiting: 0,
        out: Prediction {
            users,
            drains: false,
            drain_time_s: None,
            peak_busy_slots: 0,
            peak_waiting: 0,
            attempts: 0,
            timeouts: 0,
            healthy_timeouts: 0,
            first_timeout_s: None,
            logged_in: 0,
            gave_up: 0,
            wasted_rebuilds: 0,
            why: String::new(),
        },
        unfinished: users,
        last_outcome_s: 0.0,
    };
    for i in 0..n {
        let t = if n > 1 {
            p.arrival_spread_s.max(0.0) * i as f64 / n as f64
        } else {
            0.0
        };
        sim.push(t, Kind::Arrive(i));
    }
    let mut steps = 0u64;
    let mut cut = false;
    while sim.unfinished > 0 {
        let next_event = sim.events.peek().map(|Reverse(e)| e.t);
        // Work that is done comes first at equal times (rules: a session ending exactly at
        // its client's deadline succeeds).
        let completion = sim
            .next_completion()
            .filter(|&tc| next_event.is_none_or(|te| tc <= te));
        let Some(t) = completion.or(next_event) else { break };
        if t > p.horizon_s {
            break;
        }
        steps += 1;
        if steps > EVENT_CAP {
            cut = true;
            break;
        }
        sim.advance(t);
        if completion.is_some() {
            let done: Vec<usize> = sim
                .working
                .iter()
                .copied()
                .filter(|&id| sim.attempts[id].remaining <= EPS)
                .collect();
            if done.is_empty() {
                // Float noise left a sliver of work: finish the nearest session.
                let id = *sim
                    .working
                    .iter()
                    .min_by(|&&a, &&b| sim.attempts[a].remaining.total_cmp(&sim.attempts[b].remaining))
                    .expect("a completion implies a working session");
                sim.stop_working(id, t, true);
            }
            for id in done {
                sim.stop_working(id, t, true);
            }
            continue;
        }
        let Some(Reverse(e)) = sim.events.pop() else { break };
        match e.kind {
            Kind::Arrive(u) => sim.arrive(u, e.t),
            Kind::Deadline(id) => sim.deadline(id, e.t),
            Kind::Notice(id) => sim.notice(id, e.t),
            Kind::Release => sim.release(),
        }
    }
    let mut out = sim.out;
    out.first_timeout_s = out.first_timeout_s.map(millis);
    let damaged_left = sim.users.iter().filter(|u| u.damaged()).count();
    if sim.unfinished == 0 {
        out.drains = true;
        out.drain_time_s = Some(millis(sim.last_outcome_s));
        out.why = match (out.timeouts, out.gave_up) {
            (0, _) => format!(
                "drains: all {users} users logged in by t={:.1} s with no timeout (peak {} of {} slots busy)",
                sim.last_outcome_s, out.peak_busy_slots, p.slots
            ),
            (t, 0) => format!(
                "drains: {t} attempts timed out ({} of them on healthy mailboxes; the first at t={:.1} s), \
                 every user logged in by t={:.1} s",
                out.healthy_timeouts,
                out.first_timeout_s.unwrap_or(0.0),
                sim.last_outcome_s
            ),
            (t, g) => format!(
                "drains: {t} attempts timed out and {g} users gave up; the last outcome at t={:.1} s",
                sim.last_outcome_s
            ),
        };
    } else if cut {
        out.why = format!(
            "does not drain: the simulation stopped after {EVENT_CAP} events with {} users still trying",
            sim.unfinished
        );
    } else {
        let wasted = if out.wasted_rebuilds > 0 {
            format!(
                ", {} rebuilds thrown away as their clients left",
                out.wasted_rebuilds
            )
        } else {
            String::new()
        };
        out.why = format!(
            "does not drain within {:.0} s: {} users still trying, {} of {} slots busy, {} attempts \
             waiting, {} mailboxes still damaged; {} attempts timed out ({} on healthy mailboxes){wasted}",
            p.horizon_s,
            sim.unfinished,
            sim.busy,
            p.slots,
            sim.waiting,
            damaged_left,
            out.timeouts,
            out.healthy_timeouts
        );
    }
    out
}

/// Times to the millisecond: finer is float noise, not model output.
fn millis(t: f64) -> f64 {
    (t * 1000.0).round() / 1000.0
}

/// The predictions at each size, in the given order.
pub fn sweep(p: &Params, sizes: &[u32]) -> Vec<Prediction> {
    sizes.iter().map(|&u| predict(p, u)).collect()
}

/// The smallest of `sizes` whose storm does not drain.
pub fn threshold(p: &Params, sizes: &[u32]) -> Option<u32> {
    let mut sorted = sizes.to_vec();
    sorted.sort_unstable();
    sorted.into_iter().find(|&u| !predict(p, u).drains)
}

/// The mean back-off a failing client waits before it tries again, in the long run.
fn retry_delay_s(r: Retry) -> Option<f64> {
    match r {
        Retry::None => None,
        Retry::Fixed { delay_s } => Some(delay_s.max(0.0)),
        // Full jitter under the cap, which a client that keeps failing reaches.
        Retry::Exponential { max_s, .. } => Some(max_s.max(0.0) / 2.0),
    }
}

/// The closed-form estimates (cascade reference §6, derived; `docs/cascade-model.md`).
pub fn closed_form(p: &Params) -> ClosedForm {
    let f = p.damaged_fraction.clamp(0.0, 1.0);
    let n = f64::from(p.slots.max(1));
    // A session keeps its slot for its login and then for as long as it stays logged in.
    let s_eff = (1.0 - f) * p.login_s + f * p.rebuild_s + p.after_login_s.max(0.0);
    // The slowest first attempt: a rebuild when any mailbox is damaged.
    let s_slow = if f > 0.0 { p.rebuild_s } else { p.login_s };
    let timeouts_from = (n * (p.timeout_s - s_slow + p.arrival_spread_s) / s_eff).max(0.0);
    let d = retry_delay_s(p.retry);
    let sustained = match (p.abandoned_work, d) {
        (AbandonedWork::Lost, Some(d)) if f > 0.0 => Some(n * (p.timeout_s + d) / (f * p.rebuild_s)),
        _ => None,
    };
    let (threshold, rule) = match (p.abandoned_work, d, sustained) {
        (_, None, _) => (
            None,
            "no retries: every storm ends (timed-out users give up), so there is no threshold".to_string(),
        ),
        (AbandonedWork::Lost, Some(_), Some(s)) if f > 0.0 && p.rebuild_s >= p.timeout_s => (
            Some((1.0 / f).ceil()),
            format!(
                "Sr ≥ T with lost work: every damaged attempt fails, so one damaged mailbox is enough \
                 (and from {s:.0} users its retries alone fill the slots)"
            ),
        ),
        (AbandonedWork::Lost, Some(_), Some(s)) => (
            Some(s.max(timeouts_from)),
            format!(
                "lost work: timeouts begin from {timeouts_from:.0} users (U·S_eff/N − A + Sr > T) and \
                 the retried rebuilds alone keep all slots busy from {s:.0} users (f·U·Sr/(T+d) ≥ N): \
                 metastable above the larger"
            ),
        ),
        (_, Some(d), _) => {
            // Work survives: the storm drains once its first wave is worked off, plus one
            // retry cycle when there were timeouts; it misses the horizon when that is late.
            let spare = p.horizon_s - p.timeout_s - d - p.login_s;
            let u = n * spare / s_eff;
            (
                (u > 0.0).then_some(u),
                format!(
                    "work survives retries: the storm drains once its work U·S_eff/N is done, plus one \
                     retry cycle (T + d); it misses the {:.0} s horizon from {u:.0} users",
                    p.horizon_s
                ),
            )
        }
    };
    ClosedForm {
        mean_service_s: s_eff,
        capacity_per_s: n / s_eff,
        timeouts_from_users: timeouts_from,
        sustained_from_users: sustained,
        threshold_users: threshold,
        rule,
    }
}

// ---- measured against predicted -------------------------------------------------------------

/// One swept size as the lab measured it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    pub users: u32,
    pub drained: bool,
    pub drain_time_s: Option<f64>,
}

/// One swept size, measured beside predicted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonRow {
    pub users: u32,
    pub measured_drained: bool,
    /// `None` when the model was not run at this size.
    pub predicted_drains: Option<bool>,
    pub measured_drain_time_s: Option<f64>,
    pub predicted_drain_time_s: Option<f64>,
    /// |predicted − measured| / measured drain time, when both drained.
    pub drain_time_error: Option<f64>,
    /// Both say the same about draining, and the drain times are within [`TOLERANCE`].
    pub agree: bool,
}

/// A sweep, measured against predicted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub rows: Vec<ComparisonRow>,
    /// The smallest swept size that did not drain (lab, model).
    pub measured_threshold: Option<u32>,
    pub predicted_threshold: Option<u32>,
    /// |predicted − measured| / measured threshold, when both exist.
    pub threshold_error: Option<f64>,
    /// The thresholds agree within [`TOLERANCE`] (or neither size drains out of the sweep).
    pub within_tolerance: bool,
    /// One sentence for the report.
    pub note: String,
}

/// Measured sizes beside the predictions of the same sizes (matched by size; a measured size
/// the model was not run at has no prediction).
pub fn compare(measured: &[Measured], predicted: &[Prediction]) -> Comparison {
    let mut measured = measured.to_vec();
    measured.sort_by_key(|m| m.users);
    let rows: Vec<ComparisonRow> = measured
        .iter()
        .map(|m| {
            let p = predicted.iter().find(|p| p.users == m.users);
            let drain_time_error = match (m.drained, m.drain_time_s, p.and_then(|p| p.drain_time_s)) {
                (true, Some(mt), Some(pt)) if mt > 0.0 => Some((pt - mt).abs() / mt),
                _ => None,
            };
            let agree = p.is_some_and(|p| p.drains == m.drained)
                && (!m.drained || drain_time_error.is_none_or(|e| e <= TOLERANCE));
            ComparisonRow {
                users: m.users,
                measured_drained: m.drained,
                predicted_drains: p.map(|p| p.drains),
                measured_drain_time_s: m.drain_time_s,
                predicted_drain_time_s: p.and_then(|p| p.drain_time_s),
                drain_time_error,
                agree,
            }
        })
        .collect();
    let measured_threshold = rows.iter().find(|r| !r.measured_drained).map(|r| r.users);
    let predicted_threshold = rows
        .iter()
        .find(|r| r.predicted_drains == Some(false))
        .map(|r| r.users);
    let largest = rows.last().map_or(0, |r| r.users);
    let (threshold_error, within_tolerance, note) = match (measured_threshold, predicted_threshold) {
        (Some(m), Some(p)) => {
            let e = (f64::from(p) - f64::from(m)).abs() / f64::from(m);
            (
                Some(e),
                e <= TOLERANCE,
                format!(
                    "the lab stops draining at {m} users, the model at {p}: {:.0} % apart ({})",
                    e * 100.0,
                    if e <= TOLERANCE { "within 25 %" } else { "more than 25 %" }
                ),
            )
        }
        (None, None) => {
            (None, true, format!("both the lab and the model drain at every swept size (up to {largest} users)"))
        }
        (Some(m), None) => (
            None,
            false,
            format!("the lab stops draining at {m} users; the model drains at every swept size (up to {largest})"),
        ),
        (None, Some(p)) => (
            None,
            false,
            format!("the model stops draining at {p} users; the lab drained at every swept size (up to {largest})"),
        ),
    };
    Comparison {
        rows,
        measured_threshold,
        predicted_threshold,
        threshold_error,
        within_tolerance,
        note,
    }
}

// ---- past one machine ----------------------------------------------------------------------

/// The assumed peak: `fraction` of all users log in within `window_s` (a Monday morning).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Peak {
    pub fraction: f64,
    pub window_s: f64,
}

/// What a population of millions on several front-ends would meet at its peak.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Extrapolation {
    pub users_total: u64,
    pub frontends: u32,
    pub peak: Peak,
    /// Users logging in at one front-end within the peak window (spread evenly over front-ends).
    pub users_per_frontend: f64,
    /// λ at one front-end during the peak.
    pub arrivals_per_s: f64,
    /// Little's law L = λ·S_eff: slots busy on average at one front-end.
    pub busy_slots: f64,
    /// L / N.
    pub utilisation: f64,
    /// λ·S_eff ≥ N: the slots cannot keep up with first attempts alone.
    pub overflows: bool,
    /// The most users these front-ends carry at this peak before λ·S_eff reaches N.
    pub max_users_total: f64,
    /// The fewest front-ends keeping λ·S_eff under N for `users_total`.
    pub min_frontends: u64,
    /// One front-end's peak simulated (arrivals spread over the window), when it has at most
    /// [`SIM_USERS_MAX`] users.
    pub simulated: Option<Prediction>,
    pub why: String,
}

/// The peak of `users_total` users on `frontends` front-ends, each front-end modelled by `p`
/// (its arrival spread becomes the peak window; its horizon is counted from the window's end).
pub fn extrapolate(p: &Params, users_total: u64, frontends: u32, peak: Peak) -> Extrapolation {
    let fe = f64::from(frontends.max(1));
    let window = peak.window_s.max(1e-9);
    let users_per_frontend = users_total as f64 * peak.fraction.clamp(0.0, 1.0) / fe;
    let lambda = users_per_frontend / window;
    let cf = closed_form(p);
    let busy = lambda * cf.mean_service_s;
    let n = f64::from(p.slots.max(1));
    let per_user_load = peak.fraction.clamp(0.0, 1.0) / window * cf.mean_service_s;
    let max_users_total = if per_user_load > 0.0 {
        n * fe / per_user_load
    } else {
        f64::INFINITY
    };
    let min_frontends = if per_user_load > 0.0 {
        // Strictly under N: the smallest whole count with users·load/fe < N.
        ((users_total as f64 * per_user_load / n).floor() as u64 + 1).max(1)
    } else {
        1
    };
    let simulated = (users_per_frontend <= SIM_USERS_MAX).then(|| {
        let q = Params {
            arrival_spread_s: window,
            horizon_s: window + p.horizon_s,
            ..*p
        };
        predict(&q, users_per_frontend.round() as u32)
    });
    let overflows = busy >= n;
    let why = format!(
        "{:.0} users per front-end in {:.0} s: {lambda:.2} logins/s × {:.2} s = {busy:.1} of {} slots \
         busy ({:.0} %){}; these front-ends carry up to {max_users_total:.0} users at this peak, and \
         {users_total} users need at least {min_frontends} front-end{}",
        users_per_frontend,
        window,
        cf.mean_service_s,
        p.slots,
        busy / n * 100.0,
        if overflows {
            ", more than the slots can serve: the first wave alone overflows"
        } else {
            ""
        },
        if min_frontends == 1 { "" } else { "s" },
    );
    Extrapolation {
        users_total,
        frontends,
        peak,
        users_per_frontend,
        arrivals_per_s: lambda,
        busy_slots: busy,
        utilisation: busy / n,
        overflows,
        max_users_total,
        min_frontends,
        simulated,
        why,
    }
}

#[cfg(test)]
mod tests;
