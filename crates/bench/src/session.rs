//! The layer below every measurement: what a measurement is given ([`Ctx`]: the spec, its
//! deadline, where to put files; [`PeerArgs`]: the peer's command line), the peer process
//! ([`PeerProc`]) and the [`Watchdog`]s that end a stuck run, what it gives ([`Outcome`]), the
//! loops on each side ([`drive`], [`serve`]) and the sequence around them ([`run_parent`],
//! [`Setup`], [`Side`], [`Then`]), and the setup the implementations share (private SysV
//! objects, the FIFO pair, pinning, UDP buffers). Imports nothing of the implementations.
//!
//! Every measurement has its own [`Deadline`] from `--timeout`, on both sides. The waits of our
//! code are bounded by it directly; the raw baselines make plain blocking calls as C does, so a
//! watchdog on each side ends a stuck run at the deadline (the parent kills the peer and removes
//! a queue, which makes a blocked call return; the peer exits with 124).

use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use ipc_common::runtime::cleanup::Cleanup;
use ipc_common::runtime::paths;
use ipc_common::runtime::wait::{self, Deadline, Timeout};
use ipc_common::sysv::{self, Attached, Key, MsqId, ShmId};
use nix::fcntl::OFlag;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::link::{self, Budget, Cpu, Link, Rate, Tail};
use crate::plan::{Imp, Kind, Knobs, Mech, Spec};

/// Mode of everything a measurement creates: ours alone.
pub const MODE: u32 = 0o600;

/// What one measurement gives.
#[derive(Debug)]
pub enum Outcome {
    /// Every round trip after the warm-up, in nanoseconds, and the CPU they cost; the floors
    /// also give `batch_ns`, round trips timed in batches (no clock read per round trip).
    Latency {
        samples: Vec<u64>,
        cpu: Cpu,
        batch_ns: Option<f64>,
    },
    Throughput(Rate, Cpu),
    /// Open loop: the latency percentiles from the intended send times.
    Open(Tail, Cpu),
}

/// What the measuring side needs besides the spec.
#[derive(Debug)]
pub struct Ctx<'a> {
    pub spec: Spec,
    pub deadline: Deadline,
    pub dir: &'a Path,
    timeout: Timeout,
    /// Distinguishes this measurement's file names from earlier ones in the same directory.
    pub serial: u64,
}

impl<'a> Ctx<'a> {
    /// The context of one measurement, its deadline starting now.
    pub fn new(spec: Spec, dir: &'a Path, timeout: Timeout, serial: u64) -> Ctx<'a> {
        Ctx {
            spec,
            deadline: Deadline::after(timeout),
            dir,
            timeout,
            serial,
        }
    }

    /// A path in the run's private directory, unique to this measurement.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{}{name}", self.serial))
    }

    /// Starts the peer with the spec and `extra` (where to find the objects).
    pub fn spawn(&self, extra: &[String]) -> anyhow::Result<PeerProc> {
        let exe = std::env::current_exe().context("find our own executable to start the peer")?;
        let mut command = Command::new(exe);
        command
            .arg("peer")
            .args(self.spec.to_args())
            .args(extra)
            .arg(format!("--timeout={}", self.timeout_arg()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        // SAFETY: between fork and exec only prctl(2), an async-signal-safe system call.
        // PR_SET_PDEATHSIG: a bench killed outright (SIGKILL, no cleanup) takes its peer with
        // it; otherwise the peer waits for a partner that is gone, forever with --timeout 0.
        // The peer is started from the main thread, which lives as long as the process.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
                Ok(())
            });
        }
        let child = command
            .spawn()
            .with_context(|| format!("start the peer process for {}", self.spec))?;
        link::set_peer(child.id() as i32);
        Ok(PeerProc { child })
    }

    fn timeout_arg(&self) -> String {
        self.timeout
            .duration()
            .map_or("0".into(), |d| d.as_secs_f64().to_string())
    }
}

/// The peer process; killed if still running when dropped (a failed measurement).
#[derive(Debug)]
pub struct PeerProc {
    child: Child,
}

impl PeerProc {
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// Waits (until `deadline`) for the peer to exit, which it must do with success.
    pub fn finish(mut self, deadline: &Deadline) -> anyhow::Result<()> {
        let status = wait::retry(deadline, "the peer process to exit", || {
            self.child.try_wait().context("wait for the peer process")
        })?;
        if !status.success() {
            bail!("the peer process failed ({status}); its error is above");
        }
        Ok(())
    }
}

