//! `broker-writer`: the blog's message-queue writer on Redis Streams instead of a SysV queue:
//! `XADD ipc-message-queues * type 1 body <message>`, the message PHP-serialized by default, the
//! same bytes `mq-writer` gives `msgsnd`, so `broker-reader` and PHP (phpredis `xReadGroup`)
//! unserialize it (`s:32:"Hello from Writer: Message Queue";`).
//!
//! Steps: connect (retried while Redis is not there yet, within --timeout; the password comes
//! from IPC_BROKER_PASSWORD), `XADD` (Redis answers with the entry's id once it holds it).
//!
//! ```text
//! redis-server --port 6379 --appendonly yes &
//! cargo run -p broker --bin broker-writer
//! cargo run -p broker --bin broker-reader
//! ```

use std::process::ExitCode;

use clap::{ArgGroup, Parser};
use ipc_common::runtime::cli::{CommonArgs, ENVIRONMENT, MessageArgs};
use ipc_common::runtime::report;
use ipc_common::say;

/// The command line; each field's doc comment is its `--help` text.
#[derive(Parser, Debug)]
#[command(
    name = "broker-writer",
    version,
    about = "The blog's message-queue writer on Redis Streams: adds a PHP-serialized message",
    long_about = "Adds one message to a Redis stream (XADD): the blog's message-queue writer, \
        with Redis in place of the kernel's SysV queue, so the reader may be on another host. \
        The stream is ipc-message-queues on redis://127.0.0.1:6379 by default; the message, \
        \"Hello from Writer: Message Queue\" unless told otherwise, goes as the entry's `body` \
        field, serialized as PHP's msg_send does (--raw: the bytes as they are), its type as \
        the `type` field. Exit 0 means Redis holds the message (durably as its appendfsync \
        setting makes it). Redis not there yet is waited for up to --timeout (default 10 s). \
        The password, if any, is read from IPC_BROKER_PASSWORD (or REDISCLI_AUTH), never from \
        the command line.",
    after_help = format!("{ENVIRONMENT}\n{}\n  IPC_BROKER_TYPE (--type)", broker::ENVIRONMENT),
    group(ArgGroup::new("value").args(["message", "message_file", "int", "float", "bool", "null"]))
)]
struct Args {
    #[command(flatten)]
    server: broker::ServerArgs,

    #[command(flatten)]
    write: broker::cli::WriteArgs,

    #[command(flatten)]
    message: MessageArgs,

    #[command(flatten)]
    value: ipc_common::php::options::ValueArgs,

    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    report::main(|| run(args))
}

fn run(args: Args) -> anyhow::Result<()> {
    let deadline = args.common.start();
    let stream = &args.server.stream;
    let body = args.write.body(&args.message, &args.value, &deadline)?;

    let mut redis = broker::connect(&args.server, &deadline)?;
    say!(deadline, "connected to {}", redis.url);
    let id = redis.add(stream, args.write.mtype, &body, &deadline)?;
    say!(
        deadline,
        "added {} bytes as type {} to stream {stream}: entry {id}",
        body.len(),
        args.write.mtype
    );
    Ok(())
}
