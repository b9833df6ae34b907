//! Socket plumbing the datagram and stream examples share: binding a Unix socket file with an
//! exact mode, binding an IP socket and learning the port the kernel chose, connecting with
//! retries until the deadline, accepting within it, and the full-duplex exchange of a stream
//! connection.
//!
//! Every socket made here is nonblocking and close-on-exec: each wait is a `poll(2)` through
//! [`crate::runtime::wait`], bounded by the run's one [`Deadline`].

use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

use anyhow::{Context, bail};
use nix::errno::Errno;
use nix::poll::PollFlags;
use nix::sys::socket::{MsgFlags, getsockopt, recv, send, sockopt};
use socket2::{Domain, SockAddr, Socket, Type};

use crate::runtime::cleanup::Cleanup;
use crate::runtime::cli::Mode;
use crate::runtime::paths::{self, SocketKind};
use crate::runtime::trust;
use crate::runtime::wait::{self, Deadline};

/// `listen(2)` backlog: connections the kernel completes before we `accept(2)` them.
pub const BACKLOG: i32 = 128;

/// The errno of an I/O error, if it came from a syscall.
pub fn errno_of(err: &io::Error) -> Option<Errno> {
    err.raw_os_error().map(Errno::from_raw)
}

/// `socket(2)`: a new nonblocking, close-on-exec socket.
pub fn new_socket(domain: Domain, kind: SocketKind) -> anyhow::Result<Socket> {
    let ty = match kind {
        SocketKind::Stream => Type::STREAM,
        SocketKind::Datagram => Type::DGRAM,
    };
    Socket::new(domain, ty.nonblocking().cloexec(), None)
        .with_context(|| format!("socket({domain:?}, {ty:?})"))
}

/// Binds a new Unix socket of `kind` at `path` and gives the file exactly `mode`.
///
/// A stale socket at `path` is replaced; a live one, or anything that is not a socket, is an
/// error and left alone ([`paths::clear_stale_socket`]). The returned guard unlinks the file
/// when dropped, and on SIGINT/SIGTERM/SIGHUP.
///
/// The file has no more than `mode` from birth: `bind(2)` creates it with the socket inode's
/// own mode less the umask (`af_unix.c`), so `fchmod(2)` on the socket before `bind` narrows it
/// to `mode & ~umask`; a `chmod` afterwards only widens that to exactly `mode`. No moment
/// exists in which another user may connect whom `mode` does not admit. (Changing the umask
/// instead is process-wide, unsafe while another thread creates files.)
pub fn bind_unix(path: &Path, kind: SocketKind, mode: Mode) -> anyhow::Result<BoundUnix> {
    let replaced_stale = paths::clear_stale_socket(path, kind)?;
    let socket = new_socket(Domain::UNIX, kind)?;
    nix::sys::stat::fchmod(
        socket.as_fd(),
        nix::sys::stat::Mode::from_bits_truncate(mode.0),
    )
    .with_context(|| format!("fchmod {mode} on the socket before bind {}", path.display()))?;
    let addr = SockAddr::unix(path).with_context(|| format!("bind {}", path.display()))?;
    if let Err(err) = socket.bind(&addr) {
        let why = match errno_of(&err) {
            Some(Errno::EACCES) => paths::explain_denied(path),
            _ => String::new(),
        };
        return Err(err).with_context(|| format!("bind {}{why}", path.display()));
    }
    let guard = paths::remove_on_drop(path, "socket file")?;
    let umask = paths::current_umask();
    if mode.0 & umask != 0 {
        paths::set_mode(path, mode)?;
    }
    Ok(BoundUnix {
        socket,
        file: guard,
        replaced_stale,
    })
}

/// A Unix socket [`bind_unix`] made: the socket, the guard that removes its file, and whether
/// a stale socket file (nobody listening) was removed first, for the caller to tell.
#[derive(Debug)]
pub struct BoundUnix {
    pub socket: Socket,
    pub file: Cleanup,
    pub replaced_stale: bool,
}

