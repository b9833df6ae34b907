//! The baselines: each mechanism through the same syscalls straight from libc, blocking, as a C
//! program makes them, so the report can show what our abstractions cost; and the floors no
//! mechanism can beat: a bare futex hand-off and a bare spin hand-off between two processes,
//! and `memcpy` bandwidth.
//!
//! Setting up (bind, accept, creating FIFOs and SysV objects) goes through std and ipc-common:
//! it is not measured. What is measured, the per-message path, is one libc call per step.
//! A blocking call is bounded by `SO_RCVTIMEO`/`SO_SNDTIMEO` set once (sockets), a futex timeout
//! (shared memory), or the watchdogs of `measure` (FIFOs and the queue).

use std::io;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use ipc_common::paths;
use ipc_common::ring;
use ipc_common::sysv::{self, Attached, MsqId, ShmId};
use ipc_common::wait::{self, Deadline};
use nix::poll::PollFlags;
use socket2::SockRef;

use crate::link::{Link, Rate, STOP, seq_of, stamp};
use crate::measure::{Ctx, Outcome, PeerArgs, Watchdog, drive, serve};
use crate::ours::{UDP_RCVBUF, private_queue, private_segment, udp_window};
use crate::plan::{Kind, Mech, Spec};

const HELLO: [u8; 8] = [0; 8];

/// Pins this process to `cpu` (`sched_setaffinity(2)`).
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is a plain bit set; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: CPU_SET writes one bit of `set`; `cpu` is within its size, checked above.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; pid 0 is this process.
    let ret = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The measuring side of `ctx.spec`, raw.
pub fn parent(ctx: &Ctx<'_>) -> anyhow::Result<Outcome> {
    match ctx.spec.mech {
        Mech::Udg => udg_parent(ctx),
        Mech::Udp => udp_parent(ctx),
        Mech::Unix | Mech::Tcp => stream_parent(ctx),
        Mech::Fifo => fifo_parent(ctx),
        Mech::Mq => mq_parent(ctx),
        Mech::Shm | Mech::ShmSpin => shm_parent(ctx),
        Mech::Futex | Mech::Spin => floor_parent(ctx),
    }
}

/// The peer side of `spec`, raw.
pub fn peer(args: &PeerArgs, spec: &Spec, deadline: &Deadline) -> anyhow::Result<()> {
    match spec.mech {
        Mech::Udg => udg_peer(args, spec, deadline),
        Mech::Udp => udp_peer(args, spec, deadline),
        Mech::Unix | Mech::Tcp => stream_peer(args, spec, deadline),
        Mech::Fifo => fifo_peer(args, spec),
        Mech::Mq => mq_peer(args, spec),
        Mech::Shm | Mech::ShmSpin => shm_peer(args, spec, deadline),
        Mech::Futex | Mech::Spin => floor_peer(args, spec, deadline),
    }
}

fn check(ret: isize, what: &str) -> anyhow::Result<usize> {
    if ret < 0 {
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::WouldBlock {
            bail!("{what}: timed out (SO_RCVTIMEO/SO_SNDTIMEO)");
        }
        return Err(err).context(what.to_string());
    }
    Ok(ret as usize)
}

// ---------------------------------------------------------------------------------------------
// Sockets and FIFOs: a file descriptor, read(2)/write(2) or recv(2)/send(2).

/// A blocking descriptor pair (the same one twice for a socket). `STREAM`: bytes, looped until
/// whole; otherwise one datagram per call.
struct RawFd2<const STREAM: bool> {
    rx: OwnedFd,
    tx: Option<OwnedFd>,
    buf: Vec<u8>,
}

impl<const STREAM: bool> RawFd2<STREAM> {
    fn socket(fd: OwnedFd, size: usize) -> Self {
        RawFd2 {
            rx: fd,
            tx: None,
            buf: vec![0; size.max(64 << 10)],
        }
    }

    fn tx_fd(&self) -> RawFd {
        self.tx.as_ref().unwrap_or(&self.rx).as_raw_fd()
    }

    fn read_some(&mut self, from: usize, to: usize) -> anyhow::Result<usize> {
        let fd = self.rx.as_raw_fd();
        loop {
            let dst = &mut self.buf[from..to];
            // SAFETY: `dst` is writable for its length.
            let ret = unsafe { libc::read(fd, dst.as_mut_ptr().cast(), dst.len()) };
            if ret < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return check(ret, "read");
        }
    }

    fn fill(&mut self, len: usize) -> anyhow::Result<()> {
        if !STREAM {
            let n = self.read_some(0, len)?;
            ensure!(n == len, "a {n}-byte datagram, expected {len}");
            return Ok(());
        }
        let mut got = 0;
        while got < len {
            match self.read_some(got, len)? {
                0 => bail!("the peer closed {got} bytes into a message"),
                n => got += n,
            }
        }
        Ok(())
    }

