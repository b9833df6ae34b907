//! `mq-reader`: receives one message from a SysV message queue, prints it and removes the queue,
//! as the blog's message-queue reader does (`ftok`, `msg_get_queue`, `msg_receive`, `echo`,
//! `msg_remove_queue`). The message is unserialized as PHP's `msg_receive` does and printed as
//! PHP's `echo` prints the value (`--format json`: as JSON; `--raw`: the bytes as they are).
//!
//! Syscalls, in order:
//! 1. `lstat(2)` until the key file exists, then `open(2)` it `O_PATH | O_NOFOLLOW` and
//!    `fstat(2)` it: a regular file of a trusted owner (ourselves, root or `--trust-uid`), whose
//!    inode and device give the `ftok(3)` key;
//! 2. `msgget(2)` with flags 0: the queue, retried until the writer has created it (a key file
//!    removed or replaced meanwhile ends the wait: the queue would never come); `msgctl(2)`
//!    `IPC_STAT` checks that a trusted user owns and created it;
//! 3. `msgrcv(2)` with `MSG_COPY | IPC_NOWAIT`, retried until the message to take is queued or
//!    `--timeout` passes: a copy, decoded first, so that a message we cannot print stays queued;
//!    then `msgrcv(2)` with `IPC_NOWAIT` takes it (with `--raw`, no copy; with `--timeout 0`, a
//!    blocking `msgrcv`); the receive limit is the kernel's `msgmax`;
//! 4. the message on stdout (one taken that it cannot print: raw, exit 1, the queue kept), then
//!    `msgctl(2)` `IPC_STAT` and, if the queue is empty, `IPC_RMID` (not with `--keep`; only its
//!    owner, its creator or root may remove it: otherwise a warning).
//!
//! The writer creates the key file and the queue; the reader creates nothing and removes the
//! queue once it has read from it. stdout gets the message and one newline.
//!
//! Run the pair (either order):
//!
//! ```text
//! cargo run -p mq --bin mq-writer
//! cargo run -p mq --bin mq-reader
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, anyhow, ensure};
use clap::{Parser, ValueEnum};
use ipc_common::cli::{CommonArgs, parse_proj_id};
use ipc_common::php::{self, JsonFlags, Value};
use ipc_common::seq::{self, SeqChecker};
use ipc_common::sysv::{self, Key, MsgBuf};
use ipc_common::wait::Deadline;
use ipc_common::{progress, report};
use mq::{ProjId, Queue, Removal, Wanted};

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
        not taken."
)]
struct Args {
    /// The ftok(3) key file the writer keyed the queue on.
    #[arg(long, value_name = "PATH", env = "IPC_KEY_FILE", default_value = mq::DEFAULT_KEY_FILE)]
    key_file: PathBuf,

    /// The ftok(3) project id: one character, as PHP's ftok takes it, or a number from 1 to 255.
    #[arg(long, value_name = "ID", env = "IPC_PROJ", default_value = "T", value_parser = parse_proj_id)]
    proj: u8,

    /// Which message to take (msgrcv's msgtyp): 0 the first in the queue, N the first of type N,
    /// -N the first of the lowest type up to N.
    #[arg(
        long = "type",
        value_name = "N",
        default_value = "0",
        allow_negative_numbers = true
    )]
    desired_type: i64,

    /// Print the message's bytes as they are, for a writer that sent --raw.
    #[arg(long)]
    raw: bool,

    /// How to print the unserialized value.
    #[arg(long, value_enum, default_value_t = Format::Echo, conflicts_with = "raw")]
    format: Format,

    /// Receive at most N bytes per message [default: the kernel's msgmax]; a longer message
    /// fails with E2BIG and stays queued.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=i32::MAX as u64))]
    max_size: Option<u64>,

    /// Leave the queue in place after reading (the blog's reader removes it).
    #[arg(long)]
    keep: bool,

    /// Expect N sequence-stamped messages from `mq-writer --count` (one writer or several with
    /// --first-seq), check that each arrived once, and print a summary line instead; exit 1
    /// unless all is well. At most 100 million (the check keeps a byte per message). The queue
    /// is removed at the end if it is empty, also after a failed check.
    #[arg(
        long,
        value_name = "N",
        value_parser = seq::parse_count,
        conflicts_with = "format"
    )]
    count: Option<u64>,

    /// With --count: accept the messages in any order, as several writers interleave them
    /// (still each exactly once); the summary's "reordered" then counts the interleaving.
    #[arg(long, requires = "count")]
    any_order: bool,

    #[command(flatten)]
    common: CommonArgs,
}

/// How the unserialized value is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// As PHP's `echo` prints it: strings as they are, true as 1, false and null as nothing.
    Echo,
    /// As JSON, as PHP's `json_encode($value)` writes it (default flags: `\/`, non-ASCII as
    /// \uXXXX).
    Json,
    /// As `json_encode($value, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE)` writes it.
    JsonUnescaped,
}

fn main() -> ExitCode {
    let args = Args::parse();
    ipc_common::report::main(|| run(args))
}

