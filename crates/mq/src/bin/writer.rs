//! `mq-writer`: the blog's message-queue writer (`ftok`, `msg_get_queue`, `msg_send($queue, 1,
//! $message)`): sends one message, PHP-serialized by default, so that PHP's `msg_receive` and
//! `mq-reader` unserialize it (`s:32:"Hello from Writer: Message Queue";`). `--request` sends it
//! to `mq-reader --serve` and prints the answer (README, "Request/response").
//!
//! Syscalls as strace shows them: `openat(O_CREAT|O_EXCL)` the key file (only if missing),
//! `openat(O_PATH)` + `statx` (its checks and `ftok` key), `msgget(key, 0)`, else
//! `msgget(key, IPC_CREAT|IPC_EXCL|mode)`, `msgctl(IPC_STAT)` (owner, `msg_qbytes`),
//! `msgsnd(IPC_NOWAIT)` retried while the queue is full (`--timeout 0`: one blocking `msgsnd`);
//! `--request`: then `msgrcv(our type, IPC_NOWAIT)` until the answer is there, `write(1)`.

use std::process::ExitCode;
use std::sync::{Arc, atomic::Ordering};

use anyhow::Context;
use clap::{ArgGroup, Parser};
use ipc_common::php::options::ValueArgs;
use ipc_common::runtime::cli::{CommonArgs, ENVIRONMENT, MessageArgs, ModeArgs};
use ipc_common::runtime::report;
use ipc_common::say;
use ipc_common::sysv::{self, MsgBuf};
use mq::serve::RequestArgs;
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
    value: ValueArgs,
    #[command(flatten)]
    request: RequestArgs,
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
    if args.request.request {
        report::check_stdout()?; // before we send: the answer would have nowhere to go
    }
    let (key_file, proj, mode) = (&args.key.key_file, args.key.proj, args.mode.mode);
    let reply_type = args.request.reply_type()?;
    let (text, why) = mq::cli::message_text(&args.message, &args.value, reply_type, &deadline)?;
    // Refused before anything is created: the kernel would never take it.
    let msgmax = sysv::msgmax().context("read msgmax from /proc/sys/kernel/msgmax")?;
    mq::check_msgmax(text.len(), msgmax, &why)?;

    let created_key_file = match mq::cli::create_key_file(key_file, mode)? {
        Ok(guard) => {
            say!(deadline, "created key file {}", key_file.display()); // openat(O_CREAT | O_EXCL)
            Some(guard)
        }
        Err(note) => note
            .map(|note| report::warn(format_args!("{note}")))
            .and(None),
    };
    let keyed = mq::key_of(key_file, proj)?; // statx
    let key = keyed.key;
    say!(
        deadline,
        "key {key} = ftok({}, {})",
        key_file.display(),
        ProjId(proj)
    );
    let sent = Arc::default();
    let (queue, created) = mq::open_or_create(&keyed, mode, Arc::clone(&sent))?; // msgget
    let id = queue.id.0;
    match created {
        Some(_) => say!(deadline, "created queue {key} (msqid {id}, mode {mode})"),
        None => say!(deadline, "using the existing queue {key} (msqid {id})"),
    }
    mq::check_qbytes(queue, text.len(), &why)?; // msgctl(IPC_STAT)
    let mut buf = MsgBuf::new();
    mq::send(&mut buf, queue, args.mtype, &text, &deadline)?; // msgsnd
    sent.fetch_add(1, Ordering::Relaxed);
    say!(
        deadline,
        "sent {} bytes as type {} to queue {key}",
        text.len(),
        args.mtype
    );

    if let Some(own) = reply_type {
        let stray = &mut |line: std::fmt::Arguments<'_>| report::warn(line);
        let answer = mq::serve::receive_answer(&mut buf, queue, own, &text, &deadline, stray)?; // msgrcv(own)
        say!(
            deadline,
            "received the answer of type {own}: {} bytes",
            answer.len()
        );
        report::print_payload(&answer)?; // write(1)
    }
    // The message must outlive this process: the queue, and a key file we created, are now the
    // reader's (or the server's).
    created
        .into_iter()
        .chain(created_key_file)
        .for_each(|guard| guard.keep());
    say!(deadline, "left queue {key} for the reader");
    Ok(())
}
