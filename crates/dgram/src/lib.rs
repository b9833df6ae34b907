//! The datagram examples' core, shared by `dgram-reader`, `dgram-writer`, `ipc-load` and the
//! benchmark: a [`Receiver`] that takes each datagram whole, whatever its size, and a [`Sender`]
//! that waits for its reader instead of losing datagrams.
//!
//! Neither allocates per message: the receiver reuses one buffer, as big as the largest datagram
//! a sender can make; the sender sends from the caller's buffer.

use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd};

use anyhow::{Context, anyhow, bail};
use ipc_common::runtime::cleanup::Cleanup;
use ipc_common::runtime::cli::{MessageLimit, Mode};
use ipc_common::runtime::paths::SocketKind;
use ipc_common::runtime::wait::{self, Deadline};
use ipc_common::sockets::endpoint::DgramEndpoint;
use ipc_common::sockets::sock::{self, errno_of};
use nix::errno::Errno;
use nix::poll::PollFlags;
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockaddrStorage, recv, recvmsg, send, sendmsg,
    setsockopt, sockopt,
};
use socket2::{Domain, SockAddr, Socket};

pub mod cli;
pub mod group;

pub use group::{Audience, Interface};

/// The blog's message over a Unix domain datagram socket.
pub const UDS_MESSAGE: &str = "Hello from Sender: UDP/UDS [Datagram]";
/// The blog's message over UDP/IP.
pub const IP_MESSAGE: &str = "Hello from Sender: UDP/IP [Datagram]";

/// The largest UDP payload over IPv4: 65535 bytes of IP packet, less 20 of IP and 8 of UDP header.
pub const UDP_MAX_IPV4: usize = 65_507;
/// The largest UDP payload over IPv6 (without jumbograms): 65535, less 8 of UDP header.
pub const UDP_MAX_IPV6: usize = 65_527;
/// What a Unix datagram must leave free in the sender's `SO_SNDBUF` (`net/unix/af_unix.c`
/// refuses `len > sk_sndbuf - 32`).
pub const UNIX_OVERHEAD: usize = 32;

/// The most the kernel puts into one Unix datagram however big the buffers: `af_unix.c` builds
/// it from one contiguous allocation (at most `KMALLOC_MAX_SIZE`, 4 MiB with 4 KiB pages, less
/// the 320 bytes of `skb_shared_info` at its end) plus `MAX_SKB_FRAGS` (17) pages of fragments.
/// A longer one fails with `ENOBUFS`, not `EMSGSIZE`; 4,263,616 bytes measured on Linux 6.18.
pub const UNIX_KERNEL_MAX: usize = (4 << 20) - 320 + 17 * 4096;

/// The largest datagram a sender can make to `endpoint`, and why.
///
/// UDP: 65,507 bytes over IPv4, 65,527 over IPv6 (65,535 less the headers). Unix: a datagram
/// must fit the sender's `SO_SNDBUF` less [`UNIX_OVERHEAD`], and a sender can raise that to
/// twice `net.core.wmem_max` (socket(7)); past that, the kernel's own ceiling
/// [`UNIX_KERNEL_MAX`] applies, whichever is lower.
pub fn message_limit(endpoint: &DgramEndpoint) -> anyhow::Result<MessageLimit> {
    const WMEM_MAX: &str = "/proc/sys/net/core/wmem_max";
    Ok(match endpoint {
        DgramEndpoint::Udp(addr) if addr.is_ipv4() => MessageLimit {
            bytes: UDP_MAX_IPV4,
            why: "a UDP datagram over IPv4 carries at most 65507 bytes".into(),
        },
        DgramEndpoint::Udp(_) => MessageLimit {
            bytes: UDP_MAX_IPV6,
            why: "a UDP datagram over IPv6 carries at most 65527 bytes".into(),
        },
        DgramEndpoint::Unix(_) => {
            let text = std::fs::read_to_string(WMEM_MAX).with_context(|| {
                format!("read {WMEM_MAX} (how big a Unix datagram a sender can make)")
            })?;
            let wmem_max: usize = text
                .trim()
                .parse()
                .with_context(|| format!("read {WMEM_MAX}: `{}` is not a number", text.trim()))?;
            let by_buffer = wmem_max.saturating_mul(2).saturating_sub(UNIX_OVERHEAD);
            if by_buffer < UNIX_KERNEL_MAX {
                MessageLimit {
                    bytes: by_buffer,
                    why: "a Unix datagram must fit the sender's SO_SNDBUF, at most twice \
                          net.core.wmem_max, less 32 bytes"
                        .into(),
                }
            } else {
                MessageLimit {
                    bytes: UNIX_KERNEL_MAX,
                    why: "the kernel builds a Unix datagram from one 4 MiB allocation plus 17 \
                          pages"
                        .into(),
                }
            }
        }
    })
}

