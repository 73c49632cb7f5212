//! A QMP client: greeting and capabilities handshake, commands with deadlines, events kept.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("QMP socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("QMP: no answer within {0:?}")]
    Timeout(Duration),
    #[error("QMP: connection closed")]
    Closed,
    #[error("QMP: {0}")]
    Protocol(String),
    #[error("QMP command {command} failed: {class}: {desc}")]
    Command {
        command: String,
        class: String,
        desc: String,
    },
}

pub struct Qmp {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    /// Every event seen so far, in order (`{"event": ..., "timestamp": ...}`).
    pub events: Vec<Value>,
}

impl Qmp {
    /// Connect and negotiate capabilities, all within `limit`.
    pub async fn connect(socket: &Path, limit: Duration) -> Result<Qmp, QmpError> {
        tokio::time::timeout(limit, async {
            let stream = UnixStream::connect(socket).await?;
            let (r, w) = stream.into_split();
            let mut q = Qmp {
                reader: BufReader::new(r),
                writer: w,
                events: Vec::new(),
            };
            let greeting = q.read_value().await?;
            if greeting.get("QMP").is_none() {
                return Err(QmpError::Protocol(format!("unexpected greeting {greeting}")));
            }
            q.execute_inner("qmp_capabilities", None).await?;
            Ok(q)
        })
        .await
        .map_err(|_| QmpError::Timeout(limit))?
    }

    /// Run `command` and return its `return` value.
    pub async fn execute(
        &mut self,
        command: &str,
        args: Option<Value>,
        limit: Duration,
    ) -> Result<Value, QmpError> {
        tokio::time::timeout(limit, self.execute_inner(command, args))
            .await
            .map_err(|_| QmpError::Timeout(limit))?
    }

    async fn execute_inner(&mut self, command: &str, args: Option<Value>) -> Result<Value, QmpError> {
        let mut msg = json!({ "execute": command });
        if let Some(a) = args {
            msg["arguments"] = a;
        }
        let mut line = msg.to_string();
        line.push('\n');
        self.writer.write_all(line.as_bytes()).await?;
        loop {
            let v = self.read_value().await?;
            if v.get("event").is_some() {
                self.events.push(v);
                continue;
            }
            if let Some(r) = v.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = v.get("error") {
                return Err(QmpError::Command {
                    command: command.to_string(),
                    class: e["class"].as_str().unwrap_or("?").to_string(),
                    desc: e["desc"].as_str().unwrap_or("?").to_string(),
                });
            }
            return Err(QmpError::Protocol(format!("unexpected message {v}")));
        }
    }

    async fn read_value(&mut self) -> Result<Value, QmpError> {
        let mut line = String::new();
        if self.reader.read_line(&mut line).await? == 0 {
            return Err(QmpError::Closed);
        }
        serde_json::from_str(&line).map_err(|e| QmpError::Protocol(format!("bad JSON {line:?}: {e}")))
    }
}
