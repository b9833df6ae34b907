//! `dgram-reader`: the blog's datagram listener ("UDP/UDS [Datagram]" and "UDP/IP [Datagram]").
//! It binds a datagram socket, waits for one datagram and prints it, as the blog's
//! `socket_recvfrom` loop does, but whole, whatever its size (PHP's takes 1024 bytes and
//! silently drops the rest).
//!
//! Syscalls, in order:
//! 1. `socket(2)`: `AF_UNIX` (`udg://PATH`, the default) or `AF_INET`/`AF_INET6`
//!    (`udp://HOST:PORT`), `SOCK_DGRAM`, nonblocking;
//! 2. Unix: if something is at PATH, `lstat(2)` and a `connect(2)` probe tell what: a stale
//!    socket (nobody bound) of a trusted owner (ourselves, root or `--trust-uid`) is
//!    `unlink(2)`ed, a live socket or any other file is an error and left alone; then `bind(2)`
//!    creates the socket file and `chmod(2)` gives it exactly `--mode`.
//!    UDP: `bind(2)`, then `getsockname(2)` learns the port the kernel chose for port 0;
//! 3. `recv(2)` with `MSG_TRUNC` into a buffer as big as the largest datagram a sender can make
//!    (UDP: 65,527 bytes; Unix: twice `net.core.wmem_max`, the most a sender may raise its
//!    `SO_SNDBUF` to, less 32); `MSG_TRUNC` makes it return the real size, so a datagram that
//!    did not fit is an error, never a silently shortened message;
//! 4. only if nothing was queued (`EAGAIN`): `poll(2)` until a datagram is (or `--timeout`
//!    passes), then `recv(2)` again; the datagram goes to stdout followed by one `\n`;
//! 5. `close(2)`, and `unlink(2)` of the socket file.
//!
//! The reader creates the socket file and removes it when it ends, on Ctrl-C/SIGTERM too; the
//! writer creates nothing. Either may start first: the writer waits for the reader.
//!
//! ```text
//! dgram-reader                                # or: dgram-reader udp://127.0.0.1:9999
//! dgram-writer                                # or: dgram-writer udp://127.0.0.1:9999
//! ```
//!
//! Load runs: `--count N` expects N stamped messages from each of `--writers W` writers (writer
//! k runs with `--first-seq k*N`) and prints one summary line instead of the payloads. Unix
//! datagrams are never dropped (a writer waits while our queue is full), so the reader waits for
//! every one until `--timeout`; UDP drops what does not fit our queue, so over UDP the reader
//! stops after `--idle` seconds without a datagram and reports the loss.

use std::process::ExitCode;

use anyhow::{bail, ensure};
use clap::Parser;
use dgram::{Receiver, Tally};
use ipc_common::cli::{CommonArgs, ModeArgs};
use ipc_common::endpoint::DgramEndpoint;
use ipc_common::progress;
use ipc_common::report;
use ipc_common::seq;
use ipc_common::wait::Timeout;

/// The receive queue asked for in UDP load runs, so a burst is not dropped while we catch up.
const UDP_LOAD_RCVBUF: usize = 8 << 20;

/// Receive a datagram and print it: the blog's datagram listener.
#[derive(Parser, Debug)]
#[command(
    name = "dgram-reader",
    version,
    about = "Receive one datagram and print it: the blog's UDP/UDS and UDP/IP [Datagram] listener",
    long_about = "Receive one datagram and print it: the blog's UDP/UDS [Datagram] listener \
                  (default udg:///tmp/ipc-socket.sock) and UDP/IP [Datagram] listener \
                  (udp://127.0.0.1:9999).\n\nPrints `listening on URL` on stderr once bound (with \
                  the real port), then the datagram, whole, on stdout followed by a newline. \
                  Removes its socket file when it ends. Defaults: --timeout 10, --mode 0600."
)]
struct Args {
    /// Where to listen: udg://PATH (Unix domain) or udp://HOST:PORT (port 0: the kernel
    /// chooses; the `listening on` line says which).
    #[arg(
        value_name = "URL",
        default_value = "udg:///tmp/ipc-socket.sock",
        env = "IPC_DGRAM_URL"
    )]
    endpoint: DgramEndpoint,

    /// Load run: expect N sequence-stamped messages from each writer and print one summary
    /// line instead of the payloads; exit 1 unless every one arrived once and in order.
    #[arg(long, value_name = "N", value_parser = ipc_common::seq::parse_count)]
    count: Option<u64>,

    /// With --count: W writers send at once, writer k with `--first-seq k*N`.
    #[arg(
        long,
        value_name = "W",
        default_value = "1",
        requires = "count",
        value_parser = clap::value_parser!(u64).range(1..=1024)
    )]
    writers: u64,

    /// With --count over UDP: once datagrams flow, stop after SECS without one and report the
    /// rest as lost (0: wait for all of them until --timeout).
    #[arg(long, value_name = "SECS", default_value = "1", requires = "count")]
    idle: Timeout,

    /// With --count: exit 0 even if datagrams were lost, reordered or duplicated (UDP promises
    /// none of that); the summary line still tells.
    #[arg(long, requires = "count")]
    allow_loss: bool,

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
    if let Some(per_writer) = args.count {
        let total = per_writer.saturating_mul(args.writers);
        ensure!(
            total <= seq::MAX_COUNT,
            "--count {per_writer} with --writers {} expects {total} messages: at most {} per run",
            args.writers,
            seq::MAX_COUNT
        );
    }
    let mut receiver = Receiver::bind(&args.endpoint, args.mode.mode)?;
    if let (true, DgramEndpoint::Unix(path)) = (receiver.replaced_stale(), &args.endpoint) {
        progress!(
            "removed stale socket {} (nobody was listening)",
            path.display()
        );
    }
    progress!("listening on {}", receiver.url());

    let Some(per_writer) = args.count else {
        let datagram = receiver.recv(&deadline)?;
        progress!("received {} bytes", datagram.len());
        return report::print_payload(datagram);
    };

    let udp = matches!(args.endpoint, DgramEndpoint::Udp(_));
    if udp {
        receiver.set_receive_buffer(UDP_LOAD_RCVBUF)?;
    }
    let idle = if udp { args.idle.duration() } else { None };
    let mut tally = Tally::new(per_writer, args.writers);
    let received = receiver.recv_into(&mut tally, idle, &deadline);
    // The summary is the run's result, also when it ended early.
    report::print_payload(tally.to_string().as_bytes())?;
    received?;
    if !tally.perfect() && !args.allow_loss {
        bail!(
            "check {} messages on {}: some were lost, duplicated or reordered (see stdout)",
            per_writer.saturating_mul(args.writers),
            receiver.url()
        );
    }
    Ok(())
}
