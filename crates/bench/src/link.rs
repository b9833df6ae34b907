//! What every mechanism, ours or raw, offers the measurement loops, and the loops themselves:
//! ping-pong round trips and one-way throughput, timed the same way for every [`Link`].
//!
//! Every message starts with its sequence number (u64, little-endian); the number
//! [`STOP`] ends a run. Byte streams also end a throughput run with end of file.

use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use nix::time::ClockId;
use nix::unistd::Pid;

/// The sequence number that tells the peer the run is over.
pub const STOP: u64 = u64::MAX;

/// One end of an established mechanism, with its buffers.
pub trait Link {
    /// A byte stream (no message boundaries; a throughput run ends with end of file) rather
    /// than messages.
    const STREAM: bool;

    /// Sends `msg` whole.
    fn send(&mut self, msg: &[u8]) -> anyhow::Result<()>;

    /// The next `len` bytes: one message of exactly `len` bytes, or `len` bytes of the stream.
    fn recv(&mut self, len: usize) -> anyhow::Result<&[u8]>;

    /// Whatever arrives next, up to `max` bytes: one message, or a piece of the stream (empty at
    /// end of file).
    fn recv_any(&mut self, max: usize) -> anyhow::Result<&[u8]>;

    /// Receives `len` bytes and sends them straight back, from the buffer they arrived in;
    /// `false` (nothing sent) if they were the stop message.
    fn echo(&mut self, len: usize) -> anyhow::Result<bool>;

    /// Round trips timed in batches by the link itself, without the harness (nanoseconds per
    /// round trip): the floors' own figure, which replaces the harness's batches.
    fn batch_ns(&self) -> Option<f64> {
        None
    }

    /// Ends a one-way run: sends the stop message, and end of file on a stream.
    fn finish(&mut self, stop: &[u8]) -> anyhow::Result<()> {
        self.send(stop)
    }
}

/// The sequence number a message starts with.
pub fn seq_of(msg: &[u8]) -> u64 {
    msg.get(..8)
        .map_or(STOP, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
}

/// A message of `len` bytes (at least 8): a recognisable pattern, stamped with `seq` later.
pub fn message(len: usize) -> Vec<u8> {
    let mut msg: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    stamp(&mut msg, 0);
    msg
}

pub fn stamp(msg: &mut [u8], seq: u64) {
    msg[..8].copy_from_slice(&seq.to_le_bytes());
}

/// The process id of the current measurement's peer (0: none), whose CPU clock the measuring
/// side reads: set when the peer starts.
static PEER_PID: AtomicI32 = AtomicI32::new(0);

/// Tells the loops which process is the peer, for its CPU time.
pub fn set_peer(pid: i32) {
    PEER_PID.store(pid, Ordering::Relaxed);
}

/// A process's CPU time (user + system) in nanoseconds: `clock_gettime` of `clock`.
fn cpu_ns(clock: ClockId) -> Option<u64> {
    let ts = clock.now().ok()?;
    Some(ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64)
}

/// Both sides' CPU clocks at one moment: this process's (`CLOCK_PROCESS_CPUTIME_ID`) and the
/// peer's (`clock_getcpuclockid(2)`; Linux lets a process read another's CPU clock).
#[derive(Clone, Copy, Debug)]
struct CpuMark {
    own: Option<u64>,
    peer: Option<u64>,
}

impl CpuMark {
    fn now() -> CpuMark {
        let pid = PEER_PID.load(Ordering::Relaxed);
        let peer = (pid > 0)
            .then(|| ClockId::pid_cpu_clock_id(Pid::from_raw(pid)).ok())
            .flatten()
            .and_then(cpu_ns);
        CpuMark {
            own: cpu_ns(ClockId::CLOCK_PROCESS_CPUTIME_ID),
            peer,
        }
    }

    /// CPU per message since `self`, on each side.
    fn per_message(self, messages: u64) -> Cpu {
        let later = CpuMark::now();
        let per = |a: Option<u64>, b: Option<u64>| {
            a.zip(b)
                .filter(|_| messages > 0)
                .map(|(a, b)| b.saturating_sub(a) as f64 / messages as f64)
        };
        Cpu {
            own_ns: per(self.own, later.own),
            peer_ns: per(self.peer, later.peer),
        }
    }
}

/// CPU time per message (round trip, or message of a throughput run), in nanoseconds, on the
/// measuring side and on the peer, over the timed part of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cpu {
    pub own_ns: Option<f64>,
    pub peer_ns: Option<f64>,
}

