//! One network segment: a learning Ethernet switch whose ports are unix stream sockets that
//! QEMU connects to (`-netdev stream`: a 4-byte big-endian length, then the frame), or, for
//! QEMU older than 7.2, TCP loopback ports (`-netdev socket,connect=`, the same framing).
//!
//! Architecture invariants:
//! - A TCP port ([`Listen::TcpLoopback`]) binds 127.0.0.1 on a port the kernel chooses and
//!   takes only its first connection (QEMU's): any local user can connect to a loopback port,
//!   unlike the 0700 socket folder, so every later connection is closed at once and counted
//!   ([`PortStats::refused`]).
//! - Every frame a guest sends is written to the segment's pcapng, on its ingress port's
//!   interface, before anything else happens to it; frames a rule acted on carry a comment
//!   naming the rule. Frame numbers in rule stats are the pcapng's frame numbers.
//! - Switching never blocks on a guest: each port has a bounded egress queue drained by its
//!   own writer task; a full queue drops the frame and counts it.
//! - The per-frame path makes no system call and allocates nothing: a port's reader takes
//!   every frame one read brought and switches them in place under the core's lock (no task
//!   hop per frame); frames are copied into each egress port's pending bytes, which its writer
//!   sends with one write per batch; the pcapng is buffered and written out every
//!   [`PCAP_FLUSH_EVERY`], when its buffer fills, and at every stats request and stop (so
//!   the trace is whole when the lab stops; a failed write is still counted).
//! - Guest bytes never panic the switch: classification is total, an impossible length
//!   prefix closes only that guest's connection (and is counted).
//! - A port's connections are numbered: the end of an older connection never takes the
//!   writer of a newer one (QEMU reconnects after a restore; anything else that connects and
//!   leaves must not cut the guest off).
//! - Delayed frames wait in a bounded queue: past [`DELAY_QUEUE_FRAMES`] frames or
//!   [`DELAY_QUEUE_BYTES`] bytes a new delayed frame is dropped and counted on its port.

use std::collections::BinaryHeap;
use std::io::{self, BufWriter};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch, Notify};

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
/// What one read from a port may take: under load many frames per system call, and always
/// room for a whole frame with its length prefix.
const READ_BUF: usize = 256 << 10;
/// How long written frames may wait in the pcapng's buffer while the switch runs. A stats
/// request and the stop write it out at once.
pub const PCAP_FLUSH_EVERY: Duration = Duration::from_millis(100);
/// The pcapng's buffer: frames reach the file in writes of this size under load.
const PCAP_BUFFER: usize = 1 << 20;
/// A writer's batch buffer bigger than this after a burst is given back, not kept.
const EGRESS_KEEP: usize = 4 << 20;

/// What each port listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// A unix socket in `socket_dir`; the newest connection takes the port.
    Unix,
    /// A TCP port on 127.0.0.1 chosen by the kernel; only the first connection is taken.
    TcpLoopback,
}

/// Where a port is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortAddr {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

#[derive(Debug, Clone)]
pub struct SegmentConfig {
    pub name: String,
    /// Port names (guest names), one socket each.
    pub ports: Vec<String>,
    /// Folder for the sockets (0700, created by the caller); unused by TCP ports.
    pub socket_dir: PathBuf,
    pub listen: Listen,
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
    /// Connections a TCP port closed at once because it already had its first.
    #[serde(skip_serializing_if = "is_zero")]
    pub refused: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
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

/// The switch's state, shared by every port's reader (which switches the frames it reads)
/// and the control task (commands, delayed frames, pcapng flushes). Held only for work that
/// never waits.
type Shared = Arc<Mutex<Core>>;

/// A lock that a panic elsewhere cannot poison for good: the state stays usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Frames on their way to one connection: length-prefixed bytes its writer task sends in one
/// write per batch.
struct Egress {
    pending: Mutex<Pending>,
    ready: Notify,
}

#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    frames: usize,
    /// The port has a newer connection, or the switch stopped: write what is pending, then end.
    closed: bool,
}

