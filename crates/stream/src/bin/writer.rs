//! `stream-writer`: the blog's stream client ("TCP/UDS [Stream]" and "TCP/IP [Stream]"):
//! connects to the server, sends `Hello from Client: TCP/UDS [Stream]` (or `TCP/IP`) and prints
//! the server's whole greeting.
//!
//! Syscalls, as strace shows them (after `pipe2` and `rt_sigaction`, the stop signals' pipe):
//! `openat(PATH, O_PATH|O_NOFOLLOW)` + `statx`, `socket(AF_UNIX or AF_INET,
//! SOCK_STREAM|SOCK_NONBLOCK)`, `connect("/proc/self/fd/N")` (retried until a server listens),
//! `getsockopt(SO_PEERCRED)`, then under `poll` at once: `sendto` our message,
//! `shutdown(SHUT_WR)`, `recvfrom` the greeting to its end; `ioctl(TIOCOUTQ)` until the server
//! has read every byte; `close`.
//!
//! ```text
//! stream-reader                               # or: stream-reader tcp://127.0.0.1:9999
//! stream-writer                               # or: stream-writer tcp://127.0.0.1:9999
//! ```

use std::process::ExitCode;

use clap::Parser;
use ipc_common::runtime::cli::{CommonArgs, ENVIRONMENT, MessageArgs, MessageLimit};
use ipc_common::runtime::report;
use ipc_common::say;
use ipc_common::sockets::endpoint::StreamEndpoint;

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
                  newline.",
    after_help = environment()
)]
struct Args {
    /// Where the server listens: unix://PATH (Unix domain) or tcp://HOST:PORT.
    #[arg(
        value_name = "URL",
        default_value = "unix:///tmp/ipc-socket.sock",
        env = "IPC_STREAM_URL",
        hide_env = true
    )]
    endpoint: StreamEndpoint,

    #[command(flatten)]
    message: MessageArgs,

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
    report::check_stdout()?; // before we send: the greeting would have nowhere to go
    let default = stream::client_message(&args.endpoint);
    let message = args
        .message
        .payload(default, MessageLimit::IN_MEMORY, &deadline)?;

    let mut conn = stream::connect(&args.endpoint, &deadline)?;
    say!(deadline, "connected to {}", conn.peer());

    let mut greeting = Vec::new();
    let exchanged = conn.swap(&message, &mut greeting, &deadline)?;
    say!(
        deadline,
        "sent {} bytes, received {} bytes",
        exchanged.sent,
        exchanged.received
    );
    report::print_payload(&greeting)?;

    conn.close();
    Ok(())
}
