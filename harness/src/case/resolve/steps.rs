//! The workload: `[[steps]]` in file order — commands, lock probes, mail sessions, waits,
//! captures — and how a mail session ends (which an arm may change).

use std::collections::BTreeMap;
use std::time::Duration;

use super::population;
use super::{no_repeats, Cx, Names, DEFAULT_EVIDENCE_TIMEOUT, DEFAULT_TIMEOUT, MAX_CONNECTIONS};
use crate::case::raw::{RawEndRef, RawSession, RawStep, Str, S};
use crate::case::{CloseMode, LockMode, Session, SessionStop, Step, StepKind};

/// The steps of a case, and their names for references.
pub(super) struct Steps {
    pub list: Vec<Step>,
    pub names: Names,
    /// Name → (index, offset of the name) of each step's first definition.
    at: BTreeMap<String, (usize, usize)>,
}

impl Steps {
    /// Where the step comes in the workload.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.at.get(name).map(|(i, _)| *i)
    }

    pub fn get(&self, name: &str) -> Option<&Step> {
        self.list.iter().find(|s| s.name == name)
    }
}

pub(super) fn build(cx: &mut Cx, raw: &[RawStep], guest_names: &Names) -> Steps {
    let mut steps = Vec::new();
    let mut step_at: BTreeMap<String, (usize, usize)> = BTreeMap::new(); // name → (index, offset)
    for (i, s) in raw.iter().enumerate() {
        let step = build_step(cx, s, guest_names);
        cx.name(&s.name, "step");
        if let Some((_, first)) = step_at.get(s.name.get_ref()) {
            let line = cx.line(*first, s.name.span().start);
            cx.at(
                &s.name,
                format!("step `{}` is already defined on {line}", s.name.get_ref()),
            );
        } else {
            step_at.insert(s.name.get_ref().clone(), (i, s.name.span().start));
        }
        steps.push(step);
    }
    let names = Names::new("step", steps.iter().map(|s| s.name.clone()));
    Steps {
        list: steps,
        names,
        at: step_at,
    }
}

/// What a capture path may hold: it is expanded by the guest's shell, unquoted, so that its
/// globs work, and so may carry nothing else the shell would act on.
fn glob_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "/._-+=,@%:~*?".contains(c)
}