/// Binds a new IP socket of `kind` to `addr` and returns it with the address it really got
/// (port 0 asks the kernel to choose a free port).
///
/// Stream sockets get `SO_REUSEADDR`, so a server restarted at once can bind the port its last
/// connections still hold in TIME_WAIT.
pub fn bind_inet(addr: SocketAddr, kind: SocketKind) -> anyhow::Result<(Socket, SocketAddr)> {
    let socket = new_socket(Domain::for_address(addr), kind)?;
    if kind == SocketKind::Stream {
        socket
            .set_reuse_address(true)
            .with_context(|| format!("setsockopt(SO_REUSEADDR) on {addr}"))?;
    }
    socket
        .bind(&addr.into())
        .with_context(|| format!("bind {addr}"))?;
    let bound = socket
        .local_addr()
        .with_context(|| format!("getsockname after bind {addr}"))?
        .as_socket()
        .with_context(|| format!("getsockname after bind {addr}: not an IP address"))?;
    Ok((socket, bound))
}

/// Connects a new socket of `kind` to `addr`, retrying with backoff while nobody is there yet,
/// until `deadline`. `peer` names the other side in messages ("a server on unix:///tmp/x.sock").
///
/// "Nobody there yet" is `ENOENT` (no socket file), `ECONNREFUSED` (a stale socket file, or no
/// listener on the port) and `EAGAIN` (a Unix listener's backlog is full). A TCP connect that is
/// under way (`EINPROGRESS`) is waited for with `poll(2)` and judged by `SO_ERROR`. The first
/// refusal prints one progress line starting `waiting for`.
///
/// A Unix socket file is opened with `O_PATH | O_NOFOLLOW` and checked before each attempt
/// ([`paths::open_socket_to_connect`]: a symlink, a file that is not a socket, or a socket of an
/// untrusted owner ends the wait with an error), and the connect goes through that descriptor
/// (`/proc/self/fd/N`), so the object checked is the object used; a stream's listener must also
/// run as a trusted user (`SO_PEERCRED`).
pub fn connect_retry(
    addr: &SockAddr,
    kind: SocketKind,
    deadline: &Deadline,
    peer: &str,
) -> anyhow::Result<Socket> {
    let mut announced = false;
    wait::retry(deadline, peer, || {
        // A Unix socket file is opened (O_PATH, no symlink followed) and checked, and the
        // connect goes through that descriptor: the file we checked is the one we reach, even if
        // someone swaps the name meanwhile.
        let checked = match addr.as_pathname() {
            Some(path) => match paths::open_socket_to_connect(path)? {
                Some(opened) => Some(opened),
                None => {
                    announce_wait(&mut announced, deadline, peer, "no socket file yet");
                    return Ok(None);
                }
            },
            None => None,
        };
        let target = match &checked {
            Some(opened) => &opened.proc_addr()?,
            None => addr,
        };
        // A socket whose connect failed is in an unspecified state: each attempt takes a new one.
        let socket = new_socket(addr.domain(), kind)?;
        let refusal = match socket.connect(target) {
            Ok(()) => {
                if addr.as_pathname().is_some() {
                    check_connected_unix(&socket, kind, peer)?;
                }
                return Ok(Some(socket));
            }
            Err(err) if errno_of(&err) == Some(Errno::EINPROGRESS) => {
                wait::wait_fd(socket.as_fd(), PollFlags::POLLOUT, deadline, peer)?;
                match socket
                    .take_error()
                    .with_context(|| format!("getsockopt(SO_ERROR) connecting to {peer}"))?
                {
                    None => return Ok(Some(socket)),
                    Some(err) => err,
                }
            }
            Err(err) => err,
        };
        match errno_of(&refusal) {
            Some(Errno::ENOENT | Errno::ECONNREFUSED | Errno::EAGAIN) => {
                announce_wait(&mut announced, deadline, peer, &refusal.to_string());
                Ok(None)
            }
            Some(Errno::EACCES) => {
                let why = paths::explain_other_users_object("socket file");
                Err(refusal).with_context(|| format!("connect to {peer}{why}"))
            }
            _ => Err(refusal).with_context(|| format!("connect to {peer}")),
        }
    })
}

