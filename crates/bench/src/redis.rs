//! The Redis Streams rows (`redis-unix`, `redis-tcp`): the SysV queue's job done by a Redis
//! server, through the `broker` crate's calls as `broker-writer` and `broker-reader` make them.
//! One stream each way (`down` towards the peer, `up` back); a side sends with `XADD` and
//! receives with `XREADGROUP ... BLOCK` in its consumer group, then `XACK`s the entry, so a
//! message costs three commands, each a round trip to redis-server, where the queue costs one
//! system call on each side.
//!
//! Each measurement starts the bench's own `redis-server` in `setup`, in a directory of its own
//! (mode 0700) inside the run's private directory: a Unix socket there (`redis-unix`) or TCP on
//! a free loopback port (`redis-tcp`), never both, with the broker tests' durability (AOF on) but
//! Redis's default `appendfsync everysec` (an fsync a second, not one per write) and no RDB
//! snapshots (`--save ''`). It is ready when it answers `PING`; a guard kills it and removes its
//! directory when the row ends, on failure, on a stop signal and on a panic, and the kernel kills
//! it if the measuring thread dies first (`PR_SET_PDEATHSIG`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use broker::{Group, Redis, ServerArgs};
use ipc_common::runtime::cleanup::{self, Cleanup};
use ipc_common::runtime::wait::{self, Deadline};
use nix::sched::{CpuSet, sched_setaffinity};
use nix::sys::prctl;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::link::{Link, STOP, seq_of};
use crate::mechanism::Mechanism;
use crate::plan::{Imp, Mech, Spec};
use crate::session::{Ctx, Setup, Side, Then};

/// The server program, looked up on `PATH`.
pub const SERVER: &str = "redis-server";

/// The run's note when the rows cannot run.
pub const SKIP_NOTE: &str = "redis-unix, redis-tcp not measured: `redis-server` is not installed \
                             (apt-get install -y redis-server)";

/// The streams and the consumer group.
const DOWN: &str = "ipc-bench-down";
const UP: &str = "ipc-bench-up";
const GROUP: &str = broker::DEFAULT_GROUP;
/// `broker-reader`'s default `--claim-after`: with it, a side looks for abandoned entries
/// (`XAUTOCLAIM`) once a second, as a long-running reader would.
const CLAIM_AFTER: Duration = Duration::from_secs(5);
/// The first 8 bytes of the peer's first message: it is connected and reading.
const HELLO: [u8; 8] = [0; 8];

/// Whether `redis-server` is on `PATH` (the rows run only then).
pub fn installed() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(SERVER).is_file()))
}

/// The bench's own redis-server for one measurement: where it listens, and the guards that stop
/// it and remove its directory (declared in that order: the process goes first).
#[derive(Debug)]
pub struct Server {
    pub url: String,
    _process: Cleanup,
    _dir: Cleanup,
}