fn build_step(cx: &mut Cx, s: &RawStep, guests: &Names) -> Step {
    let what = format!("step `{}`", s.name.get_ref());
    let kind_name = cx.one_of(
        s.name.span(),
        &what,
        &[
            ("exec", s.exec.as_ref().map(|v| v.span())),
            ("lock_probe", s.lock_probe.as_ref().map(|v| v.span())),
            ("imap", s.imap.as_ref().map(|v| v.span())),
            ("pop3", s.pop3.as_ref().map(|v| v.span())),
            ("wait", s.wait.as_ref().map(|v| v.span())),
            ("wait_for_log", s.wait_for_log.as_ref().map(|v| v.span())),
            ("capture", s.capture.as_ref().map(|v| v.span())),
            ("population", s.population.as_ref().map(|v| v.span())),
        ],
    );
    // Steps whose point in the workload is their whole meaning: the next starts after them.
    let waits = matches!(kind_name, Some("wait" | "wait_for_log" | "capture"));
    match (&s.guest, kind_name) {
        (Some(g), Some("wait")) => cx.at(g, "a wait step runs in no guest: leave out `guest`"),
        (Some(g), _) => {
            guests.refer(cx, g);
        }
        (None, Some("wait") | None) => {}
        (None, Some(k)) => cx.at(&s.name, format!("{what} needs a `guest` to run its {k} in")),
    }
    if let (Some(b), true) = (&s.background, waits) {
        if *b.get_ref() {
            cx.at(
                b,
                format!(
                    "a {} step cannot run in the background",
                    kind_name.unwrap_or("wait")
                ),
            );
        }
    }
    let guest = s.guest.as_ref().map(|g| g.get_ref().clone());
    let kind = match kind_name {
        Some("exec") => {
            let e = s.exec.as_ref().expect("given").get_ref();
            cx.nonblank(&e.command, "command");
            let expect_exit = match &e.expect_exit {
                None => 0,
                Some(x) => u8::try_from(*x.get_ref()).unwrap_or_else(|_| {
                    cx.at(x, "expect_exit must be 0 to 255");
                    0
                }),
            };
            StepKind::Exec {
                command: e.command.get_ref().clone(),
                timeout: cx.positive(e.timeout.as_ref(), DEFAULT_TIMEOUT),
                expect_exit,
            }
        }
        Some("lock_probe") => {
            let l = s.lock_probe.as_ref().expect("given").get_ref();
            cx.absolute(&l.path, "path");
            let mode = match l.mode.get_ref().as_str() {
                "hold" => LockMode::Hold,
                "wait" => LockMode::Wait,
                _ => {
                    cx.at(
                        &l.mode,
                        format!("mode must be \"hold\" or \"wait\", not {:?}", l.mode.get_ref()),
                    );
                    LockMode::Hold
                }
            };
            let seconds = match u32::try_from(*l.seconds.get_ref()) {
                Ok(n @ 1..=3600) => n,
                _ => {
                    cx.at(&l.seconds, "seconds must be 1 to 3600");
                    1
                }
            };
            StepKind::LockProbe {
                path: l.path.get_ref().clone(),
                mode,
                seconds,
            }
        }
        Some(k @ ("imap" | "pop3")) => {
            let (raw, imap) = if k == "imap" {
                (s.imap.as_ref().expect("given").get_ref(), true)
            } else {
                (s.pop3.as_ref().expect("given").get_ref(), false)
            };
            let session = build_session(cx, raw, imap, guest.as_deref(), guests);
            if imap {
                StepKind::Imap(session)
            } else {
                StepKind::Pop3(session)
            }
        }
        Some("population") => {
            let p = s.population.as_ref().expect("given").get_ref();
            StepKind::Population(population::build(cx, p, guest.as_deref(), guests))
        }
        Some("wait") => {
            let w = s.wait.as_ref().expect("given").get_ref();
            StepKind::Wait {
                duration: cx.positive(Some(&w.duration), Duration::from_secs(1)),
            }
        }
        Some("capture") => {
            let c = s.capture.as_ref().expect("given");
            let files = c.get_ref().files.as_ref();
            if c.get_ref().command.is_none() && files.is_none_or(|f| f.get_ref().is_empty()) {
                cx.at(c, "a capture step needs a `command`, some `files`, or both");
            }
            if let Some(cmd) = &c.get_ref().command {
                cx.nonblank(cmd, "command");
            }
            for f in files.map(|f| f.get_ref().as_slice()).unwrap_or_default() {
                cx.absolute(f, "file");
                if let Some(bad) = f.get_ref().chars().find(|ch| !glob_path_char(*ch)) {
                    cx.at(
                        f,
                        format!(
                            "{:?} has {bad:?}: capture paths are letters, digits, / . _ - + = , @ % : ~ and the globs * ?",
                            f.get_ref()
                        ),
                    );
                }
            }
            if let Some(f) = files {
                no_repeats(cx, f.get_ref(), "file");
            }
            StepKind::Capture {
                command: c.get_ref().command.as_ref().map(|c| c.get_ref().clone()),
                files: files
                    .map(|f| f.get_ref().iter().map(|x| x.get_ref().clone()).collect())
                    .unwrap_or_default(),
                timeout: cx.positive(c.get_ref().timeout.as_ref(), DEFAULT_EVIDENCE_TIMEOUT),
            }
        }
        Some(_) => {
            let w = s.wait_for_log.as_ref().expect("given").get_ref();
            cx.absolute(&w.file, "file");
            StepKind::WaitForLog {
                file: w.file.get_ref().clone(),
                pattern: cx.pattern(&w.pattern),
                timeout: cx.positive(w.timeout.as_ref(), DEFAULT_TIMEOUT),
            }
        }
        None => StepKind::Wait {
            duration: Duration::ZERO,
        },
    };
    let background = s.background.as_ref().is_some_and(|b| *b.get_ref());
    if let (true, StepKind::Imap(sess) | StepKind::Pop3(sess)) = (background, &kind) {
        if matches!(sess.stop, Some(SessionStop::OnLog { .. })) {
            cx.at(
                s.background.as_ref().expect("given"),
                "a session stopped by a log line runs in the foreground: leave out background",
            );
        }
    }
    Step {
        name: s.name.get_ref().clone(),
        guest,
        background,
        kind,
    }
}

fn build_session(cx: &mut Cx, s: &RawSession, imap: bool, guest: Option<&str>, guests: &Names) -> Session {
    let (protocol, default_port, own, bye): (&str, u16, &[&str], &str) = if imap {
        ("IMAP", 143, &["LOGIN", "LOGOUT", "AUTHENTICATE"], "LOGOUT")
    } else {
        ("POP3", 110, &["USER", "PASS", "APOP", "QUIT"], "QUIT")
    };
    if let Some(server) = &s.server {
        guests.refer(cx, server);
    }
    let port = port(cx, s.port.as_ref(), default_port);
    cx.nonblank(&s.user, "user");
    let hint = format!("close = \"fin\" ends it without {bye}");
    mail_commands(cx, &s.commands, protocol, own, &hint);
    let (close, stop, hold) = session_end(cx, &s.end(), bye, !s.commands.is_empty(), &s.user, guests);
    Session {
        server: s
            .server
            .as_ref()
            .map(|v| v.get_ref().as_str())
            .or(guest)
            .unwrap_or_default()
            .to_string(),
        port,
        user: s.user.get_ref().clone(),
        password: s.password.get_ref().clone(),
        commands: s.commands.iter().map(|c| c.get_ref().clone()).collect(),
        close,
        stop,
        hold,
        timeout: cx.positive(s.timeout.as_ref(), DEFAULT_TIMEOUT),
        connections: match &s.connections {
            None => 1,
            Some(n) => match u32::try_from(*n.get_ref()) {
                Ok(n) if (1..=MAX_CONNECTIONS).contains(&n) => n,
                _ => {
                    cx.at(n, format!("connections is 1 to {MAX_CONNECTIONS}"));
                    1
                }
            },
        },
    }
}

