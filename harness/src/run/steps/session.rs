//! Mail session transcripts (what `mailclient.pl` printed) turned into one history event per
//! command. Pairing is pure: the transcript is guest output, so lines that fit no pattern are
//! skipped, never trusted.

use std::collections::BTreeMap;

use crate::case::Step;
use crate::results::EventKind;
use crate::run::context::Ctx;
use crate::run::record::snippet;

/// One history event per command a mail session sent, timed by the guest's clock relative
/// to the session's first line, with the answer's status line.
pub(super) fn session_ops(ctx: &Ctx<'_>, step: &Step, started: f64, transcript: &str) {
    for (at, detail) in pair_session_ops(transcript) {
        ctx.history.event_at(
            Some(started + at),
            EventKind::Op,
            &step.name,
            step.guest.as_deref(),
            None,
            Some(detail),
        );
    }
}

/// A mail transcript's commands paired with their answers' status lines: (seconds since the
/// first line, "CMD → answer (ms)"). With several connections (lines tagged "#i"), each
/// connection's commands are paired with its own answers. Pure: the transcript is guest
/// output, so lines that fit no pattern are skipped, never trusted.
fn pair_session_ops(transcript: &str) -> Vec<(f64, String)> {
    let mut ops = Vec::new();
    let mut first: Option<f64> = None;
    let mut open: BTreeMap<&str, (f64, String)> = BTreeMap::new();
    let mut emit = |conn: &str, (at, cmd): (f64, String), answer: Option<(f64, &str)>| {
        let who = if conn.is_empty() {
            String::new()
        } else {
            format!("{conn} ")
        };
        let detail = match answer {
            Some((t, a)) => format!("{who}{cmd} → {} ({:.0} ms)", snippet(a, 120), (t - at) * 1000.0),
            None => format!("{who}{cmd} → (no answer)"),
        };
        ops.push((at, detail));
    };
    for line in transcript.lines() {
        let Some((up, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(up) = up.parse::<f64>() else { continue };
        if !up.is_finite() {
            continue;
        }
        let rel = up - *first.get_or_insert(up);
        let (conn, rest) = match rest.strip_prefix('#').and_then(|r| r.split_once(' ')) {
            Some((n, r)) if n.bytes().all(|b| b.is_ascii_digit()) => (&rest[..n.len() + 1], r),
            _ => ("", rest),
        };
        if let Some(c) = rest.strip_prefix("C: ") {
            if let Some(o) = open.remove(conn) {
                emit(conn, o, None);
            }
            open.insert(conn, (rel, c.to_string()));
        } else if let Some(s) = rest.strip_prefix("S: ") {
            let done = open.get(conn).is_some_and(|(_, c)| {
                let tag = c.split(' ').next().unwrap_or_default();
                s.starts_with(&format!("{tag} ")) || s.starts_with("+OK") || s.starts_with("-ERR")
            });
            if done {
                let o = open.remove(conn).expect("checked above");
                emit(conn, o, Some((rel, s)));
            }
        }
    }
    for (conn, o) in std::mem::take(&mut open) {
        emit(conn, o, None);
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ops_pair_each_connection_with_its_own_answers() {
        let transcript = "\
10.00 #1 S: * OK ready
10.00 #1 C: a1 LOGIN \"user1\" ***
10.10 #2 C: a1 LOGIN \"user2\" ***
10.25 #2 S: a1 OK Logged in
10.30 #1 S: a1 NO [LIMIT] too many
#1 login refused
10.40 #2 C: a2 SELECT INBOX
10.41 #2 S: * 1 EXISTS
nonsense without a time
NaN #2 S: a2 OK forged
10.90 #2 S: a2 OK [READ-WRITE] Select completed
11.00 C: STAT
11.50 S: +OK 2 20
12.00 #3 C: a1 LOGIN \"user3\" ***
";
        let ops = pair_session_ops(transcript);
        let shown: Vec<String> = ops.iter().map(|(at, d)| format!("{at:.2} {d}")).collect();
        assert_eq!(
            shown,
            [
                "0.10 #2 a1 LOGIN \"user2\" *** → a1 OK Logged in (150 ms)",
                "0.00 #1 a1 LOGIN \"user1\" *** → a1 NO [LIMIT] too many (300 ms)",
                "0.40 #2 a2 SELECT INBOX → a2 OK [READ-WRITE] Select completed (500 ms)",
                "1.00 STAT → +OK 2 20 (500 ms)",
                "2.00 #3 a1 LOGIN \"user3\" *** → (no answer)",
            ]
        );
    }
}
