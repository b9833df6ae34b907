//! The mechanisms through this workspace's own code, the code the examples run:
//! - datagrams: the `dgram` crate's `Receiver` and `Sender` (one of each per side);
//! - stream sockets: the `stream` crate's `Listener` and `connect`, then the benchmark's own
//!   per-message calls on the connection (`send(2)`/`recv(2)` bounded by
//!   `SO_SNDTIMEO`/`SO_RCVTIMEO`);
//! - FIFOs: the `fifo` crate (`open_*_end`, `wait_for_writer`, `write_all`) on the pair the
//!   table's `setup` made, reads with the benchmark's own `read(2)`/`poll(2)` loop;
//! - the queue: the `mq` crate's `send`/`receive` over `ipc_common::sysv::MsgBuf`;
//! - shared memory: `ipc_ring` over `ipc_common::sysv::Attached`.
//!
//! Each mechanism's links, and the steps that open one on the measuring side (over the objects
//! `crate::mechanism` set up) and on the peer.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, ensure};
use dgram::{Receiver, Sender};
use ipc_common::runtime::cli::Mode;
use ipc_common::runtime::wait::Deadline;
use ipc_common::sockets::endpoint::{DgramEndpoint, StreamEndpoint};
use ipc_common::sysv::{self, Attached, Key, MsgBuf, MsqId};
use ipc_ring::{Consumer, Producer, Wait};
use socket2::SockRef;

use crate::link::{Link, STOP, seq_of};
use crate::plan::{Kind, Mech, Spec};
use crate::session::{Ctx, Fifos, PeerArgs, Setup, UDP_RCVBUF, udp_window};

const MODE: Mode = Mode(0o600);
const HELLO: [u8; 8] = [0; 8];

// ---------------------------------------------------------------------------------------------
// Datagrams: each side binds a Receiver and connects a Sender to the other's.

#[derive(Debug)]
pub struct DgramLink {
    rx: Receiver,
    tx: Sender,
    deadline: Deadline,
}

impl Link for DgramLink {
    const STREAM: bool = false;

    fn send(&mut self, msg: &[u8]) -> anyhow::Result<()> {
        self.tx.send(msg, &self.deadline)
    }

    fn recv(&mut self, len: usize) -> anyhow::Result<&[u8]> {
        let got = self.rx.recv(&self.deadline)?;
        ensure!(
            got.len() == len,
            "a {}-byte datagram, expected {len}",
            got.len()
        );
        Ok(got)
    }

    fn recv_any(&mut self, max: usize) -> anyhow::Result<&[u8]> {
        let got = self.rx.recv(&self.deadline)?;
        ensure!(
            got.len() <= max,
            "a {}-byte datagram, expected at most {max}",
            got.len()
        );
        Ok(got)
    }

    fn echo(&mut self, len: usize) -> anyhow::Result<bool> {
        let got = self.rx.recv(&self.deadline)?;
        ensure!(
            got.len() == len,
            "a {}-byte datagram, expected {len}",
            got.len()
        );
        if seq_of(got) == STOP {
            return Ok(false);
        }
        self.tx.send(got, &self.deadline)?;
        Ok(true)
    }
}

fn dgram_endpoint(ctx_path: impl FnOnce() -> PathBuf, mech: Mech) -> DgramEndpoint {
    match mech {
        Mech::Udg => DgramEndpoint::Unix(ctx_path()),
        _ => DgramEndpoint::Udp(([127, 0, 0, 1], 0).into()),
    }
}

/// Binds the measuring side's receiver; the peer is told its address and, for a Unix socket,
/// where to bind its own.
pub fn dgram_setup(ctx: &Ctx<'_>) -> anyhow::Result<Setup<Receiver>> {
    let spec = &ctx.spec;
    let rx = Receiver::bind(&dgram_endpoint(|| ctx.path("p.sock"), spec.mech), MODE)?;
    if spec.mech == Mech::Udp {
        rx.set_receive_buffer(UDP_RCVBUF)?;
    }
    let mut addrs = vec![rx.url().to_string()];
    if spec.mech == Mech::Udg {
        addrs.push(format!("udg://{}", ctx.path("c.sock").display()));
    }
    let window = (spec.mech == Mech::Udp && spec.kind == Kind::Throughput)
        .then(|| udp_window(spec.wire_size()));
    Ok(Setup {
        window,
        ..Setup::new(rx, addrs)
    })
}