/// The largest datagram a sender can make to `endpoint`: the receiver's buffer size.
pub fn largest_datagram(endpoint: &DgramEndpoint) -> anyhow::Result<usize> {
    Ok(message_limit(endpoint)?.bytes)
}

/// The blog's message for this kind of endpoint.
pub fn default_message(endpoint: &DgramEndpoint) -> &'static str {
    match endpoint {
        DgramEndpoint::Unix(_) => UDS_MESSAGE,
        DgramEndpoint::Udp(_) => IP_MESSAGE,
    }
}

/// The listening side: a bound datagram socket, and the socket file it removes when dropped.
#[derive(Debug)]
pub struct Receiver {
    socket: Socket,
    url: DgramEndpoint,
    buf: Vec<u8>,
    _socket_file: Option<Cleanup>,
    replaced_stale: bool,
    /// `Some` once [`Receiver::remember_senders`] asked for it (boxed: an address is 132
    /// bytes, and most readers never ask).
    senders: Option<Box<Senders>>,
}

/// What a reader that answers notes of the last datagram.
#[derive(Debug, Default)]
struct Senders {
    /// Its sender.
    from: Option<SockAddr>,
    /// UDP on a wildcard address: `IP_PKTINFO`/`IPV6_RECVPKTINFO` is on, and `to_us` is where
    /// it was sent, which a reply must come from (see [`Receiver::remember_senders`]).
    pktinfo: bool,
    to_us: Option<ToUs>,
}

/// Where a datagram came in: the local address it was sent to and the interface.
#[derive(Clone, Copy, Debug)]
struct ToUs {
    addr: std::net::IpAddr,
    ifindex: u32,
}

/// How a UDP reader listens besides its address: see [`Receiver::bind_with`].
#[derive(Clone, Debug, Default)]
pub struct Listen {
    /// `SO_REUSEADDR` + `SO_REUSEPORT`: other readers may bind the same port (for broadcast;
    /// a multicast group address shares its port anyway).
    pub shared: bool,
    /// The interface a multicast reader joins its group on (`None`: the one the route picks).
    pub interface: Option<Interface>,
}

impl Receiver {
    /// Binds `endpoint`: a socket file with exactly `mode` (a stale one replaced, anything else
    /// refused), or a UDP address (port 0: the kernel picks one, see [`Receiver::url`]).
    pub fn bind(endpoint: &DgramEndpoint, mode: Mode) -> anyhow::Result<Self> {
        Self::bind_with(endpoint, mode, &Listen::default())
    }

    /// [`Receiver::bind`], and for UDP: a multicast group address (224.0.0.0/4, ff00::/8) is
    /// bound with a shared port and joined (`IP_ADD_MEMBERSHIP` / `IPV6_JOIN_GROUP`) on
    /// `listen.interface`; `listen.shared` shares any other port (for broadcast readers).
    pub fn bind_with(
        endpoint: &DgramEndpoint,
        mode: Mode,
        listen: &Listen,
    ) -> anyhow::Result<Self> {
        let mut replaced_stale = false;
        let (socket, url, socket_file) = match endpoint {
            DgramEndpoint::Unix(path) => {
                let bound = sock::bind_unix(path, SocketKind::Datagram, mode)?;
                replaced_stale = bound.replaced_stale;
                (bound.socket, endpoint.clone(), Some(bound.file))
            }
            DgramEndpoint::Udp(addr) => {
                let (socket, bound) = bind_udp(*addr, listen)?;
                (socket, DgramEndpoint::Udp(bound), None)
            }
        };
        let buf = vec![0; largest_datagram(&url)?];
        Ok(Receiver {
            socket,
            url,
            buf,
            _socket_file: socket_file,
            replaced_stale,
            senders: None,
        })
    }

    /// From now on, [`Receiver::recv`] notes each datagram's sender (`recvfrom(2)`
    /// asking for the address, where `recv(2)` asks for none), so that [`Receiver::reply`] can answer it.
    ///
    /// A UDP reader on a wildcard address (`0.0.0.0`, `[::]`) also notes the address each
    /// datagram was sent to (`IP_PKTINFO`, `IPV6_RECVPKTINFO`): a writer's connected socket
    /// takes datagrams from that address alone, and the kernel would otherwise answer from the
    /// address its route picks (127.0.0.1 for a datagram sent to 127.0.0.2).
    pub fn remember_senders(&mut self) -> anyhow::Result<()> {
        let mut senders = Senders::default();
        if let DgramEndpoint::Udp(addr) = &self.url
            && addr.ip().is_unspecified()
        {
            let fd = self.socket.as_fd();
            let set = match addr {
                SocketAddr::V4(_) => setsockopt(&fd, sockopt::Ipv4PacketInfo, &true),
                SocketAddr::V6(_) => setsockopt(&fd, sockopt::Ipv6RecvPacketInfo, &true),
            };
            set.with_context(|| {
                format!(
                    "setsockopt(IP_PKTINFO) on {}: to answer from the address written to",
                    self.url
                )
            })?;
            senders.pktinfo = true;
        }
        self.senders = Some(Box::new(senders));
        Ok(())
    }

