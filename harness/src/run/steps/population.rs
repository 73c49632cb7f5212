//! A `population` step in its guest: the command line that starts `population.pl`, and its
//! attempts kept in the arm's folder as `population/<step>.jsonl` once it has ended.
//!
//! Architecture invariant: the client's output is read only through
//! [`crate::metrics::population`] (pure, total over hostile bytes); nothing here trusts it.

use std::path::Path;
use std::time::Duration;

use crate::case::{CloseMode, MailProtocol, Population, RetryPolicy};
use crate::metrics::population::{jsonl, parse};
use crate::run::context::GUEST_DIR;
use crate::shquote::sh_quote;

/// Users per worker process: each multiplexes its share with select(), whose descriptor
/// sets stay well under 1024 this way.
const USERS_PER_WORKER: u32 = 250;
const MAX_WORKERS: u32 = 16;

/// The shell line that runs the population (`host`: where it connects), its ready file
/// created once every worker runs.
pub(super) fn script(p: &Population, host: &str, ready: &str) -> String {
    let ms = |d: Duration| d.as_millis();
    let proto = match p.protocol {
        MailProtocol::Imap => "imap",
        MailProtocol::Pop3 => "pop3",
    };
    let retry = match p.retry.policy {
        RetryPolicy::None => "none",
        RetryPolicy::Fixed => "fixed",
        RetryPolicy::Exponential => "exponential",
    };
    let close = if p.close == CloseMode::Rst { "rst" } else { "fin" };
    let workers = p.users.div_ceil(USERS_PER_WORKER).clamp(1, MAX_WORKERS);
    // A thousand sockets and more: the stock soft limit of 1024 descriptors is not enough
    // for one process; raise it as far as the guest lets root.
    let mut s = format!(
        "ulimit -n 65536 2>/dev/null || ulimit -n 8192 2>/dev/null; exec perl {GUEST_DIR}/population.pl {proto} {host} {} {} \
         --user {} --password {} --users {} --workers {workers} --arrivals-ms {} --attempt-timeout-ms {} \
         --close {close} --retry {retry} --delay-ms {} --max-delay-ms {} --jitter {} --duration-ms {}",
        p.port,
        sh_quote(ready),
        sh_quote(&p.user),
        sh_quote(&p.password),
        p.users,
        ms(p.arrivals),
        ms(p.attempt_timeout),
        ms(p.retry.delay),
        ms(p.retry.max_delay),
        u8::from(p.retry.jitter),
        ms(p.duration),
    );
    if let Some(r) = p.repeat_after {
        s.push_str(&format!(" --repeat-after-ms {}", ms(r)));
    }
    if let Some(h) = p.hold {
        s.push_str(&format!(" --hold-ms {}", ms(h)));
    }
    s.push_str(" --");
    for c in &p.commands {
        s.push(' ');
        s.push_str(&sh_quote(c));
    }
    s
}

/// How long the client may run before the harness kills it: its own end (the duration, the
/// last attempts' timeout, a hold, a logout) and its own last resort (30 s past that), plus
/// `margin` for a slow guest.
pub(super) fn limit(p: &Population, margin: Duration) -> Duration {
    p.duration + p.attempt_timeout + p.hold.unwrap_or_default() + Duration::from_secs(45) + margin
}

/// Write the attempts to `population/<step>.jsonl` in the arm's folder (whole or not at all);
/// returns the file relative to the folder, or why there is none.
pub(super) fn keep_attempts(dir: &Path, step: &str, output: &str, started_s: f64) -> Result<String, String> {
    let tr = parse(output, started_s).map_err(|e| e.to_string())?;
    let rel = format!("population/{step}.jsonl");
    let path = dir.join(&rel);
    std::fs::create_dir_all(dir.join("population")).map_err(|e| format!("{}: {e}", path.display()))?;
    crate::results::write_atomic(&path, jsonl(&tr).as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(rel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::Retry;

    #[test]
    fn the_command_line_carries_every_setting_quoted() {
        let p = Population {
            protocol: MailProtocol::Imap,
            server: "imap1".into(),
            port: 143,
            user: "user%i".into(),
            password: "pw%i".into(),
            users: 1000,
            commands: vec!["SELECT INBOX".into(), "FETCH 1:* (FLAGS RFC822.SIZE)".into()],
            arrivals: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(20),
            close: CloseMode::Rst,
            retry: Retry {
                policy: RetryPolicy::Exponential,
                delay: Duration::from_secs(2),
                max_delay: Duration::from_secs(30),
                jitter: true,
            },
            duration: Duration::from_secs(120),
            repeat_after: Some(Duration::from_secs(60)),
            hold: Some(Duration::from_millis(1500)),
        };
        insta::assert_snapshot!(script(&p, "imap1", "/run/faultline/ready/storm"));
        assert_eq!(
            limit(&p, Duration::from_secs(60)),
            Duration::from_millis(120_000 + 20_000 + 1500 + 45_000 + 60_000)
        );
    }
}
