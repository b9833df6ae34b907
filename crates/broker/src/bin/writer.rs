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

use clap::builder::TypedValueParser;
use clap::{ArgGroup, Parser};
use ipc_common::php::{self, Value};
use ipc_common::runtime::cli::{CommonArgs, ENVIRONMENT, MessageArgs, MessageLimit};
use ipc_common::runtime::report;
use ipc_common::runtime::wait::Deadline;
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

    /// The message type (the SysV mtype), sent as the entry's `type` field.
    #[arg(long = "type", value_name = "N", default_value = "1", env = "IPC_BROKER_TYPE",
        hide_env = true, value_parser = clap::value_parser!(i64).range(1..),
        help_heading = "Message")]
    mtype: i64,

    /// Refuse a message (as sent, serialized or not) over N bytes [default: Redis's own limit
    /// on a string, 512 MiB].
    #[arg(long, value_name = "N", default_value_t = broker::REDIS_MAX_BULK, help_heading = "Message",
        value_parser = clap::value_parser!(u64).range(1..=broker::REDIS_MAX_BULK as u64)
            .map(|n| n as usize))]
    max_size: usize,

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
    let body = message_body(&args, &deadline)?;

    let mut redis = broker::connect(&args.server, &deadline)?;
    say!(deadline, "connected to {}", redis.url);
    let id = redis.add(stream, args.mtype, &body, &deadline)?;
    say!(
        deadline,
        "added {} bytes as type {} to stream {stream}: entry {id}",
        body.len(),
        args.mtype
    );
    Ok(())
}

/// The `body` field: the value serialized as PHP's `msg_send` does, or the message's bytes as
/// they are with `--raw`; refused before connecting when over --max-size.
fn message_body(args: &Args, deadline: &Deadline) -> anyhow::Result<Vec<u8>> {
    let limit = MessageLimit {
        bytes: args.max_size,
        why: format!(
            "--max-size, {} by default: Redis's proto-max-bulk-len",
            broker::REDIS_MAX_BULK
        )
        .into(),
    };
    let body = match args.value.value() {
        Some(value) => php::serialize(&value),
        None => {
            let bytes = args.message.payload(broker::MESSAGE, limit, deadline)?;
            match args.value.raw {
                true => bytes,
                false => php::serialize(&Value::String(bytes)),
            }
        }
    };
    if body.len() > args.max_size {
        anyhow::bail!(
            "the message is {} bytes as sent (serialized: {}), over --max-size {}: send less",
            body.len(),
            !args.value.raw,
            args.max_size
        );
    }
    Ok(body)
}