    /// Answers the last datagram's sender with `reply`: `sendto(2)` its address, from the
    /// socket the datagram came in on (the blog's "a new socket" is not needed).
    ///
    /// A Unix sender whose socket has no address (it never bound one: the blog's writer, and
    /// ours without `--expect-reply`) cannot be answered: an error says so. A Unix sender that
    /// is gone is an error too (`ECONNREFUSED`); a UDP one is not noticed (no ICMP reaches an
    /// unconnected socket), the reply counts as sent.
    /// Returns the address answered (`udp://HOST:PORT`, `udg://@NAME`, `udg://PATH`).
    pub fn reply(&self, reply: &[u8], deadline: &Deadline) -> anyhow::Result<String> {
        let Some(Senders {
            from: Some(to),
            to_us,
            ..
        }) = self.senders.as_deref()
        else {
            bail!("reply on {}: no datagram received yet", self.url);
        };
        let Some(to_url) = sender_url(to) else {
            bail!(
                "reply on {}: the sender's socket has no address (it never bound one), so it \
                 cannot be answered; a writer that wants a reply binds its socket first \
                 (dgram-writer --expect-reply, or socket_bind in PHP)",
                self.url
            );
        };
        loop {
            let sent = match (*to_us, to.as_socket()) {
                (Some(from), Some(to)) => send_from(self.socket.as_raw_fd(), reply, from, to),
                _ => self
                    .socket
                    .send_to_with_flags(reply, to, MsgFlags::MSG_NOSIGNAL.bits())
                    .map_err(|err| errno_of(&err).unwrap_or(Errno::UnknownErrno)),
            };
            match sent {
                Ok(_) => return Ok(to_url),
                Err(Errno::EAGAIN) => {
                    wait::wait_fd(
                        self.socket.as_fd(),
                        PollFlags::POLLOUT,
                        deadline,
                        format_args!("room in the queue of the writer at {to_url} (for the reply)"),
                    )?;
                }
                Err(Errno::EINTR) => {}
                Err(errno @ (Errno::ECONNREFUSED | Errno::ENOENT)) => bail!(
                    "reply of {} bytes to {to_url}: {errno} (the writer is gone; the datagram it \
                     sent was received and printed)",
                    reply.len()
                ),
                Err(errno) => {
                    return Err(errno)
                        .with_context(|| format!("reply of {} bytes to {to_url}", reply.len()));
                }
            }
        }
    }

    /// Whether binding removed a stale socket file first (nobody was listening on it).
    pub fn replaced_stale(&self) -> bool {
        self.replaced_stale
    }

    /// Where we really listen (with the port the kernel chose).
    pub fn url(&self) -> &DgramEndpoint {
        &self.url
    }

    /// Asks for a receive queue of `bytes` (the kernel caps it at `net.core.rmem_max`): a UDP
    /// reader that falls behind a burst silently drops whatever does not fit.
    pub fn set_receive_buffer(&self, bytes: usize) -> anyhow::Result<()> {
        self.socket
            .set_recv_buffer_size(bytes)
            .with_context(|| format!("setsockopt(SO_RCVBUF, {bytes}) on {}", self.url))
    }

    /// Waits for the next datagram and returns it whole.
    ///
    /// One `recv(2)` into a buffer as big as the largest datagram a sender can make here (see
    /// [`largest_datagram`]); only when nothing is queued (`EAGAIN`) does `poll(2)` wait. So a
    /// reader that keeps up with a stream of datagrams makes one call per datagram, as a C
    /// program's blocking `read(2)` does. `MSG_TRUNC` makes `recv` return the datagram's real
    /// size, so a datagram bigger than the buffer (a sender that forced its `SO_SNDBUF` past
    /// `net.core.wmem_max`, which takes `CAP_NET_ADMIN`) is an error naming both sizes, never a
    /// silently shortened message. (PHP's `socket_recvfrom($s, $buf, 1024, ...)` silently cuts it
    /// at 1024 bytes.)
    pub fn recv(&mut self, deadline: &Deadline) -> anyhow::Result<&[u8]> {
        let fd = self.socket.as_raw_fd();
        loop {
            let received = match self.senders.as_deref_mut() {
                None => recv(fd, &mut self.buf, MsgFlags::MSG_TRUNC),
                Some(senders) if senders.pktinfo => {
                    recv_to_us(fd, &mut self.buf).map(|(size, from, to_us)| {
                        senders.from = from;
                        senders.to_us = to_us;
                        size
                    })
                }
                Some(senders) => self
                    .socket
                    .recv_from_with_flags(as_uninit(&mut self.buf), MsgFlags::MSG_TRUNC.bits())
                    .map(|(size, from)| {
                        senders.from = Some(from);
                        size
                    })
                    .map_err(|err| errno_of(&err).unwrap_or(Errno::UnknownErrno)),
            };
            match received {
                Ok(size) if size <= self.buf.len() => return Ok(&self.buf[..size]),
                Ok(size) => bail!(
                    "recv on {}: a {size}-byte datagram, bigger than the {} bytes any sender \
                     without CAP_NET_ADMIN can make here; it was cut, so it is refused",
                    self.url,
                    self.buf.len()
                ),
                Err(Errno::EAGAIN) => {
                    wait::wait_fd(
                        self.socket.as_fd(),
                        PollFlags::POLLIN,
                        deadline,
                        format_args!("a datagram on {}", self.url),
                    )?;
                }
                Err(Errno::EINTR) => {}
                Err(errno) => {
                    return Err(errno).with_context(|| format!("recv on {}", self.url));
                }
            }
        }
    }

