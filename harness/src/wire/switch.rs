//! One network segment: a learning Ethernet switch whose ports are unix stream sockets that
//! QEMU connects to (`-netdev stream`: a 4-byte big-endian length, then the frame).
//!
//! Architecture invariants:
//! - Every frame a guest sends is written to the segment's pcapng, on its ingress port's
//!   interface, before anything else happens to it; frames a rule acted on carry a comment
//!   naming the rule. Frame numbers in rule stats are the pcapng's frame numbers.
//! - The core task never blocks on a guest: each port has a bounded egress queue drained by
//!   its own writer task; a full queue drops the frame and counts it.
//! - Guest bytes never panic the switch: classification is total, an impossible length
//!   prefix closes only that guest's connection (and is counted).
//! - A port's connections are numbered: the end of an older connection never takes the
//!   writer of a newer one (QEMU reconnects after a restore; anything else that connects and
//!   leaves must not cut the guest off).
//! - Delayed frames wait in a bounded queue: past [`DELAY_QUEUE_FRAMES`] frames or
//!   [`DELAY_QUEUE_BYTES`] bytes a new delayed frame is dropped and counted on its port.

use std::collections::BinaryHeap;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use crate::wire::classify::Classifier;
use crate::wire::learning::MacTable;
use crate::wire::pcapng;
use crate::wire::rules::{Rule, RuleId, RuleSet, RuleStats, Verdict};

/// The largest frame a port accepts: a 64 KiB GSO super-frame plus headers. A longer length
/// prefix cannot be a frame, and the stream cannot be resynchronised after it.
pub const MAX_FRAME: usize = 65_536 + 256;
/// Frames queued toward one port before new ones are dropped (and counted).
const EGRESS_QUEUE: usize = 2048;
/// The most frames a delay rule holds at once (all ports together)...
pub const DELAY_QUEUE_FRAMES: usize = 8192;
/// ...and the most bytes: a guest decides how much it sends into a delay.
pub const DELAY_QUEUE_BYTES: usize = 64 << 20;

