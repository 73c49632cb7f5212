//! A qemu-guest-agent client: sync, exec with output and exit code, file read and write.
//!
//! The agent's channel is a byte stream that may hold stale replies (from a previous
//! connection, or a command that timed out): the first exchange is a `guest-sync-delimited`
//! whose 0xFF marker and unique id tell us where fresh replies begin, and every command after
//! it carries an `id` the reply must echo.
//!
//! The guest controls what comes back, so what it can make the harness hold or wait for is
//! bounded: a reply line is at most [`LINE_MAX`] bytes, a file read at most [`READ_MAX`] bytes
//! within one deadline for the whole file.

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

/// The most the harness reads of one guest file ([`Agent::read_file`]).
pub const READ_MAX: usize = 256 << 20;
/// The longest reply line taken from the agent. The longest honest one is a
/// `guest-exec-status` with qemu-ga's 16 MiB of stdout and of stderr, base64 (under 45 MB).
pub const LINE_MAX: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("guest agent socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("guest agent: no answer within {0:?}")]
    Timeout(Duration),
    #[error("guest agent: connection closed")]
    Closed,
    #[error("guest agent: {0}")]
    Protocol(String),
    #[error("guest agent: a reply line longer than {0} bytes")]
    LineTooLong(usize),
    #[error("guest agent command {command} failed: {desc}")]
    Command { command: String, desc: String },
    #[error("guest command still running after {limit:?}: {command}")]
    ExecTimeout { command: String, limit: Duration },
}

/// What a command run in the guest printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: i64,
    pub stdout: String,
    pub stderr: String,
    /// The agent cut stdout or stderr short (`out-truncated` / `err-truncated`): what it
    /// returned is partial.
    pub truncated: bool,
}

impl ExecOutput {
    pub fn ok(&self) -> bool {
        self.exit_code == 0
    }
}

/// What [`Agent::read_file_upto`] read of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRead {
    pub data: Vec<u8>,
    /// The file held more than was read.
    pub truncated: bool,
}