impl Server {
    /// Starts redis-server for `mech` in a new directory `dir` and waits (until `deadline`) for
    /// it to answer `PING`.
    pub fn start(mech: Mech, dir: &Path, deadline: &Deadline) -> anyhow::Result<Server> {
        // A run being stopped starts no more servers.
        cleanup::check_interrupted()?;
        if let Some(name) = broker::PASSWORD_ENV
            .iter()
            .find(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
        {
            bail!(
                "{name} is set, but the bench's own redis-server has no password and would \
                 refuse it: unset {name} for ipc-bench"
            );
        }
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("create directory {}", dir.display()))?;
        let owned = dir.to_path_buf();
        let dir_guard = Cleanup::register(format!("redis-server directory {}", dir.display()), {
            move || Ok(std::fs::remove_dir_all(&owned)?)
        });
        let (listen, address) = match mech {
            Mech::RedisUnix => {
                let socket = dir.join("redis.sock");
                let args = [
                    "--port".into(),
                    "0".into(),
                    "--unixsocket".into(),
                    socket.display().to_string(),
                    "--unixsocketperm".into(),
                    "700".into(),
                ];
                (args.to_vec(), Address::Unix(socket))
            }
            _ => {
                // A free port now; another process could take it before redis-server binds it,
                // and then the start fails saying so (the log says "Address already in use").
                let port = TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .context("find a free TCP port on 127.0.0.1")?
                    .port();
                let args = ["--bind", "127.0.0.1", "--port", &port.to_string()];
                (
                    args.map(String::from).to_vec(),
                    Address::Tcp(format!("127.0.0.1:{port}")),
                )
            }
        };
        let log = dir.join("redis.log");
        let output =
            std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let mut command = Command::new(SERVER);
        command
            .args(&listen)
            .arg("--dir")
            .arg(dir)
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
            ])
            .args(["--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                output.try_clone().context("duplicate the log file")?,
            ))
            .stderr(Stdio::from(output));
        // Every CPU: the measuring side is pinned to one (with --pin) and its children inherit
        // that; the server, a third process, goes wherever the scheduler puts it, as the tools do.
        let mut every_cpu = CpuSet::new();
        for cpu in 0..CpuSet::count() {
            every_cpu.set(cpu).context("build the set of every CPU")?;
        }
        // SAFETY: between fork and exec only sched_setaffinity(2) and prctl(2), both
        // async-signal-safe system calls on memory the closure owns. The kernel keeps the CPUs
        // that exist and are allowed; PR_SET_PDEATHSIG kills redis-server if this thread ends
        // without our guard having run (SIGKILL of the bench).
        unsafe {
            command.pre_exec(move || {
                sched_setaffinity(Pid::from_raw(0), &every_cpu)?;
                prctl::set_pdeathsig(Signal::SIGKILL)?;
                Ok(())
            });
        }
        let child = command.spawn().with_context(|| {
            format!("start {SERVER} (apt-get install -y redis-server, or leave out --only redis-*)")
        })?;
        let pid = child.id();
        let child = Arc::new(Mutex::new(child));
        let held = Arc::clone(&child);
        let process = Cleanup::register(format!("{SERVER} (pid {pid})"), move || {
            let mut child = held.lock().unwrap_or_else(|p| p.into_inner());
            // SIGKILL: its data is thrown away with its directory, nothing to flush.
            let _ = child.kill();
            child.wait().context("wait for redis-server")?;
            Ok(())
        });
        let server = Server {
            url: address.url(),
            _process: process,
            _dir: dir_guard,
        };
        wait::retry(
            deadline,
            format_args!("{SERVER} to answer PING at {}", server.url),
            || {
                let exited = child
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .try_wait()
                    .context("wait for redis-server")?;
                if let Some(status) = exited {
                    bail!(
                        "{SERVER} exited {status} before answering: {}",
                        last_lines(&log)
                    );
                }
                Ok(address.ping(deadline).then_some(()))
            },
        )?;
        Ok(server)
    }
}

/// Where a server listens.
#[derive(Debug)]
enum Address {
    Unix(PathBuf),
    Tcp(String),
}

impl Address {
    fn url(&self) -> String {
        match self {
            Address::Unix(path) => format!("unix://{}", path.display()),
            Address::Tcp(addr) => format!("redis://{addr}"),
        }
    }

    /// Whether the server answers `PING` with `+PONG` (not `-LOADING`, not refused) within the
    /// deadline, by hand: two lines of the protocol on a connection of our own.
    fn ping(&self, deadline: &Deadline) -> bool {
        let limit = deadline
            .remaining()
            .map(|left| left.max(Duration::from_millis(1)));
        let exchange = |stream: &mut dyn ReadWrite| -> std::io::Result<bool> {
            stream.write_all(b"PING\r\n")?;
            let mut reply = [0u8; 7];
            stream.read_exact(&mut reply)?;
            Ok(&reply == b"+PONG\r\n")
        };
        let answered = match self {
            Address::Unix(path) => UnixStream::connect(path).and_then(|mut s| {
                s.set_read_timeout(limit)?;
                s.set_write_timeout(limit)?;
                exchange(&mut s)
            }),
            Address::Tcp(addr) => TcpStream::connect(addr).and_then(|mut s| {
                s.set_read_timeout(limit)?;
                s.set_write_timeout(limit)?;
                exchange(&mut s)
            }),
        };
        answered.unwrap_or(false)
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// The end of a server's log, for an error line.
fn last_lines(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(3)..].join(" / ");
    match tail.is_empty() {
        true => format!("nothing in {}", log.display()),
        false => tail,
    }
}

/// One side of the pair: a connection of its own, sending on one stream and reading the other
/// through the group, as broker-writer and broker-reader do.
#[derive(Debug)]
pub struct BrokerLink {
    redis: Redis,
    tx: &'static str,
    rx: &'static str,
    consumer: &'static str,
    buf: Vec<u8>,
    deadline: Deadline,
}

impl BrokerLink {
    /// Connects to `url` (waiting for it within `deadline`) and makes the group on the stream
    /// this side reads (from its first entry, so nothing sent earlier is missed).
    fn open(url: &str, measuring: bool, deadline: Deadline) -> anyhow::Result<BrokerLink> {
        let (tx, rx, consumer) = match measuring {
            true => (DOWN, UP, "ipc-bench-measuring"),
            false => (UP, DOWN, "ipc-bench-peer"),
        };
        let args = ServerArgs {
            url: broker::parse_url(url).map_err(|err| anyhow::anyhow!(err))?,
            stream: rx.to_owned(),
            tls_ca: None,
        };
        let mut redis = broker::connect(&args, &deadline)?;
        redis.create_group(rx, GROUP, &deadline)?;
        Ok(BrokerLink {
            redis,
            tx,
            rx,
            consumer,
            buf: Vec::new(),
            deadline,
        })
    }