/// The one progress line of a wait for a peer.
fn announce_wait(announced: &mut bool, deadline: &Deadline, peer: &str, why: &str) {
    if !std::mem::replace(announced, true) {
        deadline.say(format_args!(
            "waiting for {peer} ({why}); retrying until the deadline"
        ));
    }
}

/// A second line of defence behind connecting through the checked descriptor: a stream
/// connection knows who listens at the other end (`SO_PEERCRED`, the listener's credentials),
/// which must be a trusted user ([`crate::runtime::trust`]). A datagram socket has no such credentials;
/// the descriptor we connected through was checked.
fn check_connected_unix(socket: &Socket, kind: SocketKind, peer: &str) -> anyhow::Result<()> {
    match kind {
        SocketKind::Datagram => Ok(()),
        SocketKind::Stream => {
            let cred = getsockopt(socket, sockopt::PeerCredentials)
                .with_context(|| format!("getsockopt(SO_PEERCRED) on the connection to {peer}"))?;
            let uid = cred.uid();
            if !trust::trusted(uid) {
                bail!(
                    "connect to {peer}: the process listening there runs as uid {uid}, not as us \
                     or root; refusing to talk to it (pass --trust-uid {uid} if that user is your \
                     peer)"
                );
            }
            Ok(())
        }
    }
}

/// `accept(2)`s one connection on `listener` within `deadline`; the connection is nonblocking.
/// `what` names what we wait for ("a client on tcp://127.0.0.1:9999").
pub fn accept(listener: &Socket, deadline: &Deadline, what: &str) -> anyhow::Result<Socket> {
    loop {
        wait::wait_fd(listener.as_fd(), PollFlags::POLLIN, deadline, what)?;
        match listener.accept() {
            Ok((conn, _)) => {
                // Linux does not pass O_NONBLOCK on from the listener.
                conn.set_nonblocking(true)
                    .with_context(|| format!("set O_NONBLOCK on {what}"))?;
                return Ok(conn);
            }
            // The client gave up between poll(2) and accept(2): wait for the next one.
            Err(err)
                if matches!(
                    errno_of(&err),
                    Some(Errno::EAGAIN | Errno::ECONNABORTED | Errno::EINTR)
                ) => {}
            Err(err) => return Err(err).with_context(|| format!("accept {what}")),
        }
    }
}

/// What one side of an [`exchange`] sends: bytes handed out in pieces, so a load run can
/// produce millions of framed messages without holding them all.
pub trait Outgoing {
    /// The bytes still to send, or an empty slice once everything was sent.
    fn pending(&mut self) -> &[u8];
    /// The first `n` bytes of the last [`Outgoing::pending`] were sent.
    fn advance(&mut self, n: usize);
}

/// One message held in memory, sent as it is.
#[derive(Debug)]
pub struct OneMessage<'a> {
    rest: &'a [u8],
}

impl<'a> OneMessage<'a> {
    pub fn new(message: &'a [u8]) -> Self {
        OneMessage { rest: message }
    }
}

impl Outgoing for OneMessage<'_> {
    fn pending(&mut self) -> &[u8] {
        self.rest
    }

    fn advance(&mut self, n: usize) {
        self.rest = &self.rest[n..];
    }
}

/// When a side of an [`exchange`] ends its own stream (`shutdown(SHUT_WR)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndOfStream {
    /// As soon as all of our message went out: the client, whose end of stream completes its
    /// message.
    AfterSending,
    /// Only once the peer's stream has ended too: the server. The client's reading our end of
    /// stream then tells it that we read all of its message; and the client, ending first, is
    /// the side that keeps TCP's TIME_WAIT, on its ephemeral port rather than the server's
    /// well-known one (where it would stop a server without `SO_REUSEADDR`, such as the blog's
    /// PHP server, from binding for a minute). An empty message still ends at once: a peer that
    /// reads once (the blog's PHP client) would otherwise wait for it while we wait for its end.
    AfterPeer,
}

