//! `dgram-writer`: the blog's datagram sender ("UDP/UDS [Datagram]" and "UDP/IP [Datagram]"):
//! sends one datagram, `Hello from Sender: UDP/UDS [Datagram]` (or `UDP/IP`), to the reader,
//! waiting for a reader that is not there yet instead of losing it.
//!
//! Syscalls, as strace shows them (after `pipe2` and `rt_sigaction`, the stop signals' pipe):
//! `openat(PATH, O_PATH|O_NOFOLLOW)` + `statx` (a trusted socket, no symlink), `socket(AF_UNIX or
//! AF_INET, SOCK_DGRAM|SOCK_NONBLOCK)` (a group or `--broadcast`: `setsockopt` first),
//! `connect("/proc/self/fd/N")` (retried until a reader is bound), `sendto` (UDP:
//! `getsockopt(SO_ERROR)` after it, resent while ICMP says nobody listens), `--expect-reply`:
//! `recvfrom` on the same socket, `close`.
//!
//! ```text
//! dgram-reader                                # or: dgram-reader udp://127.0.0.1:9999
//! dgram-writer                                # or: dgram-writer udp://127.0.0.1:9999
//! ```

use std::process::ExitCode;

use clap::Parser;
use dgram::Sender;
use dgram::cli::{WriterManyArgs, WriterReplyArgs};
use ipc_common::runtime::cli::{CommonArgs, ENVIRONMENT, MessageArgs, usage_error};
use ipc_common::runtime::report;
use ipc_common::say;
use ipc_common::sockets::endpoint::DgramEndpoint;

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
                  Prints nothing on stdout (with --expect-reply: the reply).\n\nTo a multicast \
                  group (udp://239.255.0.1:9999) or a broadcast address (--broadcast), the \
                  datagram reaches every reader there, or none: a writer cannot know who \
                  received it, and exit 0 means only that it was sent.",
    after_help = environment()
)]
struct Args {
    /// Where the reader listens: udg://PATH (Unix domain) or udp://HOST:PORT.
    #[arg(
        value_name = "URL",
        default_value = "udg:///tmp/ipc-socket.sock",
        env = "IPC_DGRAM_URL",
        hide_env = true
    )]
    endpoint: DgramEndpoint,

    #[command(flatten)]
    message: MessageArgs,

    #[command(flatten)]
    many: WriterManyArgs,

    #[command(flatten)]
    reply: WriterReplyArgs,

    #[command(flatten)]
    common: CommonArgs,
}

/// The shared environment, and ours.
fn environment() -> String {
    format!(
        "{ENVIRONMENT}\n  IPC_DGRAM_URL (the URL), IPC_DGRAM_BROADCAST, IPC_DGRAM_TTL, \
         IPC_DGRAM_INTERFACE, IPC_DGRAM_EXPECT_REPLY"
    )
}

fn main() -> ExitCode {
    let args = Args::parse();
    report::main(|| run(args))
}

fn run(args: Args) -> anyhow::Result<()> {
    let options = args.many.options(&args.reply);
    if let Err(why) = options.check(&args.endpoint) {
        usage_error::<Args>(why);
    }
    let deadline = args.common.start();
    if options.expect_reply {
        report::check_stdout()?; // before we send: the reply would have nowhere to go
    }
    let limit = dgram::message_limit(&args.endpoint)?;
    let message = args
        .message
        .payload(dgram::default_message(&args.endpoint), limit, &deadline)?;

    let mut socket = Sender::open(&args.endpoint, &options, &deadline)?;
    socket.send(&message, &deadline)?;
    let receipt = socket.audience().receipt();
    say!(
        deadline,
        "sent {} bytes to {}{receipt}",
        message.len(),
        socket.url()
    );

    if options.expect_reply {
        let reply = socket.recv_reply(&deadline)?;
        say!(deadline, "received a {}-byte reply", reply.len());
        report::print_payload(&reply)?;
    }
    socket.close();
    Ok(())
}