    /// `close(2)`, then `unlink(2)` of the socket file (Unix); an unlink that fails is an
    /// error, not a file silently left behind.
    pub fn close(self) -> anyhow::Result<()> {
        let Receiver {
            socket,
            _socket_file: socket_file,
            ..
        } = self;
        drop(socket);
        socket_file.map_or(Ok(()), Cleanup::remove)
    }
}

/// The sending side: a datagram socket connected to its reader.
#[derive(Debug)]
pub struct Sender {
    socket: Socket,
    url: DgramEndpoint,
    peer: String,
    send_buffer: usize,
    announced: bool,
    /// UDP: a datagram went out and no refusal came back, so the reader is there; until a
    /// refusal says otherwise, `SO_ERROR` need not be read after every send.
    reader_seen: bool,
    audience: Audience,
    /// Unix with `expect_reply`: removes the reply socket's file and private directory.
    _reply_socket: Option<Cleanup>,
}

/// How a writer sends besides its address: see [`Sender::open`].
#[derive(Clone, Debug)]
pub struct SendOptions {
    /// `SO_BROADCAST`: the address may be a broadcast address.
    pub broadcast: bool,
    /// `IP_MULTICAST_TTL` / `IPV6_MULTICAST_HOPS` for a group address (1: this link only).
    pub ttl: u32,
    /// `IP_MULTICAST_IF` / `IPV6_MULTICAST_IF` for a group address (`None`: the routed one).
    pub interface: Option<Interface>,
    /// Give the socket an address a reader can answer (Unix: a path in a private
    /// directory; UDP: `connect(2)` gives it an ephemeral port anyway).
    pub expect_reply: bool,
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions {
            broadcast: false,
            ttl: 1,
            interface: None,
            expect_reply: false,
        }
    }
}

impl Listen {
    /// Options that cannot go together with `endpoint`, as a usage error's text.
    pub fn check(&self, endpoint: &DgramEndpoint) -> Result<(), String> {
        match endpoint {
            DgramEndpoint::Unix(_) if self.shared || self.interface.is_some() => {
                Err("--shared and --interface are for udp:// addresses".into())
            }
            DgramEndpoint::Udp(addr) if self.interface.is_some() && !addr.ip().is_multicast() => {
                Err(format!(
                    "--interface chooses where to join a multicast group: {endpoint} is none \
                     (to listen on one interface, bind its address)"
                ))
            }
            DgramEndpoint::Udp(addr) => group::scoped(addr, self.interface.as_ref()).map(drop),
            _ => Ok(()),
        }
    }
}

impl SendOptions {
    /// Options that cannot go together with `endpoint`, as a usage error's text.
    pub fn check(&self, endpoint: &DgramEndpoint) -> Result<(), String> {
        let multicast = matches!(endpoint, DgramEndpoint::Udp(addr) if addr.ip().is_multicast());
        if self.interface.is_some() && !multicast {
            return Err(format!(
                "--interface chooses where multicast goes out: {endpoint} is not a group address"
            ));
        }
        if let DgramEndpoint::Udp(addr) = endpoint {
            group::scoped(addr, self.interface.as_ref())?;
        }
        let audience = match endpoint {
            DgramEndpoint::Udp(addr) => Audience::of(addr, self.broadcast),
            DgramEndpoint::Unix(_) if self.broadcast => {
                return Err(
                    "--broadcast is for udp:// addresses; a Unix socket has one reader".into(),
                );
            }
            DgramEndpoint::Unix(_) => Audience::One,
        };
        if self.expect_reply && audience.is_many() {
            return Err(format!(
                "--expect-reply needs one reader: {endpoint} may reach many, and each would \
                 answer from its own address"
            ));
        }
        Ok(())
    }
}