fn run(args: Args) -> anyhow::Result<()> {
    let deadline = args.common.start();
    let key_file = &args.key_file;
    let keyed = mq::wait_for_key(key_file, args.proj, &deadline, || {
        progress!("waiting for key file {} to appear", key_file.display());
    })?;
    let key = keyed.key;
    progress!(
        "key {key} = ftok({}, {})",
        key_file.display(),
        ProjId(args.proj)
    );
    let queue = mq::wait_for_queue(&keyed, &deadline, || {
        progress!("waiting for queue {key} to appear (mq-writer creates it)");
    })
    .map_err(|err| match sysv::namespace_note(key_file) {
        Some(note) => err.context(note),
        None => err,
    })?;
    let max_len = match args.max_size {
        Some(n) => usize::try_from(n).context("--max-size")?,
        None => sysv::msgmax().context("read msgmax from /proc/sys/kernel/msgmax")?,
    };
    let wanted = Wanted {
        queue,
        desired_type: args.desired_type,
    };
    progress!("waiting for {wanted} (at most {max_len} bytes)");

    let mut buf = MsgBuf::new();
    if let Some(count) = args.count {
        let checked = check_count_run(&mut buf, wanted, max_len, count, args.any_order, &deadline);
        let removed = remove_unless_kept(queue, args.keep);
        return checked.and(removed);
    }

    // Where the kernel lets us look without taking (MSG_COPY), a message we could not print as
    // asked is not taken at all: it and the queue stay.
    let checked = if args.raw {
        None
    } else {
        mq::peek(&mut buf, queue, max_len, args.desired_type, &deadline)?
            .map(|(mtype, copy)| {
                decode(&copy, key, args.format)
                    .map(|output| (mtype, copy, output))
                    .map_err(|err| {
                        err.context(format!(
                            "read the message of type {mtype} from queue {key}: nothing was \
                             taken, the message and the queue stay"
                        ))
                    })
            })
            .transpose()?
    };
    let mut text = Vec::new();
    let mtype = mq::receive(
        &mut buf,
        queue,
        max_len,
        args.desired_type,
        &mut text,
        &deadline,
    )?;
    progress!(
        "received {} bytes of type {mtype} from queue {key}",
        text.len()
    );
    // The message has left the queue and cannot be put back in its place: a message we cannot
    // print as asked (not looked at first, without MSG_COPY) is printed as it is, raw, and the
    // run fails, leaving the queue in place.
    let printed = match checked {
        _ if args.raw => Ok(text.clone()),
        Some((peeked, copy, output)) if peeked == mtype && copy == text => Ok(output),
        // Another reader took the one we looked at: this one is checked now.
        _ => decode(&text, key, args.format),
    };
    match printed {
        Ok(output) => report::print_payload(&output)?,
        Err(err) => {
            report::print_payload(&text)?;
            return Err(err.context(format!(
                "the message of type {mtype} from queue {key} left the queue, so its {} bytes \
                 are on stdout as they are (as --raw prints them), and the queue is left in place",
                text.len()
            )));
        }
    }
    remove_unless_kept(queue, args.keep)
}

/// Unserializes the mtext as PHP's `msg_receive` does (trailing bytes ignored, as there) and
/// prints the value the chosen way.
fn decode(text: &[u8], key: Key, format: Format) -> anyhow::Result<Vec<u8>> {
    let (value, _) = php::unserialize(text).map_err(|err| {
        anyhow!("message on queue {key} is not PHP-serialized: {err} (--raw prints it as it is)")
    })?;
    match format {
        Format::Echo => {
            if matches!(value, Value::Array(_)) {
                ipc_common::report::warn(format_args!(
                    "Array to string conversion (--format json shows the array)"
                ));
            }
            value
                .echo()
                .map_err(|why| anyhow!("print the message on queue {key}: {why}"))
        }
        Format::Json | Format::JsonUnescaped => value
            .to_json_with(if format == Format::JsonUnescaped {
                JsonFlags::UNESCAPED
            } else {
                JsonFlags::DEFAULT
            })
            .map(String::into_bytes)
            .map_err(|why| anyhow!("print the message on queue {key} as JSON: {why}")),
    }
}

/// Receives `count` stamped messages and prints the summary line; anything short of each
/// message exactly once (and in order, unless `any_order`) is an error after that.
fn check_count_run(
    buf: &mut MsgBuf,
    wanted: Wanted,
    max_len: usize,
    count: u64,
    any_order: bool,
    deadline: &Deadline,
) -> anyhow::Result<()> {
    let key = wanted.queue.key;
    let mut checker = SeqChecker::new(count, None);
    let mut text = Vec::new();
    let mut outcome = Ok(());
    for n in 1..=count {
        let received = mq::receive(
            buf,
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
            progress!("first message arrived; {} to go", count - 1);
        }
    }
    report::print_payload(checker.to_string().as_bytes())?;
    outcome?;
    let ok = if any_order {
        checker.perfect_in_any_order()
    } else {
        checker.perfect()
    };
    ensure!(ok, "check {count} messages from queue {key}: {checker}");
    Ok(())
}

/// The blog's reader removes the queue once it has read; `--keep` leaves it, and so does a
/// queue that still holds messages (not ours to destroy) or that we may not remove (another
/// user's: the read itself succeeded, so that is a warning, not a failure).
fn remove_unless_kept(queue: Queue, keep: bool) -> anyhow::Result<()> {
    let key = queue.key;
    if keep {
        progress!("left queue {key} in place (--keep)");
        return Ok(());
    }
    match mq::remove_if_empty(queue)? {
        Removal::Removed => progress!("removed queue {key}"),
        Removal::NotEmpty(n) => {
            progress!("left queue {key} in place: {n} more message(s) in it, not ours to destroy");
        }
        Removal::NotPermitted { uid, creator_uid } => ipc_common::report::warn(format_args!(
            "the message was read, but queue {key} stays: only its owner (uid {uid}), its \
             creator (uid {creator_uid}) or root may remove it, and we are uid {} (pass --keep \
             to leave it to them without this warning)",
            nix::unistd::geteuid()
        )),
    }
    Ok(())
}
