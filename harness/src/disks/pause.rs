//! The pause filter's control socket: one byte each way. `p` pauses (new requests hang; the
//! answer `P` comes once the requests already in progress are done), `r` resumes (`R`); the
//! filter answers anything else with `X`. It serves one connection at a time, so a command
//! sent while an earlier pause still waits for its requests is answered after it.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A command to the pause filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Pause,
    Resume,
}

impl Command {
    pub fn byte(self) -> u8 {
        match self {
            Command::Pause => b'p',
            Command::Resume => b'r',
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Command::Pause => "pause",
            Command::Resume => "resume",
        }
    }
}

/// Whether `reply` (what the filter sent back before it closed or the deadline passed) is the
/// acknowledgement of `command`; if not, why.
pub fn judge_reply(command: Command, reply: &[u8]) -> Result<(), String> {
    let want = command.byte().to_ascii_uppercase();
    match reply.first() {
        Some(&b) if b == want => Ok(()),
        Some(b'X') => Err(format!(
            "the pause filter did not take `{}` as a command (answered X)",
            command.byte() as char
        )),
        Some(&b) => Err(format!(
            "the pause filter answered {:?} to `{}`, not {:?}",
            b as char,
            command.byte() as char,
            want as char
        )),
        None => Err(format!(
            "the pause filter closed its socket without acknowledging the {}",
            command.verb()
        )),
    }
}

/// Send `command` to the filter listening on `socket` and wait, at most `limit`, for its
/// acknowledgement.
pub async fn send(socket: &Path, command: Command, limit: Duration) -> Result<(), String> {
    let exchange = async {
        let mut s = tokio::net::UnixStream::connect(socket)
            .await
            .map_err(|e| format!("connecting to {}: {e}", socket.display()))?;
        s.write_all(&[command.byte()])
            .await
            .map_err(|e| format!("writing to {}: {e}", socket.display()))?;
        let mut reply = [0u8; 1];
        let n = s
            .read(&mut reply)
            .await
            .map_err(|e| format!("reading from {}: {e}", socket.display()))?;
        judge_reply(command, &reply[..n])
    };
    match tokio::time::timeout(limit, exchange).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "the pause filter did not acknowledge the {} within {} s",
            command.verb(),
            limit.as_secs_f64()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_the_command_in_upper_case() {
        assert_eq!(judge_reply(Command::Pause, b"P"), Ok(()));
        assert_eq!(judge_reply(Command::Resume, b"R"), Ok(()));
        assert_eq!(
            judge_reply(Command::Pause, b"R"),
            Err("the pause filter answered 'R' to `p`, not 'P'".into())
        );
        assert_eq!(
            judge_reply(Command::Resume, b"X"),
            Err("the pause filter did not take `r` as a command (answered X)".into())
        );
        assert_eq!(
            judge_reply(Command::Pause, b""),
            Err("the pause filter closed its socket without acknowledging the pause".into())
        );
    }

    /// The client against a stand-in filter on a real socket: it answers as the filter does,
    /// or never (the deadline).
    #[test]
    fn the_client_waits_for_the_answer_with_a_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("pause");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let listener = tokio::net::UnixListener::bind(&sock).unwrap();
            let filter = async {
                // First connection: answer like the filter. Second: read and say nothing.
                let (mut c, _) = listener.accept().await.unwrap();
                let mut b = [0u8; 1];
                c.read_exact(&mut b).await.unwrap();
                c.write_all(&[b[0].to_ascii_uppercase()]).await.unwrap();
                let (mut quiet, _) = listener.accept().await.unwrap();
                quiet.read_exact(&mut b).await.unwrap();
                tokio::time::sleep(Duration::from_secs(5)).await;
            };
            let client = async {
                assert_eq!(send(&sock, Command::Pause, Duration::from_secs(5)).await, Ok(()));
                let late = send(&sock, Command::Resume, Duration::from_millis(200)).await;
                assert_eq!(
                    late,
                    Err("the pause filter did not acknowledge the resume within 0.2 s".into())
                );
            };
            tokio::select! {
                _ = filter => panic!("the stand-in ended first"),
                _ = client => {}
            }
            let gone = send(&dir.path().join("none"), Command::Pause, Duration::from_secs(1)).await;
            assert!(gone.unwrap_err().starts_with("connecting to "));
        });
    }
}