impl Sender {
    /// Who a datagram of ours reaches: one reader, or any number ([`Audience::is_many`]),
    /// which no sender can count.
    pub fn audience(&self) -> Audience {
        self.audience
    }

    /// [`Sender::connect`] with `options`: multicast and broadcast (UDP), and an address for
    /// replies.
    ///
    /// UDP: the socket options are set before `connect(2)`, which refuses a broadcast
    /// address with `EACCES` unless `SO_BROADCAST` is on (the error says to pass
    /// `--broadcast`). Unix with `expect_reply`: after the connect, `bind(2)` gives the socket a
    /// path in a private directory, which the reader's `recvfrom` sees (`bind_reply_path`). Only the reader can send to it: a connected
    /// datagram socket takes datagrams from its peer alone.
    pub fn open(
        endpoint: &DgramEndpoint,
        options: &SendOptions,
        deadline: &Deadline,
    ) -> anyhow::Result<Self> {
        let (socket, audience) = match endpoint {
            DgramEndpoint::Udp(addr) => {
                let audience = Audience::of(addr, options.broadcast);
                (connect_udp(*addr, audience, options)?, audience)
            }
            DgramEndpoint::Unix(_) => {
                let mut sender = Self::connect(endpoint, deadline)?;
                if options.expect_reply {
                    sender._reply_socket = Some(bind_reply_path(&sender.socket, endpoint)?);
                }
                sender.audience = Audience::One;
                return Ok(sender);
            }
        };
        let send_buffer = socket
            .send_buffer_size()
            .with_context(|| format!("getsockopt(SO_SNDBUF) on the socket to {endpoint}"))?;
        Ok(Sender {
            socket,
            url: endpoint.clone(),
            peer: format!("a reader on {endpoint}"),
            send_buffer,
            announced: false,
            reader_seen: false,
            audience,
            _reply_socket: None,
        })
    }

    /// Waits (until `deadline`) for the reader's reply on our own socket and returns it whole.
    /// Only the reader can send it: our socket is connected to the reader's address.
    pub fn recv_reply(&self, deadline: &Deadline) -> anyhow::Result<Vec<u8>> {
        let mut buf = vec![0; largest_datagram(&self.url)?];
        let fd = self.socket.as_raw_fd();
        loop {
            match recv(fd, &mut buf, MsgFlags::MSG_TRUNC) {
                Ok(size) if size <= buf.len() => {
                    buf.truncate(size);
                    return Ok(buf);
                }
                Ok(size) => bail!("recv the reply from {}: {size} bytes, too big", self.url),
                Err(Errno::EAGAIN) => {
                    wait::wait_fd(
                        self.socket.as_fd(),
                        PollFlags::POLLIN,
                        deadline,
                        format_args!(
                            "a reply from {} (none came: is it running with --reply? A reader \
                             that died after our datagram reached its socket cannot answer)",
                            self.peer
                        ),
                    )?;
                }
                Err(Errno::EINTR) => {}
                Err(Errno::ECONNREFUSED) => bail!(
                    "recv the reply from {}: {} (the reader went away without answering)",
                    self.url,
                    Errno::ECONNREFUSED
                ),
                Err(errno) => {
                    return Err(errno).with_context(|| format!("recv the reply from {}", self.url));
                }
            }
        }
    }

    /// Connects a new socket to the reader at `endpoint`, waiting for it until `deadline`.
    ///
    /// Unix: `connect(2)` to the socket file is retried while the file is missing or nobody is
    /// bound to it; our own socket stays unbound, so we leave no file behind. UDP: `connect(2)`
    /// sends nothing, it sets the destination and asks the kernel to report ICMP errors for it
    /// (see [`Sender::send`]).
    pub fn connect(endpoint: &DgramEndpoint, deadline: &Deadline) -> anyhow::Result<Self> {
        let peer = format!("a reader on {endpoint}");
        let addr = match endpoint {
            DgramEndpoint::Unix(path) => SockAddr::unix(path)
                .with_context(|| format!("connect to {peer}: {}", path.display()))?,
            DgramEndpoint::Udp(addr) => (*addr).into(),
        };
        let socket = sock::connect_retry(&addr, SocketKind::Datagram, deadline, &peer)?;
        let send_buffer = socket
            .send_buffer_size()
            .with_context(|| format!("getsockopt(SO_SNDBUF) on the socket to {endpoint}"))?;
        Ok(Sender {
            socket,
            url: endpoint.clone(),
            peer,
            send_buffer,
            announced: false,
            reader_seen: false,
            audience: Audience::One,
            _reply_socket: None,
        })
    }

    pub fn url(&self) -> &DgramEndpoint {
        &self.url
    }

