//! `dgram-reader`: the blog's datagram listener ("UDP/UDS [Datagram]" and "UDP/IP [Datagram]"):
//! binds a datagram socket, receives one datagram, whole, and prints it.
//!
//! Syscalls, as strace shows them (after `pipe2` and `rt_sigaction`, the stop signals' pipe):
//! `statx(PATH)` (a trusted socket nobody answers a `connect` on is stale: `unlink`ed; anything
//! else is refused), `socket(AF_UNIX or AF_INET, SOCK_DGRAM|SOCK_NONBLOCK)`,
//! `fchmod(--mode)`, `bind` (UDP: then `getsockname`; a group: `setsockopt(IP_ADD_MEMBERSHIP)`),
//! `recvfrom(MSG_TRUNC)` (`poll` while nothing is queued), `--reply`: `sendto` the sender from
//! the same socket (UDP on a wildcard address: `setsockopt(IP_PKTINFO)`, `recvmsg`, and `sendmsg`
//! from the address the datagram was sent to), `close`, `unlink(PATH)`.
//!
//! ```text
//! dgram-reader                                # or: dgram-reader udp://127.0.0.1:9999
//! dgram-writer                                # or: dgram-writer udp://127.0.0.1:9999
//! ```

use std::process::ExitCode;

use clap::Parser;
use dgram::Receiver;
use dgram::cli::{ReaderManyArgs, ReaderReplyArgs};
use ipc_common::runtime::cli::{CommonArgs, ENVIRONMENT, ModeArgs, usage_error};
use ipc_common::runtime::report;
use ipc_common::say;
use ipc_common::sockets::endpoint::DgramEndpoint;

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
                  Removes its socket file when it ends.\n\nA multicast group address \
                  (udp://239.255.0.1:9999, udp://[ff15::1]:9999) is joined, its port shared \
                  with other readers; for broadcast, bind udp://0.0.0.0:PORT with --shared. \
                  Several readers then each get a copy, and no writer learns who did.",
    after_help = environment()
)]
struct Args {
    /// Where to listen: udg://PATH (Unix domain) or udp://HOST:PORT (port 0: the kernel
    /// chooses; the `listening on` line says which).
    #[arg(
        value_name = "URL",
        default_value = "udg:///tmp/ipc-socket.sock",
        env = "IPC_DGRAM_URL",
        hide_env = true
    )]
    endpoint: DgramEndpoint,

    #[command(flatten)]
    many: ReaderManyArgs,

    #[command(flatten)]
    reply: ReaderReplyArgs,

    #[command(flatten)]
    mode: ModeArgs,

    #[command(flatten)]
    common: CommonArgs,
}

/// The shared environment, and ours.
fn environment() -> String {
    format!(
        "{ENVIRONMENT}\n  IPC_DGRAM_URL (the URL), IPC_DGRAM_SHARED, IPC_DGRAM_INTERFACE, \
         IPC_DGRAM_REPLY"
    )
}

fn main() -> ExitCode {
    let args = Args::parse();
    report::main(|| run(args))
}

fn run(args: Args) -> anyhow::Result<()> {
    let deadline = args.common.start();
    report::check_stdout()?; // before anything is taken: nowhere to print it

    let listen = args.many.listen();
    if let Err(why) = listen.check(&args.endpoint) {
        usage_error::<Args>(why);
    }
    let mut socket = Receiver::bind_with(&args.endpoint, args.mode.mode, &listen)?;
    if args.reply.reply.is_some() {
        socket.remember_senders()?;
    }
    if let (true, DgramEndpoint::Unix(path)) = (socket.replaced_stale(), &args.endpoint) {
        say!(
            deadline,
            "removed stale socket {} (nobody was listening)",
            path.display()
        );
    }
    say!(deadline, "listening on {}", socket.url());

    let datagram = socket.recv(&deadline)?;
    say!(deadline, "received {} bytes", datagram.len());
    report::print_payload(datagram)?;

    if let Some(reply) = args.reply.reply {
        let to = socket.reply(reply.as_encoded_bytes(), &deadline)?;
        say!(deadline, "replied {} bytes to {to}", reply.len());
    }

    socket.close()
}