/// How long to run, and how long to run before counting.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub warmup: Duration,
    pub measure: Duration,
}

/// The parent's side of a ping-pong run: round trips of `len`-byte messages until the budget
/// is spent; every round trip after the warm-up, in nanoseconds, the CPU they cost, and the
/// mean round trip of batches timed as a whole.
pub fn ping<L: Link>(
    link: &mut L,
    len: usize,
    budget: Budget,
) -> anyhow::Result<(Vec<u64>, Cpu, f64)> {
    let mut msg = message(len);
    let mut samples = Vec::with_capacity(1 << 16);
    let mut cpu: Option<CpuMark> = None;
    let start = Instant::now();
    let mut before = start;
    let mut seq = 0u64;
    let (warm, end) = (budget.warmup, budget.warmup + budget.measure);
    loop {
        stamp(&mut msg, seq);
        link.send(&msg)?;
        let reply = link.recv(len)?;
        ensure!(
            seq_of(reply) == seq,
            "round trip {seq}: the echo carried sequence number {}",
            seq_of(reply)
        );
        let now = Instant::now();
        let since_start = now - start;
        if since_start <= warm {
            before = now;
        } else if cpu.is_none() {
            // The CPU clocks are read where the timed round trips begin (syscalls, kept out of
            // them: the clock restarts after).
            cpu = Some(CpuMark::now());
            before = Instant::now();
        } else {
            samples.push((now - before).as_nanos() as u64);
            before = now;
        }
        seq += 1;
        // At least two timed round trips, however slow they are.
        if since_start > end && samples.len() >= 2 {
            break;
        }
    }
    let cpu = cpu.map_or_else(Cpu::default, |mark| mark.per_message(samples.len() as u64));
    // Then batches of up to 100 round trips (as many as fit the warm-up), each timed as a whole
    // (no clock read per round trip), for as long as the warm-up (at least one batch): the
    // fastest batch's mean.
    let mean_ns = samples.iter().sum::<u64>() / samples.len().max(1) as u64;
    let rounds = (warm.as_nanos() as u64 / mean_ns.max(1)).clamp(1, 100);
    let started = Instant::now();
    let mut batch_ns = f64::MAX;
    loop {
        let from = Instant::now();
        for _ in 0..rounds {
            stamp(&mut msg, seq);
            link.send(&msg)?;
            let reply = link.recv(len)?;
            ensure!(
                seq_of(reply) == seq,
                "round trip {seq}: the echo carried sequence number {}",
                seq_of(reply)
            );
            seq += 1;
        }
        batch_ns = batch_ns.min(from.elapsed().as_nanos() as f64 / rounds as f64);
        if started.elapsed() >= warm {
            break;
        }
    }
    stamp(&mut msg, STOP);
    link.send(&msg)?;
    Ok((samples, cpu, batch_ns))
}

/// What an open-loop run measured: latency percentiles from the intended send times, in
/// nanoseconds, and the rate achieved.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tail {
    pub p50_ns: f64,
    pub p99_ns: f64,
    pub p999_ns: f64,
    pub max_ns: f64,
    /// Round trips completed per second (the target rate, or less past saturation).
    pub achieved: f64,
    pub samples: u64,
}

