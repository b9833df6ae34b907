//! The blog's "UDP/UDS [Datagram]" listener, line for line: bind a Unix datagram socket at
//! `/tmp/ipc-socket.sock`, receive one datagram into a 1024-byte buffer, echo it. Read this
//! first, then `run()` in `src/bin/reader.rs`; the story of both is in `crates/dgram/README.md`.
//!
//! ```text
//! cargo run -q -p dgram --example dgram-blog-uds-reader [PATH]     # terminal 1, first
//! cargo run -q -p dgram --example dgram-blog-uds-writer [PATH]     # terminal 2
//! ```
//!
//! What goes wrong with it, and what fixes it in the hardened pair:
//! - `@unlink` deletes whatever is at the path: another reader's live socket (that reader now
//!   waits forever on a name nobody can reach), a regular file of yours. `dgram-reader` removes
//!   only a stale socket of a trusted owner (`paths::clear_stale_socket`, from `Receiver::bind`).
//! - The 1024-byte receive cuts a longer datagram and says nothing (`recvfrom` returns 1024);
//!   `Receiver::recv` receives into a buffer as big as any datagram with `MSG_TRUNC`.
//! - `recvfrom` blocks forever if no writer comes; `Receiver::recv` polls until `--timeout`.
//! - The socket file gets whatever mode the umask leaves, and stays behind when the script ends
//!   (and on Ctrl-C); `sock::bind_unix` gives it `--mode` from birth (`fchmod` before `bind`),
//!   and its `Cleanup` guard removes it, on SIGINT/SIGTERM too.
//!
//! One line is not the blog's: `listening on ...` on stderr, so `scripts/run-all.sh --blog`
//! knows when to start the writer.

use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, bind, recvfrom, socket};
use nix::unistd::{unlink, write};
use std::io::stdout;
use std::os::fd::AsRawFd;

fn main() -> nix::Result<()> {
    let socket_path = std::env::args().nth(1);
    let socket_path = socket_path.as_deref().unwrap_or("/tmp/ipc-socket.sock");

    let _ = unlink(socket_path); // @unlink($socketPath);
    let socket = socket(
        AddressFamily::Unix,
        SockType::Datagram,
        SockFlag::empty(),
        None,
    )?;
    bind(socket.as_raw_fd(), &UnixAddr::new(socket_path)?)?;
    eprintln!("listening on udg://{socket_path}");

    let mut buf = [0u8; 1024];
    let (len, _from) = recvfrom::<UnixAddr>(socket.as_raw_fd(), &mut buf)?;
    write(stdout(), &[&buf[..len], b"\n"].concat())?; // echo $message . "\n";
    Ok(()) // socket_close($socket): the socket is closed, the socket file stays.
}
