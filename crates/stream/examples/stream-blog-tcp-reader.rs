//! The blog's "TCP/IP [Stream]" server, line for line: bind and listen on `127.0.0.1:9999`,
//! accept one client, read its message with one 1024-byte `socket_read`, echo it, write the
//! server's greeting, close. Read this first, then `run()` in `src/bin/reader.rs`; the story is
//! in `crates/stream/README.md`.
//!
//! ```text
//! cargo run -q -p stream --example stream-blog-tcp-reader [HOST:PORT]   # terminal 1, first
//! cargo run -q -p stream --example stream-blog-tcp-writer [HOST:PORT]   # terminal 2
//! ```
//!
//! What goes wrong with it, and what fixes it in the hardened pair:
//! - One 1024-byte read takes what has arrived so far, at most 1024 bytes: a longer message, or
//!   one that arrives in two segments, is cut, and closing with bytes unread sends a reset.
//!   `Conn::swap` reads to the client's end of stream while it sends the greeting.
//! - Who closes first is a race (this server right after its write, the client right after its
//!   read), and the side that does keeps the connection in TIME_WAIT for 60 s. When that is the
//!   server, port 9999 stays taken, and without `SO_REUSEADDR` the next server's `bind` fails
//!   with `EADDRINUSE`. `sock::bind_inet` sets `SO_REUSEADDR`, and `stream-reader` ends its
//!   stream only after the client's, so TIME_WAIT always lands on the client's ephemeral port.
//! - `accept` and `read` block forever; `Listener::accept` and `Conn::swap` honour `--timeout`.
//!
//! Not the blog's: port 0 lets the kernel choose, and `listening on tcp://ADDR` on stderr
//! (from `getsockname`) says which, for `scripts/run-all.sh --blog`.

use nix::sys::socket::{
    AddressFamily, Backlog, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrIn, accept, bind,
    getsockname, listen, recv, socket,
};
use nix::unistd::write;
use std::io::stdout;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

fn main() -> nix::Result<()> {
    let address = std::env::args().nth(1);
    let address = address.as_deref().unwrap_or("127.0.0.1:9999");
    let address: SockaddrIn = address.parse().map_err(|_| nix::Error::EINVAL)?;
    let response = "Hello from Server: TCP/IP [Stream]";

    let tcp = SockProtocol::Tcp; // socket_create(AF_INET, SOCK_STREAM, SOL_TCP)
    let server = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        tcp,
    )?;
    bind(server.as_raw_fd(), &address)?;
    listen(&server, Backlog::new(0)?)?; // socket_listen($server): PHP's backlog is 0
    let bound: SockaddrIn = getsockname(server.as_raw_fd())?;
    eprintln!("listening on tcp://{bound}");

    // SAFETY: accept returned a new descriptor that nothing else owns.
    let client = unsafe { OwnedFd::from_raw_fd(accept(server.as_raw_fd())?) };
    let mut buf = [0u8; 1024];
    let len = recv(client.as_raw_fd(), &mut buf, MsgFlags::empty())?; // socket_read($client, 1024)
    write(stdout(), &[&buf[..len], b"\n"].concat())?; // echo $input, "\n";
    write(&client, response.as_bytes())?; // socket_write($client, $response): one write
    Ok(()) // socket_close($client); socket_close($server);
}