    /// Sends `datagram` whole, waiting (until `deadline`) for room and for a reader.
    ///
    /// Unix: when the reader's queue is full, the kernel refuses with `EAGAIN` and `poll(2)`
    /// waits for room: nothing is ever dropped. A reader that went away is an error.
    ///
    /// UDP: nothing says whether anyone received a datagram. On loopback, a datagram sent to a
    /// port nobody listens on makes the kernel answer ICMP "port unreachable" during our
    /// `send(2)`, and a connected socket turns it into `ECONNREFUSED`, which we read at once
    /// with `getsockopt(SO_ERROR)`: the datagram was lost, so we send it again until a reader is
    /// there. Once a datagram has gone through unrefused, the reader is there and we stop
    /// asking: a later refusal (the reader went away) is reported by the next `send(2)` itself,
    /// which then sends nothing, and we ask after every send again until a reader answers. The
    /// datagram sent just before that refusal went to a reader that was gone, like the ones
    /// still in its queue. Off loopback the ICMP answer comes a round trip later, if at all
    /// (firewalls drop it, and a remote host may not send it): the datagram counts as sent and
    /// may be lost silently, as PHP's `socket_sendto` always risks; a late refusal then makes us
    /// resend a later datagram, not the lost one.
    pub fn send(&mut self, datagram: &[u8], deadline: &Deadline) -> anyhow::Result<()> {
        if matches!(self.url, DgramEndpoint::Unix(_)) {
            self.fit_send_buffer(datagram.len())?;
        }
        let udp = matches!(self.url, DgramEndpoint::Udp(_));
        let fd = self.socket.as_raw_fd();
        let (socket, url, peer, send_buffer) = (
            &self.socket,
            &self.url,
            self.peer.as_str(),
            self.send_buffer,
        );
        let (announced, reader_seen) = (&mut self.announced, &mut self.reader_seen);
        wait::retry(deadline, peer, || {
            loop {
                let refusal = match send(fd, datagram, MsgFlags::MSG_NOSIGNAL) {
                    Ok(_) if !udp || *reader_seen => return Ok(Some(())),
                    Ok(_) => match socket
                        .take_error()
                        .with_context(|| format!("getsockopt(SO_ERROR) after sending to {url}"))?
                    {
                        None => {
                            *reader_seen = true;
                            return Ok(Some(()));
                        }
                        Some(err) => errno_of(&err).unwrap_or(Errno::UnknownErrno),
                    },
                    Err(Errno::EAGAIN) => {
                        wait::wait_fd(
                            socket.as_fd(),
                            PollFlags::POLLOUT,
                            deadline,
                            format_args!("room in the queue of {peer}"),
                        )?;
                        continue;
                    }
                    Err(Errno::EINTR) => continue,
                    Err(Errno::EMSGSIZE) => {
                        return Err(too_big(url, datagram.len(), send_buffer));
                    }
                    Err(errno) => errno,
                };
                if udp && refusal == Errno::ECONNREFUSED {
                    *reader_seen = false;
                    if !*announced {
                        deadline.say(format_args!(
                            "waiting for {peer} (ICMP port unreachable: {refusal}); resending \
                             until the deadline"
                        ));
                        *announced = true;
                    }
                    return Ok(None);
                }
                let why = match refusal {
                    Errno::ECONNREFUSED => " (the reader went away)",
                    Errno::ENOBUFS => {
                        " (the kernel could not allocate a buffer that big in one piece: a Unix \
                         datagram over about 4.2 MB never fits, and a fragmented memory can \
                         refuse smaller ones; send less)"
                    }
                    _ => "",
                };
                return Err(anyhow!(
                    "send a {}-byte datagram to {url}: {refusal}{why}",
                    datagram.len()
                ));
            }
        })
    }

    /// `close(2)`: the writer leaves nothing behind (its socket was never bound to a path).
    pub fn close(self) {
        drop(self.socket);
    }

    /// A Unix datagram must fit in the sender's `SO_SNDBUF`: raise it for a big one.
    fn fit_send_buffer(&mut self, len: usize) -> anyhow::Result<()> {
        let needed = len.saturating_add(UNIX_OVERHEAD);
        if needed <= self.send_buffer {
            return Ok(());
        }
        // The kernel doubles what it is given (socket(7)), up to twice net.core.wmem_max.
        self.socket
            .set_send_buffer_size(needed.div_ceil(2))
            .with_context(|| format!("setsockopt(SO_SNDBUF) on the socket to {}", self.url))?;
        self.send_buffer = self
            .socket
            .send_buffer_size()
            .with_context(|| format!("getsockopt(SO_SNDBUF) on the socket to {}", self.url))?;
        Ok(())
    }
}

