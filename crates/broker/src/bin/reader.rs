//! `broker-reader`: the blog's message-queue reader on Redis Streams: takes one message through a
//! consumer group, prints it unserialized as PHP's `msg_receive` + `echo` would (`--format json`,
//! `--raw` as `mq-reader`), then acknowledges it. At least once: a reader killed between printing
//! and `XACK` leaves the message pending, and the next reader prints it again.
//!
//! Steps: connect (retried while Redis is not there yet), `XGROUP CREATE ... 0 MKSTREAM` (once),
//! `XAUTOCLAIM` (a dead reader's message), else `XREADGROUP ... BLOCK` in slices of 250 ms until
//! --timeout (an entry nobody can print: `EVAL` of `XADD` to the dead-letter stream + `XACK`
//! after --max-deliveries), `write(1)`, `XACK`, `EVAL` of `XPENDING` + `XGROUP DELCONSUMER` (our consumer,
//! if nothing is pending for it, in one step).
//!
//! ```text
//! cargo run -p broker --bin broker-writer
//! cargo run -p broker --bin broker-reader
//! ```

use std::process::ExitCode;

use clap::Parser;
use ipc_common::php::options::PrintArgs;
use ipc_common::runtime::cli::{CommonArgs, ENVIRONMENT};
use ipc_common::runtime::report;
use ipc_common::say;

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
        message this reader cannot print as asked is not acknowledged: it stays pending, until \
        Redis has delivered it --max-deliveries times; then it is moved to a dead-letter stream \
        (XADD + XACK in one EVAL) and the next message is taken. Waits up \
        to --timeout (default 10 s) for Redis and for a message. The password, if any, is read \
        from IPC_BROKER_PASSWORD (or REDISCLI_AUTH), never from the command line.",
    after_help = format!("{ENVIRONMENT}\n{}\n  IPC_BROKER_GROUP, IPC_BROKER_CONSUMER (--group, \
        --consumer)", broker::ENVIRONMENT)
)]
struct Args {
    #[command(flatten)]
    server: broker::ServerArgs,

    #[command(flatten)]
    read: broker::cli::ReadArgs,

    #[command(flatten)]
    print: PrintArgs,

    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    report::main(|| run(args))
}

fn run(args: Args) -> anyhow::Result<()> {
    let deadline = args.common.start();
    report::check_stdout()?; // before anything is taken: nowhere to print it
    let from = args.read.on(&args.server.stream);
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

    // Not acknowledged unless printed: a message we cannot print stays pending for another try,
    // until --max-deliveries moves it to the dead-letter stream and we take the next.
    let (entry, printed) = redis.receive_printable(
        &from,
        &args.read.dead_letter(from.stream),
        &deadline,
        &mut |line| report::warn(line),
        &mut |entry| {
            let (raw, format) = (args.print.raw, args.print.format);
            entry.printed(from.stream, args.read.max_size, raw, format)
        },
    )?;
    let id = &entry.id;
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
            "removed consumer {} from group {}",
            from.consumer,
            from.group
        );
    }
    Ok(())
}
