//! The stream examples' core, shared by `stream-reader`, `stream-writer`, `ipc-load` and the
//! benchmark: a [`Listener`] that accepts clients, [`connect`] that waits for the server, and
//! [`Conn`], one connection on which each side sends its whole message and reads the other's to
//! end of stream, both at once. A program that talks back and forth in messages (the
//! benchmark's ping-pong) turns a connection into a [`TimedConn`]: one syscall per step. A
//! [`Server`] serves many clients at once, one [`sock::Exchange`] per connection in one
//! `poll(2)` loop.
//!
//! Nothing here allocates per message: a connection reads into one buffer (a [`TimedConn`] into
//! the caller's).

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use anyhow::{Context, bail};
use ipc_common::runtime::cleanup::Cleanup;
use ipc_common::runtime::cli::{MessageLimit, Mode};
use ipc_common::runtime::paths::SocketKind;
use ipc_common::runtime::wait::Deadline;
use ipc_common::sockets::endpoint::StreamEndpoint;
use ipc_common::sockets::sock::{self, EndOfStream, Exchanged, OneMessage, Outgoing, PeerGone};
use socket2::{SockAddr, Socket};

mod server;
pub use server::{Dropped, Event, Limits, Receive, Served, Server};

/// The blog's server greeting over a Unix domain stream socket.
pub const SERVER_UDS: &str = "Hello from Server: TCP/UDS [Stream]";
/// The blog's server greeting over TCP/IP.
pub const SERVER_IP: &str = "Hello from Server: TCP/IP [Stream]";
/// The blog's client message over a Unix domain stream socket.
pub const CLIENT_UDS: &str = "Hello from Client: TCP/UDS [Stream]";
/// The blog's client message over TCP/IP.
pub const CLIENT_IP: &str = "Hello from Client: TCP/IP [Stream]";

/// Bytes a connection reads at a time.
const READ_CHUNK: usize = 64 << 10;

/// The most of a peer's message either side holds: what a writer sends at most
/// ([`MessageLimit::IN_MEMORY`]).
pub const MAX_MESSAGE: usize = MessageLimit::IN_MEMORY.bytes;

/// Appends `bytes` of the peer's message to `message`, or an error once it would pass
/// [`MAX_MESSAGE`] or memory runs out: a peer that sends without end is refused, not an abort
/// of the whole process (a server's other clients included).
pub fn keep(message: &mut Vec<u8>, bytes: &[u8]) -> anyhow::Result<()> {
    let len = message.len().saturating_add(bytes.len());
    if len > MAX_MESSAGE {
        bail!(
            "its message is over {MAX_MESSAGE} bytes, the most we hold in memory: not printed \
             (it must send less)"
        );
    }
    if message.try_reserve(bytes.len()).is_err() {
        bail!(
            "out of memory holding its message ({len} bytes so far): not printed (it must send \
             less, or a server serve fewer at once: --max-clients)"
        );
    }
    message.extend_from_slice(bytes);
    Ok(())
}

/// The server's greeting for this kind of endpoint.
pub fn server_greeting(endpoint: &StreamEndpoint) -> &'static str {
    match endpoint {
        StreamEndpoint::Unix(_) => SERVER_UDS,
        StreamEndpoint::Tcp(_) => SERVER_IP,
    }
}

/// The client's message for this kind of endpoint.
pub fn client_message(endpoint: &StreamEndpoint) -> &'static str {
    match endpoint {
        StreamEndpoint::Unix(_) => CLIENT_UDS,
        StreamEndpoint::Tcp(_) => CLIENT_IP,
    }
}

/// The server's listening socket, and the socket file it removes when dropped.
#[derive(Debug)]
pub struct Listener {
    socket: Socket,
    url: StreamEndpoint,
    waiting_for: String,
    _socket_file: Option<Cleanup>,
    replaced_stale: bool,
}

