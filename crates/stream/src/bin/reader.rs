//! `stream-reader`: the blog's stream server ("TCP/UDS [Stream]" and "TCP/IP [Stream]"): listens,
//! accepts a client, sends it `Hello from Server: TCP/UDS [Stream]` (or `TCP/IP`) and prints the
//! client's whole message.
//!
//! Syscalls, as strace shows them (after `pipe2` and `rt_sigaction`, the stop signals' pipe):
//! `statx(PATH)` (a trusted socket nobody answers a `connect` on is stale: `unlink`ed; anything
//! else is refused), `socket(AF_UNIX or AF_INET, SOCK_STREAM|SOCK_NONBLOCK)`,
//! `fchmod(--mode)`, `bind` (TCP: `SO_REUSEADDR` first, `getsockname` after), `listen`,
//! `poll` and `accept4`, then under `poll` at once: `sendto` the greeting, `recvfrom` the
//! client's message to its end, `shutdown(SHUT_WR)`; `close`; after the last client `close` and
//! `unlink(PATH)`.
//!
//! ```text
//! stream-reader                               # or: stream-reader tcp://127.0.0.1:9999
//! stream-writer                               # or: stream-writer tcp://127.0.0.1:9999
//! ```

use std::process::ExitCode;

use clap::Parser;
use ipc_common::runtime::cli::{CommonArgs, ENVIRONMENT, MessageArgs, MessageLimit, ModeArgs};
use ipc_common::runtime::report;
use ipc_common::say;
use ipc_common::sockets::endpoint::StreamEndpoint;
use stream::Listener;

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
                  stdout followed by a newline. Removes its socket file when it ends.",
    after_help = environment()
)]
struct Args {
    /// Where to listen: unix://PATH (Unix domain) or tcp://HOST:PORT (port 0: the kernel
    /// chooses; the `listening on` line says which).
    #[arg(
        value_name = "URL",
        default_value = "unix:///tmp/ipc-socket.sock",
        env = "IPC_STREAM_URL",
        hide_env = true
    )]
    endpoint: StreamEndpoint,

    /// Serve N clients, one after another (the kernel's backlog holds the others), then exit.
    #[arg(
        long,
        value_name = "N",
        default_value = "1",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    connections: u64,

    /// The greeting (--message, --message-file).
    #[command(flatten)]
    greeting: MessageArgs,

    #[command(flatten)]
    mode: ModeArgs,

    #[command(flatten)]
    common: CommonArgs,
}

/// The shared environment, and ours.
fn environment() -> String {
    format!("{ENVIRONMENT}\n  IPC_STREAM_URL (the URL)")
}

fn main() -> ExitCode {
    let args = Args::parse();
    report::main(|| run(args))
}

fn run(args: Args) -> anyhow::Result<()> {
    let deadline = args.common.start();
    let default = stream::server_greeting(&args.endpoint);
    let greeting = args
        .greeting
        .payload(default, MessageLimit::IN_MEMORY, &deadline)?;

    let listener = Listener::bind(&args.endpoint, args.mode.mode)?;
    if let (true, StreamEndpoint::Unix(path)) = (listener.replaced_stale(), &args.endpoint) {
        say!(
            deadline,
            "removed stale socket {} (nobody was listening)",
            path.display()
        );
    }
    say!(deadline, "listening on {}", listener.url());

    let mut message = Vec::new();
    let mut served = 0;
    while served < args.connections {
        let mut conn = listener.accept(&deadline)?;
        let exchanged = conn.swap(&greeting, &mut message, &deadline);
        // Another server's stale-socket probe or a port scan: not a client, not counted.
        if stream::left_without_a_word(&exchanged) {
            say!(
                deadline,
                "a connection left without a word before taking our greeting: not a client"
            );
            continue;
        }
        exchanged?;
        served += 1;
        say!(deadline, "served client {served} of {}", args.connections);
        report::print_payload(&message)?;
        conn.close();
    }

    listener.close()
}
