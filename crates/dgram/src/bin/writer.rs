//! `dgram-writer`: the blog's datagram sender ("UDP/UDS [Datagram]" and "UDP/IP [Datagram]").
//! It sends one datagram, `Hello from Sender: UDP/UDS [Datagram]` (or `UDP/IP`), to the
//! reader, as the blog's `socket_sendto` does, but waits for a reader that is not there yet
//! instead of losing the datagram, and sends any payload whole (PHP's `mb_strlen` length cuts
//! non-ASCII messages short).
//!
//! Syscalls, in order:
//! 1. `socket(2)`: `AF_UNIX` (`udg://PATH`, the default) or `AF_INET`/`AF_INET6`
//!    (`udp://HOST:PORT`), `SOCK_DGRAM`, nonblocking; never bound to a path, so it leaves no file;
//! 2. `connect(2)`: Unix: to the reader's socket file, retried while it is missing (`ENOENT`) or
//!    nobody is bound to it (`ECONNREFUSED`); before each attempt `lstat(2)` refuses a symlink
//!    (`connect` would follow it) and a socket file of an untrusted owner (not ourselves, root
//!    or `--trust-uid`). UDP: sets the destination (nothing is sent), and makes the kernel
//!    report ICMP errors about it to us;
//! 3. Unix, for a big datagram: `setsockopt(SO_SNDBUF)`, since the datagram must fit in it;
//! 4. `send(2)`; when the reader's queue is full (`EAGAIN`), `poll(2)` waits for room.
//!    UDP: `getsockopt(SO_ERROR)` right after, until one datagram has gone through unrefused;
//!    on loopback an `ECONNREFUSED` there (ICMP port unreachable: nobody listens) means the
//!    datagram was lost, and it is sent again until a reader is there or `--timeout` passes.
//!    Once the reader is there, a refusal (it went away) comes back from the next `send(2)`,
//!    which sends nothing, and the checks start again. Off loopback the ICMP answer comes late
//!    or never: then the datagram may be lost without anyone noticing, as with PHP;
//! 5. `close(2)`.
//!
//! The reader creates and removes the socket file; the writer creates nothing.
//!
//! ```text
//! dgram-reader                                # or: dgram-reader udp://127.0.0.1:9999
//! dgram-writer                                # or: dgram-writer udp://127.0.0.1:9999
//! ```
//!
//! Load runs: `--count N` sends N messages stamped `--first-seq`, `--first-seq`+1, ...; give
//! concurrent writers distinct ranges (writer k: `--first-seq k*N`).

use std::process::ExitCode;

use clap::Parser;
use dgram::Sender;
use ipc_common::cli::{CommonArgs, MessageArgs};
use ipc_common::endpoint::DgramEndpoint;
use ipc_common::progress;
use ipc_common::report;
use ipc_common::seq;

/// Send a datagram: the blog's datagram sender.
#[derive(Parser, Debug)]
#[command(
    name = "dgram-writer",
    version,
    about = "Send one datagram: the blog's UDP/UDS and UDP/IP [Datagram] sender",
    long_about = "Send one datagram: the blog's UDP/UDS [Datagram] sender (default \
                  udg:///tmp/ipc-socket.sock, message `Hello from Sender: UDP/UDS [Datagram]`) \
                  and UDP/IP [Datagram] sender (udp://127.0.0.1:9999, message `Hello from \
                  Sender: UDP/IP [Datagram]`).\n\nWaits for the reader if it is not there yet. \
                  Prints nothing on stdout. Defaults: --timeout 10."
)]
struct Args {
    /// Where the reader listens: udg://PATH (Unix domain) or udp://HOST:PORT.
    #[arg(
        value_name = "URL",
        default_value = "udg:///tmp/ipc-socket.sock",
        env = "IPC_DGRAM_URL"
    )]
    endpoint: DgramEndpoint,

    #[command(flatten)]
    message: MessageArgs,

    /// Load run: send N messages, each stamped with its sequence number.
    #[arg(long, value_name = "N", value_parser = ipc_common::seq::parse_count)]
    count: Option<u64>,

    /// With --count: the first message's sequence number (writer k of several: k*N).
    #[arg(long, value_name = "K", default_value = "0", requires = "count")]
    first_seq: u64,

    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    report::main(|| run(args))
}

fn run(args: Args) -> anyhow::Result<()> {
    let deadline = args.common.start();
    let limit = dgram::message_limit(&args.endpoint)?;
    let payload = args
        .message
        .payload(dgram::default_message(&args.endpoint), limit, &deadline)?;
    let mut sender = Sender::connect(&args.endpoint, &deadline)?;

    let Some(count) = args.count else {
        sender.send(&payload, &deadline)?;
        progress!("sent {} bytes to {}", payload.len(), sender.url());
        return Ok(());
    };

    let mut datagram = Vec::with_capacity(seq::STAMP_LEN + payload.len());
    for seq in args.first_seq..args.first_seq.saturating_add(count) {
        seq::stamp_into(&mut datagram, seq, &payload);
        sender.send(&datagram, &deadline)?;
    }
    progress!(
        "sent {count} messages of {} bytes to {}",
        datagram.len(),
        sender.url()
    );
    Ok(())
}
