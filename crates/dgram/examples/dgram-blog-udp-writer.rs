//! The blog's "UDP/IP [Datagram]" sender, line for line: `socket_sendto` one message to
//! `127.0.0.1:9999`, `mb_strlen($message)` bytes long. Read this first, then `run()` in
//! `src/bin/writer.rs`; the story is in `crates/dgram/README.md`.
//!
//! ```text
//! cargo run -q -p dgram --example dgram-blog-udp-reader [HOST:PORT]    # terminal 1, first
//! cargo run -q -p dgram --example dgram-blog-udp-writer [HOST:PORT]    # terminal 2
//! ```
//!
//! What goes wrong with it, and what fixes it in the hardened pair:
//! - If the reader is not there yet, `sendto` still succeeds: the datagram is lost and the
//!   writer exits 0. The `sleep(1)` before it is a guess, not a synchronisation.
//!   `dgram-writer` connects the socket, so the kernel reports the ICMP "port unreachable" of a
//!   missing reader back to it (`getsockopt(SO_ERROR)`), and sends again until one datagram
//!   went through unrefused or `--timeout` passes (`Sender::send`).
//! - `mb_strlen` counts characters, not bytes: a UTF-8 message loses its tail.
//!   `Sender::send` sends every byte.

use nix::sys::socket::{AddressFamily, MsgFlags, SockFlag, SockType, SockaddrIn, sendto, socket};
use nix::unistd::sleep;
use std::os::fd::AsRawFd;

fn main() -> nix::Result<()> {
    let address = std::env::args().nth(1);
    let address: SockaddrIn = address
        .as_deref()
        .unwrap_or("127.0.0.1:9999")
        .parse()
        .map_err(|_| nix::Error::EINVAL)?;
    let message = "Hello from Sender: UDP/IP [Datagram]";

    sleep(1); // sleep(1): "give the listener time to bind"
    let socket = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::empty(),
        None,
    )?;
    let length = message.chars().count(); // mb_strlen($message): characters, not bytes
    let sent = sendto(
        socket.as_raw_fd(),
        &message.as_bytes()[..length],
        &address,
        MsgFlags::empty(),
    );
    if let Err(errno) = sent {
        // PHP warns and carries on; with nobody listening there is not even a warning.
        eprintln!(
            "Warning: socket_sendto(): unable to write to socket: {}",
            errno.desc()
        );
    }
    Ok(()) // socket_close($socket);
}
