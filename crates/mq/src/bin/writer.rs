//! `mq-writer`: sends one message to a SysV message queue, as the blog's message-queue writer
//! does (`ftok`, `msg_get_queue`, `msg_send($queue, 1, $message)`): by default PHP-serialized, so
//! PHP's `msg_receive` and `mq-reader` unserialize it (`s:32:"Hello from Writer: Message Queue";`).
//!
//! Syscalls, in order:
//! 1. `open(2)` with `O_CREAT | O_EXCL | O_NOFOLLOW`: the key file, if it is missing;
//! 2. `open(2)` with `O_PATH | O_NOFOLLOW`, `fstat(2)`: the key file's checks and its `ftok(3)`
//!    key, from its inode and device;
//! 3. `msgget(2)` with flags 0, else with `IPC_CREAT | IPC_EXCL | mode`: the queue;
//!    `msgctl(2)` `IPC_STAT`: its capacity, `msg_qbytes`, and, for a queue we did not create,
//!    that a trusted user (ourselves, root or `--trust-uid`) owns and created it; an existing
//!    key file must be a regular file of a trusted owner too;
//! 4. `msgsnd(2)` with `IPC_NOWAIT`, retried while the queue is full, until `--timeout` (with
//!    `--timeout 0`, one blocking `msgsnd`).
//!
//! The writer creates the key file and the queue if they are missing and leaves both for the
//! reader, which removes the queue after reading. If the run fails, whatever it created goes
//! (the queue only while nothing but its own messages can be in it). A
//! message over the kernel's `msgmax` or the queue's `msg_qbytes` is refused before sending.
//!
//! Run the pair (either order):
//!
//! ```text
//! cargo run -p mq --bin mq-writer
//! cargo run -p mq --bin mq-reader
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, ensure};
use clap::{ArgGroup, Parser};
use ipc_common::cli::{CommonArgs, MessageArgs, MessageLimit, ModeArgs, parse_proj_id};
use ipc_common::paths::{self, KeyFile};
use ipc_common::php::{self, Value};
use ipc_common::sysv::{self, MsgBuf};
use ipc_common::wait::Deadline;
use ipc_common::{progress, seq};
use mq::ProjId;

/// Sequence stamps have ten digits.
const MAX_SEQ: u64 = 10_000_000_000;

/// The command line; each field's doc comment is its `--help` text.
#[derive(Parser, Debug)]
#[command(
    name = "mq-writer",
    version,
    about = "The blog's message-queue writer: sends a PHP-serialized message to a SysV queue",
    long_about = "Sends one message to a SysV message queue: the blog's message-queue writer. \
        The queue is keyed on ftok(/tmp/ipc-message-queues, 'T') by default; the key file and \
        the queue (mode 0600) are created if missing and left for the reader. The message, \
        \"Hello from Writer: Message Queue\" unless told otherwise, goes as type 1, serialized \
        as PHP's msg_send does (--raw: the bytes as they are). A full queue is waited on for up \
        to --timeout (default 10 s).",
    group(ArgGroup::new("value").args(["message", "message_file", "int", "float", "bool", "null"]))
)]
struct Args {
    /// The ftok(3) key file; created (with --mode, holding our IPC namespace's name) if
    /// missing, and left for the reader.
    #[arg(long, value_name = "PATH", env = "IPC_KEY_FILE", default_value = mq::DEFAULT_KEY_FILE)]
    key_file: PathBuf,

    /// The ftok(3) project id: one character, as PHP's ftok takes it, or a number from 1 to 255.
    #[arg(long, value_name = "ID", env = "IPC_PROJ", default_value = "T", value_parser = parse_proj_id)]
    proj: u8,

    /// The message type (mtype, 1 or more); mq-reader's --type selects by it.
    #[arg(
        long = "type",
        value_name = "N",
        default_value = "1",
        allow_negative_numbers = true,
        value_parser = clap::value_parser!(i64).range(1..)
    )]
    mtype: i64,

    /// Send the message's bytes as they are (PHP's msg_send with $serialize = false).
    #[arg(long)]
    raw: bool,

    /// Send this integer instead, serialized as PHP does (`i:42;`).
    #[arg(long, value_name = "N", allow_negative_numbers = true, conflicts_with_all = ["raw", "count"])]
    int: Option<i64>,

    /// Send this float instead, serialized as PHP does (`d:2.5;`); INF, -INF and NAN too.
    #[arg(long, value_name = "X", allow_hyphen_values = true, conflicts_with_all = ["raw", "count"])]
    float: Option<f64>,

    /// Send this boolean instead, serialized as PHP does (`b:1;`).
    #[arg(long, value_name = "true|false", conflicts_with_all = ["raw", "count"])]
    bool: Option<bool>,

    /// Send null instead, serialized as PHP does (`N;`).
    #[arg(long, conflicts_with_all = ["raw", "count"])]
    null: bool,

    /// Send N sequence-stamped copies of the message, raw (a load run for `mq-reader --count`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..MAX_SEQ))]
    count: Option<u64>,

    /// With --count: number the messages from K, so that several writers sending to one reader
    /// (`--count 1250 --first-seq 0`, `--first-seq 1250`, ...) are told apart.
    #[arg(
        long,
        value_name = "K",
        default_value = "0",
        requires = "count",
        value_parser = clap::value_parser!(u64).range(..MAX_SEQ)
    )]
    first_seq: u64,

    #[command(flatten)]
    message: MessageArgs,

    #[command(flatten)]
    mode: ModeArgs,

    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    ipc_common::report::main(|| run(args))
}