impl Listener {
    /// Binds and listens on `endpoint`: a socket file with exactly `mode` (a stale one
    /// replaced, anything else refused), or a TCP address with `SO_REUSEADDR` (port 0: the
    /// kernel picks one, see [`Listener::url`]).
    pub fn bind(endpoint: &StreamEndpoint, mode: Mode) -> anyhow::Result<Self> {
        let mut replaced_stale = false;
        let (socket, url, socket_file) = match endpoint {
            StreamEndpoint::Unix(path) => {
                let bound = sock::bind_unix(path, SocketKind::Stream, mode)?;
                replaced_stale = bound.replaced_stale;
                (bound.socket, endpoint.clone(), Some(bound.file))
            }
            StreamEndpoint::Tcp(addr) => {
                let (socket, bound) = sock::bind_inet(*addr, SocketKind::Stream)?;
                (socket, StreamEndpoint::Tcp(bound), None)
            }
        };
        socket
            .listen(sock::BACKLOG)
            .with_context(|| format!("listen on {url}"))?;
        Ok(Listener {
            socket,
            waiting_for: format!("a client on {url}"),
            url,
            _socket_file: socket_file,
            replaced_stale,
        })
    }

    /// Whether binding removed a stale socket file first (nobody was listening on it).
    pub fn replaced_stale(&self) -> bool {
        self.replaced_stale
    }

    /// Where we really listen (with the port the kernel chose).
    pub fn url(&self) -> &StreamEndpoint {
        &self.url
    }

    /// The listening socket, for options its connections inherit (`SO_RCVBUF`, ...).
    pub fn socket(&self) -> &Socket {
        &self.socket
    }

    /// `close(2)`, then `unlink(2)` of the socket file (Unix); an unlink that fails is an
    /// error, not a file silently left behind.
    pub fn close(self) -> anyhow::Result<()> {
        let Listener {
            socket,
            _socket_file: socket_file,
            ..
        } = self;
        drop(socket);
        socket_file.map_or(Ok(()), Cleanup::remove)
    }

    /// Waits (until `deadline`) for the next client.
    pub fn accept(&self, deadline: &Deadline) -> anyhow::Result<Conn> {
        let socket = sock::accept(&self.socket, deadline, &self.waiting_for)?;
        Ok(Conn::new(
            socket,
            format!("the client on {}", self.url),
            EndOfStream::AfterPeer,
        ))
    }
}

/// Connects to the server at `endpoint`, retrying until `deadline` while nobody listens there.
pub fn connect(endpoint: &StreamEndpoint, deadline: &Deadline) -> anyhow::Result<Conn> {
    let addr = match endpoint {
        StreamEndpoint::Unix(path) => SockAddr::unix(path)
            .with_context(|| format!("connect to {endpoint}: {}", path.display()))?,
        StreamEndpoint::Tcp(addr) => (*addr).into(),
    };
    let socket = sock::connect_retry(
        &addr,
        SocketKind::Stream,
        deadline,
        &format!("a server on {endpoint}"),
    )?;
    Ok(Conn::new(
        socket,
        format!("the server on {endpoint}"),
        EndOfStream::AfterSending,
    ))
}

/// One connected stream socket, nonblocking.
#[derive(Debug)]
pub struct Conn {
    socket: Socket,
    peer: String,
    /// The client ends its stream with its message; the server only after the client's.
    ends: EndOfStream,
    read_buf: Vec<u8>,
}

impl Conn {
    fn new(socket: Socket, peer: String, ends: EndOfStream) -> Self {
        Conn {
            socket,
            peer,
            ends,
            read_buf: vec![0; READ_CHUNK],
        }
    }

    /// Who is at the other end ("the server on tcp://127.0.0.1:9999").
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// The connected socket, for options (`TCP_NODELAY`, `SO_SNDBUF`, ...).
    pub fn socket(&self) -> &Socket {
        &self.socket
    }

    /// `close(2)`: what we sent was read (see [`Conn::exchange`]), nothing is left behind.
    pub fn close(self) {
        drop(self.socket);
    }

