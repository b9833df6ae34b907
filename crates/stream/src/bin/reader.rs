//! `stream-reader`: the blog's stream server ("TCP/UDS [Stream]" and "TCP/IP [Stream]"). It
//! listens, accepts a client, sends it `Hello from Server: TCP/UDS [Stream]` (or `TCP/IP`) and
//! prints what the client sent. Unlike the blog's server, which reads once (`socket_read($c,
//! 1024)`), it reads the client's whole message, to end of stream, whatever its size.
//!
//! Syscalls, in order:
//! 1. `socket(2)`: `AF_UNIX` (`unix://PATH`, the default) or `AF_INET`/`AF_INET6`
//!    (`tcp://HOST:PORT`), `SOCK_STREAM`, nonblocking;
//! 2. Unix: if something is at PATH, `lstat(2)` and a `connect(2)` probe tell what: a stale
//!    socket (nobody listening) of a trusted owner (ourselves, root or `--trust-uid`) is
//!    `unlink(2)`ed, a live socket or any other file is an error and left alone; then
//!    `bind(2)` creates the socket file and `chmod(2)` gives it exactly `--mode`.
//!    TCP: `setsockopt(SO_REUSEADDR)` (a restarted server need not wait out TIME_WAIT), `bind(2)`,
//!    and `getsockname(2)` learns the port the kernel chose for port 0;
//! 3. `listen(2)`;
//! 4. `poll(2)` until a client is waiting, then `accept(2)`;
//! 5. at once, driven by `poll(2)`: `send(2)` our greeting, then `shutdown(SHUT_WR)` so the
//!    client sees its end; and `recv(2)` the client's message until its end of stream (`0`).
//!    Doing both together is what keeps two peers with messages larger than the socket buffers
//!    from blocking each other forever, and it greets a PHP client that reads once before it
//!    closes. A client that resets the connection after taking our whole greeting simply ended
//!    its message; one that goes away before is an error;
//! 6. the message on stdout followed by one `\n`; `close(2)`; after the last client, `close(2)`
//!    the listener and `unlink(2)` the socket file.
//!
//! The server creates the socket file and removes it when it ends, on Ctrl-C/SIGTERM too; the
//! client creates nothing. Either may start first: the client waits for the server.
//!
//! ```text
//! stream-reader                               # or: stream-reader tcp://127.0.0.1:9999
//! stream-writer                               # or: stream-writer tcp://127.0.0.1:9999
//! ```
//!
//! `--connections N` serves N clients one after another, in the order they connect (the
//! kernel's backlog holds the others meanwhile; `--timeout` bounds the whole run), printing
//! each one's message. A connection that leaves without a word before taking our greeting is
//! not counted: that is what another server's stale-socket check (`connect(2)`, then
//! `close(2)`) or a port scanner does, and it must not end a live server's run. `--count N` is a load run: each client sends N stamped, framed messages,
//! and instead of a message the server prints one summary line per client.

use std::process::ExitCode;

use anyhow::ensure;
use clap::Parser;
use ipc_common::cli::{CommonArgs, MessageArgs, MessageLimit, ModeArgs};
use ipc_common::endpoint::StreamEndpoint;
use ipc_common::progress;
use ipc_common::report;
use ipc_common::sock::OneMessage;
use stream::{FrameCheck, Listener};

/// Serve stream clients: the blog's stream server.
#[derive(Parser, Debug)]
#[command(
    name = "stream-reader",
    version,
    about = "Greet a stream client and print its message: the blog's TCP/UDS and TCP/IP \
             [Stream] server",
    long_about = "Greet a stream client and print its message: the blog's TCP/UDS [Stream] \
                  server (default unix:///tmp/ipc-socket.sock, greeting `Hello from Server: \
                  TCP/UDS [Stream]`) and TCP/IP [Stream] server (tcp://127.0.0.1:9999, greeting \
                  `Hello from Server: TCP/IP [Stream]`).\n\nPrints `listening on URL` on stderr \
                  once listening (with the real port), then each client's message, whole, on \
                  stdout followed by a newline. Removes its socket file when it ends. Defaults: \
                  --timeout 10, --mode 0600, --connections 1."
)]
struct Args {
    /// Where to listen: unix://PATH (Unix domain) or tcp://HOST:PORT (port 0: the kernel
    /// chooses; the `listening on` line says which).
    #[arg(
        value_name = "URL",
        default_value = "unix:///tmp/ipc-socket.sock",
        env = "IPC_STREAM_URL"
    )]
    endpoint: StreamEndpoint,

    #[command(flatten)]
    greeting: MessageArgs,

    /// Serve N clients, one after another, then exit.
    #[arg(
        long,
        value_name = "N",
        default_value = "1",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    connections: u64,

    /// Load run: expect N sequence-stamped, framed messages from each client and print one
    /// summary line per client instead of its message; exit 1 unless all were perfect.
    #[arg(long, value_name = "N", value_parser = ipc_common::seq::parse_count)]
    count: Option<u64>,

    #[command(flatten)]
    mode: ModeArgs,

    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    report::main(|| run(args))
}

fn run(args: Args) -> anyhow::Result<()> {
    let deadline = args.common.start();
    let greeting = args.greeting.payload(
        stream::server_greeting(&args.endpoint),
        MessageLimit::IN_MEMORY,
        &deadline,
    )?;
    let listener = Listener::bind(&args.endpoint, args.mode.mode)?;
    if let (true, StreamEndpoint::Unix(path)) = (listener.replaced_stale(), &args.endpoint) {
        progress!(
            "removed stale socket {} (nobody was listening)",
            path.display()
        );
    }
    progress!("listening on {}", listener.url());

    let mut message = Vec::new();
    let mut imperfect = 0;
    let mut served = 0;
    while served < args.connections {
        let mut conn = listener.accept(&deadline)?;
        let mut check = args.count.map(FrameCheck::new);
        let exchanged = match &mut check {
            None => conn.swap(&greeting, &mut message, &deadline),
            Some(check) => conn.exchange(
                &mut OneMessage::new(&greeting),
                &mut |bytes: &[u8]| check.push(bytes),
                &deadline,
            ),
        };
        if stream::left_without_a_word(&exchanged) {
            progress!("a connection left without a word before taking our greeting: not a client");
            continue;
        }
        served += 1;
        progress!("served client {served} of {}", args.connections);
        let Some(check) = check else {
            exchanged?;
            report::print_payload(&message)?;
            continue;
        };
        // The summary is the client's result, also when its connection failed.
        report::print_payload(check.to_string().as_bytes())?;
        exchanged?;
        if !check.perfect() {
            imperfect += 1;
        }
    }
    ensure!(
        imperfect == 0,
        "check the messages of {} client(s) on {}: {imperfect} of them lost, duplicated, \
         reordered or cut messages (see stdout)",
        args.connections,
        listener.url()
    );
    Ok(())
}
