//! The baselines: each mechanism through the same syscalls straight from libc, blocking, as a C
//! program makes them, so the report can show what our abstractions cost; and the floors no
//! mechanism can beat: a bare futex hand-off and a bare spin hand-off between two processes,
//! and `memcpy` bandwidth.
//!
//! Setting up (binding, the listener, creating FIFOs and SysV objects: `crate::mechanism`, most
//! of it shared with ours) goes through std, ipc-common and the mechanism crates: it is not
//! measured. What is measured, the per-message path, is one libc call per step.
//! A blocking call is bounded by `SO_RCVTIMEO`/`SO_SNDTIMEO` set once (sockets), a futex timeout
//! (shared memory), or the watchdogs of `measure` (FIFOs and the queue).

use std::io;
use std::net::{TcpStream, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use ipc_common::runtime::cleanup::Cleanup;
use ipc_common::runtime::paths;
use ipc_common::runtime::wait::{self, Deadline};
use ipc_common::sockets::endpoint::StreamEndpoint;
use ipc_common::sysv::{self, Attached, MsqId, ShmId};
use ipc_ring::futex;
use ipc_ring::layout::{CONSUMER_PARKED_AT, HEAD_AT, HEADER_LEN, PRODUCER_PARKED_AT, TAIL_AT};
use nix::poll::PollFlags;
use nix::unistd::Pid;
use socket2::SockRef;

use crate::link::{Link, Rate, STOP, seq_of, stamp};
use crate::plan::{Kind, Mech, Spec};
use crate::session::{
    Ctx, Fifos, PeerArgs, Setup, UDP_RCVBUF, Watchdog, private_segment, udp_window,
};

const HELLO: [u8; 8] = [0; 8];

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
#[derive(Debug)]
pub struct RawFd2<const STREAM: bool> {
    rx: OwnedFd,
    tx: Option<OwnedFd>,
    buf: Vec<u8>,
    /// A Unix datagram socket's file, removed when the link goes.
    _file: Option<Cleanup>,
}

impl<const STREAM: bool> RawFd2<STREAM> {
    fn socket(fd: OwnedFd, size: usize, file: Option<Cleanup>) -> Self {
        RawFd2 {
            rx: fd,
            tx: None,
            buf: vec![0; size.max(64 << 10)],
            _file: file,
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

/// The measuring side's raw datagram socket: Unix (with where the peer binds its own, and the
/// guard of our socket file) or UDP.
#[derive(Debug)]
pub enum DgramSocket {
    Unix(UnixDatagram, PathBuf, Cleanup),
    Udp(UdpSocket),
}

/// Binds the measuring side's socket: a Unix datagram socket, or UDP on loopback with a large
/// receive buffer (and, for throughput, credits); the peer is told where it is.
pub fn dgram_setup(ctx: &Ctx<'_>) -> anyhow::Result<Setup<DgramSocket>> {
    let spec = &ctx.spec;
    if spec.mech == Mech::Udg {
        let (own, theirs) = (ctx.path("rp.sock"), ctx.path("rc.sock"));
        let socket = UnixDatagram::bind(&own).with_context(|| format!("bind {}", own.display()))?;
        let file = paths::remove_on_drop(&own, "socket file")?;
        socket_timeouts(SockRef::from(&socket), &ctx.deadline)?;
        let addrs = vec![own.display().to_string(), theirs.display().to_string()];
        return Ok(Setup::new(DgramSocket::Unix(socket, theirs, file), addrs));
    }
    let socket = UdpSocket::bind("127.0.0.1:0").context("bind udp://127.0.0.1:0")?;
    SockRef::from(&socket)
        .set_recv_buffer_size(UDP_RCVBUF)
        .context("setsockopt(SO_RCVBUF)")?;
    socket_timeouts(SockRef::from(&socket), &ctx.deadline)?;
    let addrs = vec![socket.local_addr()?.to_string()];
    let window = (spec.kind == Kind::Throughput).then(|| udp_window(spec.wire_size()));
    Ok(Setup {
        window,
        ..Setup::new(DgramSocket::Udp(socket), addrs)
    })
}

/// The measuring side: the peer's hello, then connected to the peer (Unix: the path it bound;
/// UDP: where the hello came from).
pub fn dgram_measuring(ctx: &Ctx<'_>, socket: DgramSocket) -> anyhow::Result<RawFd2<false>> {
    let mut hello = [0; 8];
    let (fd, file): (OwnedFd, _) = match socket {
        DgramSocket::Unix(socket, theirs, file) => {
            socket.recv(&mut hello).context("recv the peer's hello")?;
            socket
                .connect(&theirs)
                .with_context(|| format!("connect to {}", theirs.display()))?;
            (socket.into(), Some(file))
        }
        DgramSocket::Udp(socket) => {
            let (_, from) = socket
                .recv_from(&mut hello)
                .context("recv the peer's hello")?;
            socket
                .connect(from)
                .with_context(|| format!("connect to {from}"))?;
            (socket.into(), None)
        }
    };
    Ok(RawFd2::socket(fd, ctx.spec.wire_size(), file))
}

pub fn dgram_peer(
    args: &PeerArgs,
    spec: &Spec,
    deadline: &Deadline,
) -> anyhow::Result<RawFd2<false>> {
    let (fd, file): (OwnedFd, _) = if spec.mech == Mech::Udg {
        let (theirs, own) = (PathBuf::from(args.addr(0)?), PathBuf::from(args.addr(1)?));
        let socket = UnixDatagram::bind(&own).with_context(|| format!("bind {}", own.display()))?;
        let file = paths::remove_on_drop(&own, "socket file")?;
        socket_timeouts(SockRef::from(&socket), deadline)?;
        socket
            .connect(&theirs)
            .with_context(|| format!("connect to {}", theirs.display()))?;
        socket.send(&HELLO).context("send the hello")?;
        (socket.into(), Some(file))
    } else {
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
        (socket.into(), None)
    };
    Ok(RawFd2::socket(fd, spec.wire_size(), file))
}

/// The measuring side, on the listener `setup` bound: `accept(2)` once the peer connects,
/// then its hello.
pub fn stream_measuring(ctx: &Ctx<'_>, listener: &impl AsFd) -> anyhow::Result<RawFd2<true>> {
    let spec = &ctx.spec;
    let fd = listener.as_fd();
    wait::wait_fd(fd, PollFlags::POLLIN, &ctx.deadline, "the peer to connect")?;
    // SAFETY: accept(2) on our listening socket, not asking for the peer's address.
    let conn = unsafe { libc::accept(fd.as_raw_fd(), std::ptr::null_mut(), std::ptr::null_mut()) };
    check(conn as isize, "accept")?;
    // SAFETY: accept returned a new descriptor that nothing else owns.
    let conn = unsafe { OwnedFd::from_raw_fd(conn) };
    spec.tune_stream(SockRef::from(&conn), false)?;
    socket_timeouts(SockRef::from(&conn), &ctx.deadline)?;
    let mut link = RawFd2::<true>::socket(conn, spec.wire_size(), None);
    link.recv(HELLO.len())?;
    Ok(link)
}

pub fn stream_peer(
    args: &PeerArgs,
    spec: &Spec,
    deadline: &Deadline,
) -> anyhow::Result<RawFd2<true>> {
    let url: StreamEndpoint = args.endpoint(0)?;
    let fd: OwnedFd = match &url {
        StreamEndpoint::Unix(path) => UnixStream::connect(path)
            .with_context(|| format!("connect to {url}"))?
            .into(),
        StreamEndpoint::Tcp(addr) => TcpStream::connect(addr)
            .with_context(|| format!("connect to {url}"))?
            .into(),
    };
    spec.tune_stream(SockRef::from(&fd), true)?;
    socket_timeouts(SockRef::from(&fd), deadline)?;
    let mut link = RawFd2::<true>::socket(fd, spec.wire_size(), None);
    link.send(&HELLO)?;
    Ok(link)
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

/// The measuring side, on the FIFOs `setup` made: opens `down` for writing once the peer has
/// opened it for reading, waits for the hello; both descriptors blocking from then on. The
/// watchdog it returns kills a stuck peer (its blocked reads then see end of file).
pub fn fifo_measuring(
    ctx: &Ctx<'_>,
    fifos: Fifos,
    peer: Pid,
) -> anyhow::Result<(RawFd2<true>, Watchdog)> {
    let spec = &ctx.spec;
    let watchdog = Watchdog::for_peer(ctx.deadline, peer, || {});
    let down = &fifos.down;
    // O_NONBLOCK: fails with ENXIO until the peer has opened its read end; retried.
    let tx = wait::retry(
        &ctx.deadline,
        "the peer to open its FIFO",
        || match open_fifo(down, libc::O_WRONLY | libc::O_NONBLOCK) {
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
    let rx = OwnedFd::from(fifos.rx);
    set_blocking(&tx)?;
    set_pipe_size(&tx, spec.knobs.pipe)?;
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
        _file: None,
    };
    link.recv(HELLO.len())?;
    Ok((link, watchdog))
}

pub fn fifo_peer(args: &PeerArgs, spec: &Spec) -> anyhow::Result<RawFd2<true>> {
    let (down, up) = (PathBuf::from(args.addr(0)?), PathBuf::from(args.addr(1)?));
    // The measuring side holds `up` open for reading already, so this open returns at once;
    // the open of `down` waits for its writer (bounded by the peer's watchdog).
    let tx = open_fifo(&up, libc::O_WRONLY)?;
    let rx = open_fifo(&down, libc::O_RDONLY)?;
    let mut link = RawFd2::<true> {
        rx,
        tx: Some(tx),
        buf: vec![0; spec.wire_size().max(64 << 10)],
        _file: None,
    };
    link.send(&HELLO)?;
    Ok(link)
}

// ---------------------------------------------------------------------------------------------
// The message queue: msgsnd(2)/msgrcv(2) on a `struct msgbuf` held in a Vec.

#[derive(Debug)]
pub struct RawMq {
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

/// Either side's link on the queue `setup` made, after the hello (the peer sends it).
pub fn mq_link(id: MsqId, measuring: bool, spec: &Spec) -> anyhow::Result<RawMq> {
    let mut link = RawMq::new(id, measuring, spec.wire_size())?;
    if measuring {
        link.recv(HELLO.len())?;
    } else {
        link.send(&HELLO)?;
    }
    Ok(link)
}

// ---------------------------------------------------------------------------------------------
// Futexes, the shared-memory ring and the floors.

/// `FUTEX_WAIT` with the time left as its timeout; an early return is the caller's to re-check.
fn futex_wait(word: &AtomicU32, seen: u32, deadline: &Deadline) -> anyhow::Result<()> {
    match futex::wait(word, seen, deadline.remaining()) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::ETIMEDOUT) => bail!("futex wait: timed out"),
        Err(errno) => Err(errno).context("futex wait"),
    }
}

/// The word at `offset` of `seg`.
fn word(seg: &Attached, offset: usize) -> &AtomicU32 {
    // SAFETY: callers pass 4-aligned offsets inside the header of a segment at least a page
    // long; the borrow keeps the segment attached.
    unsafe { AtomicU32::from_ptr(seg.as_ptr().add(offset).cast()) }
}

/// How a raw side waits: spin (for `spin`, checking the clock every 256 turns), then sleep.
#[derive(Clone, Copy, Debug)]
struct RawWait {
    spin: Option<Duration>,
}

impl RawWait {
    /// Waits until `word` differs from `seen`, as the C reference does: spin, then raise `flag`,
    /// fence, re-check and sleep in the futex.
    fn until_changed(
        self,
        word: &AtomicU32,
        seen: u32,
        flag: &AtomicU32,
        deadline: &Deadline,
    ) -> anyhow::Result<u32> {
        if let Some(limit) = self.spin {
            let mut spins = 0u32;
            let mut start = None;
            loop {
                let now = word.load(Ordering::Acquire);
                if now != seen {
                    return Ok(now);
                }
                std::hint::spin_loop();
                spins = spins.wrapping_add(1);
                if spins % 256 == 0 && start.get_or_insert_with(Instant::now).elapsed() >= limit {
                    break;
                }
            }
        }
        loop {
            flag.store(1, Ordering::Relaxed);
            std::sync::atomic::fence(Ordering::SeqCst);
            let now = word.load(Ordering::Acquire);
            if now != seen {
                flag.store(0, Ordering::Relaxed);
                return Ok(now);
            }
            let slept = futex_wait(word, seen, deadline);
            flag.store(0, Ordering::Relaxed);
            slept?;
        }
    }
}

/// After storing `word`: wakes the other side if its `flag` says it sleeps.
fn wake(word: &AtomicU32, flag: &AtomicU32) {
    std::sync::atomic::fence(Ordering::SeqCst);
    if flag.load(Ordering::Relaxed) != 0 {
        let _ = futex::wake(word, 1);
    }
}

/// The floors: one shared word, as `core-to-core-latency` and the C reference do. The measuring
/// side stores a ping (sequence number + 1, `u32::MAX` to stop), the peer answers by storing 0;
/// one cache line crosses each way. Unless spinning, every store is followed by a wake.
#[derive(Debug)]
pub struct Floor {
    seg: Attached,
    wait: RawWait,
    deadline: Deadline,
    reply: [u8; 8],
    last: u32,
    /// The measuring side's batches, timed before the harness runs.
    batch_ns: Option<f64>,
}

/// Offsets of the floor's word and its two sleeper flags.
const FLOOR_WORD: usize = 0;
const FLOOR_PARENT_PARKED: usize = 64;
const FLOOR_PEER_PARKED: usize = 128;
/// What the peer stores once attached: the hello, distinct from every ping.
const FLOOR_HELLO: u32 = u32::MAX - 1;

impl Floor {
    fn word(&self, at: usize) -> &AtomicU32 {
        word(&self.seg, at)
    }

    /// The measuring side: pings, then waits for the word to go back to 0.
    fn ping(&mut self, value: u32) -> anyhow::Result<()> {
        self.word(FLOOR_WORD).store(value, Ordering::Release);
        if self.wait.spin.is_none() {
            wake(self.word(FLOOR_WORD), self.word(FLOOR_PEER_PARKED));
        }
        self.last = value;
        Ok(())
    }
}

impl Link for Floor {
    const STREAM: bool = false;

    fn batch_ns(&self) -> Option<f64> {
        self.batch_ns
    }

    fn send(&mut self, msg: &[u8]) -> anyhow::Result<()> {
        let seq = seq_of(msg);
        self.ping(if seq == STOP {
            u32::MAX
        } else {
            (seq as u32 % (u32::MAX - 2)) + 1
        })
    }

    fn recv(&mut self, _len: usize) -> anyhow::Result<&[u8]> {
        let w = word(&self.seg, FLOOR_WORD);
        let mut now = w.load(Ordering::Acquire);
        while now != 0 {
            now = self.wait.until_changed(
                w,
                now,
                word(&self.seg, FLOOR_PARENT_PARKED),
                &self.deadline,
            )?;
        }
        // The answer carries no data: the sequence number is the one sent.
        stamp(&mut self.reply, u64::from(self.last - 1));
        Ok(&self.reply)
    }

    fn recv_any(&mut self, len: usize) -> anyhow::Result<&[u8]> {
        self.recv(len)
    }

    fn echo(&mut self, _len: usize) -> anyhow::Result<bool> {
        let w = word(&self.seg, FLOOR_WORD);
        let mut now = w.load(Ordering::Acquire);
        while now == 0 || now == FLOOR_HELLO {
            now = self.wait.until_changed(
                w,
                now,
                word(&self.seg, FLOOR_PEER_PARKED),
                &self.deadline,
            )?;
        }
        if now == u32::MAX {
            return Ok(false);
        }
        w.store(0, Ordering::Release);
        if self.wait.spin.is_none() {
            wake(w, word(&self.seg, FLOOR_PARENT_PARKED));
        }
        Ok(true)
    }
}

impl Floor {
    /// The cache-line floor without the harness: `rounds` round trips in a tight loop, timed as
    /// a whole (no clock read per round trip); nanoseconds per round trip.
    fn batch(&mut self, rounds: u32) -> anyhow::Result<f64> {
        let w = word(&self.seg, FLOOR_WORD);
        let start = Instant::now();
        for i in 0..rounds {
            w.store(i % (u32::MAX - 2) + 1, Ordering::Release);
            if self.wait.spin.is_none() {
                wake(w, word(&self.seg, FLOOR_PEER_PARKED));
            }
            let mut now = w.load(Ordering::Acquire);
            while now != 0 {
                now = self.wait.until_changed(
                    w,
                    now,
                    word(&self.seg, FLOOR_PARENT_PARKED),
                    &self.deadline,
                )?;
            }
        }
        Ok(start.elapsed().as_nanos() as f64 / f64::from(rounds.max(1)))
    }
}

/// The floors' segment: one page, its words at 0.
pub fn floor_setup() -> anyhow::Result<Setup<(Attached, Cleanup)>> {
    let (id, seg, guard) = private_segment(4096)?;
    Ok(Setup::new((seg, guard), vec![id.0.to_string()]))
}

/// The measuring side: waits for the peer's hello, then times its batches for as long as the
/// warm-up (the figure without the harness).
pub fn floor_measuring(ctx: &Ctx<'_>, (seg, guard): (Attached, Cleanup)) -> anyhow::Result<Floor> {
    let spec = &ctx.spec;
    ensure!(
        spec.kind == Kind::Latency,
        "the hand-off floors measure round trips only"
    );
    let mut link = Floor {
        seg,
        wait: RawWait {
            spin: spec
                .mech
                .spins()
                .then(|| ctx.deadline.remaining().unwrap_or(Duration::MAX)),
        },
        deadline: ctx.deadline,
        reply: [0; 8],
        last: 0,
        batch_ns: None,
    };
    let w = word(&link.seg, FLOOR_WORD);
    link.wait
        .until_changed(w, 0, word(&link.seg, FLOOR_PARENT_PARKED), &ctx.deadline)?;
    guard.remove()?;
    link.batch_ns = Some(batch_floor(&mut link, spec.budget.warmup)?);
    Ok(link)
}

/// Round trips timed in batches of 1000 for `budget` (at least one batch): the mean per round
/// trip of the fastest batch.
fn batch_floor(link: &mut Floor, budget: Duration) -> anyhow::Result<f64> {
    let start = Instant::now();
    let mut best = f64::MAX;
    loop {
        best = best.min(link.batch(1000)?);
        if start.elapsed() >= budget {
            return Ok(best);
        }
    }
}

pub fn floor_peer(args: &PeerArgs, spec: &Spec, deadline: &Deadline) -> anyhow::Result<Floor> {
    let id = ShmId(args.addr(0)?.parse().context("--addr: a segment id")?);
    let seg = Attached::attach(id, false).with_context(|| format!("shmat segment id {}", id.0))?;
    let link = Floor {
        seg,
        wait: RawWait {
            spin: spec
                .mech
                .spins()
                .then(|| deadline.remaining().unwrap_or(Duration::MAX)),
        },
        deadline: *deadline,
        reply: [0; 8],
        last: 0,
        batch_ns: None,
    };
    let w = word(&link.seg, FLOOR_WORD);
    w.store(FLOOR_HELLO, Ordering::Release);
    wake(w, word(&link.seg, FLOOR_PARENT_PARKED));
    Ok(link)
}

/// The ring at its simplest, as the C reference writes it: fixed slots of the message size
/// (rounded up to a cache line), `head` and `tail` count messages, the payload is the only
/// data, no record header, no checks. It uses the header words of `ipc_ring` (`layout`), so the
/// segment is set up the same way; the data area holds slots instead of records.
#[derive(Debug)]
struct RawRing {
    seg: Attached,
    /// Slots in the data area, and each slot's bytes.
    slots: u32,
    slot: usize,
    /// Producer: head (written). Consumer: tail (written).
    mine: u32,
    wait: RawWait,
}

impl RawRing {
    fn new(seg: Attached, slots: u32, slot: usize, producer: bool, wait: RawWait) -> Self {
        let at = if producer { HEAD_AT } else { TAIL_AT };
        let mine = word(&seg, at).load(Ordering::Relaxed);
        RawRing {
            seg,
            slots,
            slot,
            mine,
            wait,
        }
    }

    fn slot_ptr(&self, n: u32) -> *mut u8 {
        self.seg
            .as_ptr()
            .wrapping_add(HEADER_LEN + (n % self.slots) as usize * self.slot)
    }
}

#[derive(Debug)]
pub struct RawShm {
    tx: RawRing,
    rx: RawRing,
    len: usize,
    buf: Vec<u8>,
    deadline: Deadline,
}

impl RawShm {
    fn put(&mut self, msg: &[u8]) -> anyhow::Result<()> {
        let ring = &mut self.tx;
        let tail_word = word(&ring.seg, TAIL_AT);
        let mut tail = tail_word.load(Ordering::Acquire);
        while ring.mine.wrapping_sub(tail) >= ring.slots {
            tail = ring.wait.until_changed(
                tail_word,
                tail,
                word(&ring.seg, PRODUCER_PARKED_AT),
                &self.deadline,
            )?;
        }
        // SAFETY: a slot holds `slot >= len` bytes inside the data area; free slots are the
        // producer's alone.
        unsafe {
            std::ptr::copy_nonoverlapping(msg.as_ptr(), ring.slot_ptr(ring.mine), msg.len());
        }
        ring.mine = ring.mine.wrapping_add(1);
        let head = word(&ring.seg, HEAD_AT);
        head.store(ring.mine, Ordering::Release);
        wake(head, word(&ring.seg, CONSUMER_PARKED_AT));
        Ok(())
    }

    fn take(&mut self) -> anyhow::Result<()> {
        let ring = &mut self.rx;
        let head_word = word(&ring.seg, HEAD_AT);
        let mut head = head_word.load(Ordering::Acquire);
        while head == ring.mine {
            head = ring.wait.until_changed(
                head_word,
                head,
                word(&ring.seg, CONSUMER_PARKED_AT),
                &self.deadline,
            )?;
        }
        // SAFETY: as in `put`; published slots are the consumer's until it moves `tail`.
        unsafe {
            std::ptr::copy_nonoverlapping(
                ring.slot_ptr(ring.mine),
                self.buf.as_mut_ptr(),
                self.len,
            );
        }
        ring.mine = ring.mine.wrapping_add(1);
        let tail = word(&ring.seg, TAIL_AT);
        tail.store(ring.mine, Ordering::Release);
        wake(tail, word(&ring.seg, PRODUCER_PARKED_AT));
        Ok(())
    }
}

impl Link for RawShm {
    const STREAM: bool = false;

    fn send(&mut self, msg: &[u8]) -> anyhow::Result<()> {
        ensure!(msg.len() <= self.tx.slot, "a {}-byte message", msg.len());
        self.put(msg)
    }

    fn recv(&mut self, _len: usize) -> anyhow::Result<&[u8]> {
        self.take()?;
        Ok(&self.buf[..self.len])
    }

    fn recv_any(&mut self, _max: usize) -> anyhow::Result<&[u8]> {
        self.take()?;
        Ok(&self.buf[..self.len])
    }

    fn echo(&mut self, _len: usize) -> anyhow::Result<bool> {
        self.take()?;
        if seq_of(&self.buf[..self.len]) == STOP {
            return Ok(false);
        }
        let buf = std::mem::take(&mut self.buf);
        let sent = self.put(&buf[..self.len]);
        self.buf = buf;
        sent.map(|()| true)
    }
}

/// Every message of a run is `spec.wire_size()` bytes (the hello, 8, fits a slot too): one
/// slot for round trips (as the C reference), as many as fit (at most 4096) for throughput.
fn raw_shm(tx: Attached, rx: Attached, spec: &Spec, deadline: &Deadline) -> RawShm {
    let len = spec.wire_size().max(8);
    let slot = len.next_multiple_of(64);
    let slots = match spec.kind {
        Kind::Latency | Kind::Open => 1,
        Kind::Throughput => (spec.ring_bytes() / slot).clamp(2, 4096) as u32,
    };
    let wait = RawWait {
        spin: spec.mech.spins().then_some(spec.knobs.spin),
    };
    RawShm {
        tx: RawRing::new(tx, slots, slot, true, wait),
        rx: RawRing::new(rx, slots, slot, false, wait),
        len,
        buf: vec![0; len],
        deadline: *deadline,
    }
}

/// Either side's link on the rings `setup` made (`down` towards the peer, `up` back), after the
/// hello (the peer sends it).
pub fn shm_link(
    (down, up): (Attached, Attached),
    measuring: bool,
    spec: &Spec,
    deadline: &Deadline,
) -> anyhow::Result<RawShm> {
    if measuring {
        let mut link = raw_shm(down, up, spec, deadline);
        link.take()?;
        return Ok(link);
    }
    let mut link = raw_shm(up, down, spec, deadline);
    let hello = vec![0; link.len];
    link.put(&hello)?;
    Ok(link)
}

// ---------------------------------------------------------------------------------------------
// The other wake-ups of the matrix: an eventfd each way, a SysV semaphore each way. No data; a
// round trip is a post and a wait on each side. Blocking calls, bounded by the watchdogs.

/// Two eventfds, `tx` towards the other side, `rx` back. A post writes 1, the stop message 2.
#[derive(Debug)]
pub struct Eventfds {
    tx: OwnedFd,
    rx: OwnedFd,
    last: u64,
    reply: [u8; 8],
}

impl Eventfds {
    fn post(&self, value: u64) -> anyhow::Result<()> {
        let bytes = value.to_ne_bytes();
        // SAFETY: writes 8 bytes from `bytes` to our eventfd.
        let ret = unsafe { libc::write(self.tx.as_raw_fd(), bytes.as_ptr().cast(), 8) };
        check(ret, "write(eventfd)").map(drop)
    }

    fn wait(&self) -> anyhow::Result<u64> {
        let mut bytes = [0u8; 8];
        loop {
            // SAFETY: reads 8 bytes into `bytes` from our eventfd.
            let ret = unsafe { libc::read(self.rx.as_raw_fd(), bytes.as_mut_ptr().cast(), 8) };
            if ret < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            check(ret, "read(eventfd)")?;
            return Ok(u64::from_ne_bytes(bytes));
        }
    }
}

impl Link for Eventfds {
    const STREAM: bool = false;

    fn send(&mut self, msg: &[u8]) -> anyhow::Result<()> {
        self.last = seq_of(msg);
        self.post(if self.last == STOP { 2 } else { 1 })
    }

    fn recv(&mut self, _len: usize) -> anyhow::Result<&[u8]> {
        self.wait()?;
        stamp(&mut self.reply, self.last);
        Ok(&self.reply)
    }

    fn recv_any(&mut self, len: usize) -> anyhow::Result<&[u8]> {
        self.recv(len)
    }

    fn echo(&mut self, _len: usize) -> anyhow::Result<bool> {
        if self.wait()? != 1 {
            return Ok(false);
        }
        self.post(1)?;
        Ok(true)
    }
}

fn eventfd() -> anyhow::Result<OwnedFd> {
    // No EFD_CLOEXEC: the peer inherits it (the only process started while it is open).
    // SAFETY: eventfd(2) with plain flags.
    let fd = unsafe { libc::eventfd(0, 0) };
    check(fd as isize, "eventfd")?;
    // SAFETY: a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Two eventfds, `down` and `up`, inherited by the peer (it is told their numbers).
pub fn eventfd_setup() -> anyhow::Result<Setup<(OwnedFd, OwnedFd)>> {
    let (down, up) = (eventfd()?, eventfd()?);
    let addrs = vec![down.as_raw_fd().to_string(), up.as_raw_fd().to_string()];
    Ok(Setup::new((down, up), addrs))
}

pub fn eventfd_measuring(
    ctx: &Ctx<'_>,
    (down, up): (OwnedFd, OwnedFd),
    peer: Pid,
) -> anyhow::Result<(Eventfds, Watchdog)> {
    // A stuck peer is killed; a post to our own eventfd then ends our wait.
    let unblock = up.try_clone().context("dup eventfd")?;
    let watchdog = Watchdog::for_peer(ctx.deadline, peer, move || {
        // SAFETY: writes 8 bytes to our own eventfd.
        unsafe { libc::write(unblock.as_raw_fd(), 3u64.to_ne_bytes().as_ptr().cast(), 8) };
    });
    let link = Eventfds {
        tx: down,
        rx: up,
        last: 0,
        reply: [0; 8],
    };
    ensure!(link.wait()? == 1, "the peer's hello");
    Ok((link, watchdog))
}

pub fn eventfd_peer(args: &PeerArgs) -> anyhow::Result<Eventfds> {
    let fd = |i: usize| -> anyhow::Result<OwnedFd> {
        let raw: RawFd = args.addr(i)?.parse().context("--addr: a descriptor")?;
        // SAFETY: the descriptor was inherited from the measuring side for this run alone.
        Ok(unsafe { OwnedFd::from_raw_fd(raw) })
    };
    let link = Eventfds {
        rx: fd(0)?,
        tx: fd(1)?,
        last: 0,
        reply: [0; 8],
    };
    link.post(1)?;
    Ok(link)
}

/// A semaphore set of two: number 0 towards the peer, 1 back. The stop message removes the
/// set (the peer's wait then fails with `EIDRM`, its end).
#[derive(Debug)]
pub struct Sems {
    id: sysv::SemId,
    post_num: u16,
    wait_num: u16,
    last: u64,
    reply: [u8; 8],
}

impl Sems {
    /// The measuring side posts number 0 and waits on 1; the peer the other way round.
    fn new(id: sysv::SemId, measuring: bool) -> Self {
        Sems {
            id,
            post_num: if measuring { 0 } else { 1 },
            wait_num: if measuring { 1 } else { 0 },
            last: 0,
            reply: [0; 8],
        }
    }

    fn op(&self, num: u16, op: i16) -> io::Result<()> {
        let mut sop = libc::sembuf {
            sem_num: num,
            sem_op: op,
            sem_flg: 0,
        };
        loop {
            // SAFETY: one valid sembuf.
            if unsafe { libc::semop(self.id.0, &mut sop, 1) } == 0 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
    }
}

impl Link for Sems {
    const STREAM: bool = false;

    fn send(&mut self, msg: &[u8]) -> anyhow::Result<()> {
        self.last = seq_of(msg);
        if self.last == STOP {
            return sysv::sem_remove(self.id).context("semctl(IPC_RMID)");
        }
        self.op(self.post_num, 1).context("semop(+1)")
    }

    fn recv(&mut self, _len: usize) -> anyhow::Result<&[u8]> {
        self.op(self.wait_num, -1).context("semop(-1)")?;
        stamp(&mut self.reply, self.last);
        Ok(&self.reply)
    }

    fn recv_any(&mut self, len: usize) -> anyhow::Result<&[u8]> {
        self.recv(len)
    }

    fn echo(&mut self, _len: usize) -> anyhow::Result<bool> {
        match self.op(self.wait_num, -1) {
            Ok(()) => {}
            Err(err) if matches!(err.raw_os_error(), Some(libc::EIDRM | libc::EINVAL)) => {
                return Ok(false);
            }
            Err(err) => return Err(err).context("semop(-1)"),
        }
        self.op(self.post_num, 1).context("semop(+1)")?;
        Ok(true)
    }
}

/// A private set of two semaphores, removed when the guard drops (if the stop message or a
/// watchdog has not already).
pub fn sem_setup() -> anyhow::Result<Setup<(sysv::SemId, Cleanup)>> {
    let id =
        sysv::sem_create(sysv::Key(libc::IPC_PRIVATE), 2, 0o600).context("semget(IPC_PRIVATE)")?;
    let guard =
        Cleanup::register(
            format!("semaphore set id {}", id.0),
            move || match sysv::sem_remove(id) {
                Ok(()) | Err(nix::errno::Errno::EINVAL | nix::errno::Errno::EIDRM) => Ok(()),
                Err(errno) => Err(errno.into()),
            },
        );
    Ok(Setup::new((id, guard), vec![id.0.to_string()]))
}

/// The measuring side: the peer's hello. The watchdog it returns (with the set's guard) removes
/// the set at the deadline, which ends a blocked `semop(2)`.
pub fn sem_measuring(
    ctx: &Ctx<'_>,
    (id, guard): (sysv::SemId, Cleanup),
    peer: Pid,
) -> anyhow::Result<(Sems, (Watchdog, Cleanup))> {
    let watchdog = Watchdog::for_peer(ctx.deadline, peer, move || {
        let _ = sysv::sem_remove(id);
    });
    let link = Sems::new(id, true);
    link.op(1, -1).context("semop: the peer's hello")?;
    Ok((link, (watchdog, guard)))
}

pub fn sem_peer(args: &PeerArgs) -> anyhow::Result<Sems> {
    let id = sysv::SemId(
        args.addr(0)?
            .parse()
            .context("--addr: a semaphore set id")?,
    );
    let link = Sems::new(id, false);
    link.op(1, 1).context("semop: the hello")?;
    Ok(link)
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
