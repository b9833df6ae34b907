//! One measurement between two real processes: this process creates the mechanism's objects,
//! starts itself again as the peer (`ipc-bench peer ...`, a hidden subcommand), waits for the
//! peer's hello through the mechanism (the readiness handshake: the objects exist before the
//! peer starts, so nothing races), runs the loop of [`crate::link`] and collects the peer.
//!
//! Every measurement has its own [`Deadline`] from `--timeout`, on both sides. The waits of our
//! code are bounded by it directly; the raw baselines make plain blocking calls as C does, so a
//! watchdog on each side ends a stuck run at the deadline (the parent kills the peer and removes
//! a queue, which makes a blocked call return; the peer exits with 124).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use ipc_common::wait::{self, Deadline, Timeout};
use ipc_common::{cleanup, report};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::link::{self, Budget, Cpu, Link, Rate, Tail};
use crate::plan::{Imp, Kind, Knobs, Mech, Spec};
use crate::{ours, peers, raw};

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

impl Ctx<'_> {
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
        peer: &PeerProc,
        also: impl FnOnce() + Send + 'static,
    ) -> Watchdog {
        let pid = peer.pid();
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

/// Runs one measurement; an error names the measurement, and a wait that ran out of time is a
/// timeout (exit 124) naming it too. `quiet`: the run's `--quiet`, restored after our code ran.
pub fn measure(
    spec: Spec,
    dir: &Path,
    timeout: Timeout,
    serial: u64,
    quiet: bool,
) -> anyhow::Result<Outcome> {
    let ctx = Ctx {
        spec,
        deadline: Deadline::after(timeout),
        dir,
        timeout,
        serial,
    };
    let result = match spec.imp {
        Imp::Ours => {
            // The mechanisms' progress lines ("created FIFO ...") tell an example's story; in
            // the benchmark they would only interleave with its own.
            report::set_quiet(true);
            let result = ours::parent(&ctx);
            report::set_quiet(quiet);
            result
        }
        Imp::Raw => raw::parent(&ctx),
        Imp::Peer => peers::parent(&ctx),
    };
    result.map_err(|err| {
        if ctx.deadline.expired() && !err.is::<wait::TimedOut>() {
            ctx.deadline.timed_out(format_args!("{spec} ({err:#})"))
        } else {
            err.context(format!("measure {spec}"))
        }
    })
}

/// The measuring side's loop for `spec`, over any link.
pub fn drive<L: Link>(link: &mut L, spec: &Spec, window: Option<u64>) -> anyhow::Result<Outcome> {
    match spec.kind {
        Kind::Latency => {
            link::ping(link, spec.wire_size(), spec.budget).map(|(samples, cpu, batch_ns)| {
                Outcome::Latency {
                    samples,
                    cpu,
                    batch_ns: Some(batch_ns),
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
    cpu: Option<usize>,
    #[arg(long)]
    rate: Option<u64>,
    /// Where the measuring side's objects are (socket URL, FIFO path, SysV id), in order.
    #[arg(long = "addr")]
    pub addrs: Vec<String>,
    /// UDP credits: the most messages in flight.
    #[arg(long)]
    pub window: Option<u64>,
    #[arg(long, default_value = "10")]
    timeout: Timeout,
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

    /// The `i`-th `--addr`.
    pub fn addr(&self, i: usize) -> anyhow::Result<&str> {
        self.addrs
            .get(i)
            .map(String::as_str)
            .with_context(|| format!("the peer needs --addr number {}", i + 1))
    }
}

/// The peer process: pins itself, connects, says hello, serves, exits. A run that outlives its
/// deadline (the measuring side vanished) removes what it created and exits 124.
pub fn peer(args: PeerArgs) -> anyhow::Result<()> {
    if let Some(cpu) = args.cpu {
        raw::pin_to_cpu(cpu).with_context(|| format!("pin the peer to CPU {cpu}"))?;
    }
    let deadline = Deadline::after(args.timeout);
    let spec = args.spec();
    // The peer's only output is an error; the mechanisms' progress lines are for the examples.
    report::set_quiet(true);
    let _watchdog = Watchdog::arm(deadline, move || {
        eprintln!(
            "error: {}",
            deadline.timed_out(format_args!("the measuring side of {spec} (peer gave up)"))
        );
        cleanup::run_all();
        std::process::exit(i32::from(report::EXIT_TIMED_OUT));
    });
    match spec.imp {
        Imp::Ours => ours::peer(&args, &spec, &deadline),
        Imp::Raw => raw::peer(&args, &spec, &deadline),
        Imp::Peer => peers::peer(&args, &spec, &deadline),
    }
    .with_context(|| format!("peer of {spec}"))
}