impl Drop for PeerProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `on_expiry` if `deadline` passes before the watchdog is dropped.
#[derive(Debug)]
pub struct Watchdog {
    disarm: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    pub fn arm(deadline: Deadline, on_expiry: impl FnOnce() + Send + 'static) -> Watchdog {
        let (disarm, disarmed) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let expired = match deadline.remaining() {
                None => disarmed.recv().is_err(),
                Some(left) => matches!(
                    disarmed.recv_timeout(left),
                    Err(mpsc::RecvTimeoutError::Timeout)
                ),
            };
            if expired {
                on_expiry();
            }
        });
        Watchdog {
            disarm: Some(disarm),
            thread: Some(thread),
        }
    }

    /// The parent's watchdog: kills the peer, so a blocked read sees end of file, then runs
    /// `also` (remove a queue a blocked call waits on).
    pub fn for_peer(
        deadline: Deadline,
        pid: Pid,
        also: impl FnOnce() + Send + 'static,
    ) -> Watchdog {
        Watchdog::arm(deadline, move || {
            let _ = kill(pid, Signal::SIGKILL);
            also();
        })
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(disarm) = self.disarm.take() {
            let _ = disarm.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What a mechanism's `setup` made, once, in the measuring process before the peer starts: the
/// objects this side keeps for the run (with the guards that remove them), where the peer finds
/// them (its `--addr`s, in order) and, for UDP throughput, the credits both sides use.
#[derive(Debug)]
pub struct Setup<O> {
    pub objects: O,
    pub addrs: Vec<String>,
    pub window: Option<u64>,
}

impl<O> Setup<O> {
    pub fn new(objects: O, addrs: Vec<String>) -> Self {
        Setup {
            objects,
            addrs,
            window: None,
        }
    }

    /// The same setup, its objects in another type.
    pub fn map<P>(self, f: impl FnOnce(O) -> P) -> Setup<P> {
        Setup {
            objects: f(self.objects),
            addrs: self.addrs,
            window: self.window,
        }
    }

    /// The peer's command line beyond the spec.
    fn peer_args(&self) -> Vec<String> {
        let addrs = self.addrs.iter().map(|addr| format!("--addr={addr}"));
        addrs
            .chain(self.window.map(|window| format!("--window={window}")))
            .collect()
    }
}

/// Which side a link is opened on, with what that side has: the measuring side the objects
/// `setup` made and the peer it started (whose process a watchdog may kill); the peer the
/// measuring side's addresses.
#[derive(Debug)]
pub enum Side<'a, O> {
    Measuring {
        ctx: &'a Ctx<'a>,
        objects: O,
        peer: Pid,
    },
    Peer {
        args: &'a PeerArgs,
        deadline: &'a Deadline,
    },
}

/// What a side does with its link once the hello has crossed: [`Drive`] or [`Serve`]. Generic
/// over the link, so that every loop is compiled for each link type (no dynamic dispatch in a
/// measured path).
pub trait Then {
    type Out;
    fn then<L: Link>(self, link: L) -> anyhow::Result<Self::Out>;
}

/// The measuring side: drives the link, then collects the peer (before the link is closed).
#[derive(Debug)]
pub struct Drive {
    spec: Spec,
    window: Option<u64>,
    peer: PeerProc,
    deadline: Deadline,
}

impl Then for Drive {
    type Out = Outcome;
    fn then<L: Link>(self, mut link: L) -> anyhow::Result<Outcome> {
        let outcome = drive(&mut link, &self.spec, self.window)?;
        self.peer.finish(&self.deadline)?;
        Ok(outcome)
    }
}

/// The peer: serves the link until the stop message.
#[derive(Debug)]
pub struct Serve {
    pub spec: Spec,
    pub window: Option<u64>,
}

impl Then for Serve {
    type Out = ();
    fn then<L: Link>(self, mut link: L) -> anyhow::Result<()> {
        serve(&mut link, &self.spec, self.window)
    }
}

/// The measuring side's sequence, written once for every mechanism and implementation: starts
/// the peer with where to find the objects `setup` made, then `open` makes this side's link
/// (waiting for the peer's hello) and hands it to the [`Drive`], which drives it and collects
/// the peer. What `open` holds beside the link (a watchdog) lives until the peer is collected.
pub fn run_parent<O>(
    ctx: &Ctx<'_>,
    setup: Setup<O>,
    open: impl FnOnce(O, Pid, Drive) -> anyhow::Result<Outcome>,
) -> anyhow::Result<Outcome> {
    let peer = ctx.spawn(&setup.peer_args())?;
    let pid = peer.pid();
    let drive = Drive {
        spec: ctx.spec,
        window: setup.window,
        peer,
        deadline: ctx.deadline,
    };
    open(setup.objects, pid, drive)
}

/// The measuring side's loop for `spec`, over any link.
pub fn drive<L: Link>(link: &mut L, spec: &Spec, window: Option<u64>) -> anyhow::Result<Outcome> {
    match spec.kind {
        Kind::Latency => {
            link::ping(link, spec.wire_size(), spec.budget).map(|(samples, cpu, batch_ns)| {
                Outcome::Latency {
                    samples,
                    cpu,
                    batch_ns: Some(link.batch_ns().unwrap_or(batch_ns)),
                }
            })
        }
        Kind::Throughput => link::drain(link, spec.wire_size(), spec.budget, window)
            .map(|(rate, cpu)| Outcome::Throughput(rate, cpu)),
        Kind::Open => {
            let rate = spec.knobs.rate.context("an open-loop run needs a rate")?;
            link::open_loop(link, spec.wire_size(), spec.budget, rate)
                .map(|(tail, cpu)| Outcome::Open(tail, cpu))
        }
    }
}

/// The peer's loop for `spec`, over any link.
pub fn serve<L: Link>(link: &mut L, spec: &Spec, window: Option<u64>) -> anyhow::Result<()> {
    match spec.kind {
        Kind::Latency | Kind::Open => link::pong(link, spec.wire_size()),
        Kind::Throughput => link::blast(link, spec.wire_size(), spec.budget, window),
    }
}

/// The hidden `ipc-bench peer` subcommand: the other process of one measurement.
#[derive(Args, Clone, Debug)]
pub struct PeerArgs {
    #[arg(long, value_enum)]
    mech: Mech,
    #[arg(long, value_enum)]
    imp: Imp,
    #[arg(long, value_enum)]
    kind: Kind,
    #[arg(long)]
    size: usize,
    #[arg(long)]
    warmup_us: u64,
    #[arg(long)]
    measure_us: u64,
    #[arg(long)]
    ring_bytes: usize,
    #[arg(long)]
    spin_us: u64,
    #[arg(long)]
    sockbuf: Option<usize>,
    #[arg(long)]
    pipe: Option<usize>,
    #[arg(long)]
    pub cpu: Option<usize>,
    #[arg(long)]
    rate: Option<u64>,
    /// Where the measuring side's objects are (socket URL, FIFO path, SysV id), in order.
    #[arg(long = "addr")]
    pub addrs: Vec<String>,
    /// UDP credits: the most messages in flight.
    #[arg(long)]
    pub window: Option<u64>,
    #[arg(long, default_value = "10")]
    pub timeout: Timeout,
}

impl PeerArgs {
    pub fn spec(&self) -> Spec {
        Spec {
            mech: self.mech,
            imp: self.imp,
            kind: self.kind,
            size: self.size,
            budget: Budget {
                warmup: Duration::from_micros(self.warmup_us),
                measure: Duration::from_micros(self.measure_us),
            },
            knobs: Knobs {
                sockbuf: self.sockbuf,
                pipe: self.pipe,
                ring_bytes: self.ring_bytes,
                spin: Duration::from_micros(self.spin_us),
                rate: self.rate,
            },
            peer_cpu: self.cpu,
        }
    }

    /// The `i`-th `--addr`, an endpoint URL (`udg://`, `unix://`, ...).
    pub fn endpoint<E: std::str::FromStr<Err = String>>(&self, i: usize) -> anyhow::Result<E> {
        self.addr(i)?
            .parse()
            .map_err(|err: String| anyhow::anyhow!(err))
    }

    /// The `i`-th `--addr`.
    pub fn addr(&self, i: usize) -> anyhow::Result<&str> {
        self.addrs
            .get(i)
            .map(String::as_str)
            .with_context(|| format!("the peer needs --addr number {}", i + 1))
    }
}

// ---------------------------------------------------------------------------------------------
// Setup shared by the implementations.

/// Pins this process to `cpu` (`sched_setaffinity(2)`).
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu)?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)?;
    Ok(())
}