/// How an [`exchange`] went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exchanged {
    /// Bytes we sent.
    pub sent: u64,
    /// Bytes the peer sent us.
    pub received: u64,
    /// The peer reset the connection once the kernel had taken all we sent: it closed without
    /// reading everything (as a PHP peer's single `socket_read($s, 1024)` does) and its stream
    /// ended there.
    pub reset_after_sending: bool,
}

/// Runs both halves of a stream exchange at once on the nonblocking `sock`: sends `outgoing`
/// whole, then `shutdown(SHUT_WR)` so the peer sees end of stream (when, `ends` says), while
/// handing every byte the peer sends to `incoming` (through `read_buf`) until its end of stream.
///
/// Doing both at once, driven by `poll(2)`, is what lets two peers exchange messages larger
/// than the socket buffers: if each wrote everything before reading, both would block on full
/// buffers forever. It also sends our message without waiting for the peer's end of stream, so
/// a PHP peer that reads once and never shuts down gets it.
///
/// A peer that goes away (`ECONNRESET`, `EPIPE`) before the kernel has taken all of our message
/// is a [`PeerGone`] error. If it resets the connection after that, its stream simply ended: our
/// message was delivered as far as we can tell, and [`Exchanged::reset_after_sending`] says so.
pub fn exchange(
    sock: &Socket,
    ends: EndOfStream,
    outgoing: &mut impl Outgoing,
    incoming: &mut impl FnMut(&[u8]) -> anyhow::Result<()>,
    read_buf: &mut [u8],
    deadline: &Deadline,
    peer: &str,
) -> anyhow::Result<Exchanged> {
    let mut state = Exchange::new(ends);
    loop {
        if deadline.expired() {
            return Err(deadline.timed_out(state.waiting_for(peer)));
        }
        match state.step(sock, outgoing, incoming, read_buf, peer)? {
            Step::Done(done) => return Ok(done),
            Step::Wait(events) => {
                wait::wait_fd(sock.as_fd(), events, deadline, state.waiting_for(peer))?;
            }
        }
    }
}

/// The state of one [`exchange`], advanced a step at a time by whoever waits for the socket:
/// [`exchange`] waits in its own `poll(2)`; a server serving many connections keeps one per
/// connection and waits for them all in one `poll(2)`. Same calls, same rules.
#[derive(Clone, Copy, Debug)]
pub struct Exchange {
    ends: EndOfStream,
    progress: Exchanged,
    sending: bool,
    receiving: bool,
    /// All of our message went out, our end of stream not yet (a server waits for the peer's).
    end_pending: bool,
    /// Set when the peer went away before taking all we send; what it sent before that is still
    /// read, so the error can say how much of its message arrived.
    gone: Option<Errno>,
}

/// What one [`Exchange::step`] came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Both messages crossed and both streams ended.
    Done(Exchanged),
    /// Nothing more to do until the socket reports one of these (`poll(2)` events).
    Wait(PollFlags),
}

impl Exchange {
    pub fn new(ends: EndOfStream) -> Self {
        Exchange {
            ends,
            progress: Exchanged {
                sent: 0,
                received: 0,
                reset_after_sending: false,
            },
            sending: true,
            receiving: true,
            end_pending: false,
            gone: None,
        }
    }

    /// How far the exchange got.
    pub fn progress(&self) -> Exchanged {
        self.progress
    }