impl Egress {
    fn new() -> Arc<Egress> {
        Arc::new(Egress {
            pending: Mutex::new(Pending::default()),
            ready: Notify::new(),
        })
    }

    /// Queue `frame`; false (nothing queued) when the queue is full.
    fn push(&self, frame: &[u8]) -> bool {
        let mut p = lock(&self.pending);
        if p.frames >= EGRESS_QUEUE || p.closed {
            return false;
        }
        p.bytes.extend_from_slice(&(frame.len() as u32).to_be_bytes());
        p.bytes.extend_from_slice(frame);
        p.frames += 1;
        drop(p);
        self.ready.notify_one();
        true
    }

    fn close(&self) {
        lock(&self.pending).closed = true;
        self.ready.notify_one();
    }
}

enum Command {
    /// Boxed: a rule is far larger than the other commands.
    AddRule(Box<Rule>, oneshot::Sender<RuleId>),
    RemoveRule(RuleId, oneshot::Sender<bool>),
    Stats(oneshot::Sender<SegmentStats>),
    Stop(oneshot::Sender<SegmentStats>),
}

/// A running segment. Dropping it stops the switch (the pcapng is flushed when the last task
/// holding the core ends).
pub struct Switch {
    name: String,
    addrs: Vec<(String, PortAddr)>,
    commands: mpsc::Sender<Command>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Dropped (or set) to end every connection's reader and writer.
    stop: watch::Sender<bool>,
}

