//! Shared access to the lab's guest agents while a workload runs.
//!
//! Steps, fault triggers and background steps run concurrently in one task and take turns on
//! each guest's agent one short exchange at a time (start a process, ask its status, read a
//! file): a long-running guest process never holds the agent, so a lock probe can wait for
//! minutes while other steps and fault triggers keep using the same guest.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::accel::Accel;
use crate::qemu::agent::{Agent, AgentError, ExecOutput};
use crate::qemu::Qmp;

pub struct Guests<'a> {
    agents: BTreeMap<String, Mutex<&'a mut Agent>>,
    /// Each guest's QMP connection, for what only the machine can tell (block statistics).
    qmps: BTreeMap<String, Mutex<&'a mut Qmp>>,
    accel: Accel,
}

/// A guest process that has not been reaped yet.
#[derive(Debug, Clone)]
pub struct Running {
    pub guest: String,
    pub pid: i64,
    pub started: Instant,
}

impl<'a> Guests<'a> {
    pub fn new(
        machines: impl IntoIterator<Item = (String, &'a mut Agent, &'a mut Qmp)>,
        accel: Accel,
    ) -> Guests<'a> {
        let (mut agents, mut qmps) = (BTreeMap::new(), BTreeMap::new());
        for (n, a, q) in machines {
            agents.insert(n.clone(), Mutex::new(a));
            qmps.insert(n, Mutex::new(q));
        }
        Guests { agents, qmps, accel }
    }

    /// One QMP command on the guest's machine.
    pub async fn qmp(
        &self,
        guest: &str,
        command: &str,
        args: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, String> {
        let q = self
            .qmps
            .get(guest)
            .ok_or_else(|| format!("no guest named {guest} in this lab"))?;
        let limit = self.call_limit();
        q.lock()
            .await
            .execute(command, args, limit)
            .await
            .map_err(|e| e.to_string())
    }

    /// One agent exchange's deadline: generous, since a guest under TCG with a busy CPU
    /// answers slowly.
    fn call_limit(&self) -> Duration {
        self.accel.scale(Duration::from_secs(10))
    }

    fn agent(&self, guest: &str) -> Result<&Mutex<&'a mut Agent>, AgentError> {
        self.agents
            .get(guest)
            .ok_or_else(|| AgentError::Protocol(format!("no guest named {guest} in this lab")))
    }

    pub async fn spawn(&self, guest: &str, script: &str) -> Result<Running, AgentError> {
        let limit = self.call_limit();
        let pid = self.agent(guest)?.lock().await.spawn(script, limit).await?;
        Ok(Running {
            guest: guest.to_string(),
            pid,
            started: Instant::now(),
        })
    }

    pub async fn status(&self, r: &Running) -> Result<Option<ExecOutput>, AgentError> {
        let limit = self.call_limit();
        self.agent(&r.guest)?.lock().await.status(r.pid, limit).await
    }

    pub async fn kill(&self, r: &Running) {
        if let Ok(a) = self.agent(&r.guest) {
            let _ = a.lock().await.kill(r.pid).await;
        }
    }

    /// Wait for a spawned process, at most `limit` from its start; killed when it runs over.
    pub async fn wait(&self, r: &Running, limit: Duration) -> Result<ExecOutput, AgentError> {
        let mut poll = Duration::from_millis(20);
        loop {
            if let Some(out) = self.status(r).await? {
                return Ok(out);
            }
            if r.started.elapsed() >= limit {
                self.kill(r).await;
                return Err(AgentError::ExecTimeout {
                    command: format!("pid {} on {}", r.pid, r.guest),
                    limit,
                });
            }
            tokio::time::sleep(poll).await;
            poll = (poll * 2).min(Duration::from_millis(100));
        }
    }

    /// Run `script` to its end, at most `limit`.
    pub async fn exec(&self, guest: &str, script: &str, limit: Duration) -> Result<ExecOutput, AgentError> {
        let r = self.spawn(guest, script).await?;
        self.wait(&r, limit).await.map_err(|e| match e {
            AgentError::ExecTimeout { limit, .. } => AgentError::ExecTimeout {
                command: script.to_string(),
                limit,
            },
            e => e,
        })
    }

    pub async fn read_file(&self, guest: &str, path: &str) -> Result<Vec<u8>, AgentError> {
        let limit = self.call_limit();
        self.agent(guest)?.lock().await.read_file(path, limit).await
    }

    /// At most `max` bytes of a file, within `limit`; see [`Agent::read_file_upto`].
    pub async fn read_file_upto(
        &self,
        guest: &str,
        path: &str,
        max: usize,
        limit: Duration,
    ) -> Result<crate::qemu::agent::FileRead, AgentError> {
        self.agent(guest)?
            .lock()
            .await
            .read_file_upto(path, max, limit)
            .await
    }

    pub async fn write_file(&self, guest: &str, path: &str, data: &[u8]) -> Result<(), AgentError> {
        let limit = self.call_limit();
        self.agent(guest)?
            .lock()
            .await
            .write_file(path, data, limit)
            .await
    }

    /// Whether a file exists (an open that fails is taken for "no").
    pub async fn exists(&self, guest: &str, path: &str) -> bool {
        let limit = self.call_limit();
        let Ok(a) = self.agent(guest) else { return false };
        let mut a = a.lock().await;
        match a
            .execute(
                "guest-file-open",
                serde_json::json!({"path": path, "mode": "r"}),
                limit,
            )
            .await
        {
            Ok(h) => {
                let _ = a
                    .execute("guest-file-close", serde_json::json!({"handle": h}), limit)
                    .await;
                true
            }
            Err(_) => false,
        }
    }
}
