//! Load runs over the mq mechanism: `ipc-load mq-reader --count N [--any-order]` and `ipc-load
//! mq-writer --count N [--first-seq K]`. Writers send N sequence-stamped copies of the message,
//! raw; the reader checks that each arrived once (and in order, unless `--any-order`, for several
//! writers interleaving) and prints one summary line. (Moved here from the mq binaries' `--count`
//! mode by the redesign of issue 10.)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, ensure};
use clap::{Args, Subcommand};
use ipc_common::runtime::cli::{CommonArgs, MessageArgs, MessageLimit, ModeArgs};
use ipc_common::runtime::paths::{self, KeyFile};
use ipc_common::runtime::report;
use ipc_common::runtime::wait::Deadline;
use ipc_common::say;
use ipc_common::seq::{self, SeqChecker};
use ipc_common::sysv::{self, MsgBuf};
use mq::{KeyArgs, Queue, Removal, Wanted};

/// Sequence stamps have ten digits.
const MAX_SEQ: u64 = 10_000_000_000;

/// `mq-reader` and `mq-writer` load runs.
#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Expect N sequence-stamped messages from `ipc-load mq-writer --count` (one writer or several
    /// with --first-seq), check that each arrived once, and print a summary line; exit 1 unless
    /// all is well. The queue is removed at the end if it is empty, also after a failed check.
    #[command(name = "mq-reader")]
    Reader(ReaderArgs),
    /// Send N sequence-stamped copies of the message, raw.
    #[command(name = "mq-writer")]
    Writer(WriterArgs),
}

#[derive(Args, Debug)]
pub(crate) struct ReaderArgs {
    #[command(flatten)]
    key: KeyArgs,

    /// Which messages to take (msgrcv's msgtyp): 0 any, N type N, -N the lowest type up to N.
    #[arg(
        long = "type",
        value_name = "N",
        default_value = "0",
        allow_negative_numbers = true
    )]
    desired_type: i64,

    /// Receive at most N bytes per message [default: the kernel's msgmax].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=i32::MAX as u64))]
    max_size: Option<u64>,

    /// How many messages to expect (at most 100 million: the check keeps a byte per message).
    #[arg(long, value_name = "N", value_parser = seq::parse_count)]
    count: u64,

    /// Accept the messages in any order, as several writers interleave them (still each exactly
    /// once); the summary's "reordered" then counts the interleaving.
    #[arg(long)]
    any_order: bool,

    /// Leave the queue in place at the end.
    #[arg(long)]
    keep: bool,

    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args, Debug)]
pub(crate) struct WriterArgs {
    #[command(flatten)]
    key: KeyArgs,

    /// The message type (mtype, 1 or more).
    #[arg(long = "type", value_name = "N", default_value = "1", allow_negative_numbers = true,
        value_parser = clap::value_parser!(i64).range(1..))]
    mtype: i64,

    /// How many stamped copies of the message to send.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..MAX_SEQ))]
    count: u64,

    /// Number the messages from K, so that several writers sending to one reader
    /// (`--count 1250 --first-seq 0`, `--first-seq 1250`, ...) are told apart.
    #[arg(long, value_name = "K", default_value = "0", value_parser = clap::value_parser!(u64).range(..MAX_SEQ))]
    first_seq: u64,

    #[command(flatten)]
    message: MessageArgs,

    #[command(flatten)]
    mode: ModeArgs,

    #[command(flatten)]
    common: CommonArgs,
}

pub(crate) fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Reader(args) => read(&args),
        Command::Writer(args) => write(&args),
    }
}