impl Switch {
    /// Bind every port's socket and start switching. Must be called inside a tokio runtime.
    pub async fn start(cfg: SegmentConfig) -> io::Result<Switch> {
        let file = std::fs::File::create(&cfg.pcap)?;
        let mut pcap = pcapng::Writer::new(BufWriter::with_capacity(PCAP_BUFFER, file), "faultline")?;
        for port in &cfg.ports {
            pcap.add_interface(port, &format!("{} port {port}", cfg.name))?;
        }
        let delays = Arc::new(Notify::new());
        let core: Shared = Arc::new(Mutex::new(Core::new(&cfg, pcap, delays.clone())));
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut addrs = Vec::new();
        for (i, port) in cfg.ports.iter().enumerate() {
            let listener = match cfg.listen {
                Listen::Unix => {
                    let path = cfg.socket_dir.join(format!("{}-{port}.sock", cfg.name));
                    let _ = std::fs::remove_file(&path);
                    let l = UnixListener::bind(&path)?;
                    addrs.push((port.clone(), PortAddr::Unix(path)));
                    Listener::Unix(l)
                }
                Listen::TcpLoopback => {
                    // Port 0: the kernel picks a free one, so labs never collide.
                    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
                    addrs.push((port.clone(), PortAddr::Tcp(l.local_addr()?)));
                    Listener::Tcp(l)
                }
            };
            tasks.push(tokio::spawn(serve_port(
                i,
                listener,
                core.clone(),
                stopped.clone(),
            )));
        }
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        tasks.push(tokio::spawn(control(core, cmd_rx, delays)));
        Ok(Switch {
            name: cfg.name,
            addrs,
            commands: cmd_tx,
            tasks,
            stop,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where QEMU should connect port `port` to.
    pub fn addr(&self, port: &str) -> Option<&PortAddr> {
        self.addrs.iter().find(|(p, _)| p == port).map(|(_, a)| a)
    }

    /// The unix socket of port `port` (none for a TCP port).
    pub fn socket(&self, port: &str) -> Option<&Path> {
        match self.addr(port)? {
            PortAddr::Unix(path) => Some(path),
            PortAddr::Tcp(_) => None,
        }
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

    /// The counts so far; the pcapng is written out first, so it holds every frame counted.
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
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            t.abort();
        }
        for (_, a) in &self.addrs {
            if let PortAddr::Unix(path) = a {
                let _ = std::fs::remove_file(path);
            }
        }
        stats
    }
}

impl Drop for Switch {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}

enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

/// Accept connections on one port. A unix port: the newest connection takes the port (QEMU
/// reconnects after a restore). A TCP port: the first connection keeps it, later ones are
/// closed and counted. Each connection carries its number, so its end can only ever close
/// itself.
async fn serve_port(port: usize, listener: Listener, core: Shared, stopped: watch::Receiver<bool>) {
    let mut generation: Generation = 0;
    loop {
        generation += 1;
        match &listener {
            Listener::Unix(l) => {
                let Ok((stream, _)) = l.accept().await else {
                    return;
                };
                let (reader, writer) = stream.into_split();
                connect(port, generation, reader, writer, &core, &stopped);
            }
            Listener::Tcp(l) => {
                let Ok((stream, _)) = l.accept().await else {
                    return;
                };
                if generation > 1 {
                    drop(stream);
                    lock(&core).stats[port].refused += 1;
                    continue;
                }
                // The writer already sends a batch per write; Nagle would only add latency.
                let _ = stream.set_nodelay(true);
                let (reader, writer) = stream.into_split();
                connect(port, generation, reader, writer, &core, &stopped);
            }
        }
    }
}

/// Give connection `generation` the port: its writer and reader tasks start.
fn connect<R, W>(
    port: usize,
    generation: Generation,
    reader: R,
    writer: W,
    core: &Shared,
    stopped: &watch::Receiver<bool>,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let egress = Egress::new();
    lock(core).connect(port, generation, egress.clone());
    tokio::spawn(write_frames(writer, egress, stopped.clone()));
    tokio::spawn(read_frames(
        port,
        generation,
        reader,
        core.clone(),
        stopped.clone(),
    ));
}

/// Send one connection's pending frames, a batch per write, until it is closed (after what
/// was pending) or the switch stops.
async fn write_frames<W: AsyncWrite + Unpin>(
    mut writer: W,
    egress: Arc<Egress>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut batch = Vec::new();
    loop {
        let closed = {
            let mut p = lock(&egress.pending);
            std::mem::swap(&mut p.bytes, &mut batch);
            p.frames = 0;
            p.closed
        };
        if !batch.is_empty() {
            tokio::select! {
                r = writer.write_all(&batch) => if r.is_err() { return },
                _ = stopped.changed() => return,
            }
            batch.clear();
            if batch.capacity() > EGRESS_KEEP {
                batch = Vec::new();
            }
            continue;
        }
        if closed {
            return;
        }
        tokio::select! {
            _ = egress.ready.notified() => {}
            _ = stopped.changed() => return,
        }
    }
}

/// Read one connection's frames, as many as each read brings, and switch them in place.
async fn read_frames<R: AsyncRead + Unpin>(
    port: usize,
    generation: Generation,
    mut reader: R,
    core: Shared,
    mut stopped: watch::Receiver<bool>,
) {
    // Read straight into one buffer for the connection's life; a frame cut by the end of a
    // read moves to the front and is completed by the next.
    let mut buf = vec![0u8; READ_BUF];
    let mut filled = 0;
    loop {
        let n = tokio::select! {
            r = reader.read(&mut buf[filled..]) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            _ = stopped.changed() => return,
        };
        filled += n;
        let mut core = lock(&core);
        let mut at = 0;
        while let Some(prefix) = buf[..filled].get(at..at + 4) {
            let len = u32::from_be_bytes(prefix.try_into().expect("four bytes")) as usize;
            if len > MAX_FRAME {
                core.bad_length(port, generation);
                return;
            }
            let Some(frame) = buf[..filled].get(at + 4..at + 4 + len) else {
                break;
            };
            core.switch_frame(port, frame);
            at += 4 + len;
        }
        drop(core);
        buf.copy_within(at..filled, 0);
        filled -= at;
    }
    lock(&core).close(port, generation);
}

/// Commands, the release of delayed frames, and the pcapng's timed flush.
async fn control(core: Shared, mut commands: mpsc::Receiver<Command>, delays: Arc<Notify>) {
    let mut flush = tokio::time::interval(PCAP_FLUSH_EVERY);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let next_due = lock(&core).delayed.peek().map(|d| d.due);
        tokio::select! {
            biased;
            cmd = commands.recv() => {
                let mut core = lock(&core);
                match cmd {
                    Some(Command::AddRule(r, tx)) => { let _ = tx.send(core.rules.add(*r)); }
                    Some(Command::RemoveRule(id, tx)) => { let _ = tx.send(core.rules.remove(id)); }
                    Some(Command::Stats(tx)) => { core.flush(); let _ = tx.send(core.snapshot()); }
                    Some(Command::Stop(tx)) => { core.finish(); let _ = tx.send(core.snapshot()); return; }
                    None => { core.finish(); return; }
                }
            },
            _ = sleep_until(next_due) => lock(&core).release_due(),
            // A frame went into the delay queue: its due time may be the earliest.
            _ = delays.notified() => {}
            _ = flush.tick() => lock(&core).flush(),
        }
    }
}

struct Delayed {
    due: Instant,
    seq: u64,
    port: usize,
    frame: Box<[u8]>,
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
    /// Each port's current connection: its generation and its egress queue.
    writers: Vec<Option<(Generation, Arc<Egress>)>>,
    stats: Vec<PortStats>,
    macs: MacTable,
    rules: RuleSet,
    classifier: Classifier,
    delayed: BinaryHeap<Delayed>,
    /// Bytes of the frames in `delayed`.
    delayed_bytes: usize,
    /// Told when a frame is delayed, so the control task's timer can move earlier.
    delays: Arc<Notify>,
    /// The ports a frame leaves by, reused from frame to frame.
    egress: Vec<usize>,
    frames: u64,
    seq: u64,
    rng: u64,
    /// Failed pcapng writes and flushes, and the first error: a trace that lost frames must
    /// say so (the frame path only counts; the words are made once).
    pcap_errors: u64,
    pcap_error: Option<String>,
    /// Stopped: later frames are neither switched nor recorded.
    stopped: bool,
}

impl Core {
    fn new(cfg: &SegmentConfig, pcap: pcapng::Writer<BufWriter<std::fs::File>>, delays: Arc<Notify>) -> Core {
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
            delays,
            egress: Vec::with_capacity(cfg.ports.len()),
            frames: 0,
            seq: 0,
            rng: 0x9E37_79B9_7F4A_7C15,
            pcap_errors: 0,
            pcap_error: None,
            stopped: false,
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

    /// Stop switching: the trace written out whole, every connection's writer told to end
    /// once its pending frames are sent.
    fn finish(&mut self) {
        self.stopped = true;
        self.flush();
        for (_, egress) in self.writers.iter().flatten() {
            egress.close();
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

    /// Connection `generation` takes port `port`; an older connection's writer ends.
    fn connect(&mut self, port: usize, generation: Generation, egress: Arc<Egress>) {
        if let Some((_, old)) = self.writers[port].replace((generation, egress)) {
            old.close();
        }
        self.stats[port].connected = true;
        self.stats[port].connections += 1;
    }

    fn bad_length(&mut self, port: usize, generation: Generation) {
        self.stats[port].bad_lengths += 1;
        self.close(port, generation);
    }

    /// Connection `generation` of `port` ended: forget its writer, unless a newer connection
    /// has taken the port since.
    fn close(&mut self, port: usize, generation: Generation) {
        if self.writers[port].as_ref().is_some_and(|(g, _)| *g == generation) {
            if let Some((_, egress)) = self.writers[port].take() {
                egress.close();
            }
            self.stats[port].connected = false;
        }
    }

    fn switch_frame(&mut self, from: usize, frame: &[u8]) {
        if self.stopped {
            return;
        }
        self.frames += 1;
        let frame_no = self.frames;
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let st = &mut self.stats[from];
        st.rx_frames += 1;
        st.rx_bytes += frame.len() as u64;
        let (facts, malformed) = self.classifier.facts(frame);
        if malformed {
            self.stats[from].malformed += 1;
        }

        // Learn where the sender is; send unicast to its port, flood the rest of the ports a
        // guest is connected to.
        let writers = &self.writers;
        let mut egress = std::mem::take(&mut self.egress);
        self.macs.forward_into(
            from,
            frame,
            self.ports.len(),
            |p| writers[p].is_some(),
            &mut egress,
        );
        if self.rules.is_empty() {
            // No rule can act: every egress port gets the frame, and the trace no comment.
            self.record(from, ts, frame, None, frame_no);
            for &to in &egress {
                self.send(to, frame);
            }
        } else {
            self.switch_by_rules(from, frame, frame_no, ts, &facts, &egress);
        }
        self.egress = egress;
    }

    /// The frame's pcapng record (every frame, before anything happens to it).
    fn record(&mut self, from: usize, ts: u64, frame: &[u8], comment: Option<&str>, frame_no: u64) {
        if let Err(e) = self
            .pcap
            .write_frame(from as u32, ts, frame, pcapng::Direction::Inbound, comment)
        {
            self.pcap_failed(&format!("writing frame {frame_no} to"), e);
        }
    }

    fn switch_by_rules(
        &mut self,
        from: usize,
        frame: &[u8],
        frame_no: u64,
        ts: u64,
        facts: &crate::wire::rules::Facts,
        egress: &[usize],
    ) {
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
            .decide(facts, frame_no, &self.ports[from], &names, &mut jitter);
        self.record(from, ts, frame, decision.comment.as_deref(), frame_no);

        for (&to, verdict) in egress.iter().zip(decision.verdicts) {
            match verdict {
                Verdict::Forward => self.send(to, frame),
                Verdict::Duplicate => {
                    self.send(to, frame);
                    self.send(to, frame);
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
                        frame: frame.into(),
                    });
                    self.delays.notify_one();
                }
            }
        }
    }

    fn send(&mut self, to: usize, frame: &[u8]) {
        let Some((_, egress)) = &self.writers[to] else {
            return;
        };
        if egress.push(frame) {
            self.stats[to].tx_frames += 1;
            self.stats[to].tx_bytes += frame.len() as u64;
        } else {
            self.stats[to].egress_overflow += 1;
        }
    }

    fn release_due(&mut self) {
        let now = Instant::now();
        while self.delayed.peek().is_some_and(|d| d.due <= now) {
            let d = self.delayed.pop().expect("peeked");
            self.delayed_bytes -= d.frame.len();
            self.send(d.port, &d.frame);
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

/// A test port's connection: a unix or a TCP stream.
trait Duplex: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Duplex for T {}

/// Connect to a port as a guest would, for tests and benchmarks: send and receive framed
/// Ethernet frames.
pub struct TestPort {
    stream: Box<dyn Duplex>,
}

impl TestPort {
    pub async fn connect(socket: &Path) -> io::Result<TestPort> {
        Ok(TestPort {
            stream: Box::new(UnixStream::connect(socket).await?),
        })
    }

    /// Connect to a port whichever way it listens.
    pub async fn connect_to(addr: &PortAddr) -> io::Result<TestPort> {
        match addr {
            PortAddr::Unix(path) => TestPort::connect(path).await,
            PortAddr::Tcp(a) => {
                let stream = TcpStream::connect(a).await?;
                stream.set_nodelay(true)?;
                Ok(TestPort {
                    stream: Box::new(stream),
                })
            }
        }
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