/// The measuring side of an open-loop run: round trip `i` is due at `start + i / rate`; the
/// loop waits for that moment (sleeping, then spinning for the last 2 ms), sends, waits for
/// the echo, and records the time from the moment it was due, not from when it was sent. A
/// late echo thereby delays the next send and that delay is counted (the coordinated omission
/// a closed loop hides). Recorded in an HDR histogram (3 significant digits).
pub fn open_loop<L: Link>(
    link: &mut L,
    len: usize,
    budget: Budget,
    rate: u64,
) -> anyhow::Result<(Tail, Cpu)> {
    ensure!(rate > 0, "an open-loop rate of 0");
    // 1 ns to an hour, 3 significant digits.
    let mut hist = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3)
        .map_err(|e| anyhow::anyhow!("an HDR histogram: {e}"))?;
    let mut msg = message(len);
    let interval = 1e9 / rate as f64;
    let start = Instant::now();
    let (warm, end) = (budget.warmup, budget.warmup + budget.measure);
    let mut cpu: Option<(CpuMark, Instant)> = None;
    let mut seq = 0u64;
    loop {
        let due = start + Duration::from_nanos((seq as f64 * interval) as u64);
        loop {
            let now = Instant::now();
            if now >= due {
                break;
            }
            // A sleep overshoots by tens of microseconds, on a busy VM by milliseconds, and
            // an overshoot would count as latency: sleep only far ahead, then spin.
            let ahead = due - now;
            if ahead > Duration::from_millis(3) {
                std::thread::sleep(ahead - Duration::from_millis(2));
            } else {
                std::hint::spin_loop();
            }
        }
        stamp(&mut msg, seq);
        link.send(&msg)?;
        let reply = link.recv(len)?;
        ensure!(
            seq_of(reply) == seq,
            "round trip {seq}: the echo carried sequence number {}",
            seq_of(reply)
        );
        let now = Instant::now();
        let since_start = now - start;
        // Past the warm-up by the clock (a saturated schedule runs behind it).
        if since_start > warm {
            if cpu.is_none() {
                cpu = Some((CpuMark::now(), now));
            }
            hist.saturating_record((now - due).as_nanos() as u64);
        }
        seq += 1;
        if since_start > end {
            break;
        }
    }
    let done = Instant::now();
    stamp(&mut msg, STOP);
    link.send(&msg)?;
    let Some((mark, from)) = cpu else {
        bail!("the open-loop run ended within its warm-up: raise the budget");
    };
    let samples = hist.len();
    let at = |q: f64| hist.value_at_quantile(q) as f64;
    Ok((
        Tail {
            p50_ns: at(0.5),
            p99_ns: at(0.99),
            p999_ns: at(0.999),
            max_ns: hist.max() as f64,
            achieved: samples as f64 / (done - from).as_secs_f64(),
            samples,
        },
        mark.per_message(samples),
    ))
}

/// The peer's side of a ping-pong run: echoes every message until the stop message.
pub fn pong<L: Link>(link: &mut L, len: usize) -> anyhow::Result<()> {
    while link.echo(len)? {}
    Ok(())
}

/// The peer's side of a throughput run: sends `len`-byte messages for the budget, then the stop
/// message. With `window`, sends at most that many messages ahead of the receiver's credits
/// (UDP drops what does not fit the receiver's buffer; credits make it lossless).
pub fn blast<L: Link>(
    link: &mut L,
    len: usize,
    budget: Budget,
    window: Option<u64>,
) -> anyhow::Result<()> {
    let mut msg = message(len);
    let start = Instant::now();
    let end = budget.warmup + budget.measure;
    let mut credits = window.unwrap_or(u64::MAX);
    let mut seq = 0u64;
    loop {
        if credits == 0 {
            let grant = link.recv(8)?;
            credits += seq_of(grant);
        }
        stamp(&mut msg, seq);
        link.send(&msg)?;
        credits -= 1;
        seq += 1;
        if seq % 64 == 0 && start.elapsed() > end {
            break;
        }
    }
    if credits == 0 {
        link.recv(8)?;
    }
    stamp(&mut msg, STOP);
    link.finish(&msg)?;
    if window.is_some() {
        // Stay until the receiver is done: a UDP socket closed now would answer its last
        // credits with ICMP "port unreachable", which fails the receiver's next call.
        while seq_of(link.recv(8)?) != STOP {}
    }
    Ok(())
}