    /// The next entry's body into `buf`, acknowledged.
    fn take(&mut self) -> anyhow::Result<()> {
        let from = Group {
            stream: self.rx,
            group: GROUP,
            consumer: self.consumer,
            claim_after: CLAIM_AFTER,
        };
        let mut lost = 0usize;
        let entry = self
            .redis
            .receive(&from, &self.deadline, &mut |_| lost += 1)?;
        // Nothing trims our streams: a lost entry would be a bug the run must not hide.
        if lost > 0 {
            bail!("stream {}: {lost} pending entries were trimmed", self.rx);
        }
        self.redis.ack(&from, &entry.id, &self.deadline)?;
        self.buf = entry
            .body
            .with_context(|| format!("entry {} of stream {} has no body", entry.id, self.rx))?;
        Ok(())
    }
}

impl Link for BrokerLink {
    const STREAM: bool = false;

    fn send(&mut self, msg: &[u8]) -> anyhow::Result<()> {
        self.redis.add(self.tx, 1, msg, &self.deadline)?;
        Ok(())
    }

    fn recv(&mut self, _len: usize) -> anyhow::Result<&[u8]> {
        self.take()?;
        Ok(&self.buf)
    }

    fn recv_any(&mut self, _max: usize) -> anyhow::Result<&[u8]> {
        self.take()?;
        Ok(&self.buf)
    }

    fn echo(&mut self, _len: usize) -> anyhow::Result<bool> {
        self.take()?;
        if seq_of(&self.buf) == STOP {
            return Ok(false);
        }
        self.redis.add(self.tx, 1, &self.buf, &self.deadline)?;
        Ok(true)
    }
}

/// The two Redis rows: a redis-server per measurement, ours only (there is no raw Redis).
#[derive(Debug)]
pub struct Streams;

impl Mechanism for Streams {
    type Objects = Server;

    fn setup(ctx: &Ctx<'_>) -> anyhow::Result<Setup<Server>> {
        let server = Server::start(ctx.spec.mech, &ctx.path("redis"), &ctx.deadline)?;
        let addrs = vec![server.url.clone()];
        Ok(Setup::new(server, addrs))
    }

    fn open<T: Then>(spec: &Spec, side: Side<'_, Server>, then: T) -> anyhow::Result<T::Out> {
        if spec.imp != Imp::Ours {
            bail!("{} has no {} implementation", spec.mech, spec.imp);
        }
        match side {
            Side::Measuring { ctx, objects, .. } => {
                let mut link = BrokerLink::open(&objects.url, true, ctx.deadline)?;
                let hello = link.recv(HELLO.len())?;
                if hello != HELLO {
                    bail!(
                        "the peer's hello was {} bytes, not {}",
                        hello.len(),
                        HELLO.len()
                    );
                }
                // The server outlives the link: `then` collects the peer before it returns.
                let out = then.then(link);
                drop(objects);
                out
            }
            Side::Peer { args, deadline } => {
                let mut link = BrokerLink::open(args.addr(0)?, false, *deadline)?;
                link.send(&HELLO)?;
                then.then(link)
            }
        }
    }
}
