//! The binaries' option groups (flattened into their `Args`, each under its `--help` heading)
//! and the steps of `run()` that are more than one call: the binaries keep only the blog's steps.

use std::path::Path;

use anyhow::Context;
use clap::Args;
use ipc_common::runtime::cleanup::Cleanup;
use ipc_common::runtime::cli::Mode;
use ipc_common::runtime::paths::{self, KeyFile as Created};
use ipc_common::runtime::wait::Deadline;
use ipc_common::sysv::{self, Key, MsgBuf};

use crate::{Queue, Removal, Wanted};
use ipc_common::php::options::{PrintArgs, Printed, ValueArgs};

/// What `mq-reader` takes and keeps (the default heading).
#[derive(Args, Clone, Debug)]
pub struct ReadArgs {
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
    pub desired_type: i64,

    /// Receive at most N bytes per message [default: the kernel's msgmax]; a longer message
    /// fails with E2BIG and stays queued.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=i32::MAX as u64))]
    pub max_size: Option<u64>,

    /// Leave the queue in place after reading (the blog's reader removes it).
    #[arg(long)]
    pub keep: bool,
}

impl ReadArgs {
    /// `--max-size`, else the kernel's `msgmax`.
    pub fn max_len(&self) -> anyhow::Result<usize> {
        match self.max_size {
            Some(n) => usize::try_from(n).context("--max-size"),
            None => sysv::msgmax().context("read msgmax from /proc/sys/kernel/msgmax"),
        }
    }
}

/// A copy of the message the reader is about to take, and how it prints.
#[derive(Debug)]
pub struct Looked {
    mtype: i64,
    copy: Vec<u8>,
    printed: Printed,
}

/// `msgrcv(MSG_COPY)`: waits for the message and checks that it prints as asked before it is
/// taken, so a message we could not print stays queued with its queue. `None` with `--raw`
/// (nothing to check) or where the kernel has no `MSG_COPY`.
pub fn look(
    buf: &mut MsgBuf,
    wanted: Wanted,
    max_len: usize,
    print: &PrintArgs,
    deadline: &Deadline,
) -> anyhow::Result<Option<Looked>> {
    if print.raw {
        return Ok(None);
    }
    let Some((mtype, copy)) =
        crate::peek(buf, wanted.queue, max_len, wanted.desired_type, deadline)?
    else {
        return Ok(None);
    };
    let key = wanted.queue.key;
    let printed = crate::decode(&copy, key, print.format).with_context(|| {
        format!(
            "read the message of type {mtype} from queue {key}: nothing was taken, the message \
             and the queue stay"
        )
    })?;
    Ok(Some(Looked {
        mtype,
        copy,
        printed,
    }))
}

/// What the reader prints: the bytes, PHP's notice for an array echoed, and the run's error for
/// a message that cannot be printed as asked.
#[derive(Debug)]
pub struct Output {
    pub bytes: Vec<u8>,
    pub notice: Option<&'static str>,
    pub error: Option<anyhow::Error>,
}

/// The taken message `text` as the reader prints it: what [`look`] prepared if it is the same
/// message (another reader may have taken that one first: this one is checked now). A message
/// that cannot be printed as asked has left the queue and cannot be put back in its place: its
/// bytes are printed as they are, raw, the queue is left in place and the run fails.
pub fn printable(
    looked: Option<Looked>,
    text: &[u8],
    mtype: i64,
    key: Key,
    print: &PrintArgs,
) -> Output {
    let decoded = match looked {
        _ if print.raw => Ok(Printed {
            bytes: text.to_vec(),
            array_echoed: false,
        }),
        Some(l) if l.mtype == mtype && l.copy == text => Ok(l.printed),
        _ => crate::decode(text, key, print.format),
    };
    match decoded {
        Ok(printed) => Output {
            bytes: printed.bytes,
            notice: printed
                .array_echoed
                .then_some("Array to string conversion (--format json shows the array)"),
            error: None,
        },
        Err(err) => Output {
            bytes: text.to_vec(),
            notice: None,
            error: Some(err.context(format!(
                "the message of type {mtype} from queue {key} left the queue, so its {} bytes \
                 are on stdout as they are (as --raw prints them), and the queue is left in place",
                text.len()
            ))),
        },
    }
}

/// The blog's reader removes the queue once it has read (`msgctl(IPC_RMID)`); `--keep` leaves
/// it (`None`), and so does a queue that still holds messages or that we may not remove.
pub fn remove_unless_kept(queue: Queue, keep: bool) -> anyhow::Result<Option<Removal>> {
    if keep {
        return Ok(None);
    }
    crate::remove_if_empty(queue).map(Some)
}

/// What became of the queue, as one line, and whether it is a warning: another user's queue that
/// we may not remove (the read itself succeeded).
pub fn removal_line(key: Key, removal: Option<Removal>) -> (bool, String) {
    match removal {
        None => (false, format!("left queue {key} in place (--keep)")),
        Some(Removal::Removed) => (false, format!("removed queue {key}")),
        Some(Removal::NotEmpty(n)) => (
            false,
            format!("left queue {key} in place: {n} more message(s) in it, not ours to destroy"),
        ),
        Some(Removal::NotPermitted { uid, creator_uid }) => (
            true,
            format!(
                "the message was read, but queue {key} stays: only its owner (uid {uid}), its \
                 creator (uid {creator_uid}) or root may remove it, and we are uid {} (pass \
                 --keep to leave it to them without this warning)",
                nix::unistd::geteuid()
            ),
        ),
    }
}

/// `ftok(3)` needs an existing file: creates the key file if missing (with `mode`, holding our
/// IPC namespace's name for a reader in another one). Returns its guard if it did, else the
/// note to warn of if the file was written in another IPC namespace.
pub fn create_key_file(path: &Path, mode: Mode) -> anyhow::Result<Result<Cleanup, Option<String>>> {
    match paths::ensure_key_file(path, mode)? {
        Created::Created(guard) => {
            let _ = sysv::record_namespace(path);
            Ok(Ok(guard))
        }
        Created::Existing => Ok(Err(sysv::namespace_note(path))),
    }
}

/// The mtext `mq-writer` sends: the value serialized as PHP's `msg_send` does, or the message's
/// bytes as they are with `--raw`; and what serialization added, for an error about its size.
/// With `request`, the value goes inside a request for type `request` ([`crate::serve`]).
pub fn message_text(
    message: &ipc_common::runtime::cli::MessageArgs,
    value: &ValueArgs,
    request: Option<i64>,
    deadline: &Deadline,
) -> anyhow::Result<(Vec<u8>, String)> {
    let serialized = |value| match request {
        Some(reply_type) => crate::serve::request_body(reply_type, value),
        None => ipc_common::php::serialize(&value),
    };
    if let Some(value) = value.value() {
        return Ok((serialized(value), String::new()));
    }
    // The kernel's msgmax bounds what is read; the exact check, after serializing, follows.
    let msgmax = sysv::msgmax().context("read msgmax from /proc/sys/kernel/msgmax")?;
    let limit = ipc_common::runtime::cli::MessageLimit {
        bytes: msgmax,
        why: format!("over msgmax, the kernel's limit of {msgmax} bytes per message").into(),
    };
    let bytes = message.payload(crate::MESSAGE, limit, deadline)?;
    if value.raw {
        return Ok((bytes, String::new()));
    }
    let len = bytes.len();
    let text = serialized(ipc_common::php::Value::String(bytes));
    let why = crate::serialization_note(len, text.len());
    Ok((text, why))
}