fn run(args: Args) -> anyhow::Result<()> {
    let deadline = args.common.start();
    let (text, payload_len) = message_text(&args, &deadline)?;
    let why = payload_len.map_or(String::new(), |n| mq::serialization_note(n, text.len()));
    let stamp = if args.count.is_some() {
        seq::STAMP_LEN
    } else {
        0
    };
    // Refused before anything is created: the kernel would never take it.
    let msgmax = sysv::msgmax().context("read msgmax from /proc/sys/kernel/msgmax")?;
    mq::check_msgmax(stamp + text.len(), msgmax, &why)?;

    let key_file = paths::ensure_key_file(&args.key_file, args.mode.mode)?;
    if matches!(key_file, KeyFile::Created(_)) {
        progress!("created key file {}", args.key_file.display());
        // For a reader in another IPC namespace (a container), which never sees ours.
        let _ = sysv::record_namespace(&args.key_file);
    } else if let Some(note) = sysv::namespace_note(&args.key_file) {
        ipc_common::report::warn(format_args!("{note}"));
    }
    let keyed = mq::key_of(&args.key_file, args.proj)?;
    let key = keyed.key;
    progress!(
        "key {key} = ftok({}, {})",
        args.key_file.display(),
        ProjId(args.proj)
    );
    let sent = Arc::new(AtomicU64::new(0));
    let (queue, created) = mq::open_or_create(&keyed, args.mode.mode, Arc::clone(&sent))?;
    match created {
        Some(_) => progress!(
            "created queue {key} (msqid {}, mode {})",
            queue.id.0,
            args.mode.mode
        ),
        None => progress!("using the existing queue {key} (msqid {})", queue.id.0),
    }
    mq::check_qbytes(queue, stamp + text.len(), &why)?;

    let mut buf = MsgBuf::new();
    match args.count {
        None => {
            mq::send(&mut buf, queue, args.mtype, &text, &deadline)?;
            sent.fetch_add(1, Ordering::Relaxed);
            progress!(
                "sent {} bytes as type {} to queue {key}",
                text.len(),
                args.mtype
            );
        }
        Some(count) => {
            let first = args.first_seq;
            ensure!(
                first + count <= MAX_SEQ,
                "number messages {first} to {}: sequence stamps stop at {}",
                first + count - 1,
                MAX_SEQ - 1
            );
            let mut stamped = Vec::with_capacity(stamp + text.len());
            for n in first..first + count {
                seq::stamp_into(&mut stamped, n, &text);
                mq::send(&mut buf, queue, args.mtype, &stamped, &deadline)?;
                sent.fetch_add(1, Ordering::Relaxed);
            }
            progress!(
                "sent {count} stamped messages ({first} to {}) as type {} to queue {key}",
                first + count - 1,
                args.mtype
            );
        }
    }

    // The messages must outlive this process: the queue, and a key file we created, are now the
    // reader's.
    if let Some(guard) = created {
        guard.keep();
    }
    if let KeyFile::Created(guard) = key_file {
        guard.keep();
    }
    progress!("left queue {key} for the reader");
    Ok(())
}

/// The mtext: the value serialized as PHP's `msg_send` does, or the message's bytes as they are
/// with `--raw` and `--count`; with the message's own length when serialization wrapped it.
fn message_text(args: &Args, deadline: &Deadline) -> anyhow::Result<(Vec<u8>, Option<usize>)> {
    let value = if let Some(n) = args.int {
        Value::Int(n)
    } else if let Some(x) = args.float {
        Value::Float(x)
    } else if let Some(b) = args.bool {
        Value::Bool(b)
    } else if args.null {
        Value::Null
    } else {
        // The kernel's msgmax bounds what is read; the exact check, after serializing, follows.
        let msgmax = sysv::msgmax().context("read msgmax from /proc/sys/kernel/msgmax")?;
        let limit = MessageLimit {
            bytes: msgmax,
            why: format!("over msgmax, the kernel's limit of {msgmax} bytes per message").into(),
        };
        let bytes = args.message.payload(mq::MESSAGE, limit, deadline)?;
        if args.raw || args.count.is_some() {
            return Ok((bytes, None));
        }
        let len = bytes.len();
        return Ok((php::serialize(&Value::String(bytes)), Some(len)));
    };
    Ok((php::serialize(&value), None))
}