/// The measuring side: the hello carries the peer's own address (for UDP, the port its kernel
/// chose), which our sender connects to.
pub fn dgram_measuring(ctx: &Ctx<'_>, mut rx: Receiver) -> anyhow::Result<DgramLink> {
    let hello = rx.recv(&ctx.deadline)?;
    let back: DgramEndpoint = std::str::from_utf8(hello)
        .ok()
        .and_then(|url| url.parse().ok())
        .context("the peer's hello is not its address")?;
    let tx = Sender::connect(&back, &ctx.deadline)?;
    Ok(DgramLink {
        rx,
        tx,
        deadline: ctx.deadline,
    })
}

pub fn dgram_peer(args: &PeerArgs, spec: &Spec, deadline: &Deadline) -> anyhow::Result<DgramLink> {
    let parent: DgramEndpoint = args.endpoint(0)?;
    let own = match spec.mech {
        Mech::Udg => args.endpoint(1)?,
        _ => dgram_endpoint(PathBuf::new, spec.mech),
    };
    let rx = Receiver::bind(&own, MODE)?;
    if spec.mech == Mech::Udp {
        rx.set_receive_buffer(UDP_RCVBUF)?;
    }
    let mut tx = Sender::connect(&parent, deadline)?;
    tx.send(rx.url().to_string().as_bytes(), deadline)?;
    Ok(DgramLink {
        rx,
        tx,
        deadline: *deadline,
    })
}

// ---------------------------------------------------------------------------------------------
// Stream sockets: the `stream` crate's Listener and connect (nonblocking, every wait a poll),
// then the benchmark's own per-message wrapper over a duplicate of the connected socket:
// blocking calls whose timeouts (SO_RCVTIMEO/SO_SNDTIMEO) are the time left, one syscall per
// step instead of a failed recv(2), a poll(2) and a second recv(2) each time the peer is not
// ahead (which, in a ping-pong, is every time).

/// A connected stream socket for per-message calls, bounded by its deadline.
#[derive(Debug)]
struct TimedSocket {
    socket: socket2::Socket,
    deadline: Deadline,
}

impl TimedSocket {
    /// A duplicate of `socket` (the mechanism's connection, which stays open beside it),
    /// blocking, with the time left as its send and receive timeouts.
    fn new(socket: &socket2::Socket, deadline: &Deadline) -> anyhow::Result<Self> {
        let socket = socket.try_clone().context("dup the connected socket")?;
        // O_NONBLOCK belongs to the open file, shared with the original: it is not used again.
        socket
            .set_nonblocking(false)
            .context("clear O_NONBLOCK on the connection")?;
        // SO_RCVTIMEO 0 means "forever", so a deadline that has just passed still gets 1 ms.
        let left = deadline
            .remaining()
            .map(|left| left.max(std::time::Duration::from_millis(1)));
        socket
            .set_read_timeout(left)
            .context("setsockopt(SO_RCVTIMEO)")?;
        socket
            .set_write_timeout(left)
            .context("setsockopt(SO_SNDTIMEO)")?;
        Ok(TimedSocket {
            socket,
            deadline: *deadline,
        })
    }

    fn timed_out(&self, what: &str) -> anyhow::Error {
        self.deadline.timed_out(what)
    }

