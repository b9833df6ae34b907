//! The blog's "TCP/IP [Stream]" client, line for line: connect to `127.0.0.1:9999`, write the
//! message, read the server's answer with one 1024-byte `socket_read`, echo it. Read this
//! first, then `run()` in `src/bin/writer.rs`; the story is in `crates/stream/README.md`.
//!
//! ```text
//! cargo run -q -p stream --example stream-blog-tcp-reader [HOST:PORT]   # terminal 1, first
//! cargo run -q -p stream --example stream-blog-tcp-writer [HOST:PORT]   # terminal 2
//! ```
//!
//! What goes wrong with it, and what fixes it in the hardened pair:
//! - `sleep(1)` is a guess, not a synchronisation: a server that is not listening a second
//!   later refuses the `connect` (PHP warns, echoes an empty line and exits 0; this translation
//!   stops at the error). `stream::connect` retries until `--timeout`.
//! - One `write` may take only part of a long message, unchecked; one 1024-byte read takes only
//!   what has arrived. `Conn::swap` sends everything and reads to the server's end of stream,
//!   both at once, so two long messages cannot block each other.
//! - Exit 0 says nothing about the server: it may have read nothing, or reset the connection.
//!   `stream-writer` exits 0 only after the server's end of stream, with `SIOCOUTQ` 0 and no
//!   reset (`sock::confirm_read_by_peer`).

use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrIn, connect, recv, socket,
};
use nix::unistd::{sleep, write};
use std::io::stdout;
use std::os::fd::AsRawFd;

fn main() -> nix::Result<()> {
    let address = std::env::args().nth(1);
    let address = address.as_deref().unwrap_or("127.0.0.1:9999");
    let address: SockaddrIn = address.parse().map_err(|_| nix::Error::EINVAL)?;
    let message = "Hello from Client: TCP/IP [Stream]";

    sleep(1); // sleep(1): "give the server time to listen"
    let tcp = SockProtocol::Tcp; // socket_create(AF_INET, SOCK_STREAM, SOL_TCP)
    let socket = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        tcp,
    )?;
    connect(socket.as_raw_fd(), &address)?;
    write(&socket, message.as_bytes())?; // socket_write($socket, $message, strlen($message))

    let mut buf = [0u8; 1024];
    let len = recv(socket.as_raw_fd(), &mut buf, MsgFlags::empty())?; // socket_read($socket, 1024)
    write(stdout(), &[&buf[..len], b"\n"].concat())?; // echo $response, "\n";
    Ok(()) // socket_close($socket);
}