/// The receive buffer both UDP sockets ask for (`SO_RCVBUF`).
pub const UDP_RCVBUF: usize = 4 << 20;

/// The UDP credits (messages in flight) that fit the receive buffer: the kernel doubles what it
/// is given, capped at twice `net.core.rmem_max`, and charges each queued datagram its payload
/// plus about a kilobyte of bookkeeping; half of that, to be safe.
pub fn udp_window(size: usize) -> u64 {
    let rmem_max = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .ok()
        .and_then(|text| text.trim().parse::<usize>().ok())
        .unwrap_or(212_992);
    let queue = 2 * UDP_RCVBUF.min(rmem_max);
    (queue / 2 / (size + 1024)).clamp(2, 256) as u64
}

/// A private queue for one measurement, removed when the guard drops.
pub fn private_queue() -> anyhow::Result<(MsqId, Cleanup)> {
    let id = sysv::msg_create(Key(libc::IPC_PRIVATE), MODE).context("msgget(IPC_PRIVATE)")?;
    let guard = Cleanup::register(format!("message queue id {}", id.0), move || {
        match sysv::msg_remove(id) {
            // The watchdog removed it already.
            Ok(()) | Err(nix::errno::Errno::EINVAL | nix::errno::Errno::EIDRM) => Ok(()),
            Err(errno) => Err(errno.into()),
        }
    });
    Ok((id, guard))
}