    /// Switches to per-message calls: see [`TimedConn`].
    pub fn timed(self, deadline: &Deadline) -> anyhow::Result<TimedConn> {
        let Conn { socket, peer, .. } = self;
        socket
            .set_nonblocking(false)
            .with_context(|| format!("clear O_NONBLOCK on the connection to {peer}"))?;
        // SO_RCVTIMEO 0 means "forever", so a deadline that has just passed still gets 1 ms.
        let left = deadline
            .remaining()
            .map(|left| left.max(Duration::from_millis(1)));
        socket
            .set_read_timeout(left)
            .with_context(|| format!("setsockopt(SO_RCVTIMEO) on the connection to {peer}"))?;
        socket
            .set_write_timeout(left)
            .with_context(|| format!("setsockopt(SO_SNDTIMEO) on the connection to {peer}"))?;
        Ok(TimedConn {
            socket,
            peer,
            deadline: *deadline,
        })
    }

    /// Sends `outgoing` whole and ends our stream, while handing the peer's bytes to
    /// `incoming` until its end of stream: see [`sock::exchange`], which also says when a peer
    /// reset is an error. A server ends its stream after the client's; a client then makes
    /// sure the server read all of its message ([`sock::confirm_read_by_peer`]): only then is
    /// the exchange a success.
    pub fn exchange(
        &mut self,
        outgoing: &mut impl Outgoing,
        incoming: &mut impl FnMut(&[u8]) -> anyhow::Result<()>,
        deadline: &Deadline,
    ) -> anyhow::Result<Exchanged> {
        let done = sock::exchange(
            &self.socket,
            self.ends,
            outgoing,
            incoming,
            &mut self.read_buf,
            deadline,
            &self.peer,
        )?;
        match self.ends {
            EndOfStream::AfterSending => {
                sock::confirm_read_by_peer(&self.socket, &done, deadline, &self.peer)?;
            }
            EndOfStream::AfterPeer if done.reset_after_sending => deadline.say(format_args!(
                "{} reset the connection after our whole message went out: it closed without \
                 reading all of it (as PHP's single socket_read does), which ended its message",
                self.peer
            )),
            EndOfStream::AfterPeer => {}
        }
        Ok(done)
    }

    /// The blog's exchange: sends `message` and puts the peer's whole message in `received`
    /// (cleared first, so one buffer serves a whole run).
    pub fn swap(
        &mut self,
        message: &[u8],
        received: &mut Vec<u8>,
        deadline: &Deadline,
    ) -> anyhow::Result<Exchanged> {
        received.clear();
        self.exchange(
            &mut OneMessage::new(message),
            &mut |bytes: &[u8]| keep(received, bytes),
            deadline,
        )
    }
}

/// A connection for messages back and forth: blocking `send(2)`/`recv(2)`, each bounded by
/// `SO_SNDTIMEO`/`SO_RCVTIMEO`, set once to the time left until the run's deadline.
///
/// A [`Conn`] is nonblocking and waits in `poll(2)`, which a whole-message exchange needs
/// (it sends and receives at once). Turn by turn, that costs a `recv(2)` that finds nothing,
/// a `poll(2)` and a second `recv(2)` each time the peer has not answered yet, which in a
/// ping-pong is every time; here each step is one call that sleeps in the kernel, a timed
/// call like `semtimedop(2)`, and a timeout (`EAGAIN`) is the deadline passing. The timeouts
/// are the time left when [`Conn::timed`] ran, so a call made later may wait past the deadline
/// by as much as the run has used since; a call made after the deadline gives up at once. The
/// caller owns the buffers.
#[derive(Debug)]
pub struct TimedConn {
    socket: Socket,
    peer: String,
    deadline: Deadline,
}