#[derive(Debug, Clone)]
pub struct SegmentConfig {
    pub name: String,
    /// Port names (guest names), one socket each.
    pub ports: Vec<String>,
    /// Folder for the sockets (0700, created by the caller).
    pub socket_dir: PathBuf,
    /// Where the segment's pcapng goes.
    pub pcap: PathBuf,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PortStats {
    pub name: String,
    pub connected: bool,
    pub connections: u64,
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Frames the classifier could only partly parse (still forwarded).
    pub malformed: u64,
    /// Connections closed because of an impossible length prefix.
    pub bad_lengths: u64,
    /// Frames dropped because this port's egress queue was full.
    pub egress_overflow: u64,
    /// Frames toward this port a delay rule dropped because the delay queue was full.
    pub delay_overflow: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SegmentStats {
    pub segment: String,
    /// Frames the switch received (every port's `rx_frames`).
    pub frames: u64,
    pub ports: Vec<PortStats>,
    pub rules: Vec<RuleStats>,
    pub pcap: PathBuf,
    /// Frames the pcapng writer took whole. Fewer than `frames` means the trace is missing
    /// some: it cannot prove that a frame was never sent.
    pub pcap_frames: u64,
    /// Failed pcapng writes and flushes, and the first one's error.
    pub pcap_errors: u64,
    pub pcap_error: Option<String>,
}

/// Which of a port's connections an event is about: its number among the port's accepts.
type Generation = u64;
/// Frames on their way to one connection's writer task.
type Egress = mpsc::Sender<Arc<[u8]>>;

enum Event {
    Connected {
        port: usize,
        generation: Generation,
        writer: Egress,
    },
    Frame {
        port: usize,
        frame: Vec<u8>,
    },
    BadLength {
        port: usize,
        generation: Generation,
    },
    Disconnected {
        port: usize,
        generation: Generation,
    },
}

enum Command {
    /// Boxed: a rule is far larger than the other commands.
    AddRule(Box<Rule>, oneshot::Sender<RuleId>),
    RemoveRule(RuleId, oneshot::Sender<bool>),
    Stats(oneshot::Sender<SegmentStats>),
    Stop(oneshot::Sender<SegmentStats>),
}

/// A running segment. Dropping it stops the switch (the pcapng is flushed by the core task).
pub struct Switch {
    name: String,
    sockets: Vec<(String, PathBuf)>,
    commands: mpsc::Sender<Command>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Switch {
    /// Bind every port's socket and start switching. Must be called inside a tokio runtime.
    pub async fn start(cfg: SegmentConfig) -> io::Result<Switch> {
        let file = std::fs::File::create(&cfg.pcap)?;
        let mut pcap = pcapng::Writer::new(BufWriter::with_capacity(1 << 20, file), "faultline")?;
        let (events_tx, events_rx) = mpsc::channel::<Event>(4096);
        let mut tasks = Vec::new();
        let mut sockets = Vec::new();
        for (i, port) in cfg.ports.iter().enumerate() {
            pcap.add_interface(port, &format!("{} port {port}", cfg.name))?;
            let path = cfg.socket_dir.join(format!("{}-{port}.sock", cfg.name));
            let _ = std::fs::remove_file(&path);
            let listener = UnixListener::bind(&path)?;
            sockets.push((port.clone(), path));
            tasks.push(tokio::spawn(serve_port(i, listener, events_tx.clone())));
        }
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        let core = Core::new(&cfg, pcap);
        tasks.push(tokio::spawn(core.run(events_rx, cmd_rx)));
        Ok(Switch {
            name: cfg.name,
            sockets,
            commands: cmd_tx,
            tasks,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The socket QEMU should connect port `port` to.
    pub fn socket(&self, port: &str) -> Option<&Path> {
        self.sockets
            .iter()
            .find(|(p, _)| p == port)
            .map(|(_, s)| s.as_path())
    }

    pub async fn add_rule(&self, rule: Rule) -> RuleId {
        let (tx, rx) = oneshot::channel();
        let _ = self.commands.send(Command::AddRule(Box::new(rule), tx)).await;
        rx.await.unwrap_or(RuleId(0))
    }

    pub async fn remove_rule(&self, id: RuleId) -> bool {
        let (tx, rx) = oneshot::channel();
        let _ = self.commands.send(Command::RemoveRule(id, tx)).await;
        rx.await.unwrap_or(false)
    }

    pub async fn stats(&self) -> SegmentStats {
        let (tx, rx) = oneshot::channel();
        let _ = self.commands.send(Command::Stats(tx)).await;
        rx.await.unwrap_or_default()
    }

    /// Stop switching, flush the pcapng, and return the final counts.
    pub async fn stop(mut self) -> SegmentStats {
        let (tx, rx) = oneshot::channel();
        let _ = self.commands.send(Command::Stop(tx)).await;
        let stats = rx.await.unwrap_or_default();
        for t in self.tasks.drain(..) {
            t.abort();
        }
        for (_, s) in &self.sockets {
            let _ = std::fs::remove_file(s);
        }
        stats
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Accept connections on one port (QEMU reconnects after a restore); read frames from the
/// newest connection and give the core a writer for it. Each connection carries its number,
/// so its end can only ever close itself.
async fn serve_port(port: usize, listener: UnixListener, events: mpsc::Sender<Event>) {
    let mut generation: Generation = 0;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        generation += 1;
        let (mut reader, mut writer) = stream.into_split();
        let (tx, mut rx) = mpsc::channel::<Arc<[u8]>>(EGRESS_QUEUE);
        let connected = Event::Connected {
            port,
            generation,
            writer: tx,
        };
        if events.send(connected).await.is_err() {
            return;
        }
        tokio::spawn(async move {
            while let Some(frame) = rx.recv().await {
                let len = (frame.len() as u32).to_be_bytes();
                if writer.write_all(&len).await.is_err() || writer.write_all(&frame).await.is_err() {
                    return;
                }
            }
        });
        let events = events.clone();
        tokio::spawn(async move {
            loop {
                let mut len = [0u8; 4];
                if reader.read_exact(&mut len).await.is_err() {
                    break;
                }
                let n = u32::from_be_bytes(len) as usize;
                if n > MAX_FRAME {
                    let _ = events.send(Event::BadLength { port, generation }).await;
                    return;
                }
                let mut frame = vec![0u8; n];
                if reader.read_exact(&mut frame).await.is_err() {
                    break;
                }
                if events.send(Event::Frame { port, frame }).await.is_err() {
                    return;
                }
            }
            let _ = events.send(Event::Disconnected { port, generation }).await;
        });
    }
}

struct Delayed {
    due: Instant,
    seq: u64,
    port: usize,
    frame: Arc<[u8]>,
}

impl PartialEq for Delayed {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.seq) == (o.due, o.seq)
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Delayed {
    // Min-heap on (due, seq): the earliest frame first, ties in arrival order.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.due, o.seq).cmp(&(self.due, self.seq))
    }
}

struct Core {
    name: String,
    ports: Vec<String>,
    pcap_path: PathBuf,
    pcap: pcapng::Writer<BufWriter<std::fs::File>>,
    /// Each port's current connection: its generation and its writer.
    writers: Vec<Option<(Generation, Egress)>>,
    stats: Vec<PortStats>,
    macs: MacTable,
    rules: RuleSet,
    classifier: Classifier,
    delayed: BinaryHeap<Delayed>,
    /// Bytes of the frames in `delayed`.
    delayed_bytes: usize,
    frames: u64,
    seq: u64,
    rng: u64,
    /// Failed pcapng writes and flushes, and the first error: a trace that lost frames must
    /// say so (the frame path only counts; the words are made once).
    pcap_errors: u64,
    pcap_error: Option<String>,
}

impl Core {
    fn new(cfg: &SegmentConfig, pcap: pcapng::Writer<BufWriter<std::fs::File>>) -> Core {
        Core {
            name: cfg.name.clone(),
            ports: cfg.ports.clone(),
            pcap_path: cfg.pcap.clone(),
            pcap,
            writers: vec![None; cfg.ports.len()],
            stats: cfg
                .ports
                .iter()
                .map(|p| PortStats {
                    name: p.clone(),
                    ..PortStats::default()
                })
                .collect(),
            macs: MacTable::default(),
            rules: RuleSet::default(),
            classifier: Classifier::default(),
            delayed: BinaryHeap::new(),
            delayed_bytes: 0,
            frames: 0,
            seq: 0,
            rng: 0x9E37_79B9_7F4A_7C15,
            pcap_errors: 0,
            pcap_error: None,
        }
    }

    async fn run(mut self, mut events: mpsc::Receiver<Event>, mut commands: mpsc::Receiver<Command>) {
        loop {
            let next_due = self.delayed.peek().map(|d| d.due);
            tokio::select! {
                biased;
                cmd = commands.recv() => match cmd {
                    Some(Command::AddRule(r, tx)) => { let _ = tx.send(self.rules.add(*r)); }
                    Some(Command::RemoveRule(id, tx)) => { let _ = tx.send(self.rules.remove(id)); }
                    Some(Command::Stats(tx)) => { self.flush(); let _ = tx.send(self.snapshot()); }
                    Some(Command::Stop(tx)) => { self.flush(); let _ = tx.send(self.snapshot()); return; }
                    None => { self.flush(); return; }
                },
                _ = sleep_until(next_due) => self.release_due(),
                ev = events.recv() => {
                    let Some(ev) = ev else { self.flush(); return };
                    self.handle(ev);
                    // Drain what is already queued, then flush once: a crash loses at most
                    // the frames of one burst.
                    while let Ok(ev) = events.try_recv() {
                        self.handle(ev);
                    }
                    self.flush();
                }
            }
        }
    }

    fn snapshot(&self) -> SegmentStats {
        SegmentStats {
            segment: self.name.clone(),
            frames: self.frames,
            ports: self.stats.clone(),
            rules: self.rules.stats().to_vec(),
            pcap: self.pcap_path.clone(),
            pcap_frames: self.pcap.frames_written(),
            pcap_errors: self.pcap_errors,
            pcap_error: self.pcap_error.clone(),
        }
    }

    fn flush(&mut self) {
        if let Err(e) = self.pcap.flush() {
            self.pcap_failed("flushing", e);
        }
    }

    /// Count a failed pcapng write or flush (off the hot path: it only runs on failure).
    #[cold]
    fn pcap_failed(&mut self, what: &str, e: io::Error) {
        self.pcap_errors += 1;
        if self.pcap_error.is_none() {
            self.pcap_error = Some(format!("{what} {}: {e}", self.pcap_path.display()));
        }
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Connected {
                port,
                generation,
                writer,
            } => {
                self.writers[port] = Some((generation, writer));
                self.stats[port].connected = true;
                self.stats[port].connections += 1;
            }
            Event::Disconnected { port, generation } => {
                self.close(port, generation);
            }
            Event::BadLength { port, generation } => {
                self.stats[port].bad_lengths += 1;
                self.close(port, generation);
            }
            Event::Frame { port, frame } => self.switch_frame(port, frame),
        }
    }

    /// Connection `generation` of `port` ended: forget its writer, unless a newer connection
    /// has taken the port since.
    fn close(&mut self, port: usize, generation: Generation) {
        if self.writers[port].as_ref().is_some_and(|(g, _)| *g == generation) {
            self.writers[port] = None;
            self.stats[port].connected = false;
        }
    }

    fn switch_frame(&mut self, from: usize, frame: Vec<u8>) {
        self.frames += 1;
        let frame_no = self.frames;
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let st = &mut self.stats[from];
        st.rx_frames += 1;
        st.rx_bytes += frame.len() as u64;
        let (facts, malformed) = self.classifier.facts(&frame);
        if malformed {
            self.stats[from].malformed += 1;
        }

        // Learn where the sender is; send unicast to its port, flood the rest of the ports a
        // guest is connected to.
        let writers = &self.writers;
        let egress = self
            .macs
            .forward(from, &frame, self.ports.len(), |p| writers[p].is_some());
        let names: Vec<&str> = egress.iter().map(|&p| self.ports[p].as_str()).collect();
        let rng = &mut self.rng;
        let mut jitter = || {
            // xorshift64*: jitter needs spread, not cryptographic strength.
            *rng ^= *rng >> 12;
            *rng ^= *rng << 25;
            *rng ^= *rng >> 27;
            (rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
        };
        let decision = self
            .rules
            .decide(&facts, frame_no, &self.ports[from], &names, &mut jitter);
        if let Err(e) = self.pcap.write_frame(
            from as u32,
            ts,
            &frame,
            pcapng::Direction::Inbound,
            decision.comment.as_deref(),
        ) {
            self.pcap_failed(&format!("writing frame {frame_no} to"), e);
        }

        let frame: Arc<[u8]> = frame.into();
        for (&to, verdict) in egress.iter().zip(decision.verdicts) {
            match verdict {
                Verdict::Forward => self.send(to, frame.clone()),
                Verdict::Duplicate => {
                    self.send(to, frame.clone());
                    self.send(to, frame.clone());
                }
                Verdict::Drop => {}
                Verdict::Delay(d) => {
                    if self.delayed.len() >= DELAY_QUEUE_FRAMES
                        || self.delayed_bytes + frame.len() > DELAY_QUEUE_BYTES
                    {
                        self.stats[to].delay_overflow += 1;
                        continue;
                    }
                    self.seq += 1;
                    self.delayed_bytes += frame.len();
                    self.delayed.push(Delayed {
                        due: Instant::now() + d,
                        seq: self.seq,
                        port: to,
                        frame: frame.clone(),
                    });
                }
            }
        }
    }

    fn send(&mut self, to: usize, frame: Arc<[u8]>) {
        let Some((_, w)) = &self.writers[to] else { return };
        let len = frame.len() as u64;
        match w.try_send(frame) {
            Ok(()) => {
                self.stats[to].tx_frames += 1;
                self.stats[to].tx_bytes += len;
            }
            Err(_) => self.stats[to].egress_overflow += 1,
        }
    }

    fn release_due(&mut self) {
        let now = Instant::now();
        while self.delayed.peek().is_some_and(|d| d.due <= now) {
            let d = self.delayed.pop().expect("peeked");
            self.delayed_bytes -= d.frame.len();
            self.send(d.port, d.frame);
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

/// Connect to a port as a guest would, for tests and benchmarks: send and receive framed
/// Ethernet frames.
pub struct TestPort {
    stream: UnixStream,
}

impl TestPort {
    pub async fn connect(socket: &Path) -> io::Result<TestPort> {
        Ok(TestPort {
            stream: UnixStream::connect(socket).await?,
        })
    }

    pub async fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        self.stream.write_all(&(frame.len() as u32).to_be_bytes()).await?;
        self.stream.write_all(frame).await
    }

    /// Send raw bytes (for malformed-input tests).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }

    pub async fn recv(&mut self, limit: Duration) -> io::Result<Option<Vec<u8>>> {
        let read = async {
            let mut len = [0u8; 4];
            self.stream.read_exact(&mut len).await?;
            let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
            self.stream.read_exact(&mut frame).await?;
            Ok::<_, io::Error>(frame)
        };
        match tokio::time::timeout(limit, read).await {
            Ok(r) => r.map(Some),
            Err(_) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests;
