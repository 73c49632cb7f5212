//! A `population` step: many simulated mail users in one guest, each a client with an
//! attempt timeout and a retry policy. Validated here value by value; the client that runs
//! it is `run/guest/population.pl`.
//!
//! Architecture invariant: every value the client gets on its command line is checked here
//! (user names and passwords go into IMAP quoted strings and a shell word), so a case that
//! loads never hands the guest a line it would misread.

use std::time::Duration;

use super::steps::{mail_commands, port};
use super::{Cx, Names};
use crate::case::raw::{RawPopulation, RawPopulationChange, RawRetry, Str};
use crate::case::{CloseMode, MailProtocol, Population, PopulationChange, Retry, RetryPolicy};

/// The most users one step may have: its client's workers each multiplex a few hundred
/// sockets with select(), and past this the one guest's memory is the limit, not the client.
pub(super) const MAX_USERS: u32 = 4000;
/// A mail client gives up on a server that does not answer (K-9 Mail: 30 s to connect).
const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_DELAY: Duration = Duration::from_secs(2);
const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(60);

pub(super) fn build(cx: &mut Cx, p: &RawPopulation, guest: Option<&str>, guests: &Names) -> Population {
    let protocol = match p.protocol.get_ref().as_str() {
        "imap" => MailProtocol::Imap,
        "pop3" => MailProtocol::Pop3,
        other => {
            cx.at(
                &p.protocol,
                format!("protocol must be \"imap\" or \"pop3\", not {other:?}"),
            );
            MailProtocol::Imap
        }
    };
    let (name, default_port, own): (&str, u16, &[&str]) = match protocol {
        MailProtocol::Imap => ("IMAP", 143, &["LOGIN", "LOGOUT", "AUTHENTICATE"]),
        MailProtocol::Pop3 => ("POP3", 110, &["USER", "PASS", "APOP", "QUIT"]),
    };
    if let Some(server) = &p.server {
        guests.refer(cx, server);
    }
    let port = port(cx, p.port.as_ref(), default_port);
    credential(cx, &p.user, "user");
    credential(cx, &p.password, "password");
    let users = match u32::try_from(*p.users.get_ref()) {
        Ok(n) if (1..=MAX_USERS).contains(&n) => n,
        _ => {
            cx.at(&p.users, format!("users is 1 to {MAX_USERS}"));
            1
        }
    };
    mail_commands(
        cx,
        &p.commands,
        name,
        own,
        "each user logs out after its last command",
    );
    let duration = cx.positive(Some(&p.duration), Duration::from_secs(1));
    let arrivals = match &p.arrivals {
        None => Duration::ZERO,
        Some(a) => {
            let d = cx.duration(a).unwrap_or_default();
            if d > duration {
                cx.at(
                    a,
                    format!(
                        "arrivals ({}) is longer than duration ({}): the last users would never arrive",
                        a.get_ref(),
                        p.duration.get_ref()
                    ),
                );
            }
            d
        }
    };
    let close = match p.close.as_ref().map(|c| c.get_ref().as_str()) {
        None | Some("fin") => CloseMode::Fin,
        Some("rst") => CloseMode::Rst,
        Some(other) => {
            cx.at(
                p.close.as_ref().expect("given"),
                format!("close must be \"fin\" or \"rst\" (how a client that gives up disconnects), not {other:?}"),
            );
            CloseMode::Fin
        }
    };
    Population {
        protocol,
        server: p
            .server
            .as_ref()
            .map(|v| v.get_ref().as_str())
            .or(guest)
            .unwrap_or_default()
            .to_string(),
        port,
        user: p.user.get_ref().clone(),
        password: p.password.get_ref().clone(),
        users,
        commands: p.commands.iter().map(|c| c.get_ref().clone()).collect(),
        arrivals,
        attempt_timeout: cx.positive(p.attempt_timeout.as_ref(), DEFAULT_ATTEMPT_TIMEOUT),
        close,
        retry: p.retry.as_ref().map_or(
            Retry {
                policy: RetryPolicy::None,
                delay: DEFAULT_DELAY,
                max_delay: DEFAULT_MAX_DELAY,
                jitter: false,
            },
            |r| retry(cx, r.get_ref()),
        ),
        duration,
        repeat_after: p
            .repeat_after
            .as_ref()
            .map(|r| cx.positive(Some(r), Duration::from_secs(1))),
        hold: p
            .hold
            .as_ref()
            .map(|h| cx.positive(Some(h), Duration::from_secs(1))),
    }
}