    fn write_from(fd: RawFd, mut bytes: &[u8]) -> anyhow::Result<()> {
        while !bytes.is_empty() {
            // SAFETY: `bytes` is readable for its length.
            let ret = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
            if ret < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            let n = check(ret, "write")?;
            ensure!(STREAM || n == bytes.len(), "a datagram went out cut short");
            bytes = &bytes[n..];
        }
        Ok(())
    }
}

impl<const STREAM: bool> Link for RawFd2<STREAM> {
    const STREAM: bool = STREAM;

    fn send(&mut self, msg: &[u8]) -> anyhow::Result<()> {
        Self::write_from(self.tx_fd(), msg)
    }

    fn recv(&mut self, len: usize) -> anyhow::Result<&[u8]> {
        self.fill(len)?;
        Ok(&self.buf[..len])
    }

    fn recv_any(&mut self, max: usize) -> anyhow::Result<&[u8]> {
        let max = max.min(self.buf.len());
        let n = self.read_some(0, max)?;
        Ok(&self.buf[..n])
    }

    fn echo(&mut self, len: usize) -> anyhow::Result<bool> {
        self.fill(len)?;
        if seq_of(&self.buf[..len]) == STOP {
            return Ok(false);
        }
        Self::write_from(self.tx_fd(), &self.buf[..len])?;
        Ok(true)
    }

    fn finish(&mut self, stop: &[u8]) -> anyhow::Result<()> {
        self.send(stop)?;
        if STREAM {
            match self.tx.take() {
                // A FIFO: closing the only write end is end of file.
                Some(fd) => drop(fd),
                // SAFETY: shutdown(2) on our own socket descriptor.
                None => unsafe {
                    libc::shutdown(self.rx.as_raw_fd(), libc::SHUT_WR);
                },
            }
        }
        Ok(())
    }
}

/// Bounds every blocking call on `socket` by the time left.
fn socket_timeouts(socket: SockRef<'_>, deadline: &Deadline) -> anyhow::Result<()> {
    let left = deadline
        .remaining()
        .map(|d| d.max(Duration::from_millis(1)));
    socket
        .set_read_timeout(left)
        .context("setsockopt(SO_RCVTIMEO)")?;
    socket
        .set_write_timeout(left)
        .context("setsockopt(SO_SNDTIMEO)")?;
    Ok(())
}

fn udg_parent(ctx: &Ctx<'_>) -> anyhow::Result<Outcome> {
    let spec = &ctx.spec;
    let (own, theirs) = (ctx.path("rp.sock"), ctx.path("rc.sock"));
    let socket = UnixDatagram::bind(&own).with_context(|| format!("bind {}", own.display()))?;
    let _file = paths::remove_on_drop(&own, "socket file")?;
    socket_timeouts(SockRef::from(&socket), &ctx.deadline)?;
    let peer = ctx.spawn(&[
        format!("--addr={}", own.display()),
        format!("--addr={}", theirs.display()),
    ])?;
    let mut hello = [0; 8];
    socket.recv(&mut hello).context("recv the peer's hello")?;
    socket
        .connect(&theirs)
        .with_context(|| format!("connect to {}", theirs.display()))?;
    let mut link = RawFd2::<false>::socket(socket.into(), spec.wire_size());
    let outcome = drive(&mut link, spec, None)?;
    peer.finish(&ctx.deadline)?;
    Ok(outcome)
}

fn udg_peer(args: &PeerArgs, spec: &Spec, deadline: &Deadline) -> anyhow::Result<()> {
    let (theirs, own) = (PathBuf::from(args.addr(0)?), PathBuf::from(args.addr(1)?));
    let socket = UnixDatagram::bind(&own).with_context(|| format!("bind {}", own.display()))?;
    let _file = paths::remove_on_drop(&own, "socket file")?;
    socket_timeouts(SockRef::from(&socket), deadline)?;
    socket
        .connect(&theirs)
        .with_context(|| format!("connect to {}", theirs.display()))?;
    socket.send(&HELLO).context("send the hello")?;
    let mut link = RawFd2::<false>::socket(socket.into(), spec.wire_size());
    serve(&mut link, spec, None)
}

fn udp_parent(ctx: &Ctx<'_>) -> anyhow::Result<Outcome> {
    let spec = &ctx.spec;
    let socket = UdpSocket::bind("127.0.0.1:0").context("bind udp://127.0.0.1:0")?;
    SockRef::from(&socket)
        .set_recv_buffer_size(UDP_RCVBUF)
        .context("setsockopt(SO_RCVBUF)")?;
    socket_timeouts(SockRef::from(&socket), &ctx.deadline)?;
    let window = (spec.kind == Kind::Throughput).then(|| udp_window(spec.wire_size()));
    let mut extra = vec![format!("--addr={}", socket.local_addr()?)];
    if let Some(window) = window {
        extra.push(format!("--window={window}"));
    }
    let peer = ctx.spawn(&extra)?;
    let mut hello = [0; 8];
    let (_, from) = socket
        .recv_from(&mut hello)
        .context("recv the peer's hello")?;
    socket
        .connect(from)
        .with_context(|| format!("connect to {from}"))?;
    let mut link = RawFd2::<false>::socket(socket.into(), spec.wire_size());
    let outcome = drive(&mut link, spec, window)?;
    peer.finish(&ctx.deadline)?;
    Ok(outcome)
}