/// What a throughput run measured at the receiver.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    pub messages: u64,
    pub bytes: u64,
    pub secs: f64,
}

impl Rate {
    pub fn messages_per_sec(&self) -> f64 {
        self.messages as f64 / self.secs
    }

    pub fn gb_per_sec(&self) -> f64 {
        self.bytes as f64 / self.secs / 1e9
    }
}

/// The parent's side of a throughput run, timed here at the receiver from the first message
/// (or piece of the stream) after the warm-up to the end of the run. Checks that messages arrive
/// complete and in order; with `window`, grants the sender credits for half a window at a time.
pub fn drain<L: Link>(
    link: &mut L,
    len: usize,
    budget: Budget,
    window: Option<u64>,
) -> anyhow::Result<(Rate, Cpu)> {
    let grant = window.map(|w| (w / 2).max(1));
    let mut grant_msg = [0u8; 8];
    if let Some(grant) = grant {
        stamp(&mut grant_msg, grant);
    }
    let chunk = if L::STREAM { len.max(64 << 10) } else { len };
    let start = Instant::now();
    let mut timed_from: Option<(Instant, u64, u64, CpuMark)> = None;
    let (mut bytes, mut expected, mut since_grant, mut receipts) = (0u64, 0u64, 0u64, 0u64);
    loop {
        let got = link.recv_any(chunk)?;
        let n = got.len() as u64;
        if L::STREAM {
            if n == 0 {
                break;
            }
        } else {
            let seq = seq_of(got);
            if seq == STOP {
                break;
            }
            ensure!(
                n == len as u64 && seq == expected,
                "message {expected}: got {n} bytes with sequence number {seq} (lost or reordered)"
            );
            expected += 1;
        }
        bytes += n;
        receipts += 1;
        // Reading the clock costs about as much as taking a small message from the ring: only
        // every 16th message during the warm-up (every piece of a stream, those are big), and
        // once at the end.
        if timed_from.is_none() && (L::STREAM || receipts % 16 == 0) {
            let now = Instant::now();
            if now - start > budget.warmup {
                timed_from = Some((now, bytes, receipts, CpuMark::now()));
            }
        }
        if let Some(grant) = grant {
            since_grant += 1;
            if since_grant == grant {
                link.send(&grant_msg)?;
                since_grant = 0;
            }
        }
    }
    // The stop message (or end of file) follows the last message at once.
    let last = Instant::now();
    if grant.is_some() {
        stamp(&mut grant_msg, STOP);
        link.send(&grant_msg)?;
    }
    if L::STREAM {
        // The stop message came through the stream as ordinary bytes before end of file.
        ensure!(
            bytes >= len as u64 && bytes % len as u64 == 0,
            "the stream carried {bytes} bytes, not a whole number of {len}-byte messages"
        );
        bytes -= len as u64;
    }
    let Some((from, before, receipts_before, cpu)) = timed_from else {
        bail!("the run ended within its warm-up ({bytes} bytes): raise the budget");
    };
    let timed_bytes = bytes.saturating_sub(before);
    let secs = (last - from).as_secs_f64();
    ensure!(
        secs > 0.0 && timed_bytes > 0,
        "too few messages after the warm-up to time"
    );
    let messages = timed_bytes / len as u64;
    let cpu = if L::STREAM {
        cpu.per_message(messages)
    } else {
        cpu.per_message(receipts - receipts_before)
    };
    Ok((
        Rate {
            messages,
            bytes: timed_bytes,
            secs,
        },
        cpu,
    ))
}
