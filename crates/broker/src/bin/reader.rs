//! `broker-reader`: the blog's message-queue reader on Redis Streams: takes one message through a
//! consumer group, prints it unserialized as PHP's `msg_receive` + `echo` would (`--format json`,
//! `--raw` as `mq-reader`), then acknowledges it. At least once: a reader killed between printing
//! and `XACK` leaves the message pending, and the next reader prints it again.
//!
//! Steps: connect (retried while Redis is not there yet), `XGROUP CREATE ... 0 MKSTREAM` (once),
//! `XAUTOCLAIM` (a dead reader's message), else `XREADGROUP ... BLOCK` in slices of 250 ms until
//! --timeout, `write(1)`, `XACK`, `XGROUP DELCONSUMER` (our consumer, nothing pending for it).
//!
//! ```text
//! cargo run -p broker --bin broker-writer
//! cargo run -p broker --bin broker-reader
//! ```

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use clap::builder::TypedValueParser;
use ipc_common::php::options::Format;
use ipc_common::runtime::cli::{CommonArgs, ENVIRONMENT, heading};
use ipc_common::runtime::report;
use ipc_common::say;

/// `--help`'s heading of the consumer group's options.
const GROUP: &str = "Consumer group (at least once)";

/// The command line; each field's doc comment is its `--help` text.
#[derive(Parser, Debug)]
#[command(
    name = "broker-reader",
    version,
    about = "The blog's message-queue reader on Redis Streams: prints one message, then acknowledges it",
    long_about = "Takes one message from a Redis stream through a consumer group (XREADGROUP), \
        prints it as the SysV reader does (unserialized as PHP's msg_receive, printed as PHP's \
        echo), then acknowledges it (XACK). Delivery is AT LEAST ONCE: a reader killed between \
        receiving and acknowledging leaves the message pending, and the next reader takes it over \
        (XAUTOCLAIM) once it has been idle --claim-after seconds, so it may be printed twice. A \
        message this reader cannot print as asked is not acknowledged: it stays pending. Waits up \
        to --timeout (default 10 s) for Redis and for a message. The password, if any, is read \
        from IPC_BROKER_PASSWORD (or REDISCLI_AUTH), never from the command line.",
    after_help = format!("{ENVIRONMENT}\n{}\n  IPC_BROKER_GROUP, IPC_BROKER_CONSUMER (--group, \
        --consumer)", broker::ENVIRONMENT)
)]
struct Args {
    #[command(flatten)]
    server: broker::ServerArgs,

    /// The consumer group: readers in one group share the messages, each message goes to one.
    #[arg(long, value_name = "NAME", default_value = broker::DEFAULT_GROUP,
        env = "IPC_BROKER_GROUP", hide_env = true, help_heading = GROUP)]
    group: String,

    /// This reader's name in the group [default: HOST-PID].
    #[arg(
        long,
        value_name = "NAME",
        env = "IPC_BROKER_CONSUMER",
        hide_env = true
    )]
    consumer: Option<String>,

    /// Take over a message another reader received but did not acknowledge once it has been
    /// pending this long (a reader that died); 0 takes any pending message at once.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = broker::parse_secs,
        help_heading = GROUP)]
    claim_after: Duration,

    /// Print at most N bytes per message [default: Redis's limit, 512 MiB]; a longer message is
    /// not acknowledged and stays pending.
    #[arg(long, value_name = "N", default_value_t = broker::REDIS_MAX_BULK,
        value_parser = clap::value_parser!(u64).range(1..=broker::REDIS_MAX_BULK as u64)
            .map(|n| n as usize), hide_default_value = true)]
    max_size: usize,

    /// Print the message's bytes as they are, for a writer that sent --raw.
    #[arg(long, help_heading = heading::PHP_VALUES)]
    raw: bool,

    /// How to print the unserialized value.
    #[arg(long, value_enum, default_value_t = Format::Echo, conflicts_with = "raw",
        help_heading = heading::PHP_VALUES)]
    format: Format,

    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    report::main(|| run(args))
}

fn run(args: Args) -> anyhow::Result<()> {
    let deadline = args.common.start();
    let consumer = args
        .consumer
        .clone()
        .unwrap_or_else(broker::default_consumer);
    let from = broker::Group {
        stream: &args.server.stream,
        group: &args.group,
        consumer: &consumer,
        claim_after: args.claim_after,
    };
    let mut redis = broker::connect(&args.server, &deadline)?;
    say!(deadline, "connected to {}", redis.url);
    if redis.create_group(from.stream, from.group, &deadline)? {
        say!(
            deadline,
            "created group {} on stream {}",
            from.group,
            from.stream
        );
    }

    let entry = redis.receive(&from, &deadline, &mut |id| {
        report::warn(format_args!(
            "entry {id} was received by a reader that never acknowledged it, and has since been \
             trimmed from stream {}: that message is lost",
            from.stream
        ));
    })?;
    let (id, stream) = (&entry.id, from.stream);
    say!(
        deadline,
        "received {} from stream {stream}",
        entry.describe()
    );
    // Not acknowledged unless printed: a message we cannot print stays pending for another try.
    let printed = entry.printed(stream, args.max_size, args.raw, args.format)?;
    if printed.array_echoed {
        report::warn(format_args!(
            "Array to string conversion (--format json shows the array)"
        ));
    }
    report::print_payload(&printed.bytes)?;

    if !redis.ack(&from, id, &deadline)? {
        report::warn(format_args!(
            "entry {id} was no longer pending for us when acknowledged (another reader took it \
             over, or it was trimmed): it may be printed twice"
        ));
    }
    say!(deadline, "acknowledged entry {id}");
    if redis.forget_consumer(&from, &deadline)? {
        say!(
            deadline,
            "removed consumer {consumer} from group {}",
            from.group
        );
    }
    Ok(())
}
