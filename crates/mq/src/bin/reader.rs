//! `mq-reader`: the blog's message-queue reader (`ftok`, `msg_get_queue`, `msg_receive`, `echo`,
//! `msg_remove_queue`): prints one message, unserialized as PHP's `msg_receive` does and printed
//! as PHP's `echo` would (`--format json`: as JSON; `--raw`: the bytes as they are).
//!
//! Syscalls as strace shows them: `statx` until the key file exists, `openat(O_PATH)` + `statx`
//! (its checks and `ftok` key), `msgget(key, 0)` until the queue exists, `msgctl(IPC_STAT)` (its
//! owner), `msgrcv(MSG_COPY|IPC_NOWAIT)` until the message is there (a copy, checked before it is
//! taken: a message we cannot print stays queued), `msgrcv(IPC_NOWAIT)` takes it, `write(1)`,
//! `msgctl(IPC_STAT)` and, if the queue is empty, `msgctl(IPC_RMID)`.
//!
//! ```text
//! cargo run -p mq --bin mq-writer
//! cargo run -p mq --bin mq-reader
//! ```

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use ipc_common::runtime::cli::{CommonArgs, ENVIRONMENT, heading};
use ipc_common::runtime::report;
use ipc_common::say;
use ipc_common::sysv::{self, MsgBuf};
use mq::{Format, KeyArgs, ProjId, Queue, Removal, Wanted};

/// The command line; each field's doc comment is its `--help` text.
#[derive(Parser, Debug)]
#[command(
    name = "mq-reader",
    version,
    about = "The blog's message-queue reader: prints a message from a SysV queue, then removes it",
    long_about = "Receives one message from a SysV message queue and prints it: the blog's \
        message-queue reader. The queue is keyed on ftok(/tmp/ipc-message-queues, 'T') by \
        default; the reader waits up to --timeout (default 10 s) for the key file, the queue and \
        a message, unserializes the message as PHP's msg_receive does and prints it as PHP's \
        echo would, then removes the queue if it is empty. A message it cannot print as asked is \
        not taken.",
    after_help = format!("{ENVIRONMENT}\n{}", mq::ENVIRONMENT)
)]
struct Args {
    #[command(flatten)]
    key: KeyArgs,

    /// Which message to take (msgrcv's msgtyp): 0 the first in the queue, N the first of type N,
    /// -N the first of the lowest type up to N.
    #[arg(
        long = "type",
        value_name = "N",
        default_value = "0",
        env = "IPC_MQ_TYPE",
        hide_env = true,
        allow_negative_numbers = true
    )]
    desired_type: i64,

    /// Receive at most N bytes per message [default: the kernel's msgmax]; a longer message
    /// fails with E2BIG and stays queued.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=i32::MAX as u64))]
    max_size: Option<u64>,

    /// Leave the queue in place after reading (the blog's reader removes it).
    #[arg(long)]
    keep: bool,

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
    let key_file = &args.key.key_file;
    let keyed = mq::wait_for_key(key_file, args.key.proj, &deadline)?;
    let key = keyed.key;
    say!(
        deadline,
        "key {key} = ftok({}, {})",
        key_file.display(),
        ProjId(args.key.proj)
    );
    let queue =
        mq::wait_for_queue(&keyed, &deadline).map_err(|err| {
            match sysv::namespace_note(key_file) {
                Some(note) => err.context(note),
                None => err,
            }
        })?;
    let max_len = match args.max_size {
        Some(n) => usize::try_from(n).context("--max-size")?,
        None => sysv::msgmax().context("read msgmax from /proc/sys/kernel/msgmax")?,
    };
    let wanted = Wanted {
        queue,
        desired_type: args.desired_type,
    };

    let mut buf = MsgBuf::new();
    // Where the kernel lets us look without taking (MSG_COPY), a message we could not print as
    // asked is not taken at all: it and the queue stay.
    let looked = match args.raw {
        true => None,
        false => mq::peek(&mut buf, queue, max_len, args.desired_type, &deadline)?
            .map(|(mtype, copy)| {
                let printed = mq::decode(&copy, key, args.format).with_context(|| {
                    format!(
                        "read the message of type {mtype} from queue {key}: nothing was taken, \
                         the message and the queue stay"
                    )
                })?;
                anyhow::Ok((mtype, copy, printed))
            })
            .transpose()?,
    };
    let mut text = Vec::new();
    let mtype = mq::receive_announced(&mut buf, wanted, max_len, &mut text, &deadline)?;
    say!(
        deadline,
        "received {} bytes of type {mtype} from queue {key}",
        text.len()
    );
    // The message has left the queue and cannot be put back in its place: a message we cannot
    // print as asked (not looked at first, without MSG_COPY) is printed as it is, raw, and the
    // run fails, leaving the queue in place.
    let printed = match looked {
        _ if args.raw => Ok(mq::Printed {
            bytes: text.clone(),
            array_echoed: false,
        }),
        Some((peeked, copy, printed)) if peeked == mtype && copy == text => Ok(printed),
        // Another reader took the one we looked at: this one is checked now.
        _ => mq::decode(&text, key, args.format),
    };
    match printed {
        Ok(printed) => {
            if printed.array_echoed {
                report::warn(format_args!(
                    "Array to string conversion (--format json shows the array)"
                ));
            }
            report::print_payload(&printed.bytes)?;
        }
        Err(err) => {
            report::print_payload(&text)?;
            return Err(err.context(format!(
                "the message of type {mtype} from queue {key} left the queue, so its {} bytes \
                 are on stdout as they are (as --raw prints them), and the queue is left in place",
                text.len()
            )));
        }
    }
    remove_unless_kept(queue, args.keep, &deadline)
}

/// The blog's reader removes the queue once it has read (`msgctl(IPC_RMID)`); `--keep` leaves
/// it, and so does a queue that still holds messages (not ours to destroy) or that we may not
/// remove (another user's: the read itself succeeded, so that is a warning, not a failure).
fn remove_unless_kept(
    queue: Queue,
    keep: bool,
    deadline: &ipc_common::runtime::wait::Deadline,
) -> anyhow::Result<()> {
    let key = queue.key;
    if keep {
        say!(deadline, "left queue {key} in place (--keep)");
        return Ok(());
    }
    match mq::remove_if_empty(queue)? {
        Removal::Removed => say!(deadline, "removed queue {key}"),
        Removal::NotEmpty(n) => say!(
            deadline,
            "left queue {key} in place: {n} more message(s) in it, not ours to destroy"
        ),
        Removal::NotPermitted { uid, creator_uid } => report::warn(format_args!(
            "the message was read, but queue {key} stays: only its owner (uid {uid}), its \
             creator (uid {creator_uid}) or root may remove it, and we are uid {} (pass --keep \
             to leave it to them without this warning)",
            nix::unistd::geteuid()
        )),
    }
    Ok(())
}