/// An arm's change to a population (`setup.populations.<step>`), checked as the step's own
/// keys are and against the step's other values.
pub(super) fn change(cx: &mut Cx, c: &RawPopulationChange, base: &Population) -> PopulationChange {
    let users = c.users.as_ref().map(|u| match u32::try_from(*u.get_ref()) {
        Ok(n) if (1..=MAX_USERS).contains(&n) => n,
        _ => {
            cx.at(u, format!("users is 1 to {MAX_USERS}"));
            1
        }
    });
    let arrivals = c.arrivals.as_ref().map(|a| {
        let d = cx.duration(a).unwrap_or_default();
        if d > base.duration {
            cx.at(
                a,
                format!(
                    "arrivals ({}) is longer than the population's duration: the last users would never arrive",
                    a.get_ref()
                ),
            );
        }
        d
    });
    PopulationChange {
        users,
        arrivals,
        attempt_timeout: c
            .attempt_timeout
            .as_ref()
            .map(|t| cx.positive(Some(t), DEFAULT_ATTEMPT_TIMEOUT)),
        retry: c.retry.as_ref().map(|r| retry(cx, r.get_ref())),
        repeat_after: c
            .repeat_after
            .as_ref()
            .map(|r| cx.positive(Some(r), Duration::from_secs(1))),
    }
}

/// A user name or password: it goes into an IMAP quoted string and onto a command line, so
/// printable ASCII without spaces, quotes or backslashes.
fn credential(cx: &mut Cx, s: &Str, what: &str) {
    cx.nonblank(s, what);
    if let Some(bad) = s
        .get_ref()
        .chars()
        .find(|c| !c.is_ascii_graphic() || matches!(c, '"' | '\\' | '\''))
    {
        cx.at(
            s,
            format!("{what} {:?} has {bad:?}: a population's {what} is printable ASCII without spaces, quotes or backslashes", s.get_ref()),
        );
    }
}

fn retry(cx: &mut Cx, r: &RawRetry) -> Retry {
    let policy = match r.policy.get_ref().as_str() {
        "none" => RetryPolicy::None,
        "fixed" => RetryPolicy::Fixed,
        "exponential" => RetryPolicy::Exponential,
        other => {
            cx.at(
                &r.policy,
                format!("policy must be \"none\", \"fixed\" or \"exponential\", not {other:?}"),
            );
            RetryPolicy::None
        }
    };
    // Keys that would change nothing are mistakes: the case meant another policy.
    let pointless = |k: &str| match (policy, k) {
        (RetryPolicy::None, _) => Some("a user with policy \"none\" does not retry"),
        (RetryPolicy::Fixed, "max_delay") => {
            Some("a fixed delay does not grow: max_delay is for \"exponential\"")
        }
        _ => None,
    };
    for (k, span) in [
        ("delay", r.delay.as_ref().map(|v| v.span())),
        ("max_delay", r.max_delay.as_ref().map(|v| v.span())),
        ("jitter", r.jitter.as_ref().map(|v| v.span())),
    ] {
        if let (Some(span), Some(why)) = (span, pointless(k)) {
            cx.err(span, format!("{k} means nothing here: {why}"));
        }
    }
    let delay = cx.positive(r.delay.as_ref(), DEFAULT_DELAY);
    let max_delay = cx.positive(r.max_delay.as_ref(), DEFAULT_MAX_DELAY.max(delay));
    if let Some(m) = &r.max_delay {
        if max_delay < delay {
            cx.at(
                m,
                format!(
                    "max_delay ({}) is shorter than delay ({})",
                    m.get_ref(),
                    r.delay.as_ref().map_or("2s", |d| d.get_ref().as_str())
                ),
            );
        }
    }
    Retry {
        policy,
        delay,
        max_delay,
        jitter: r.jitter.as_ref().is_some_and(|j| *j.get_ref()),
    }
}
