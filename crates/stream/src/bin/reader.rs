//! `stream-reader`: the blog's stream server ("TCP/UDS [Stream]" and "TCP/IP [Stream]"): listens,
//! greets each client with `Hello from Server: TCP/UDS [Stream]` (or `TCP/IP`) and prints its
//! whole message; `--connections N` clients at once, one `poll(2)` loop, no threads.
//!
//! Syscalls (strace): `statx(PATH)` (a stale socket of ours is `unlink`ed, anything else
//! refused), `socket(SOCK_STREAM|SOCK_NONBLOCK)`, `fchmod(--mode)`, `bind` (TCP: `SO_REUSEADDR`,
//! `getsockname`), `listen`; then `poll` over the listener and every connection: `accept4`,
//! `sendto` the greeting, `recvfrom` the client's message to its end, `shutdown(SHUT_WR)`,
//! `close`; at the end `close` and `unlink(PATH)`.
//!
//! `stream-reader [tcp://127.0.0.1:9999]`, then `stream-writer [tcp://127.0.0.1:9999]`.

use std::process::ExitCode;

use clap::Parser;
use ipc_common::runtime::cli::{CommonArgs, ENVIRONMENT, MessageArgs, MessageLimit, ModeArgs};
use ipc_common::runtime::report;
use ipc_common::runtime::wait::Timeout;
use ipc_common::say;
use ipc_common::sockets::endpoint::StreamEndpoint;
use stream::{Event, Limits, Listener, Server};

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
                  stdout followed by a newline, in the order the clients finish; they are \
                  served at once. Removes its socket file when it ends.",
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

    /// Serve N clients, at once, then exit; 0: until SIGINT/SIGTERM (then exit 0, dropping the
    /// clients still in their exchange), or --timeout.
    #[arg(long, value_name = "N", default_value = "1", help_heading = CLIENTS)]
    connections: u64,

    /// Drop a client whose exchange has not ended SECS seconds after it was accepted; it is
    /// not counted (0: only --timeout bounds it).
    #[arg(long, value_name = "SECS", default_value = "10", help_heading = CLIENTS)]
    client_timeout: Timeout,

    /// Exchange with at most N clients at once; the next ones wait in the listen backlog.
    #[arg(long, value_name = "N", default_value = "64", help_heading = CLIENTS,
          value_parser = clap::value_parser!(u32).range(1..=1 << 20))]
    max_clients: u32,

    /// The greeting (--message, --message-file).
    #[command(flatten)]
    greeting: MessageArgs,

    #[command(flatten)]
    mode: ModeArgs,

    #[command(flatten)]
    common: CommonArgs,
}

const CLIENTS: &str = "Several clients";

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
    report::check_stdout()?; // before anything is taken: nowhere to print it
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

    let limits = Limits {
        connections: args.connections,
        max_clients: args.max_clients as usize,
        client_timeout: args.client_timeout,
    };
    let mut server = Server::new(listener, &greeting, limits);
    while let Some(event) = server.next(&deadline)? {
        say!(deadline, "{event}");
        if let Event::Served(client) = event {
            // One client of many: a stdout gone is a failure (report::print_taken).
            match args.connections {
                1 => report::print_payload(&client.message)?,
                _ => {
                    let what = format_args!("the message of client {}", client.number);
                    report::print_taken(&client.message, what)?;
                }
            }
        }
    }
    server.close()
}