    fn send(&self, mut bytes: &[u8]) -> anyhow::Result<()> {
        use std::io::Write as _;
        while !bytes.is_empty() {
            match (&self.socket).write(bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                    return Err(self.timed_out("room towards the peer"));
                }
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err).context("send to the peer"),
            }
        }
        Ok(())
    }

    fn recv_some(&self, buf: &mut [u8]) -> anyhow::Result<usize> {
        use std::io::Read as _;
        loop {
            match (&self.socket).read(buf) {
                Ok(n) => return Ok(n),
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                    return Err(self.timed_out("bytes from the peer"));
                }
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err).context("recv from the peer"),
            }
        }
    }

    fn recv_exact(&self, buf: &mut [u8]) -> anyhow::Result<()> {
        let mut got = 0;
        while got < buf.len() {
            match self.recv_some(&mut buf[got..])? {
                0 => anyhow::bail!(
                    "the peer closed the connection {got} bytes into a {}-byte message",
                    buf.len()
                ),
                n => got += n,
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
pub struct StreamLink {
    conn: TimedSocket,
    /// The mechanism's connection, kept open for the run.
    _conn: stream::Conn,
    buf: Vec<u8>,
}

impl StreamLink {
    fn new(conn: stream::Conn, deadline: &Deadline, size: usize) -> anyhow::Result<Self> {
        Ok(StreamLink {
            conn: TimedSocket::new(conn.socket(), deadline)?,
            _conn: conn,
            buf: vec![0; size.max(64 << 10)],
        })
    }
}

impl Link for StreamLink {
    const STREAM: bool = true;

    fn send(&mut self, msg: &[u8]) -> anyhow::Result<()> {
        self.conn.send(msg)
    }

    fn recv(&mut self, len: usize) -> anyhow::Result<&[u8]> {
        self.conn.recv_exact(&mut self.buf[..len])?;
        Ok(&self.buf[..len])
    }

    fn recv_any(&mut self, max: usize) -> anyhow::Result<&[u8]> {
        let max = max.min(self.buf.len());
        let n = self.conn.recv_some(&mut self.buf[..max])?;
        Ok(&self.buf[..n])
    }

    fn echo(&mut self, len: usize) -> anyhow::Result<bool> {
        self.conn.recv_exact(&mut self.buf[..len])?;
        if seq_of(&self.buf[..len]) == STOP {
            return Ok(false);
        }
        self.conn.send(&self.buf[..len])?;
        Ok(true)
    }

    fn finish(&mut self, stop: &[u8]) -> anyhow::Result<()> {
        self.send(stop)?;
        self.conn
            .socket
            .shutdown(std::net::Shutdown::Write)
            .context("shutdown(SHUT_WR)")
    }
}

/// The measuring side, on the listener `setup` bound: accepts the peer, waits for its hello.
pub fn stream_measuring(ctx: &Ctx<'_>, listener: &stream::Listener) -> anyhow::Result<StreamLink> {
    let spec = &ctx.spec;
    let conn = listener.accept(&ctx.deadline)?;
    spec.tune_stream(SockRef::from(conn.socket()), false)?;
    let mut link = StreamLink::new(conn, &ctx.deadline, spec.wire_size())?;
    link.recv(HELLO.len())?;
    Ok(link)
}

pub fn stream_peer(
    args: &PeerArgs,
    spec: &Spec,
    deadline: &Deadline,
) -> anyhow::Result<StreamLink> {
    let url: StreamEndpoint = args.endpoint(0)?;
    let conn = stream::connect(&url, deadline)?;
    spec.tune_stream(SockRef::from(conn.socket()), true)?;
    let mut link = StreamLink::new(conn, deadline, spec.wire_size())?;
    link.send(&HELLO)?;
    Ok(link)
}

// ---------------------------------------------------------------------------------------------
// FIFOs: `down` carries the measuring side's messages to the peer, `up` the peer's back.

#[derive(Debug)]
pub struct FifoLink {
    rx: File,
    rx_path: PathBuf,
    tx: File,
    tx_path: PathBuf,
    /// Whether a writer has opened `rx` yet (before that, `read(2)` says end of file).
    rx_ready: bool,
    /// Round trips: a message's first read waits for an answer, so it polls first.
    poll_first: bool,
    buf: Vec<u8>,
    deadline: Deadline,
}

/// Whether a FIFO link's reads poll first: turn by turn (a request, then its answer) the answer
/// is never there yet when we start reading, so reading first would cost a `read(2)` that finds
/// nothing, then the `poll(2)` and the `read(2)` again; a receiver behind its sender reads first.
fn fifo_poll_first(spec: &Spec) -> bool {
    spec.kind.round_trips()
}

/// One `read(2)` from a nonblocking FIFO, waiting (`poll(2)`, until `deadline`) while it is
/// empty; `poll_first` when bytes are unlikely to be there yet. 0 is end of file.
fn fifo_read(
    mut file: &File,
    buf: &mut [u8],
    path: &Path,
    deadline: &Deadline,
    mut poll_first: bool,
) -> anyhow::Result<usize> {
    use std::io::Read as _;
    use std::os::fd::AsFd as _;
    loop {
        if std::mem::take(&mut poll_first) {
            ipc_common::runtime::wait::wait_fd(
                file.as_fd(),
                nix::poll::PollFlags::POLLIN,
                deadline,
                format_args!("the writer on {} to send more or close", path.display()),
            )?;
        }
        match file.read(buf) {
            Ok(n) => return Ok(n),
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => poll_first = true,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => {
                return Err(err).with_context(|| format!("read from FIFO {}", path.display()));
            }
        }
    }
}

impl FifoLink {
    fn ready(&mut self) -> anyhow::Result<()> {
        if !self.rx_ready {
            fifo::wait_for_writer(&self.rx, &self.rx_path, &self.deadline)?;
            self.rx_ready = true;
        }
        Ok(())
    }

    fn fill(&mut self, len: usize) -> anyhow::Result<()> {
        self.ready()?;
        let mut got = 0;
        while got < len {
            // The rest of a message that arrives in pieces is being written: read first.
            match fifo_read(
                &self.rx,
                &mut self.buf[got..len],
                &self.rx_path,
                &self.deadline,
                got == 0 && self.poll_first,
            )? {
                0 => anyhow::bail!(
                    "FIFO {}: the writer closed {got} bytes into a message",
                    self.rx_path.display()
                ),
                n => got += n,
            }
        }
        Ok(())
    }
}

impl Link for FifoLink {
    const STREAM: bool = true;

    fn send(&mut self, msg: &[u8]) -> anyhow::Result<()> {
        fifo::write_all(&self.tx, msg, &self.tx_path, &self.deadline)
    }

    fn recv(&mut self, len: usize) -> anyhow::Result<&[u8]> {
        self.fill(len)?;
        Ok(&self.buf[..len])
    }

    fn recv_any(&mut self, max: usize) -> anyhow::Result<&[u8]> {
        self.ready()?;
        let max = max.min(self.buf.len());
        let n = fifo_read(
            &self.rx,
            &mut self.buf[..max],
            &self.rx_path,
            &self.deadline,
            false,
        )?;
        Ok(&self.buf[..n])
    }

    fn echo(&mut self, len: usize) -> anyhow::Result<bool> {
        self.fill(len)?;
        if seq_of(&self.buf[..len]) == STOP {
            return Ok(false);
        }
        fifo::write_all(&self.tx, &self.buf[..len], &self.tx_path, &self.deadline)?;
        Ok(true)
    }

    fn finish(&mut self, stop: &[u8]) -> anyhow::Result<()> {
        self.send(stop)?;
        // End of file for the reader: the only writer closes its end.
        let devnull = File::open("/dev/null").context("open /dev/null")?;
        drop(std::mem::replace(&mut self.tx, devnull));
        Ok(())
    }
}

fn set_pipe_size(file: &File, path: &Path, bytes: Option<usize>) -> anyhow::Result<()> {
    if let Some(bytes) = bytes {
        nix::fcntl::fcntl(file, nix::fcntl::FcntlArg::F_SETPIPE_SZ(bytes as i32))
            .with_context(|| format!("fcntl(F_SETPIPE_SZ, {bytes}) on FIFO {}", path.display()))?;
    }
    Ok(())
}

/// The measuring side, on the FIFOs `setup` made: waits for the peer to open `up` for writing,
/// opens `down` for writing, waits for the hello.
pub fn fifo_measuring(ctx: &Ctx<'_>, fifos: Fifos) -> anyhow::Result<FifoLink> {
    let spec = &ctx.spec;
    let Fifos { down, up, rx, .. } = fifos;
    fifo::wait_for_writer(&rx, &up, &ctx.deadline)?;
    let tx = fifo::open_write_end(&down, &ctx.deadline)?;
    set_pipe_size(&tx, &down, spec.knobs.pipe)?;
    let mut link = FifoLink {
        rx,
        rx_path: up,
        tx,
        tx_path: down,
        rx_ready: true,
        poll_first: fifo_poll_first(spec),
        buf: vec![0; spec.wire_size().max(64 << 10)],
        deadline: ctx.deadline,
    };
    link.recv(HELLO.len())?;
    Ok(link)
}

pub fn fifo_peer(args: &PeerArgs, spec: &Spec, deadline: &Deadline) -> anyhow::Result<FifoLink> {
    let (down, up) = (PathBuf::from(args.addr(0)?), PathBuf::from(args.addr(1)?));
    let rx = fifo::open_read_end(&down)?;
    let tx = fifo::open_write_end(&up, deadline)?;
    let mut link = FifoLink {
        rx,
        rx_path: down,
        tx,
        tx_path: up,
        rx_ready: false,
        poll_first: fifo_poll_first(spec),
        buf: vec![0; spec.wire_size().max(64 << 10)],
        deadline: *deadline,
    };
    link.send(&HELLO)?;
    Ok(link)
}

// ---------------------------------------------------------------------------------------------
// The message queue: type 1 towards the peer, type 2 back; messages over msgmax go in pieces.

/// Through `mq::send`/`mq::receive` with no deadline: given one, they poll with IPC_NOWAIT and
/// a 1-25 ms backoff, far too coarse for a round trip of microseconds; without, they block in
/// the kernel. The watchdogs bound those blocking calls instead (see `measure`).
#[derive(Debug)]
pub struct MqLink {
    queue: mq::Queue,
    send_type: i64,
    recv_type: i64,
    msgmax: usize,
    send_buf: MsgBuf,
    recv_buf: MsgBuf,
    piece: Vec<u8>,
    whole: Vec<u8>,
}

impl MqLink {
    fn new(id: MsqId, parent_side: bool, size: usize) -> anyhow::Result<Self> {
        let msgmax = sysv::msgmax().context("read /proc/sys/kernel/msgmax")?;
        Ok(MqLink {
            queue: mq::Queue {
                key: Key(libc::IPC_PRIVATE),
                id,
            },
            send_type: if parent_side { 1 } else { 2 },
            recv_type: if parent_side { 2 } else { 1 },
            msgmax,
            send_buf: MsgBuf::new(),
            recv_buf: MsgBuf::new(),
            piece: Vec::with_capacity(msgmax),
            whole: Vec::with_capacity(size),
        })
    }

    fn receive(&mut self, len: usize) -> anyhow::Result<()> {
        let forever = Deadline::forever();
        if len <= self.msgmax {
            mq::receive(
                &mut self.recv_buf,
                self.queue,
                self.msgmax,
                self.recv_type,
                &mut self.whole,
                &forever,
            )?;
            ensure!(
                self.whole.len() == len,
                "a {}-byte message, expected {len}",
                self.whole.len()
            );
            return Ok(());
        }
        self.whole.clear();
        while self.whole.len() < len {
            mq::receive(
                &mut self.recv_buf,
                self.queue,
                self.msgmax,
                self.recv_type,
                &mut self.piece,
                &forever,
            )?;
            self.whole.extend_from_slice(&self.piece);
        }
        ensure!(
            self.whole.len() == len,
            "{} bytes in pieces, expected {len}",
            self.whole.len()
        );
        Ok(())
    }
}

fn mq_send(
    buf: &mut MsgBuf,
    queue: mq::Queue,
    mtype: i64,
    msgmax: usize,
    msg: &[u8],
) -> anyhow::Result<()> {
    let forever = Deadline::forever();
    for piece in msg.chunks(msgmax) {
        mq::send(buf, queue, mtype, piece, &forever)?;
    }
    Ok(())
}

impl Link for MqLink {
    const STREAM: bool = false;

    fn send(&mut self, msg: &[u8]) -> anyhow::Result<()> {
        mq_send(
            &mut self.send_buf,
            self.queue,
            self.send_type,
            self.msgmax,
            msg,
        )
    }

    fn recv(&mut self, len: usize) -> anyhow::Result<&[u8]> {
        self.receive(len)?;
        Ok(&self.whole)
    }

    fn recv_any(&mut self, max: usize) -> anyhow::Result<&[u8]> {
        self.receive(max)?;
        Ok(&self.whole)
    }

    fn echo(&mut self, len: usize) -> anyhow::Result<bool> {
        self.receive(len)?;
        if seq_of(&self.whole) == STOP {
            return Ok(false);
        }
        mq_send(
            &mut self.send_buf,
            self.queue,
            self.send_type,
            self.msgmax,
            &self.whole,
        )?;
        Ok(true)
    }
}

/// Either side's link on the queue `setup` made, after the hello (the peer sends it).
pub fn mq_link(id: MsqId, measuring: bool, spec: &Spec) -> anyhow::Result<MqLink> {
    let mut link = MqLink::new(id, measuring, spec.wire_size())?;
    if measuring {
        link.recv(HELLO.len())?;
    } else {
        link.send(&HELLO)?;
    }
    Ok(link)
}

// ---------------------------------------------------------------------------------------------
// Shared memory: two rings, `down` towards the peer and `up` back.

#[derive(Debug)]
pub struct ShmLink {
    tx: Producer,
    rx: Consumer,
    buf: Vec<u8>,
    deadline: Deadline,
    /// Zero-copy: loans and taken messages, only the sequence number written and read in
    /// place; `buf` then only carries that number back to the loops.
    zero_copy: bool,
}

impl ShmLink {
    /// Zero-copy send: a loan of `len` bytes with `seq` stamped in place.
    fn send_in_place(&mut self, len: usize, seq: [u8; 8]) -> anyhow::Result<()> {
        let mut loan = self.tx.loan(len, &self.deadline)?;
        loan.bytes()[..8].copy_from_slice(&seq);
        loan.commit()
    }

    /// Zero-copy receive: the next message's length and sequence number, read in place.
    fn take_in_place(&mut self) -> anyhow::Result<(usize, [u8; 8])> {
        let taken = self.rx.take(&self.deadline)?;
        let bytes = taken.bytes();
        let seq = bytes
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .context("a message shorter than its sequence number")?;
        let len = bytes.len();
        taken.release()?;
        Ok((len, seq))
    }

    /// Zero-copy: what the loops see of a message (its length, its sequence number first).
    fn seen(&mut self, len: usize, seq: [u8; 8]) -> &[u8] {
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        self.buf[..8].copy_from_slice(&seq);
        &self.buf[..len]
    }
}

impl Link for ShmLink {
    const STREAM: bool = false;

    fn send(&mut self, msg: &[u8]) -> anyhow::Result<()> {
        if self.zero_copy {
            let seq = msg[..8].try_into().expect("8 bytes");
            return self.send_in_place(msg.len(), seq);
        }
        self.tx.send(msg, &self.deadline)
    }

    fn recv(&mut self, len: usize) -> anyhow::Result<&[u8]> {
        if self.zero_copy {
            let (n, seq) = self.take_in_place()?;
            ensure!(n == len, "a {n}-byte message, expected {len}");
            return Ok(self.seen(n, seq));
        }
        let n = self.rx.recv(&mut self.buf, &self.deadline)?;
        ensure!(n == len, "a {n}-byte message, expected {len}");
        Ok(&self.buf[..n])
    }

    fn recv_any(&mut self, max: usize) -> anyhow::Result<&[u8]> {
        if self.zero_copy {
            let (n, seq) = self.take_in_place()?;
            ensure!(n <= max, "a {n}-byte message, expected at most {max}");
            return Ok(self.seen(n, seq));
        }
        let max = max.min(self.buf.len());
        let n = self.rx.recv(&mut self.buf[..max], &self.deadline)?;
        Ok(&self.buf[..n])
    }

    fn echo(&mut self, len: usize) -> anyhow::Result<bool> {
        if self.zero_copy {
            // The reply is loaned while the message is still held: both in place, as a
            // zero-copy echo does.
            let taken = self.rx.take(&self.deadline)?;
            let n = taken.bytes().len();
            ensure!(n == len, "a {n}-byte message, expected {len}");
            let seq: [u8; 8] = taken.bytes()[..8].try_into().expect("8 bytes");
            if u64::from_le_bytes(seq) == STOP {
                return Ok(false);
            }
            let mut loan = self.tx.loan(n, &self.deadline)?;
            loan.bytes()[..8].copy_from_slice(&seq);
            loan.commit()?;
            taken.release()?;
            return Ok(true);
        }
        let n = self.rx.recv(&mut self.buf, &self.deadline)?;
        ensure!(n == len, "a {n}-byte message, expected {len}");
        if seq_of(&self.buf[..n]) == STOP {
            return Ok(false);
        }
        self.tx.send(&self.buf[..n], &self.deadline)?;
        Ok(true)
    }
}

/// How the ring's sides wait for this spec.
pub fn ring_wait(spec: &Spec) -> Wait {
    if spec.mech.spins() {
        Wait::Spin(spec.knobs.spin)
    } else {
        Wait::Block
    }
}

/// Either side's link on the rings `setup` made (`down` towards the peer, `up` back), after
/// the hello (the peer sends it).
pub fn shm_link(
    (down, up): (Attached, Attached),
    measuring: bool,
    spec: &Spec,
    deadline: &Deadline,
) -> anyhow::Result<ShmLink> {
    let (tx, rx) = if measuring { (down, up) } else { (up, down) };
    let mut link = ShmLink {
        tx: Producer::new(tx, ring_wait(spec))?,
        rx: Consumer::new(rx, ring_wait(spec))?,
        buf: vec![0; spec.wire_size().max(HELLO.len())],
        deadline: *deadline,
        zero_copy: spec.mech == Mech::ShmZc,
    };
    if measuring {
        link.recv(HELLO.len())?;
    } else {
        link.send(&HELLO)?;
    }
    Ok(link)
}