fn udp_peer(args: &PeerArgs, spec: &Spec, deadline: &Deadline) -> anyhow::Result<()> {
    let socket = UdpSocket::bind("127.0.0.1:0").context("bind udp://127.0.0.1:0")?;
    SockRef::from(&socket)
        .set_recv_buffer_size(UDP_RCVBUF)
        .context("setsockopt(SO_RCVBUF)")?;
    socket_timeouts(SockRef::from(&socket), deadline)?;
    let theirs = args.addr(0)?;
    socket
        .connect(theirs)
        .with_context(|| format!("connect to {theirs}"))?;
    socket.send(&HELLO).context("send the hello")?;
    let mut link = RawFd2::<false>::socket(socket.into(), spec.wire_size());
    serve(&mut link, spec, args.window)
}

fn stream_parent(ctx: &Ctx<'_>) -> anyhow::Result<Outcome> {
    let spec = &ctx.spec;
    let (fd, addr, _file): (OwnedFd, String, _) = match spec.mech {
        Mech::Unix => {
            let path = ctx.path("rs.sock");
            let listener =
                UnixListener::bind(&path).with_context(|| format!("bind {}", path.display()))?;
            let guard = paths::remove_on_drop(&path, "socket file")?;
            (listener.into(), path.display().to_string(), Some(guard))
        }
        _ => {
            let listener = TcpListener::bind("127.0.0.1:0").context("bind tcp://127.0.0.1:0")?;
            let addr = listener.local_addr()?.to_string();
            (listener.into(), addr, None)
        }
    };
    spec.tune_stream(SockRef::from(&fd), false)?;
    let peer = ctx.spawn(&[format!("--addr={addr}")])?;
    wait::wait_fd(
        fd.as_fd(),
        PollFlags::POLLIN,
        &ctx.deadline,
        "the peer to connect",
    )?;
    // SAFETY: accept(2) on our listening socket, not asking for the peer's address.
    let conn = unsafe { libc::accept(fd.as_raw_fd(), std::ptr::null_mut(), std::ptr::null_mut()) };
    check(conn as isize, "accept")?;
    // SAFETY: accept returned a new descriptor that nothing else owns.
    let conn = unsafe { OwnedFd::from_raw_fd(conn) };
    spec.tune_stream(SockRef::from(&conn), false)?;
    socket_timeouts(SockRef::from(&conn), &ctx.deadline)?;
    let mut link = RawFd2::<true>::socket(conn, spec.wire_size());
    link.recv(HELLO.len())?;
    let outcome = drive(&mut link, spec, None)?;
    peer.finish(&ctx.deadline)?;
    Ok(outcome)
}

fn stream_peer(args: &PeerArgs, spec: &Spec, deadline: &Deadline) -> anyhow::Result<()> {
    let addr = args.addr(0)?;
    let fd: OwnedFd = match spec.mech {
        Mech::Unix => UnixStream::connect(addr)
            .with_context(|| format!("connect to {addr}"))?
            .into(),
        _ => TcpStream::connect(addr)
            .with_context(|| format!("connect to {addr}"))?
            .into(),
    };
    spec.tune_stream(SockRef::from(&fd), true)?;
    socket_timeouts(SockRef::from(&fd), deadline)?;
    let mut link = RawFd2::<true>::socket(fd, spec.wire_size());
    link.send(&HELLO)?;
    serve(&mut link, spec, None)
}

fn open_fifo(path: &std::path::Path, flags: libc::c_int) -> anyhow::Result<OwnedFd> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())?;
    // SAFETY: `c_path` is a NUL-terminated path that outlives the call.
    let fd = unsafe { libc::open(c_path.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("open FIFO {}", path.display()));
    }
    // SAFETY: open returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn set_blocking(fd: &impl AsRawFd) -> anyhow::Result<()> {
    // SAFETY: F_SETFL with no flags on our own descriptor clears O_NONBLOCK.
    check(
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, 0) } as isize,
        "fcntl(F_SETFL)",
    )
    .map(drop)
}

fn set_pipe_size(fd: &impl AsRawFd, bytes: Option<usize>) -> anyhow::Result<()> {
    if let Some(bytes) = bytes {
        // SAFETY: F_SETPIPE_SZ takes an int on our own pipe descriptor.
        let ret = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, bytes as libc::c_int) };
        check(ret as isize, "fcntl(F_SETPIPE_SZ)")?;
    }
    Ok(())
}