/// A private segment of `len` bytes, attached, with the guard that removes it.
pub fn private_segment(len: usize) -> anyhow::Result<(ShmId, Attached, Cleanup)> {
    let id = sysv::shm_create(Key(libc::IPC_PRIVATE), len, MODE)
        .with_context(|| format!("shmget(IPC_PRIVATE, {len})"))?;
    let guard = Cleanup::register(format!("shared memory segment id {}", id.0), move || {
        Ok(sysv::shm_remove(id)?)
    });
    let seg = Attached::attach(id, false).with_context(|| format!("shmat segment id {}", id.0))?;
    Ok((id, seg, guard))
}

/// Two FIFOs in the run's directory, `down` towards the peer and `up` back (exactly [`MODE`]),
/// with `up` open for reading, nonblocking, so that the peer's open for writing returns at
/// once, and of the capacity a `--pipe` sweep asks for; removed when the guards drop.
#[derive(Debug)]
pub struct Fifos {
    pub down: PathBuf,
    pub up: PathBuf,
    pub rx: File,
    _guards: [Cleanup; 2],
}

/// Makes the [`Fifos`] of a measurement; the peer is told `down`, then `up`.
pub fn private_fifos(ctx: &Ctx<'_>) -> anyhow::Result<Setup<Fifos>> {
    let (down, up) = (ctx.path("down"), ctx.path("up"));
    let mode = nix::sys::stat::Mode::from_bits_truncate(MODE);
    let mut guards = Vec::new();
    for path in [&down, &up] {
        nix::unistd::mkfifo(path, mode).with_context(|| format!("mkfifo {}", path.display()))?;
        guards.push(paths::remove_on_drop(path, "FIFO")?);
    }
    let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let rx = nix::fcntl::open(&up, flags, nix::sys::stat::Mode::empty())
        .with_context(|| format!("open FIFO {}", up.display()))?;
    if let Some(bytes) = ctx.spec.knobs.pipe {
        // Before the peer starts: a pipe that holds data may refuse to shrink (EBUSY).
        nix::fcntl::fcntl(&rx, nix::fcntl::FcntlArg::F_SETPIPE_SZ(bytes as i32))
            .with_context(|| format!("fcntl(F_SETPIPE_SZ, {bytes}) on FIFO {}", up.display()))?;
    }
    let addrs = vec![down.display().to_string(), up.display().to_string()];
    let _guards = guards.try_into().expect("two guards");
    let fifos = Fifos {
        down,
        up,
        rx: File::from(rx),
        _guards,
    };
    Ok(Setup::new(fifos, addrs))
}

/// Two private segments of one ring each, `down` towards the peer and `up` back, attached and
/// set up as rings (`ipc_ring::init`), with the guards that remove them.
#[derive(Debug)]
pub struct Rings {
    down: Attached,
    up: Attached,
    guards: [Cleanup; 2],
}

impl Rings {
    /// The measuring side's link over the two segments, opened by `open` (which waits for the
    /// peer's hello); then, both sides attached, the segments are removed, so that they go
    /// with the last detach even if this process is killed.
    pub fn open<L>(
        self,
        open: impl FnOnce((Attached, Attached)) -> anyhow::Result<L>,
    ) -> anyhow::Result<L> {
        let link = open((self.down, self.up))?;
        let [down, up] = self.guards;
        down.remove()?;
        up.remove()?;
        Ok(link)
    }
}

/// Makes the [`Rings`] of a measurement; the peer is told their ids.
pub fn private_rings(spec: &Spec) -> anyhow::Result<Setup<Rings>> {
    let len = ipc_ring::segment_len(spec.ring_bytes());
    let (down_id, down, down_guard) = private_segment(len)?;
    let (up_id, up, up_guard) = private_segment(len)?;
    ipc_ring::init(&down, spec.ring_bytes())?;
    ipc_ring::init(&up, spec.ring_bytes())?;
    let rings = Rings {
        down,
        up,
        guards: [down_guard, up_guard],
    };
    Ok(Setup::new(
        rings,
        vec![down_id.0.to_string(), up_id.0.to_string()],
    ))
}

/// The peer's view of [`Rings`]: the two segments the `--addr`s name, attached.
pub fn attach_rings(args: &PeerArgs) -> anyhow::Result<(Attached, Attached)> {
    let attach = |i: usize| -> anyhow::Result<Attached> {
        let id = ShmId(args.addr(i)?.parse().context("--addr: a segment id")?);
        Attached::attach(id, false).with_context(|| format!("shmat segment id {}", id.0))
    };
    Ok((attach(0)?, attach(1)?))
}