impl TimedConn {
    /// Sends all of `bytes`.
    pub fn send(&self, mut bytes: &[u8]) -> anyhow::Result<()> {
        if self.deadline.expired() {
            return Err(self
                .deadline
                .timed_out(format_args!("room towards {}", self.peer)));
        }
        while !bytes.is_empty() {
            match (&self.socket).write(bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    return Err(self
                        .deadline
                        .timed_out(format_args!("room towards {}", self.peer)));
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err).with_context(|| format!("send to {}", self.peer)),
            }
        }
        Ok(())
    }

    /// One `recv(2)` into `buf`: what arrived, at least a byte; 0 means end of stream.
    pub fn recv_some(&self, buf: &mut [u8]) -> anyhow::Result<usize> {
        if self.deadline.expired() {
            return Err(self
                .deadline
                .timed_out(format_args!("bytes from {}", self.peer)));
        }
        loop {
            match (&self.socket).read(buf) {
                Ok(n) => return Ok(n),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    return Err(self
                        .deadline
                        .timed_out(format_args!("bytes from {}", self.peer)));
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err).with_context(|| format!("recv from {}", self.peer)),
            }
        }
    }

    /// Fills all of `buf`; an end of stream before that is an error.
    pub fn recv_exact(&self, buf: &mut [u8]) -> anyhow::Result<()> {
        let mut got = 0;
        while got < buf.len() {
            match self.recv_some(&mut buf[got..])? {
                0 => bail!(
                    "{} closed the connection {got} bytes into a {}-byte message",
                    self.peer,
                    buf.len()
                ),
                n => got += n,
            }
        }
        Ok(())
    }

    /// `shutdown(SHUT_WR)`: the peer reads end of stream once it has everything we sent.
    pub fn finish_sending(&self) -> anyhow::Result<()> {
        self.socket
            .shutdown(Shutdown::Write)
            .with_context(|| format!("shutdown(SHUT_WR) towards {}", self.peer))
    }
}

/// Whether the peer of an exchange connected and left without a word, before taking our
/// message: a liveness probe (another server's stale-socket check, a port scanner, a health
/// check) rather than a client, which a server need not count.
///
/// A client that sends nothing still reads our message before it closes, which ends the
/// exchange normally; only one that also leaves part of our message unread looks like a probe.
pub fn left_without_a_word(outcome: &anyhow::Result<Exchanged>) -> bool {
    match outcome {
        Ok(done) => done.reset_after_sending && done.received == 0,
        Err(err) => err
            .downcast_ref::<PeerGone>()
            .is_some_and(|gone| gone.received == 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipc_common::runtime::wait::Timeout;

    /// Both ends of a connected Unix stream pair, as timed connections.
    fn timed_pair(deadline: &Deadline) -> (TimedConn, TimedConn) {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let timed = |end: std::os::unix::net::UnixStream, peer: &str| {
            Conn::new(
                Socket::from(std::os::fd::OwnedFd::from(end)),
                peer.into(),
                EndOfStream::AfterSending,
            )
            .timed(deadline)
            .unwrap()
        };
        (timed(a, "a"), timed(b, "b"))
    }

    #[test]
    fn a_timed_connection_carries_messages_both_ways_and_ends() {
        let (a, b) = timed_pair(&Deadline::after(Timeout::from_duration(
            Duration::from_secs(5),
        )));
        let mut buf = [0; 5];
        a.send(b"hello").unwrap();
        b.recv_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        b.send(&buf).unwrap();
        a.finish_sending().unwrap();
        a.recv_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        assert_eq!(b.recv_some(&mut buf).unwrap(), 0, "end of stream");
        b.send(b"x").unwrap();
        b.finish_sending().unwrap();
        let err = a.recv_exact(&mut [0; 2]).unwrap_err();
        assert!(
            err.to_string()
                .contains("closed the connection 1 bytes into a 2-byte message")
        );
    }

    #[test]
    fn a_timed_connection_gives_up_at_the_deadline() {
        let (a, _b) = timed_pair(&Deadline::after(Timeout::from_duration(
            Duration::from_millis(50),
        )));
        let err = a.recv_some(&mut [0; 1]).unwrap_err();
        assert!(err.is::<ipc_common::runtime::wait::TimedOut>(), "{err:#}");
        assert_eq!(
            err.to_string(),
            "timed out after 0.05s waiting for bytes from a"
        );
        let late = a.send(b"x").unwrap_err();
        assert!(
            late.is::<ipc_common::runtime::wait::TimedOut>(),
            "after the deadline: {late:#}"
        );
    }
}