fn fifo_parent(ctx: &Ctx<'_>) -> anyhow::Result<Outcome> {
    let spec = &ctx.spec;
    let (down, up) = (ctx.path("rdown"), ctx.path("rup"));
    let mode = nix::sys::stat::Mode::from_bits_truncate(0o600);
    nix::unistd::mkfifo(&down, mode).with_context(|| format!("mkfifo {}", down.display()))?;
    let _down_guard = paths::remove_on_drop(&down, "FIFO")?;
    nix::unistd::mkfifo(&up, mode).with_context(|| format!("mkfifo {}", up.display()))?;
    let _up_guard = paths::remove_on_drop(&up, "FIFO")?;
    let rx = open_fifo(&up, libc::O_RDONLY | libc::O_NONBLOCK)?;
    let peer = ctx.spawn(&[
        format!("--addr={}", down.display()),
        format!("--addr={}", up.display()),
    ])?;
    let _watchdog = Watchdog::for_peer(ctx.deadline, &peer, || {});
    // O_NONBLOCK: fails with ENXIO until the peer has opened its read end; retried.
    let tx = wait::retry(
        &ctx.deadline,
        "the peer to open its FIFO",
        || match open_fifo(&down, libc::O_WRONLY | libc::O_NONBLOCK) {
            Ok(fd) => Ok(Some(fd)),
            Err(err)
                if err
                    .downcast_ref::<io::Error>()
                    .and_then(io::Error::raw_os_error)
                    == Some(libc::ENXIO) =>
            {
                Ok(None)
            }
            Err(err) => Err(err),
        },
    )?;
    set_blocking(&tx)?;
    set_pipe_size(&tx, spec.knobs.pipe)?;
    set_pipe_size(&rx, spec.knobs.pipe)?;
    wait::wait_fd(
        rx.as_fd(),
        PollFlags::POLLIN,
        &ctx.deadline,
        "the peer's hello",
    )?;
    set_blocking(&rx)?;
    let mut link = RawFd2::<true> {
        rx,
        tx: Some(tx),
        buf: vec![0; spec.wire_size().max(64 << 10)],
    };
    link.recv(HELLO.len())?;
    let outcome = drive(&mut link, spec, None)?;
    peer.finish(&ctx.deadline)?;
    Ok(outcome)
}

fn fifo_peer(args: &PeerArgs, spec: &Spec) -> anyhow::Result<()> {
    let (down, up) = (PathBuf::from(args.addr(0)?), PathBuf::from(args.addr(1)?));
    // The measuring side holds `up` open for reading already, so this open returns at once;
    // the open of `down` waits for its writer (bounded by the peer's watchdog).
    let tx = open_fifo(&up, libc::O_WRONLY)?;
    let rx = open_fifo(&down, libc::O_RDONLY)?;
    let mut link = RawFd2::<true> {
        rx,
        tx: Some(tx),
        buf: vec![0; spec.wire_size().max(64 << 10)],
    };
    link.send(&HELLO)?;
    serve(&mut link, spec, None)
}

// ---------------------------------------------------------------------------------------------
// The message queue: msgsnd(2)/msgrcv(2) on a `struct msgbuf` held in a Vec.

struct RawMq {
    id: libc::c_int,
    send_type: libc::c_long,
    recv_type: libc::c_long,
    msgmax: usize,
    /// `struct msgbuf`: the type, then the text.
    out: Vec<u8>,
    inc: Vec<u8>,
    /// A message received in pieces (over msgmax).
    whole: Vec<u8>,
    received: usize,
}

const MTYPE: usize = std::mem::size_of::<libc::c_long>();

impl RawMq {
    fn new(id: MsqId, parent_side: bool, size: usize) -> anyhow::Result<Self> {
        let msgmax = sysv::msgmax().context("read /proc/sys/kernel/msgmax")?;
        Ok(RawMq {
            id: id.0,
            send_type: if parent_side { 1 } else { 2 },
            recv_type: if parent_side { 2 } else { 1 },
            msgmax,
            out: vec![0; MTYPE + msgmax],
            inc: vec![0; MTYPE + msgmax],
            whole: vec![0; size],
            received: 0,
        })
    }

    fn msgsnd(
        id: libc::c_int,
        buf: &mut [u8],
        mtype: libc::c_long,
        len: usize,
    ) -> anyhow::Result<()> {
        buf[..MTYPE].copy_from_slice(&mtype.to_ne_bytes());
        loop {
            // SAFETY: `buf` holds the type and at least `len` bytes of text.
            let ret = unsafe { libc::msgsnd(id, buf.as_ptr().cast(), len, 0) };
            if ret < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return check(ret as isize, "msgsnd").map(drop);
        }
    }