/// A finished process's `guest-exec-status` reply as an [`ExecOutput`].
fn exec_output(s: &Value) -> ExecOutput {
    let b64 = |k: &str| -> String {
        s.get(k)
            .and_then(Value::as_str)
            .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    let exit_code = s["exitcode"]
        .as_i64()
        .or_else(|| s["signal"].as_i64().map(|sig| 128 + sig))
        .unwrap_or(-1);
    let flag = |k: &str| s[k].as_bool() == Some(true);
    ExecOutput {
        exit_code,
        stdout: b64("out-data"),
        stderr: b64("err-data"),
        truncated: flag("out-truncated") || flag("err-truncated"),
    }
}

pub struct Agent {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_id: u64,
    /// [`LINE_MAX`], smaller in tests.
    line_max: usize,
    /// The rest of an overlong line is still to be skipped before the next reply.
    skip_line: bool,
}

impl Agent {
    pub async fn connect(socket: &Path) -> Result<Agent, AgentError> {
        let stream = UnixStream::connect(socket).await?;
        let (r, w) = stream.into_split();
        // Ids unique across connections, so a stale reply can never match.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Ok(Agent {
            reader: BufReader::new(r),
            writer: w,
            next_id: seed & 0x7fff_ffff_ffff,
            line_max: LINE_MAX,
            skip_line: false,
        })
    }

    /// Wait until the agent answers a sync, resending every `every` (it ignores what arrives
    /// before it is up), giving up at `limit`. Returns how long it took.
    pub async fn wait_ready(&mut self, limit: Duration) -> Result<Duration, AgentError> {
        let start = Instant::now();
        let every = Duration::from_millis(250);
        loop {
            let left = limit.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(AgentError::Timeout(limit));
            }
            match self.sync(every.min(left)).await {
                Ok(()) => return Ok(start.elapsed()),
                Err(AgentError::Timeout(_)) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// One sync round: send `guest-sync-delimited`, skip to the 0xFF marker, read our id.
    pub async fn sync(&mut self, limit: Duration) -> Result<(), AgentError> {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"execute": "guest-sync-delimited", "arguments": {"id": id}});
        // A leading 0xFF resets the agent's parser if a previous command was cut off.
        let mut bytes = vec![0xFFu8];
        bytes.extend_from_slice(msg.to_string().as_bytes());
        bytes.push(b'\n');
        self.writer.write_all(&bytes).await?;
        tokio::time::timeout(limit, async {
            loop {
                // Skip to the marker.
                loop {
                    let b = self.reader.read_u8().await.map_err(|e| match e.kind() {
                        std::io::ErrorKind::UnexpectedEof => AgentError::Closed,
                        _ => AgentError::Io(e),
                    })?;
                    if b == 0xFF {
                        break;
                    }
                }
                let v = self.read_value().await?;
                if v.get("return").and_then(Value::as_u64) == Some(id) {
                    return Ok(());
                }
            }
        })
        .await
        .map_err(|_| AgentError::Timeout(limit))?
    }

    async fn read_value(&mut self) -> Result<Value, AgentError> {
        if self.skip_line {
            self.read_line(None).await?;
            self.skip_line = false;
        }
        let mut line = Vec::new();
        self.read_line(Some(&mut line)).await?;
        let line = String::from_utf8_lossy(&line);
        serde_json::from_str(line.trim_start_matches('\u{FFFD}'))
            .map_err(|e| AgentError::Protocol(format!("bad JSON {line:?}: {e}")))
    }

    /// Read up to and with the next newline into `into` (or skip it), at most `line_max`
    /// bytes: a longer line is an error, and its rest is skipped before the next read.
    async fn read_line(&mut self, mut into: Option<&mut Vec<u8>>) -> Result<(), AgentError> {
        let mut len = 0;
        loop {
            let buf = self.reader.fill_buf().await?;
            if buf.is_empty() {
                return Err(AgentError::Closed);
            }
            let (take, done) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            if into.is_some() && len + take > self.line_max {
                self.skip_line = true;
                return Err(AgentError::LineTooLong(self.line_max));
            }
            if let Some(v) = into.as_deref_mut() {
                v.extend_from_slice(&buf[..take]);
            }
            len += take;
            self.reader.consume(take);
            if done {
                return Ok(());
            }
        }
    }

    /// Run one agent command, returning its `return` value. Each command carries a unique
    /// `id` that the agent echoes, so a late reply to an earlier command that timed out is
    /// recognised and skipped instead of being taken for this one's.
    pub async fn execute(
        &mut self,
        command: &str,
        args: Value,
        limit: Duration,
    ) -> Result<Value, AgentError> {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"execute": command, "arguments": args, "id": id});
        let mut line = msg.to_string();
        line.push('\n');
        self.writer.write_all(line.as_bytes()).await?;
        let v = tokio::time::timeout(limit, async {
            loop {
                match self.read_value().await {
                    Ok(v) if v.get("id").and_then(Value::as_u64) == Some(id) => return Ok(v),
                    Ok(_) | Err(AgentError::Protocol(_)) => continue,
                    Err(e) => return Err(e),
                }
            }
        })
        .await
        .map_err(|_| AgentError::Timeout(limit))??;
        if let Some(r) = v.get("return") {
            return Ok(r.clone());
        }
        if let Some(e) = v.get("error") {
            return Err(AgentError::Command {
                command: command.to_string(),
                desc: e["desc"].as_str().unwrap_or("?").to_string(),
            });
        }
        Err(AgentError::Protocol(format!("unexpected reply {v}")))
    }

    /// Run `script` with `/bin/sh -c` in the guest and wait for it, at most `limit`.
    pub async fn exec(&mut self, script: &str, limit: Duration) -> Result<ExecOutput, AgentError> {
        let start = Instant::now();
        let pid = self.spawn(script, Duration::from_secs(10).min(limit)).await?;
        let mut poll = Duration::from_millis(20);
        loop {
            if let Some(out) = self.status(pid, Duration::from_secs(10).min(limit)).await? {
                return Ok(out);
            }
            if start.elapsed() >= limit {
                // Don't leave it running: the guest's process table is evidence too.
                let _ = self.kill(pid).await;
                return Err(AgentError::ExecTimeout {
                    command: script.to_string(),
                    limit,
                });
            }
            tokio::time::sleep(poll).await;
            poll = (poll * 2).min(Duration::from_millis(250));
        }
    }

    /// Start `script` with `/bin/sh -c` in the guest, capturing its output; returns its pid
    /// for [`Agent::status`]. One short agent exchange, so callers that interleave several
    /// guest processes on one agent never wait on a long-running one.
    pub async fn spawn(&mut self, script: &str, limit: Duration) -> Result<i64, AgentError> {
        let r = self
            .execute(
                "guest-exec",
                json!({"path": "/bin/sh", "arg": ["-c", script], "capture-output": true}),
                limit,
            )
            .await?;
        r["pid"]
            .as_i64()
            .ok_or_else(|| AgentError::Protocol(format!("guest-exec returned {r}")))
    }

    /// The output of a process started by [`Agent::spawn`] once it has exited; `None` while
    /// it runs. The agent forgets a process once its exit has been reported.
    pub async fn status(&mut self, pid: i64, limit: Duration) -> Result<Option<ExecOutput>, AgentError> {
        let s = self
            .execute("guest-exec-status", json!({"pid": pid}), limit)
            .await?;
        if s["exited"].as_bool() != Some(true) {
            return Ok(None);
        }
        Ok(Some(exec_output(&s)))
    }

    /// SIGKILL a guest process (one started by [`Agent::spawn`]).
    pub async fn kill(&mut self, pid: i64) -> Result<(), AgentError> {
        self.execute(
            "guest-exec",
            json!({"path": "/bin/kill", "arg": ["-9", pid.to_string()]}),
            Duration::from_secs(5),
        )
        .await
        .map(|_| ())
    }

    /// Read a whole file from the guest (at most [`READ_MAX`] bytes, else an error), all of
    /// it within `limit`: a guest that answers every chunk slowly still ends at the deadline.
    pub async fn read_file(&mut self, path: &str, limit: Duration) -> Result<Vec<u8>, AgentError> {
        let read = self.read_file_upto(path, READ_MAX, limit).await?;
        if read.truncated {
            return Err(AgentError::Protocol(format!(
                "{path} is longer than the {} MiB the harness reads of a guest file",
                READ_MAX >> 20
            )));
        }
        Ok(read.data)
    }

    /// Read at most `max` bytes of a guest file, all within `limit`; says whether there was
    /// more. The bytes read decide, not what the guest says the file's size is: a file can
    /// grow between a `stat` and its read, and the guest's answers are its own.
    pub async fn read_file_upto(
        &mut self,
        path: &str,
        max: usize,
        limit: Duration,
    ) -> Result<FileRead, AgentError> {
        let deadline = Instant::now() + limit;
        let left = move || {
            let l = deadline.saturating_duration_since(Instant::now());
            if l.is_zero() {
                Err(AgentError::Timeout(limit))
            } else {
                Ok(l)
            }
        };
        let h = self
            .execute("guest-file-open", json!({"path": path, "mode": "r"}), left()?)
            .await?;
        let handle = h
            .as_i64()
            .ok_or_else(|| AgentError::Protocol(format!("guest-file-open returned {h}")))?;
        let mut data = Vec::new();
        let result = async {
            loop {
                // One byte past `max` tells a file of exactly `max` bytes from a longer one.
                let count = (max + 1 - data.len()).min(1 << 20);
                let r = self
                    .execute(
                        "guest-file-read",
                        json!({"handle": handle, "count": count}),
                        left()?,
                    )
                    .await
                    .map_err(|e| match e {
                        AgentError::Timeout(_) => AgentError::Timeout(limit),
                        e => e,
                    })?;
                if let Some(b) = r["buf-b64"].as_str() {
                    data.extend(
                        base64::engine::general_purpose::STANDARD
                            .decode(b)
                            .map_err(|e| AgentError::Protocol(e.to_string()))?,
                    );
                }
                // The guest decides what the path holds (a log that never ends, /dev/zero)
                // and how much each read returns.
                if data.len() > max {
                    data.truncate(max);
                    return Ok(true);
                }
                if r["eof"].as_bool() != Some(false) {
                    return Ok(false);
                }
            }
        }
        .await;
        // Closed even after the deadline: a handle left open is the guest's to keep forever.
        let _ = self
            .execute(
                "guest-file-close",
                json!({"handle": handle}),
                limit.min(Duration::from_secs(5)),
            )
            .await;
        result.map(|truncated| FileRead { data, truncated })
    }

    /// Write `data` to a file in the guest, replacing it.
    pub async fn write_file(&mut self, path: &str, data: &[u8], limit: Duration) -> Result<(), AgentError> {
        let h = self
            .execute("guest-file-open", json!({"path": path, "mode": "w"}), limit)
            .await?;
        let handle = h
            .as_i64()
            .ok_or_else(|| AgentError::Protocol(format!("guest-file-open returned {h}")))?;
        let mut result = Ok(());
        for chunk in data.chunks(1 << 20) {
            let b64 = base64::engine::general_purpose::STANDARD.encode(chunk);
            if let Err(e) = self
                .execute(
                    "guest-file-write",
                    json!({"handle": handle, "buf-b64": b64}),
                    limit,
                )
                .await
            {
                result = Err(e);
                break;
            }
        }
        let close = self
            .execute("guest-file-close", json!({"handle": handle}), limit)
            .await;
        result.and(close.map(|_| ()))
    }
}

#[cfg(test)]
mod tests;
