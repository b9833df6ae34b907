//! The blog's "TCP/UDS [Stream]" server, line for line: bind and listen on a Unix stream socket
//! at `/tmp/ipc-socket.sock`, accept one client, read its message with one 1024-byte
//! `socket_read`, echo it, write the server's greeting, close. Read this first, then `run()` in
//! `src/bin/reader.rs`; the story is in `crates/stream/README.md`.
//!
//! ```text
//! cargo run -q -p stream --example stream-blog-uds-reader [PATH]   # terminal 1, first
//! cargo run -q -p stream --example stream-blog-uds-writer [PATH]   # terminal 2
//! ```
//!
//! What goes wrong with it, and what fixes it in the hardened pair:
//! - `@unlink` deletes whatever is at the path, another server's live socket included;
//!   `stream-reader` removes only a stale socket of a trusted owner
//!   (`paths::clear_stale_socket`, from `Listener::bind`).
//! - One 1024-byte read takes what has arrived so far, at most 1024 bytes: a longer message, or
//!   one that arrives in two pieces, is cut, and closing with bytes unread resets the
//!   connection. `Conn::swap` reads to the client's end of stream while it sends the greeting.
//! - The server closes as soon as it has written, whatever the client still sends, so the
//!   client cannot tell whether its message was read. `stream-reader` ends its stream only
//!   after the client's, and the client then knows the server read all of it.
//! - `accept` and `read` block forever; every wait in `Conn::swap` and `Listener::accept` is
//!   bounded by `--timeout`.
//! - The socket file gets the umask's mode and stays behind; `sock::bind_unix` gives it
//!   `--mode` from birth (`fchmod` before `bind`) and removes it when the server ends.
//!
//! One line is not the blog's: `listening on ...` on stderr, for `scripts/run-all.sh --blog`.

use nix::sys::socket::{
    AddressFamily, Backlog, MsgFlags, SockFlag, SockType, UnixAddr, accept, bind, listen, recv,
    socket,
};
use nix::unistd::{unlink, write};
use std::io::stdout;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

fn main() -> nix::Result<()> {
    let socket_path = std::env::args().nth(1);
    let socket_path = socket_path.as_deref().unwrap_or("/tmp/ipc-socket.sock");
    let response = "Hello from Server: TCP/UDS [Stream]";

    let _ = unlink(socket_path); // @unlink($socketPath);
    let server = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )?;
    bind(server.as_raw_fd(), &UnixAddr::new(socket_path)?)?;
    listen(&server, Backlog::new(0)?)?; // socket_listen($server): PHP's backlog is 0
    eprintln!("listening on unix://{socket_path}");

    // SAFETY: accept returned a new descriptor that nothing else owns.
    let client = unsafe { OwnedFd::from_raw_fd(accept(server.as_raw_fd())?) };
    let mut buf = [0u8; 1024];
    let len = recv(client.as_raw_fd(), &mut buf, MsgFlags::empty())?; // socket_read($client, 1024)
    write(stdout(), &[&buf[..len], b"\n"].concat())?; // echo $input, "\n";
    write(&client, response.as_bytes())?; // socket_write($client, $response): one write
    Ok(()) // socket_close($client); socket_close($server); the socket file stays.
}