    fn msgrcv(&mut self) -> anyhow::Result<usize> {
        loop {
            // SAFETY: `inc` has room for the type and msgmax bytes of text.
            let ret = unsafe {
                libc::msgrcv(
                    self.id,
                    self.inc.as_mut_ptr().cast(),
                    self.msgmax,
                    self.recv_type,
                    0,
                )
            };
            if ret < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return check(ret, "msgrcv");
        }
    }

    /// Receives `len` bytes; they are in `inc[MTYPE..]` if one message, else in `whole`.
    fn receive(&mut self, len: usize) -> anyhow::Result<&[u8]> {
        if len <= self.msgmax {
            let n = self.msgrcv()?;
            ensure!(n == len, "a {n}-byte message, expected {len}");
            return Ok(&self.inc[MTYPE..MTYPE + n]);
        }
        self.received = 0;
        while self.received < len {
            let n = self.msgrcv()?;
            ensure!(
                self.received + n <= len,
                "pieces add up to more than {len} bytes"
            );
            self.whole[self.received..self.received + n]
                .copy_from_slice(&self.inc[MTYPE..MTYPE + n]);
            self.received += n;
        }
        Ok(&self.whole[..len])
    }
}

impl Link for RawMq {
    const STREAM: bool = false;

    fn send(&mut self, msg: &[u8]) -> anyhow::Result<()> {
        for piece in msg.chunks(self.msgmax) {
            self.out[MTYPE..MTYPE + piece.len()].copy_from_slice(piece);
            Self::msgsnd(self.id, &mut self.out, self.send_type, piece.len())?;
        }
        Ok(())
    }

    fn recv(&mut self, len: usize) -> anyhow::Result<&[u8]> {
        self.receive(len)
    }

    fn recv_any(&mut self, max: usize) -> anyhow::Result<&[u8]> {
        self.receive(max)
    }

    fn echo(&mut self, len: usize) -> anyhow::Result<bool> {
        if seq_of(self.receive(len)?) == STOP {
            return Ok(false);
        }
        if len <= self.msgmax {
            // Straight back from the buffer it arrived in: only the type changes.
            Self::msgsnd(self.id, &mut self.inc, self.send_type, len)?;
        } else {
            for start in (0..len).step_by(self.msgmax) {
                let piece = &self.whole[start..len.min(start + self.msgmax)];
                self.out[MTYPE..MTYPE + piece.len()].copy_from_slice(piece);
                Self::msgsnd(self.id, &mut self.out, self.send_type, piece.len())?;
            }
        }
        Ok(true)
    }
}

fn mq_parent(ctx: &Ctx<'_>) -> anyhow::Result<Outcome> {
    let spec = &ctx.spec;
    let (id, _queue) = private_queue()?;
    let peer = ctx.spawn(&[format!("--addr={}", id.0)])?;
    let _watchdog = Watchdog::for_peer(ctx.deadline, &peer, move || {
        let _ = sysv::msg_remove(id);
    });
    let mut link = RawMq::new(id, true, spec.wire_size())?;
    link.recv(HELLO.len())?;
    let outcome = drive(&mut link, spec, None)?;
    peer.finish(&ctx.deadline)?;
    Ok(outcome)
}

fn mq_peer(args: &PeerArgs, spec: &Spec) -> anyhow::Result<()> {
    let id = MsqId(args.addr(0)?.parse().context("--addr: a queue id")?);
    let mut link = RawMq::new(id, false, spec.wire_size())?;
    link.send(&HELLO)?;
    serve(&mut link, spec, None)
}

// ---------------------------------------------------------------------------------------------
// Futexes, the shared-memory ring and the floors.

fn futex_wait(word: &AtomicU32, seen: u32, timeout: &libc::timespec) -> anyhow::Result<()> {
    // SAFETY: `word` is an aligned u32 in a mapped segment; `timeout` outlives the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            seen,
            timeout as *const libc::timespec,
            0usize,
            0u32,
        )
    };
    if ret < 0 {
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EAGAIN | libc::EINTR) => {}
            Some(libc::ETIMEDOUT) => bail!("futex wait: timed out"),
            _ => return Err(err).context("futex wait"),
        }
    }
    Ok(())
}

fn futex_wake(word: &AtomicU32) {
    // SAFETY: `word` is an aligned u32 in a mapped segment; FUTEX_WAKE reads nothing else.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            1,
            0usize,
            0usize,
            0u32,
        )
    };
}

fn timespec(deadline: &Deadline) -> libc::timespec {
    let left = deadline.remaining().unwrap_or(Duration::from_secs(86_400));
    libc::timespec {
        tv_sec: left.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(left.subsec_nanos() as i32),
    }
}

/// The word at `offset` of `seg`.
fn word(seg: &Attached, offset: usize) -> &AtomicU32 {
    // SAFETY: callers pass 4-aligned offsets inside the header of a segment at least a page
    // long; the borrow keeps the segment attached.
    unsafe { AtomicU32::from_ptr(seg.as_ptr().add(offset).cast()) }
}

