//! `faultline shell GUEST`: commands in a guest of a kept lab (`faultline run --keep`).
//!
//! The run that keeps the lab owns every guest agent (an agent takes one client at a time),
//! so it serves `shell.sock` (in the lab's short socket folder, linked from the run folder as
//! `shell.sock`): one JSON request per line,
//! `{"guest": "imap1", "command": "cat /proc/locks"}`, answered by one JSON line with
//! `stdout`, `stderr` and `exit_code`, or `error`.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::lab::Lab;

#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    pub guest: String,
    pub command: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Reply {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: i64,
    pub error: Option<String>,
}

/// Answer requests on `socket` until `until` completes. Commands get `limit` each.
pub async fn serve(
    lab: &mut Lab,
    socket: &Path,
    limit: Duration,
    until: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)?;
    tokio::pin!(until);
    loop {
        let conn = tokio::select! {
            c = listener.accept() => c?.0,
            _ = &mut until => break,
        };
        let (r, mut w) = conn.into_split();
        let mut lines = BufReader::new(r).lines();
        loop {
            let line = tokio::select! {
                l = lines.next_line() => l,
                _ = &mut until => { let _ = std::fs::remove_file(socket); return Ok(()) }
            };
            let Ok(Some(line)) = line else { break };
            let reply = match serde_json::from_str::<Request>(&line) {
                Err(e) => Reply {
                    error: Some(format!("bad request: {e}")),
                    ..Reply::default()
                },
                Ok(req) => match lab.guest(&req.guest) {
                    None => Reply {
                        error: Some(format!("no guest named {} in this lab", req.guest)),
                        ..Reply::default()
                    },
                    Some(vm) => match vm.exec(&req.command, limit).await {
                        Ok(o) => Reply {
                            stdout: o.stdout,
                            stderr: o.stderr,
                            exit_code: o.exit_code,
                            error: None,
                        },
                        Err(e) => Reply {
                            error: Some(e.what),
                            ..Reply::default()
                        },
                    },
                },
            };
            let mut text = serde_json::to_string(&reply).unwrap_or_default();
            text.push('\n');
            if w.write_all(text.as_bytes()).await.is_err() {
                break;
            }
        }
    }
    let _ = std::fs::remove_file(socket);
    Ok(())
}

/// Send one command; the reply.
pub async fn request(socket: &Path, guest: &str, command: &str) -> std::io::Result<Reply> {
    let stream = UnixStream::connect(socket).await?;
    let (r, mut w) = stream.into_split();
    let mut line = serde_json::to_string(&Request {
        guest: guest.into(),
        command: command.into(),
    })?;
    line.push('\n');
    w.write_all(line.as_bytes()).await?;
    let mut lines = BufReader::new(r).lines();
    let answer = lines
        .next_line()
        .await?
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the run closed the shell"))?;
    serde_json::from_str(&answer).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
