//! The datagram examples' core, shared by `dgram-reader`, `dgram-writer`, `ipc-load` and the
//! benchmark: a [`Receiver`] that takes each datagram whole, whatever its size, and a [`Sender`]
//! that waits for its reader instead of losing datagrams.
//!
//! Neither allocates per message: the receiver reuses one buffer, as big as the largest datagram
//! a sender can make; the sender sends from the caller's buffer.

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
use nix::sys::socket::{MsgFlags, recv, send};
use socket2::{SockAddr, Socket};

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
}

impl Receiver {
    /// Binds `endpoint`: a socket file with exactly `mode` (a stale one replaced, anything else
    /// refused), or a UDP address (port 0: the kernel picks one, see [`Receiver::url`]).
    pub fn bind(endpoint: &DgramEndpoint, mode: Mode) -> anyhow::Result<Self> {
        let mut replaced_stale = false;
        let (socket, url, socket_file) = match endpoint {
            DgramEndpoint::Unix(path) => {
                let bound = sock::bind_unix(path, SocketKind::Datagram, mode)?;
                replaced_stale = bound.replaced_stale;
                (bound.socket, endpoint.clone(), Some(bound.file))
            }
            DgramEndpoint::Udp(addr) => {
                let (socket, bound) = sock::bind_inet(*addr, SocketKind::Datagram)?;
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
        })
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
            match recv(fd, &mut self.buf, MsgFlags::MSG_TRUNC) {
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
}

impl Sender {
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