/// Waits until `word` differs from `seen`: spinning for `spin`, then sleeping in the futex.
fn wait_change(
    word: &AtomicU32,
    seen: u32,
    spin: Option<Duration>,
    timeout: &libc::timespec,
) -> anyhow::Result<u32> {
    if let Some(limit) = spin {
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            let now = word.load(Ordering::Acquire);
            if now != seen {
                return Ok(now);
            }
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins % 256 == 0 && start.elapsed() >= limit {
                break;
            }
        }
    }
    loop {
        let now = word.load(Ordering::Acquire);
        if now != seen {
            return Ok(now);
        }
        futex_wait(word, seen, timeout)?;
    }
}

/// The floors: a counter word each way, no data. A message is its sequence number + 1 stored
/// in the word (`u32::MAX` for the stop message), then `FUTEX_WAKE` unless spinning.
struct Floor {
    seg: Attached,
    mine: usize,
    theirs: usize,
    seen: u32,
    spin: bool,
    deadline: Deadline,
    timeout: libc::timespec,
    reply: [u8; 8],
}

/// What the peer stores once attached: the hello, distinct from every sequence number.
const FLOOR_HELLO: u32 = u32::MAX - 1;

const FLOOR_A: usize = 0;
const FLOOR_B: usize = 64;

impl Floor {
    fn post(&self, msg: &[u8]) {
        let seq = seq_of(msg);
        let value = if seq == STOP {
            u32::MAX
        } else {
            (seq as u32).wrapping_add(1)
        };
        let word = word(&self.seg, self.mine);
        word.store(value, Ordering::Release);
        if !self.spin {
            futex_wake(word);
        }
    }

    fn take(&mut self) -> anyhow::Result<u32> {
        // Spinning ends at the deadline; the futex wait after it then times out (nobody wakes).
        let spin = self
            .spin
            .then(|| self.deadline.remaining().unwrap_or(Duration::MAX));
        self.seen = wait_change(word(&self.seg, self.theirs), self.seen, spin, &self.timeout)?;
        Ok(self.seen)
    }
}

impl Link for Floor {
    const STREAM: bool = false;

    fn send(&mut self, msg: &[u8]) -> anyhow::Result<()> {
        self.post(msg);
        Ok(())
    }

    fn recv(&mut self, _len: usize) -> anyhow::Result<&[u8]> {
        let value = self.take()?;
        stamp(&mut self.reply, u64::from(value.wrapping_sub(1)));
        Ok(&self.reply)
    }

    fn recv_any(&mut self, len: usize) -> anyhow::Result<&[u8]> {
        self.recv(len)
    }

    fn echo(&mut self, _len: usize) -> anyhow::Result<bool> {
        let value = self.take()?;
        if value == u32::MAX {
            return Ok(false);
        }
        let word = word(&self.seg, self.mine);
        word.store(value, Ordering::Release);
        if !self.spin {
            futex_wake(word);
        }
        Ok(true)
    }
}

fn floor_parent(ctx: &Ctx<'_>) -> anyhow::Result<Outcome> {
    let spec = &ctx.spec;
    ensure!(
        spec.kind == Kind::Latency,
        "the hand-off floors measure round trips only"
    );
    let (id, seg, guard) = private_segment(4096)?;
    let peer = ctx.spawn(&[format!("--addr={}", id.0)])?;
    let mut link = Floor {
        seg,
        mine: FLOOR_A,
        theirs: FLOOR_B,
        seen: 0,
        spin: spec.mech == Mech::Spin,
        deadline: ctx.deadline,
        timeout: timespec(&ctx.deadline),
        reply: [0; 8],
    };
    link.take()?;
    ensure!(
        link.seen == FLOOR_HELLO,
        "the peer's hello was {}",
        link.seen
    );
    guard.remove()?;
    let outcome = drive(&mut link, spec, None)?;
    peer.finish(&ctx.deadline)?;
    Ok(outcome)
}

fn floor_peer(args: &PeerArgs, spec: &Spec, deadline: &Deadline) -> anyhow::Result<()> {
    let id = ShmId(args.addr(0)?.parse().context("--addr: a segment id")?);
    let seg = Attached::attach(id, false).with_context(|| format!("shmat segment id {}", id.0))?;
    let mut link = Floor {
        seg,
        mine: FLOOR_B,
        theirs: FLOOR_A,
        seen: 0,
        spin: spec.mech == Mech::Spin,
        deadline: *deadline,
        timeout: timespec(deadline),
        reply: [0; 8],
    };
    let word_b = word(&link.seg, FLOOR_B);
    word_b.store(FLOOR_HELLO, Ordering::Release);
    futex_wake(word_b);
    serve(&mut link, spec, None)
}

