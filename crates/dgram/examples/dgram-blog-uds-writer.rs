//! The blog's "UDP/UDS [Datagram]" sender, line for line: create a Unix datagram socket and
//! `socket_sendto` one message to `/tmp/ipc-socket.sock`, `mb_strlen($message)` bytes long.
//! Read this first, then `run()` in `src/bin/writer.rs`; the story is in
//! `crates/dgram/README.md`.
//!
//! ```text
//! cargo run -q -p dgram --example dgram-blog-uds-reader [PATH]     # terminal 1, first
//! cargo run -q -p dgram --example dgram-blog-uds-writer [PATH]     # terminal 2
//! ```
//!
//! What goes wrong with it, and what fixes it in the hardened pair:
//! - If the reader is not there yet, `sendto` fails (`ENOENT`, or `ECONNREFUSED` on a stale
//!   file), PHP prints a warning, the datagram is lost and the writer still exits 0. The
//!   `sleep(1)` before it is a guess, not a synchronisation. `dgram-writer` waits for the
//!   reader (`Sender::connect`, retrying until `--timeout`) and exits 0 only once the kernel
//!   took the datagram (`Sender::send`).
//! - `mb_strlen` counts characters, not bytes: a UTF-8 message loses its tail
//!   (`Grüße` sends `Grüß`). `Sender::send` sends every byte.
//! - `sendto` follows a symlink at the path and talks to whoever's socket is there;
//!   `Sender::connect` opens the file `O_PATH | O_NOFOLLOW`, checks it is a socket of a trusted
//!   owner, and connects through that descriptor.

use nix::sys::socket::{AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr, sendto, socket};
use nix::unistd::sleep;
use std::os::fd::AsRawFd;

fn main() -> nix::Result<()> {
    let socket_path = std::env::args().nth(1);
    let socket_path = socket_path.as_deref().unwrap_or("/tmp/ipc-socket.sock");
    let message = "Hello from Sender: UDP/UDS [Datagram]";

    sleep(1); // sleep(1): "give the listener time to bind"
    let socket = socket(
        AddressFamily::Unix,
        SockType::Datagram,
        SockFlag::empty(),
        None,
    )?;
    let length = message.chars().count(); // mb_strlen($message): characters, not bytes
    let to = UnixAddr::new(socket_path)?;
    let sent = sendto(
        socket.as_raw_fd(),
        &message.as_bytes()[..length],
        &to,
        MsgFlags::empty(),
    );
    if let Err(errno) = sent {
        // PHP warns and carries on: the datagram is lost and the script exits 0.
        eprintln!(
            "Warning: socket_sendto(): unable to write to socket: {}",
            errno.desc()
        );
    }
    Ok(()) // socket_close($socket);
}
