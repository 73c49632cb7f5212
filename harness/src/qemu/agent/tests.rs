//! The agent client against a fake qemu-ga on a unix socket: what a hostile guest can make
//! the harness hold or wait for is bounded.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;

use super::*;

/// A fake agent: for each request line, `answer(command, id)` gives the bytes to send back
/// (after its delay).
async fn fake_agent(
    answer: impl Fn(&str, u64) -> (Duration, Vec<u8>) + Send + 'static,
) -> (tempfile::TempDir, Agent) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.sock");
    let listener = UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (r, mut w) = stream.into_split();
        let mut lines = BufReader::new(r).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let v: Value = serde_json::from_str(&line).unwrap();
            let (delay, bytes) = answer(v["execute"].as_str().unwrap(), v["id"].as_u64().unwrap());
            tokio::time::sleep(delay).await;
            if w.write_all(&bytes).await.is_err() {
                return;
            }
        }
    });
    let agent = Agent::connect(&path).await.unwrap();
    (dir, agent)
}

fn reply(id: u64, ret: Value) -> Vec<u8> {
    let mut b = json!({"return": ret, "id": id}).to_string().into_bytes();
    b.push(b'\n');
    b
}

#[tokio::test]
async fn a_reply_line_longer_than_the_bound_is_an_error_not_memory() {
    let (_d, mut agent) = fake_agent(|cmd, id| match cmd {
        // A line that never ends within the bound, then a proper reply.
        "guest-info" => (Duration::ZERO, {
            let mut b = vec![b'x'; 4096];
            b.push(b'\n');
            b
        }),
        _ => (Duration::ZERO, reply(id, json!("fine"))),
    })
    .await;
    agent.line_max = 1024;
    let r = agent
        .execute("guest-info", json!({}), Duration::from_secs(2))
        .await;
    assert!(matches!(r, Err(AgentError::LineTooLong(1024))), "{r:?}");
    // The rest of the long line is skipped: the next command gets its own reply.
    let r = agent
        .execute("guest-ping", json!({}), Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(r, json!("fine"));
}

#[tokio::test]
async fn read_file_has_one_deadline_for_the_whole_file() {
    // Every chunk comes within the per-call limit, but the file never ends.
    let (_d, mut agent) = fake_agent(|cmd, id| match cmd {
        "guest-file-open" => (Duration::ZERO, reply(id, json!(7))),
        "guest-file-read" => (
            Duration::from_millis(200),
            reply(id, json!({"count": 1, "buf-b64": "eA==", "eof": false})),
        ),
        _ => (Duration::ZERO, reply(id, json!({}))),
    })
    .await;
    let t = Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        agent.read_file("/var/log/endless", Duration::from_secs(1)),
    )
    .await
    .expect("read_file went on past its deadline");
    assert!(matches!(r, Err(AgentError::Timeout(_))), "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[tokio::test]
async fn a_read_stops_at_its_cap_and_says_truncated_by_the_bytes_read() {
    // The guest's file is endless (it grew after its stat, or the stat lied).
    let (_d, mut agent) = fake_agent(|cmd, id| match cmd {
        "guest-file-open" => (Duration::ZERO, reply(id, json!(7))),
        "guest-file-read" => (
            Duration::ZERO,
            reply(id, json!({"count": 4, "buf-b64": "eHh4eA==", "eof": false})),
        ),
        _ => (Duration::ZERO, reply(id, json!({}))),
    })
    .await;
    let read = agent
        .read_file_upto("/grows", 10, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(read.data, b"xxxxxxxxxx");
    assert!(read.truncated);
    // A file of exactly the cap is whole.
    let (_d, mut agent) = fake_agent(|cmd, id| match cmd {
        "guest-file-open" => (Duration::ZERO, reply(id, json!(7))),
        "guest-file-read" => (
            Duration::ZERO,
            reply(id, json!({"count": 4, "buf-b64": "eHh4eA==", "eof": true})),
        ),
        _ => (Duration::ZERO, reply(id, json!({}))),
    })
    .await;
    let read = agent
        .read_file_upto("/exact", 4, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!((read.data.len(), read.truncated), (4, false));
}

#[test]
fn output_the_agent_cut_short_is_marked_truncated() {
    let whole = json!({"exited": true, "exitcode": 0, "out-data": "MgoK"});
    let out = exec_output(&whole);
    assert_eq!((out.stdout.as_str(), out.truncated), ("2\n\n", false));
    for flag in ["out-truncated", "err-truncated"] {
        let mut cut = whole.clone();
        cut[flag] = json!(true);
        assert!(exec_output(&cut).truncated, "{flag}");
    }
}