/// The ring without the abstraction: the layout and protocol of `ipc_common::ring` (so the two
/// sides of a comparison do the same work), through raw pointers, with no bounds checks, no
/// `Result` per step and a fixed futex timeout.
struct RawRing {
    seg: Attached,
    data: *mut u8,
    mask: usize,
    /// Producer: head (written), tail seen. Consumer: tail (written), head seen.
    mine: u32,
    seen: u32,
}

const HEAD: usize = 64;
const CONSUMER_PARKED: usize = 128;
const TAIL: usize = 192;
const PRODUCER_PARKED: usize = 256;

impl RawRing {
    fn new(seg: Attached, capacity: usize, producer: bool) -> Self {
        let data = seg.as_ptr().wrapping_add(ring::HEADER_LEN);
        let (mine, seen) = if producer { (HEAD, TAIL) } else { (TAIL, HEAD) };
        let mine = word(&seg, mine).load(Ordering::Relaxed);
        let seen = word(&seg, seen).load(Ordering::Acquire);
        RawRing {
            seg,
            data,
            mask: capacity - 1,
            mine,
            seen,
        }
    }

    fn park(
        &self,
        at: usize,
        flag_at: usize,
        seen: u32,
        spin: Option<Duration>,
        timeout: &libc::timespec,
    ) -> anyhow::Result<()> {
        let w = word(&self.seg, at);
        if let Some(limit) = spin {
            let start = Instant::now();
            let mut spins = 0u32;
            while w.load(Ordering::Relaxed) == seen {
                std::hint::spin_loop();
                spins = spins.wrapping_add(1);
                if spins % 256 == 0 && start.elapsed() >= limit {
                    break;
                }
            }
        }
        let flag = word(&self.seg, flag_at);
        flag.store(1, Ordering::Relaxed);
        std::sync::atomic::fence(Ordering::SeqCst);
        let slept = if w.load(Ordering::Relaxed) == seen {
            futex_wait(w, seen, timeout)
        } else {
            Ok(())
        };
        flag.store(0, Ordering::Relaxed);
        slept
    }

    fn wake(&self, flag_at: usize, at: usize) {
        std::sync::atomic::fence(Ordering::SeqCst);
        if word(&self.seg, flag_at).load(Ordering::Relaxed) != 0 {
            futex_wake(word(&self.seg, at));
        }
    }

    fn copy(&self, pos: u32, src: *const u8, dst_in_ring: bool, other: *mut u8, len: usize) {
        let at = pos as usize & self.mask;
        let first = len.min(self.mask + 1 - at);
        // SAFETY: `at + first` and `len - first` stay within the ring's data area; the protocol
        // gives this side sole use of these bytes now.
        unsafe {
            if dst_in_ring {
                std::ptr::copy_nonoverlapping(src, self.data.add(at), first);
                std::ptr::copy_nonoverlapping(src.add(first), self.data, len - first);
            } else {
                std::ptr::copy_nonoverlapping(self.data.add(at), other, first);
                std::ptr::copy_nonoverlapping(self.data, other.add(first), len - first);
            }
        }
    }
}

struct RawShm {
    tx: RawRing,
    rx: RawRing,
    spin: Option<Duration>,
    timeout: libc::timespec,
    buf: Vec<u8>,
}

impl RawShm {
    fn put(&mut self, msg: &[u8]) -> anyhow::Result<()> {
        let need = 8 + msg.len().next_multiple_of(8);
        let cap = self.tx.mask + 1;
        while self.tx.mine.wrapping_sub(self.tx.seen) as usize + need > cap {
            self.tx.seen = word(&self.tx.seg, TAIL).load(Ordering::Acquire);
            if self.tx.mine.wrapping_sub(self.tx.seen) as usize + need > cap {
                self.tx.park(
                    TAIL,
                    PRODUCER_PARKED,
                    self.tx.seen,
                    self.spin,
                    &self.timeout,
                )?;
            }
        }
        let header = (msg.len() as u64).to_ne_bytes();
        self.tx
            .copy(self.tx.mine, header.as_ptr(), true, std::ptr::null_mut(), 8);
        self.tx.copy(
            self.tx.mine.wrapping_add(8),
            msg.as_ptr(),
            true,
            std::ptr::null_mut(),
            msg.len(),
        );
        self.tx.mine = self.tx.mine.wrapping_add(need as u32);
        word(&self.tx.seg, HEAD).store(self.tx.mine, Ordering::Release);
        self.tx.wake(CONSUMER_PARKED, HEAD);
        Ok(())
    }