fn write(args: &WriterArgs) -> anyhow::Result<()> {
    let deadline = args.common.start();
    let msgmax = sysv::msgmax().context("read msgmax from /proc/sys/kernel/msgmax")?;
    let limit = MessageLimit {
        bytes: msgmax,
        why: format!("over msgmax, the kernel's limit of {msgmax} bytes per message").into(),
    };
    let text = args.message.payload(mq::MESSAGE, limit, &deadline)?;
    let len = seq::STAMP_LEN + text.len();
    mq::check_msgmax(len, msgmax, "")?;
    let (first, count) = (args.first_seq, args.count);
    ensure!(
        first + count <= MAX_SEQ,
        "number messages {first} to {}: sequence stamps stop at {}",
        first + count - 1,
        MAX_SEQ - 1
    );

    let key_file = &args.key.key_file;
    let created_key_file = match paths::ensure_key_file(key_file, args.mode.mode)? {
        KeyFile::Created(guard) => {
            say!(deadline, "created key file {}", key_file.display());
            Some(guard)
        }
        KeyFile::Existing => None,
    };
    let keyed = mq::key_of(key_file, args.key.proj)?;
    let key = keyed.key;
    let sent = Arc::new(AtomicU64::new(0));
    let (queue, created) = mq::open_or_create(&keyed, args.mode.mode, Arc::clone(&sent))?;
    if created.is_some() {
        say!(deadline, "created queue {key} (msqid {})", queue.id.0);
    }
    mq::check_qbytes(queue, len, "")?;

    let mut buf = MsgBuf::new();
    let mut stamped = Vec::with_capacity(len);
    for n in first..first + count {
        seq::stamp_into(&mut stamped, n, &text);
        mq::send(&mut buf, queue, args.mtype, &stamped, &deadline)?;
        sent.fetch_add(1, Ordering::Relaxed);
    }
    say!(
        deadline,
        "sent {count} stamped messages ({first} to {}) as type {} to queue {key}",
        first + count - 1,
        args.mtype
    );
    created
        .into_iter()
        .chain(created_key_file)
        .for_each(|guard| guard.keep());
    say!(deadline, "left queue {key} for the reader");
    Ok(())
}

fn read(args: &ReaderArgs) -> anyhow::Result<()> {
    let deadline = args.common.start();
    let keyed = mq::wait_for_key(&args.key.key_file, args.key.proj, &deadline)?;
    let queue = mq::wait_for_queue(&keyed, &deadline)?;
    let max_len = match args.max_size {
        Some(n) => usize::try_from(n).context("--max-size")?,
        None => sysv::msgmax().context("read msgmax from /proc/sys/kernel/msgmax")?,
    };
    let wanted = Wanted {
        queue,
        desired_type: args.desired_type,
    };
    // The queue is of no use once the run is over, whichever way it ended: it goes if empty,
    // and the error, if any, after.
    let checked = check_count_run(wanted, max_len, args, &deadline);
    let removed = remove_unless_kept(queue, args.keep, &deadline);
    checked.and(removed)
}

/// Receives `count` stamped messages and prints the summary line; anything short of each
/// message exactly once (and in order, unless `--any-order`) is an error after that.
fn check_count_run(
    wanted: Wanted,
    max_len: usize,
    args: &ReaderArgs,
    deadline: &Deadline,
) -> anyhow::Result<()> {
    let (key, count) = (wanted.queue.key, args.count);
    let mut buf = MsgBuf::new();
    let mut checker = SeqChecker::new(count, None);
    let mut text = Vec::new();
    let mut outcome = Ok(());
    for n in 1..=count {
        let received = mq::receive(
            &mut buf,
            wanted.queue,
            max_len,
            wanted.desired_type,
            &mut text,
            deadline,
        )
        .with_context(|| format!("receive message {n} of {count}"))
        .and_then(|_| {
            checker
                .observe(&text)
                .with_context(|| format!("check message {n} of {count} from queue {key}"))
        });
        if let Err(err) = received {
            outcome = Err(err);
            break;
        }
        if n == 1 {
            say!(deadline, "first message arrived; {} to go", count - 1);
        }
    }
    report::print_payload(checker.to_string().as_bytes())?;
    outcome?;
    let ok = if args.any_order {
        checker.perfect_in_any_order()
    } else {
        checker.perfect()
    };
    ensure!(ok, "check {count} messages from queue {key}: {checker}");
    Ok(())
}

/// Removes the queue if it is empty (unless `--keep`); one that still holds messages is not
/// ours to destroy, and one we may not remove is a warning.
fn remove_unless_kept(queue: Queue, keep: bool, deadline: &Deadline) -> anyhow::Result<()> {
    let key = queue.key;
    if keep {
        return Ok(());
    }
    match mq::remove_if_empty(queue)? {
        Removal::Removed => say!(deadline, "removed queue {key}"),
        Removal::NotEmpty(n) => say!(
            deadline,
            "left queue {key} in place: {n} more message(s) in it, not ours to destroy"
        ),
        Removal::NotPermitted { uid, creator_uid } => report::warn(format_args!(
            "queue {key} stays: only its owner (uid {uid}), its creator (uid {creator_uid}) or \
             root may remove it"
        )),
    }
    Ok(())
}