    /// What the exchange still waits for, for a timeout's message.
    pub fn waiting_for<'a>(&self, peer: &'a str) -> impl fmt::Display + 'a {
        Pending {
            peer,
            sending: self.sending,
            receiving: self.receiving,
        }
    }

    /// Sends and receives on the nonblocking `sock` until either would block, ending our stream
    /// when due (see [`exchange`]); never waits.
    pub fn step(
        &mut self,
        sock: &Socket,
        outgoing: &mut impl Outgoing,
        incoming: &mut impl FnMut(&[u8]) -> anyhow::Result<()>,
        read_buf: &mut [u8],
        peer: &str,
    ) -> anyhow::Result<Step> {
        let fd = sock.as_raw_fd();
        let progress = &mut self.progress;
        while self.sending {
            let chunk = outgoing.pending();
            if chunk.is_empty() {
                self.sending = false;
                self.end_pending = true;
                break;
            }
            // MSG_NOSIGNAL: a vanished peer is an EPIPE to report, not a SIGPIPE to die of.
            match send(fd, chunk, MsgFlags::MSG_NOSIGNAL) {
                Ok(n) => {
                    outgoing.advance(n);
                    progress.sent += n as u64;
                }
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => {}
                Err(errno) if peer_gone(Some(errno)) => {
                    self.gone = Some(errno);
                    self.sending = false;
                }
                Err(errno) => {
                    return Err(errno).with_context(|| format!("send to {peer}"));
                }
            }
        }
        while self.receiving {
            match recv(fd, read_buf, MsgFlags::empty()) {
                Ok(0) => self.receiving = false,
                Ok(n) => {
                    progress.received += n as u64;
                    incoming(&read_buf[..n]).with_context(|| format!("receive from {peer}"))?;
                }
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => {}
                Err(Errno::ECONNRESET) if !self.sending && self.gone.is_none() => {
                    progress.reset_after_sending = true;
                    self.receiving = false;
                }
                Err(errno) if peer_gone(Some(errno)) => {
                    self.gone.get_or_insert(errno);
                    self.receiving = false;
                }
                Err(errno) => {
                    return Err(errno).with_context(|| format!("receive from {peer}"));
                }
            }
        }
        // An empty message ends at once whatever `ends` says: a peer that reads once and has
        // nothing to read (the blog's PHP client) waits for our end of stream to go on.
        let end_now =
            self.ends == EndOfStream::AfterSending || !self.receiving || progress.sent == 0;
        if self.end_pending && end_now && self.gone.is_none() {
            self.end_pending = false;
            match sock.shutdown(Shutdown::Write) {
                Ok(()) => {}
                Err(err) if peer_gone(errno_of(&err)) => progress.reset_after_sending = true,
                Err(err) => {
                    return Err(err).with_context(|| format!("shutdown(SHUT_WR) to {peer}"));
                }
            }
        }
        if let Some(errno) = self.gone {
            return Err(PeerGone::new(peer, errno, progress).into());
        }
        if !self.sending && !self.receiving && !self.end_pending {
            return Ok(Step::Done(*progress));
        }
        let mut events = PollFlags::empty();
        events.set(PollFlags::POLLOUT, self.sending);
        events.set(PollFlags::POLLIN, self.receiving);
        Ok(Step::Wait(events))
    }
}

/// For a client whose [`exchange`] ended: makes sure the server read all of our message, as
/// far as the kernel can tell, within `deadline`.
///
/// The server ends its stream only after reading ours ([`EndOfStream::AfterPeer`]); a peer
/// that instead closed with part of our message unread reset the connection (TCP sends RST,
/// a Unix socket reports `ECONNRESET`), and [`Exchanged::reset_after_sending`] says so. What
/// is left: bytes of ours still on their way when the server closed. So we wait until the
/// kernel holds none of them (`SIOCOUTQ` 0: all acknowledged by TCP, all consumed from a Unix
/// peer's queue) with no error on the socket; data arriving at a closed TCP socket is answered
/// with RST, never acknowledged. The kernel cannot signal that moment, so this polls with the
/// retry's backoff (on loopback the first look almost always succeeds).
pub fn confirm_read_by_peer(
    sock: &Socket,
    done: &Exchanged,
    deadline: &Deadline,
    peer: &str,
) -> anyhow::Result<()> {
    let not_read = |why: &dyn fmt::Display| {
        anyhow::anyhow!(
            "{peer} closed the connection without reading all of our {} bytes ({why}); the \
             message is lost in part or whole (a PHP peer reading once with socket_read($s, \
             1024) takes at most 1024 bytes)",
            done.sent
        )
    };
    if done.reset_after_sending {
        return Err(not_read(&"it reset the connection"));
    }
    wait::retry(
        deadline,
        format_args!("{peer} to take the last of our {} bytes", done.sent),
        || {
            if let Some(err) = sock
                .take_error()
                .with_context(|| format!("getsockopt(SO_ERROR) on the connection to {peer}"))?
            {
                return Err(not_read(&err));
            }
            let queued = crate::sockets::queued::unacknowledged(sock.as_fd())
                .with_context(|| format!("ioctl(SIOCOUTQ) on the connection to {peer}"))?;
            Ok((queued == 0).then_some(()))
        },
    )
}

