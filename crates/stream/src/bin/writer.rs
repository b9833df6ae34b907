//! `stream-writer`: the blog's stream client ("TCP/UDS [Stream]" and "TCP/IP [Stream]"). It
//! connects to the server, sends `Hello from Client: TCP/UDS [Stream]` (or `TCP/IP`) and prints
//! the server's greeting. Unlike the blog's client, which reads once (`socket_read($s, 1024)`),
//! it reads the whole greeting, to end of stream, whatever its size.
//!
//! Syscalls, in order:
//! 1. `socket(2)`: `AF_UNIX` (`unix://PATH`, the default) or `AF_INET`/`AF_INET6`
//!    (`tcp://HOST:PORT`), `SOCK_STREAM`, nonblocking; never bound to a path, so it leaves no
//!    file;
//! 2. `connect(2)`, retried with a new socket while nobody is there yet (`ENOENT`: no socket
//!    file; `ECONNREFUSED`: a stale file or a closed port; `EAGAIN`: the server's backlog is
//!    full); a TCP connect under way (`EINPROGRESS`) is waited for with `poll(2)` and judged by
//!    `getsockopt(SO_ERROR)`. Unix: before each attempt `lstat(2)` refuses a symlink (`connect`
//!    would follow it) and a socket file of an untrusted owner (not ourselves, root or
//!    `--trust-uid`);
//! 3. at once, driven by `poll(2)`: `send(2)` our message, then `shutdown(SHUT_WR)` so the
//!    server sees its end; and `recv(2)` the server's greeting until its end of stream (`0`).
//!    Doing both together is what keeps two peers with messages larger than the socket buffers
//!    from blocking each other forever. A server that resets the connection after taking our
//!    whole message (a PHP server reads once, then closes) simply ended its greeting; one that
//!    goes away before is an error;
//! 4. the greeting on stdout followed by one `\n`; `close(2)`.
//!
//! The server creates and removes the socket file; the client creates nothing.
//!
//! ```text
//! stream-reader                               # or: stream-reader tcp://127.0.0.1:9999
//! stream-writer                               # or: stream-writer tcp://127.0.0.1:9999
//! ```
//!
//! `--count N` is a load run: N messages stamped 0, 1, ... and framed (a `u32` length first),
//! which a `stream-reader --count N` checks.

use std::process::ExitCode;

use clap::Parser;
use ipc_common::cli::{CommonArgs, MessageArgs, MessageLimit};
use ipc_common::endpoint::StreamEndpoint;
use ipc_common::progress;
use ipc_common::report;
use stream::FrameSource;

/// Connect to a stream server: the blog's stream client.
#[derive(Parser, Debug)]
#[command(
    name = "stream-writer",
    version,
    about = "Send a message to a stream server and print its greeting: the blog's TCP/UDS and \
             TCP/IP [Stream] client",
    long_about = "Send a message to a stream server and print its greeting: the blog's TCP/UDS \
                  [Stream] client (default unix:///tmp/ipc-socket.sock, message `Hello from \
                  Client: TCP/UDS [Stream]`) and TCP/IP [Stream] client (tcp://127.0.0.1:9999, \
                  message `Hello from Client: TCP/IP [Stream]`).\n\nWaits for the server if it \
                  is not there yet. Prints the server's greeting, whole, on stdout followed by a \
                  newline. Defaults: --timeout 10."
)]
struct Args {
    /// Where the server listens: unix://PATH (Unix domain) or tcp://HOST:PORT.
    #[arg(
        value_name = "URL",
        default_value = "unix:///tmp/ipc-socket.sock",
        env = "IPC_STREAM_URL"
    )]
    endpoint: StreamEndpoint,

    #[command(flatten)]
    message: MessageArgs,

    /// Load run: send N messages, each stamped with its sequence number and framed.
    #[arg(long, value_name = "N", value_parser = ipc_common::seq::parse_count)]
    count: Option<u64>,

    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    report::main(|| run(args))
}

fn run(args: Args) -> anyhow::Result<()> {
    let deadline = args.common.start();
    let message = args.message.payload(
        stream::client_message(&args.endpoint),
        MessageLimit::IN_MEMORY,
        &deadline,
    )?;
    let mut conn = stream::connect(&args.endpoint, &deadline)?;
    progress!("connected to {}", conn.peer());

    let mut greeting = Vec::new();
    let exchanged = match args.count {
        None => conn.swap(&message, &mut greeting, &deadline)?,
        Some(count) => conn.exchange(
            &mut FrameSource::new(&message, count)?,
            &mut |bytes: &[u8]| {
                greeting.extend_from_slice(bytes);
                Ok(())
            },
            &deadline,
        )?,
    };
    progress!(
        "sent {} bytes, received {} bytes",
        exchanged.sent,
        exchanged.received
    );
    report::print_payload(&greeting)
}