    fn take(&mut self) -> anyhow::Result<usize> {
        while self.rx.seen == self.rx.mine {
            self.rx.seen = word(&self.rx.seg, HEAD).load(Ordering::Acquire);
            if self.rx.seen == self.rx.mine {
                self.rx.park(
                    HEAD,
                    CONSUMER_PARKED,
                    self.rx.mine,
                    self.spin,
                    &self.timeout,
                )?;
            }
        }
        let mut header = [0u8; 8];
        self.rx.copy(
            self.rx.mine,
            std::ptr::null(),
            false,
            header.as_mut_ptr(),
            8,
        );
        let len = u32::from_ne_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        ensure!(len <= self.buf.len(), "a {len}-byte record in the ring");
        self.rx.copy(
            self.rx.mine.wrapping_add(8),
            std::ptr::null(),
            false,
            self.buf.as_mut_ptr(),
            len,
        );
        self.rx.mine = self
            .rx
            .mine
            .wrapping_add((8 + len.next_multiple_of(8)) as u32);
        word(&self.rx.seg, TAIL).store(self.rx.mine, Ordering::Release);
        self.rx.wake(PRODUCER_PARKED, TAIL);
        Ok(len)
    }
}

impl Link for RawShm {
    const STREAM: bool = false;

    fn send(&mut self, msg: &[u8]) -> anyhow::Result<()> {
        self.put(msg)
    }

    fn recv(&mut self, len: usize) -> anyhow::Result<&[u8]> {
        let n = self.take()?;
        ensure!(n == len, "a {n}-byte message, expected {len}");
        Ok(&self.buf[..n])
    }

    fn recv_any(&mut self, _max: usize) -> anyhow::Result<&[u8]> {
        let n = self.take()?;
        Ok(&self.buf[..n])
    }

    fn echo(&mut self, len: usize) -> anyhow::Result<bool> {
        let n = self.take()?;
        ensure!(n == len, "a {n}-byte message, expected {len}");
        if seq_of(&self.buf[..n]) == STOP {
            return Ok(false);
        }
        let buf = std::mem::take(&mut self.buf);
        let sent = self.put(&buf[..n]);
        self.buf = buf;
        sent.map(|()| true)
    }
}

fn raw_shm(tx: Attached, rx: Attached, spec: &Spec, deadline: &Deadline) -> RawShm {
    let capacity = spec.knobs.ring_bytes;
    RawShm {
        tx: RawRing::new(tx, capacity, true),
        rx: RawRing::new(rx, capacity, false),
        spin: spec.mech.spins().then_some(spec.knobs.spin),
        timeout: timespec(deadline),
        buf: vec![0; spec.wire_size().max(8)],
    }
}

fn shm_parent(ctx: &Ctx<'_>) -> anyhow::Result<Outcome> {
    let spec = &ctx.spec;
    let len = ring::segment_len(spec.knobs.ring_bytes);
    let (down_id, down, down_guard) = private_segment(len)?;
    let (up_id, up, up_guard) = private_segment(len)?;
    // The same header as ipc_common::ring, so both sides agree on the capacity.
    ring::init(&down, spec.knobs.ring_bytes)?;
    ring::init(&up, spec.knobs.ring_bytes)?;
    let peer = ctx.spawn(&[
        format!("--addr={}", down_id.0),
        format!("--addr={}", up_id.0),
    ])?;
    let mut link = raw_shm(down, up, spec, &ctx.deadline);
    link.recv(HELLO.len())?;
    down_guard.remove()?;
    up_guard.remove()?;
    let outcome = drive(&mut link, spec, None)?;
    peer.finish(&ctx.deadline)?;
    Ok(outcome)
}

fn shm_peer(args: &PeerArgs, spec: &Spec, deadline: &Deadline) -> anyhow::Result<()> {
    let attach = |i: usize| -> anyhow::Result<Attached> {
        let id = ShmId(args.addr(i)?.parse().context("--addr: a segment id")?);
        Attached::attach(id, false).with_context(|| format!("shmat segment id {}", id.0))
    };
    let (down, up) = (attach(0)?, attach(1)?);
    let mut link = raw_shm(up, down, spec, deadline);
    link.send(&HELLO)?;
    serve(&mut link, spec, None)
}

/// `memcpy` bandwidth at `size`: one buffer copied into another for `budget`, in this process.
pub fn memcpy_rate(size: usize, budget: Duration) -> Rate {
    let src = crate::link::message(size);
    // Half a page apart: source and destination at the same offset in their pages would make
    // the CPU stall on false load-store dependencies ("4K aliasing"), a cost of the addresses
    // malloc happened to pick, not of copying.
    let mut space = vec![0u8; size + 8192];
    let shift = (src.as_ptr() as usize + 2048).wrapping_sub(space.as_ptr() as usize) % 4096;
    let dst = &mut space[shift..shift + size];
    let start = Instant::now();
    let mut copies = 0u64;
    loop {
        for _ in 0..64 {
            dst.copy_from_slice(std::hint::black_box(&src));
            std::hint::black_box(&mut *dst);
        }
        copies += 64;
        if start.elapsed() >= budget {
            break;
        }
    }
    Rate {
        messages: copies,
        bytes: copies * size as u64,
        secs: start.elapsed().as_secs_f64(),
    }
}
