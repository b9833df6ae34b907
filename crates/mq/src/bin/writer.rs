//! `mq-writer`: the blog's message-queue writer (`ftok`, `msg_get_queue`, `msg_send($queue, 1,
//! $message)`): sends one message, PHP-serialized by default, so that PHP's `msg_receive` and
//! `mq-reader` unserialize it (`s:32:"Hello from Writer: Message Queue";`).
//!
//! Syscalls as strace shows them: `openat(O_CREAT|O_EXCL)` the key file (only if missing),
//! `openat(O_PATH)` + `statx` (its checks and `ftok` key), `msgget(key, 0)`, else
//! `msgget(key, IPC_CREAT|IPC_EXCL|mode)`, `msgctl(IPC_STAT)` (owner, `msg_qbytes`),
//! `msgsnd(IPC_NOWAIT)` retried while the queue is full (`--timeout 0`: one blocking `msgsnd`).
//!
//! ```text
//! cargo run -p mq --bin mq-writer
//! cargo run -p mq --bin mq-reader
//! ```

use std::process::ExitCode;

use anyhow::Context;
use clap::{ArgGroup, Parser};
use ipc_common::php::{self, Value};
use ipc_common::runtime::cli::{CommonArgs, ENVIRONMENT, MessageArgs, MessageLimit, ModeArgs};
use ipc_common::runtime::paths::{self, KeyFile};
use ipc_common::runtime::report;
use ipc_common::runtime::wait::Deadline;
use ipc_common::say;
use ipc_common::sysv::{self, MsgBuf};
use mq::{KeyArgs, ProjId};

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
    after_help = format!("{ENVIRONMENT}\n{}", mq::ENVIRONMENT),
    group(ArgGroup::new("value").args(["message", "message_file", "int", "float", "bool", "null"]))
)]
struct Args {
    #[command(flatten)]
    key: KeyArgs,

    /// The message type (mtype, 1 or more); mq-reader's --type selects by it.
    #[arg(long = "type", value_name = "N", default_value = "1", env = "IPC_MQ_TYPE", hide_env = true,
        allow_negative_numbers = true, value_parser = clap::value_parser!(i64).range(1..))]
    mtype: i64,

    #[command(flatten)]
    message: MessageArgs,

    #[command(flatten)]
    value: mq::ValueArgs,

    #[command(flatten)]
    mode: ModeArgs,

    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    report::main(|| run(args))
}

fn run(args: Args) -> anyhow::Result<()> {
    let deadline = args.common.start();
    let (key_file, proj, mode) = (&args.key.key_file, args.key.proj, args.mode.mode);
    let (text, why) = message_text(&args, &deadline)?;
    // Refused before anything is created: the kernel would never take it.
    let msgmax = sysv::msgmax().context("read msgmax from /proc/sys/kernel/msgmax")?;
    mq::check_msgmax(text.len(), msgmax, &why)?;

    let created_key_file = create_key_file(&args, &deadline)?;
    let keyed = mq::key_of(key_file, proj)?;
    let key = keyed.key;
    say!(
        deadline,
        "key {key} = ftok({}, {})",
        key_file.display(),
        ProjId(proj)
    );
    let sent = Default::default();
    let (queue, created) = mq::open_or_create(&keyed, mode, std::sync::Arc::clone(&sent))?;
    match created {
        Some(_) => say!(
            deadline,
            "created queue {key} (msqid {}, mode {mode})",
            queue.id.0
        ),
        None => say!(
            deadline,
            "using the existing queue {key} (msqid {})",
            queue.id.0
        ),
    }
    mq::check_qbytes(queue, text.len(), &why)?;
    mq::send(&mut MsgBuf::new(), queue, args.mtype, &text, &deadline)?;
    sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    say!(
        deadline,
        "sent {} bytes as type {} to queue {key}",
        text.len(),
        args.mtype
    );

    // The message must outlive this process: the queue, and a key file we created, are now the
    // reader's.
    created
        .into_iter()
        .chain(created_key_file)
        .for_each(|guard| guard.keep());
    say!(deadline, "left queue {key} for the reader");
    Ok(())
}

/// `ftok(3)` needs an existing file: creates the key file if missing (with --mode, holding our
/// IPC namespace's name for a reader in another one); returns its guard if it did.
fn create_key_file(
    args: &Args,
    deadline: &Deadline,
) -> anyhow::Result<Option<ipc_common::runtime::cleanup::Cleanup>> {
    let path = &args.key.key_file;
    match paths::ensure_key_file(path, args.mode.mode)? {
        KeyFile::Created(guard) => {
            say!(deadline, "created key file {}", path.display());
            let _ = sysv::record_namespace(path);
            Ok(Some(guard))
        }
        KeyFile::Existing => {
            if let Some(note) = sysv::namespace_note(path) {
                report::warn(format_args!("{note}"));
            }
            Ok(None)
        }
    }
}

/// The mtext: the value serialized as PHP's `msg_send` does, or the message's bytes as they are
/// with `--raw`; and what serialization added, for an error about its size.
fn message_text(args: &Args, deadline: &Deadline) -> anyhow::Result<(Vec<u8>, String)> {
    if let Some(value) = args.value.value() {
        return Ok((php::serialize(&value), String::new()));
    }
    // The kernel's msgmax bounds what is read; the exact check, after serializing, follows.
    let msgmax = sysv::msgmax().context("read msgmax from /proc/sys/kernel/msgmax")?;
    let limit = MessageLimit {
        bytes: msgmax,
        why: format!("over msgmax, the kernel's limit of {msgmax} bytes per message").into(),
    };
    let bytes = args.message.payload(mq::MESSAGE, limit, deadline)?;
    if args.value.raw {
        return Ok((bytes, String::new()));
    }
    let serialized = php::serialize(&Value::String(bytes.clone()));
    let why = mq::serialization_note(bytes.len(), serialized.len());
    Ok((serialized, why))
}
