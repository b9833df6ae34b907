//! The blog's "UDP/IP [Datagram]" listener, line for line: bind a UDP socket to
//! `127.0.0.1:9999`, receive one datagram into a 1024-byte buffer, echo it. Read this first,
//! then `run()` in `src/bin/reader.rs`; the story is in `crates/dgram/README.md`.
//!
//! ```text
//! cargo run -q -p dgram --example dgram-blog-udp-reader [HOST:PORT]    # terminal 1, first
//! cargo run -q -p dgram --example dgram-blog-udp-writer [HOST:PORT]    # terminal 2
//! ```
//!
//! What goes wrong with it, and what fixes it in the hardened pair:
//! - The 1024-byte receive cuts a longer datagram (UDP carries up to 65,507 bytes) and says
//!   nothing; `Receiver::recv` receives into a buffer as big as any datagram, with `MSG_TRUNC`.
//! - `recvfrom` blocks forever if no writer comes; `Receiver::recv` polls until `--timeout`.
//! - A datagram sent before this reader bound is gone: nothing here can ask for it again. The
//!   hardened writer resends until no ICMP "port unreachable" comes back (`Sender::send`).
//!
//! Not the blog's: port 0 lets the kernel choose, and `listening on udp://ADDR` on stderr
//! (from `getsockname`) says which, so `scripts/run-all.sh --blog` can use a private port.

use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrIn, bind, getsockname, recvfrom, socket,
};
use nix::unistd::write;
use std::io::stdout;
use std::os::fd::AsRawFd;

fn main() -> nix::Result<()> {
    let address = std::env::args().nth(1);
    let address: SockaddrIn = address
        .as_deref()
        .unwrap_or("127.0.0.1:9999")
        .parse()
        .map_err(|_| nix::Error::EINVAL)?;

    let socket = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::empty(),
        None,
    )?;
    bind(socket.as_raw_fd(), &address)?;
    let bound: SockaddrIn = getsockname(socket.as_raw_fd())?;
    eprintln!("listening on udp://{bound}");

    let mut buf = [0u8; 1024];
    let (len, _from) = recvfrom::<SockaddrIn>(socket.as_raw_fd(), &mut buf)?;
    write(stdout(), &[&buf[..len], b"\n"].concat())?; // echo $message . "\n";
    Ok(()) // socket_close($socket);
}