/// A UDP reader's socket: shared port and group membership as `listen` and the address ask
/// (see [`Receiver::bind_with`]), bound, with the port it really got.
fn bind_udp(addr: SocketAddr, listen: &Listen) -> anyhow::Result<(Socket, SocketAddr)> {
    let socket = sock::new_socket(Domain::for_address(addr), SocketKind::Datagram)?;
    let multicast = addr.ip().is_multicast();
    if listen.shared || multicast {
        group::share_port(&socket, &addr)?;
    }
    let at = group::scoped(&addr, listen.interface.as_ref()).map_err(|why| anyhow!(why))?;
    socket
        .bind(&at.into())
        .with_context(|| format!("bind {addr}"))?;
    if multicast {
        group::join(&socket, addr.ip(), listen.interface.as_ref())?;
    }
    let bound = socket
        .local_addr()
        .with_context(|| format!("getsockname after bind {addr}"))?
        .as_socket()
        .with_context(|| format!("getsockname after bind {addr}: not an IP address"))?;
    Ok((socket, bound))
}

/// Binds a Unix writer's `socket` to `reply.sock` in a new private directory
/// (`mkdtemp(3)` in `$TMPDIR`, mode 0700; the socket 0600 from birth), so the reader can
/// answer it; the guard removes both. A path, not an autobound abstract name: PHP's
/// `socket_recvfrom` reports an abstract sender as an empty string, so a PHP reader could not
/// answer one. Only our user (or root) can reach it.
fn bind_reply_path(socket: &Socket, endpoint: &DgramEndpoint) -> anyhow::Result<Cleanup> {
    let template = std::env::temp_dir().join("ipc-dgram-reply.XXXXXX");
    let dir = nix::unistd::mkdtemp(&template)
        .with_context(|| format!("mkdtemp {} (for the reply socket)", template.display()))?;
    let owned = dir.clone();
    let dir_guard = Cleanup::register(format!("directory {}", dir.display()), move || {
        Ok(std::fs::remove_dir(&owned)?)
    });
    let path = dir.join("reply.sock");
    nix::sys::stat::fchmod(
        socket.as_fd(),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .with_context(|| format!("fchmod 0600 on the socket before bind {}", path.display()))?;
    let addr = SockAddr::unix(&path).with_context(|| format!("bind {}", path.display()))?;
    socket
        .bind(&addr)
        .with_context(|| format!("bind {} (for the reply from {endpoint})", path.display()))?;
    // One guard for both, file first: a stop signal runs the guards in creation order.
    let file = std::fs::symlink_metadata(&path)
        .map(|meta| ipc_common::runtime::paths::FileIdentity::of(&meta))
        .with_context(|| format!("inspect the reply socket {}", path.display()))?;
    dir_guard.keep();
    Ok(Cleanup::register(
        format!("reply socket {}", path.display()),
        move || {
            ipc_common::runtime::paths::remove_if_same(&path, file)?;
            Ok(std::fs::remove_dir(&dir)?)
        },
    ))
}

/// A UDP writer's socket, its options set for `audience`, connected to `addr`.
fn connect_udp(
    addr: SocketAddr,
    audience: Audience,
    options: &SendOptions,
) -> anyhow::Result<Socket> {
    let socket = sock::new_socket(Domain::for_address(addr), SocketKind::Datagram)?;
    match audience {
        Audience::Multicast => {
            group::multicast_out(&socket, &addr, options.ttl, options.interface.as_ref())?;
        }
        Audience::Broadcast => socket
            .set_broadcast(true)
            .with_context(|| format!("setsockopt(SO_BROADCAST) for {addr}"))?,
        Audience::One => {}
    }
    let to = group::scoped(&addr, options.interface.as_ref()).map_err(|why| anyhow!(why))?;
    match socket.connect(&to.into()) {
        Ok(()) => Ok(socket),
        Err(err) if errno_of(&err) == Some(Errno::EACCES) => bail!(
            "connect to udp://{addr}: {} (a broadcast address: pass --broadcast to send to \
             every reader on the link)",
            Errno::EACCES
        ),
        Err(err) => Err(err).with_context(|| format!("connect to udp://{addr}")),
    }
}

/// `buf` as the buffer socket2's `recvfrom(2)` takes (nix 0.30's `recvmsg` panics formatting
/// an abstract Unix sender's address).
fn as_uninit(buf: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // SAFETY: `MaybeUninit<u8>` has `u8`'s layout, and `recv_from_with_flags` only stores the
    // bytes the kernel received into it, never uninitialized ones: every byte stays
    // initialized for our later reads as `u8`.
    unsafe { &mut *(std::ptr::from_mut::<[u8]>(buf) as *mut [MaybeUninit<u8>]) }
}

/// A datagram sender's address as a URL (`udg://@NAME` for an abstract Unix address), or
/// `None` for a Unix socket that has no address (it cannot be answered).
fn sender_url(addr: &SockAddr) -> Option<String> {
    if let Some(inet) = addr.as_socket() {
        return Some(format!("udp://{inet}"));
    }
    if let Some(path) = addr.as_pathname() {
        return Some(format!("udg://{}", path.display()));
    }
    addr.as_abstract_namespace()
        .map(|name| format!("udg://@{}", name.escape_ascii()))
}

/// `recvmsg(2)` with `MSG_TRUNC` and the `IP_PKTINFO`/`IPV6_PKTINFO` message: the datagram's
/// real size, its sender and where it was sent to.
/// UDP only: nix's `recvmsg` is not used for Unix sockets, where it panicked on an abstract
/// sender (docs/architecture.md).
fn recv_to_us(
    fd: std::os::fd::RawFd,
    buf: &mut [u8],
) -> Result<(usize, Option<SockAddr>, Option<ToUs>), Errno> {
    let mut cmsg = nix::cmsg_space!(nix::libc::in6_pktinfo);
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrStorage>(fd, &mut iov, Some(&mut cmsg), MsgFlags::MSG_TRUNC)?;
    let from = msg.address.and_then(|addr| {
        let inet = match (addr.as_sockaddr_in(), addr.as_sockaddr_in6()) {
            (Some(v4), _) => SocketAddr::from(std::net::SocketAddrV4::from(*v4)),
            (_, Some(v6)) => SocketAddr::from(std::net::SocketAddrV6::from(*v6)),
            _ => return None,
        };
        Some(SockAddr::from(inet))
    });
    let mut to_us = None;
    for message in msg.cmsgs()? {
        to_us = match message {
            // ipi_spec_dst: the local address of the datagram (for a broadcast one, the
            // interface's own address), the one ip(7) says a reply should come from.
            ControlMessageOwned::Ipv4PacketInfo(info) => Some(ToUs {
                addr: std::net::Ipv4Addr::from(u32::from_be(info.ipi_spec_dst.s_addr)).into(),
                ifindex: 0,
            }),
            ControlMessageOwned::Ipv6PacketInfo(info) => {
                let addr = std::net::Ipv6Addr::from(info.ipi6_addr.s6_addr);
                // A group address cannot be a source: the kernel then picks one.
                (!addr.is_multicast()).then_some(ToUs {
                    addr: addr.into(),
                    ifindex: info.ipi6_ifindex,
                })
            }
            _ => to_us,
        };
    }
    Ok((msg.bytes, from, to_us))
}

/// `sendmsg(2)` of `reply` to `to`, from the local address `from` (`IP_PKTINFO`/`IPV6_PKTINFO`).
fn send_from(
    fd: std::os::fd::RawFd,
    reply: &[u8],
    from: ToUs,
    to: SocketAddr,
) -> Result<usize, Errno> {
    let iov = [std::io::IoSlice::new(reply)];
    let to = SockaddrStorage::from(to);
    let flags = MsgFlags::MSG_NOSIGNAL;
    match from.addr {
        std::net::IpAddr::V4(addr) => {
            let info = nix::libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: nix::libc::in_addr {
                    s_addr: u32::from(addr).to_be(),
                },
                ipi_addr: nix::libc::in_addr { s_addr: 0 },
            };
            let cmsg = [ControlMessage::Ipv4PacketInfo(&info)];
            sendmsg(fd, &iov, &cmsg, flags, Some(&to))
        }
        std::net::IpAddr::V6(addr) => {
            let info = nix::libc::in6_pktinfo {
                ipi6_addr: nix::libc::in6_addr {
                    s6_addr: addr.octets(),
                },
                ipi6_ifindex: from.ifindex,
            };
            let cmsg = [ControlMessage::Ipv6PacketInfo(&info)];
            sendmsg(fd, &iov, &cmsg, flags, Some(&to))
        }
    }
}

/// The error for a datagram over the protocol's limit, naming the limit.
fn too_big(url: &DgramEndpoint, len: usize, send_buffer: usize) -> anyhow::Error {
    let limit = match url {
        DgramEndpoint::Unix(_) => format!(
            "a Unix datagram must fit the sender's SO_SNDBUF less {UNIX_OVERHEAD} bytes: at most \
             {} bytes here (SO_SNDBUF {send_buffer}, raised as far as net.core.wmem_max allows)",
            send_buffer.saturating_sub(UNIX_OVERHEAD)
        ),
        DgramEndpoint::Udp(addr) if addr.is_ipv4() => {
            format!("a UDP datagram over IPv4 carries at most {UDP_MAX_IPV4} bytes")
        }
        DgramEndpoint::Udp(_) => {
            format!("a UDP datagram over IPv6 carries at most {UDP_MAX_IPV6} bytes")
        }
    };
    anyhow!(
        "send a {len}-byte datagram to {url}: {} ({limit})",
        Errno::EMSGSIZE
    )
}
