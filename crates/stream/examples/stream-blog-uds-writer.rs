//! The blog's "TCP/UDS [Stream]" client, line for line: connect to the Unix stream socket at
//! `/tmp/ipc-socket.sock`, write the message, read the server's answer with one 1024-byte
//! `socket_read`, echo it. Read this first, then `run()` in `src/bin/writer.rs`; the story is
//! in `crates/stream/README.md`.
//!
//! ```text
//! cargo run -q -p stream --example stream-blog-uds-reader [PATH]   # terminal 1, first
//! cargo run -q -p stream --example stream-blog-uds-writer [PATH]   # terminal 2
//! ```
//!
//! What goes wrong with it, and what fixes it in the hardened pair:
//! - `sleep(1)` is a guess, not a synchronisation: a server that is not listening a second
//!   later fails the `connect` (PHP warns, echoes an empty line and exits 0; this translation
//!   stops at the error). `stream::connect` retries until `--timeout`, through an `O_PATH`
//!   descriptor of the socket file it checked (no symlink, a trusted owner).
//! - One `write` may take only part of a long message, unchecked; one 1024-byte read takes only
//!   what has arrived. `Conn::swap` sends everything and reads to the server's end of stream,
//!   both at once, so two long messages cannot block each other.
//! - Exit 0 says nothing about the server: it may have read nothing. `stream-writer` exits 0
//!   only after the server's end of stream with all our bytes taken
//!   (`sock::confirm_read_by_peer`).

use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr, connect, recv, socket,
};
use nix::unistd::{sleep, write};
use std::io::stdout;
use std::os::fd::AsRawFd;

fn main() -> nix::Result<()> {
    let socket_path = std::env::args().nth(1);
    let socket_path = socket_path.as_deref().unwrap_or("/tmp/ipc-socket.sock");
    let message = "Hello from Client: TCP/UDS [Stream]";

    sleep(1); // sleep(1): "give the server time to listen"
    let socket = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )?;
    connect(socket.as_raw_fd(), &UnixAddr::new(socket_path)?)?;
    write(&socket, message.as_bytes())?; // socket_write($socket, $message, strlen($message))

    let mut buf = [0u8; 1024];
    let len = recv(socket.as_raw_fd(), &mut buf, MsgFlags::empty())?; // socket_read($socket, 1024)
    write(stdout(), &[&buf[..len], b"\n"].concat())?; // echo $response, "\n";
    Ok(()) // socket_close($socket);
}