/// The error of an [`exchange`] whose peer went away (`ECONNRESET`, `EPIPE`) before taking all
/// of our message.
#[derive(Debug)]
pub struct PeerGone {
    pub peer: String,
    pub errno: Errno,
    /// Bytes we had sent.
    pub sent: u64,
    /// Bytes the peer had sent us.
    pub received: u64,
}

impl PeerGone {
    fn new(peer: &str, errno: Errno, progress: &Exchanged) -> Self {
        PeerGone {
            peer: peer.to_string(),
            errno,
            sent: progress.sent,
            received: progress.received,
        }
    }
}

impl fmt::Display for PeerGone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exchange messages with {}: the peer went away after we sent {} bytes and it sent \
             {}, before taking all of our message ({})",
            self.peer, self.sent, self.received, self.errno
        )
    }
}

impl std::error::Error for PeerGone {}

/// The errors that mean the peer's socket is gone.
fn peer_gone(errno: Option<Errno>) -> bool {
    matches!(
        errno,
        Some(Errno::ECONNRESET | Errno::EPIPE | Errno::ENOTCONN)
    )
}

/// What an unfinished [`exchange`] waits for, for the timeout message.
struct Pending<'a> {
    peer: &'a str,
    sending: bool,
    receiving: bool,
}

impl fmt::Display for Pending<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let peer = self.peer;
        match (self.sending, self.receiving) {
            (true, true) => write!(
                f,
                "{peer} to take the rest of our message and to end its own"
            ),
            (true, false) => write!(f, "{peer} to take the rest of our message"),
            _ => write!(f, "{peer} to end its message (end of stream)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::wait::{TimedOut, Timeout};
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    fn soon() -> Deadline {
        Deadline::after(Timeout::from_duration(Duration::from_secs(10)))
    }

    fn pair() -> (Socket, Socket) {
        let (a, b) = Socket::pair(Domain::UNIX, Type::STREAM, None).unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        (a, b)
    }

    /// Runs `exchange` on `sock` sending `message`, collecting what the peer sends.
    fn swap(sock: &Socket, message: &[u8]) -> anyhow::Result<(Vec<u8>, Exchanged)> {
        let mut received = Vec::new();
        let outcome = exchange(
            sock,
            EndOfStream::AfterSending,
            &mut OneMessage::new(message),
            &mut |bytes: &[u8]| {
                received.extend_from_slice(bytes);
                Ok(())
            },
            &mut [0; 4096],
            &soon(),
            "the test peer",
        )?;
        Ok((received, outcome))
    }

    #[test]
    fn a_unix_socket_gets_exactly_the_mode_and_goes_away_with_its_guard() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        for mode in [0o640, 0o777, 0o600] {
            let BoundUnix { file: guard, .. } =
                bind_unix(&path, SocketKind::Stream, Mode(mode)).unwrap();
            let meta = path.symlink_metadata().unwrap();
            assert_eq!(meta.permissions().mode() & 0o7777, mode);
            drop(guard);
            assert!(!path.exists());
        }
    }

    #[test]
    fn port_zero_learns_the_real_port() {
        let (_socket, bound) =
            bind_inet("127.0.0.1:0".parse().unwrap(), SocketKind::Datagram).unwrap();
        assert_ne!(bound.port(), 0);
    }

    #[test]
    fn connecting_to_nobody_times_out_naming_the_peer() {
        let dir = tempfile::tempdir().unwrap();
        let addr = SockAddr::unix(dir.path().join("nobody.sock")).unwrap();
        let deadline = Deadline::after(Timeout::from_duration(Duration::from_millis(50)));
        let err =
            connect_retry(&addr, SocketKind::Stream, &deadline, "a server on nobody").unwrap_err();
        assert!(err.is::<TimedOut>(), "{err:#}");
        assert!(err.to_string().contains("waiting for a server on nobody"));
    }

    #[test]
    fn connecting_finds_a_listener_and_accept_takes_it() {
        let (listener, bound) =
            bind_inet("127.0.0.1:0".parse().unwrap(), SocketKind::Stream).unwrap();
        listener.listen(BACKLOG).unwrap();
        let client =
            connect_retry(&bound.into(), SocketKind::Stream, &soon(), "the listener").unwrap();
        let server = accept(&listener, &soon(), "the client").unwrap();
        assert_eq!(
            server.peer_addr().unwrap().as_socket(),
            client.local_addr().unwrap().as_socket()
        );
    }

    #[test]
    fn big_messages_cross_both_ways_at_once() {
        let (a, b) = pair();
        let to_b: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
        let to_a: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 241) as u8).collect();
        let expected_at_a = to_a.clone();
        let other = std::thread::spawn(move || swap(&b, &to_a).unwrap());
        let (at_a, outcome) = swap(&a, &to_b).unwrap();
        let (at_b, _) = other.join().unwrap();
        assert!(at_a == expected_at_a && at_b == to_b);
        assert_eq!((outcome.sent, outcome.received), (8 << 20, 8 << 20));
        assert!(!outcome.reset_after_sending);
    }

    #[test]
    fn a_peer_leaving_before_taking_our_message_is_an_error() {
        let (a, b) = pair();
        nix::sys::socket::send(b.as_raw_fd(), b"theirs", MsgFlags::empty()).unwrap();
        drop(b);
        let err = swap(&a, &vec![1; 1 << 20]).unwrap_err();
        let gone = err.downcast_ref::<PeerGone>().expect("a PeerGone error");
        // What the peer sent before it left still counts.
        assert_eq!((gone.errno, gone.sent, gone.received), (Errno::EPIPE, 0, 6));
        assert_eq!(
            err.to_string(),
            "exchange messages with the test peer: the peer went away after we sent 0 bytes and \
             it sent 6, before taking all of our message (EPIPE: Broken pipe)"
        );
    }

    #[test]
    fn a_reset_after_our_message_went_out_ends_the_peer_stream() {
        let (a, b) = pair();
        // The peer sends its message, then closes with ours unread: a reset, as from PHP.
        nix::sys::socket::send(b.as_raw_fd(), b"theirs", MsgFlags::empty()).unwrap();
        let (received, outcome) = {
            let closer = std::thread::spawn(move || {
                wait::wait_fd(b.as_fd(), PollFlags::POLLIN, &soon(), "our message").unwrap();
                drop(b);
            });
            let result = swap(&a, b"ours").unwrap();
            closer.join().unwrap();
            result
        };
        assert_eq!(received, b"theirs");
        assert_eq!(outcome.sent, 4);
        assert!(outcome.reset_after_sending);
    }

    #[test]
    fn an_unfinished_exchange_times_out_saying_what_it_waited_for() {
        let (a, _b) = pair();
        let deadline = Deadline::after(Timeout::from_duration(Duration::from_millis(50)));
        let err = exchange(
            &a,
            EndOfStream::AfterSending,
            &mut OneMessage::new(b"x"),
            &mut |_: &[u8]| Ok(()),
            &mut [0; 16],
            &deadline,
            "the quiet peer",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "timed out after 0.05s waiting for the quiet peer to end its message (end of stream)"
        );
    }
}