/// A mail client's port, or `default`.
pub(super) fn port(cx: &mut Cx, p: Option<&S<i64>>, default: u16) -> u16 {
    match p {
        None => default,
        Some(p) => match u16::try_from(*p.get_ref()) {
            Ok(n) if n > 0 => n,
            _ => {
                cx.at(p, "a port is 1 to 65535");
                default
            }
        },
    }
}

/// The commands a mail client sends after logging in: one line each, and none of the verbs
/// the client sends by itself (`own`: logging in and out; `hint` says how to do without).
pub(super) fn mail_commands(cx: &mut Cx, commands: &[Str], protocol: &str, own: &[&str], hint: &str) {
    for c in commands {
        cx.line_text(c, &format!("an {protocol} command"));
        let verb = c
            .get_ref()
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        if own.contains(&verb.as_str()) {
            cx.at(
                c,
                format!("the session logs in and out by itself: leave out {verb} ({hint})"),
            );
        }
    }
}

/// How a session ends: its close mode, stop and hold, validated. `at` is where to point an
/// error about the session as a whole.
pub(super) fn session_end(
    cx: &mut Cx,
    e: &RawEndRef<'_>,
    bye: &str,
    has_commands: bool,
    at: &Str,
    guests: &Names,
) -> (CloseMode, Option<SessionStop>, Option<Duration>) {
    let stops = [
        ("stop_after_lines", e.stop_after_lines.map(|v| v.span())),
        ("stop_after", e.stop_after.map(|v| v.span())),
        ("stop_on_log", e.stop_on_log.map(|v| v.span())),
    ];
    let given: Vec<_> = stops.iter().filter(|(_, sp)| sp.is_some()).collect();
    let stop = match given.as_slice() {
        [] => None,
        [(k, _)] => Some(match *k {
            "stop_after_lines" => {
                let v = e.stop_after_lines.expect("given");
                SessionStop::AfterLines(
                    u32::try_from(*v.get_ref())
                        .ok()
                        .filter(|n| *n > 0)
                        .unwrap_or_else(|| {
                            cx.at(v, "stop_after_lines is a number of lines, at least 1");
                            1
                        }),
                )
            }
            "stop_after" => SessionStop::After(cx.positive(e.stop_after, Duration::from_secs(1))),
            _ => {
                let l = e.stop_on_log.expect("given").get_ref();
                guests.refer(cx, &l.guest);
                cx.absolute(&l.file, "file");
                SessionStop::OnLog {
                    guest: l.guest.get_ref().clone(),
                    file: l.file.get_ref().clone(),
                    pattern: cx.pattern(&l.pattern),
                }
            }
        }),
        [_, (k, Some(sp)), ..] => {
            cx.err(
                sp.clone(),
                format!("a session stops one way: `{k}` and another stop key are both given"),
            );
            None
        }
        _ => None,
    };
    let close = match e.close.map(|c| c.get_ref().as_str()) {
        None if stop.is_some() => CloseMode::Fin,
        None | Some("quit") => CloseMode::Quit,
        Some("fin") => CloseMode::Fin,
        Some("rst") => CloseMode::Rst,
        Some("silent") => CloseMode::Silent,
        Some(other) => {
            cx.at(
                e.close.expect("given"),
                format!("close must be \"quit\", \"fin\", \"rst\" or \"silent\", not {other:?}"),
            );
            CloseMode::Quit
        }
    };
    if stop.is_some() {
        if close == CloseMode::Quit {
            cx.at(
                e.close.expect("quit is only explicit here"),
                format!("a stopped session cannot end with {bye}: close with \"fin\", \"rst\" or \"silent\""),
            );
        }
        if !has_commands {
            cx.at(at, "a session with a stop key needs a command to stop in");
        }
    }
    let hold = e.hold.map(|h| cx.positive(Some(h), Duration::from_secs(1)));
    (close, stop, hold)
}
