//! Load runs over the shm mechanism (PHP's sysvshm store): `ipc-load shm-reader --count N` and
//! `ipc-load shm-writer --count N`, a hand-off through one variable. The writer puts stamped
//! message `i` into `--var` only once the variable is absent; the reader takes it (reads and
//! removes it, `shm_remove_var`), which frees the slot for message `i + 1`; it checks that each
//! arrived once and in order and prints one summary line. (Moved here from the shm binaries'
//! `--count` mode by the redesign of issue 10.)
//!
//! Both sides poll under the lock ([`hand_off_retry`]): first a few hundred looks back to back,
//! yielding the CPU between them, then backing off from 1 to 25 ms. The spinning is what makes
//! tens of thousands of messages a second possible (with the backoff alone, every message waits
//! out a 1 ms step on each side), and its price is CPU: each side keeps a core about half busy
//! while the other is slow. The numbers measure polling, not memory: shared memory has no
//! notification, and this keeps to what a PHP peer could do as well.

use std::fmt;

use anyhow::{Context, bail, ensure};
use clap::{Args, Subcommand};
use ipc_common::php::{Value, serialize, sysvshm};
use ipc_common::runtime::cli::{CommonArgs, MessageArgs, MessageLimit, ModeArgs};
use ipc_common::runtime::paths::{self, KeyFile};
use ipc_common::runtime::report;
use ipc_common::runtime::wait::{Deadline, retry};
use ipc_common::say;
use ipc_common::seq::{self, SeqChecker};
use shm::{Access, AfterRead, Api, Ours, SegmentArgs, Shared, Take, VarLook};

/// `shm-reader` and `shm-writer` load runs (sysv only).
#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Take N stamped messages from `ipc-load shm-writer --count N` out of variable --var, check
    /// that each arrived once and in order, and print a summary line; exit 1 unless all is well.
    /// The hand-off segment is removed at the end whichever way the run ended (unless --keep, or
    /// it holds what is not ours).
    #[command(name = "shm-reader")]
    Reader(ReaderArgs),
    /// Hand N sequence-stamped copies of the message to the reader through variable --var, each
    /// once the reader has taken the previous one.
    #[command(name = "shm-writer")]
    Writer(WriterArgs),
}

#[derive(Args, Debug)]
pub(crate) struct ReaderArgs {
    #[command(flatten)]
    segment: SegmentArgs,

    /// The variable key of the hand-off.
    #[arg(long, value_name = "N", default_value_t = shm::DEFAULT_VAR, allow_negative_numbers = true)]
    var: i64,

    /// How many messages to take (at most 100 million: the check keeps a byte per message).
    #[arg(long, value_name = "N", value_parser = seq::parse_count)]
    count: u64,

    /// Leave the segment in place at the end.
    #[arg(long)]
    keep: bool,

    #[command(flatten)]
    mode: ModeArgs,

    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args, Debug)]
pub(crate) struct WriterArgs {
    #[command(flatten)]
    segment: SegmentArgs,

    /// Size in bytes of the segment to create (at least 40, PHP's header).
    #[arg(long, value_name = "BYTES", default_value_t = shm::DEFAULT_SIZE, value_parser = shm::parse_size)]
    size: usize,

    /// The variable key of the hand-off.
    #[arg(long, value_name = "N", default_value_t = shm::DEFAULT_VAR, allow_negative_numbers = true)]
    var: i64,

    /// How many stamped copies of the message to hand over (at most 100 million).
    #[arg(long, value_name = "N", value_parser = seq::parse_count)]
    count: u64,

    #[command(flatten)]
    message: MessageArgs,

    #[command(flatten)]
    mode: ModeArgs,

    #[command(flatten)]
    common: CommonArgs,
}

pub(crate) fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Reader(args) => {
            sysv_only(&args.segment);
            read(&args)
        }
        Command::Writer(args) => {
            sysv_only(&args.segment);
            if args.size < sysvshm::MIN_SEGMENT {
                usage_error(format_args!(
                    "--size {} cannot hold PHP's 40-byte sysvshm header",
                    args.size
                ));
            }
            write(&args)
        }
    }
}

/// The hand-off needs a variable store: shmop has no "taken". A usage error (exit 2).
fn sysv_only(segment: &SegmentArgs) {
    if segment.api != Api::Sysv {
        usage_error(format_args!(
            "--count needs --api sysv (the hand-off takes a PHP variable out of the store; raw \
             shmop bytes have no way to say \"taken\")"
        ));
    }
}

/// Refuses an option combination clap cannot express, as clap does (exit 2).
fn usage_error(message: fmt::Arguments<'_>) -> ! {
    clap::Error::raw(
        clap::error::ErrorKind::ArgumentConflict,
        format!("{message}\n"),
    )
    .exit()
}

/// Looks taken at once, `sched_yield(2)` between them, before [`retry`] starts backing off
/// from 1 ms: enough to catch a peer that is busy with the previous message on another core.
const HAND_OFF_SPINS: u32 = 200;

/// [`retry`] for the hand-off, where the peer answers within microseconds: a few hundred looks
/// back to back (yielding the CPU between them), then the usual backoff.
fn hand_off_retry<T>(
    deadline: &Deadline,
    what: impl fmt::Display,
    mut attempt: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    for _ in 0..HAND_OFF_SPINS {
        if deadline.expired() {
            break;
        }
        if let Some(found) = attempt()? {
            return Ok(found);
        }
        std::thread::yield_now();
    }
    retry(deadline, what, attempt)
}

fn write(args: &WriterArgs) -> anyhow::Result<()> {
    let deadline = args.common.start();
    let (segment, mode, var) = (&args.segment, args.mode.mode, args.var);
    let limit = MessageLimit {
        bytes: args.size,
        why: "a message cannot be larger than the segment (--size)".into(),
    };
    let message = args.message.payload(shm::MESSAGE, limit, &deadline)?;
    let key_file = match paths::ensure_key_file(&segment.key_file, mode)? {
        KeyFile::Created(guard) => {
            say!(deadline, "created key file {}", segment.key_file.display());
            Some(guard)
        }
        KeyFile::Existing => None,
    };
    let name = segment.key()?;
    let opened = shm::open_or_create(&name, args.size, mode, Ours::Var(var))?;
    if opened.created.is_some() {
        say!(
            deadline,
            "created {name}: shmid {}, {} bytes",
            opened.id.0,
            opened.size
        );
    }
    let lock = segment.lock(mode);
    let mut shared = Shared::attach(name, opened.id, Access::ReadWrite, lock, &deadline)?;
    hand_over(&mut shared, var, args.count, &message, args.size, &deadline)?;
    drop(shared);
    shm::keep([key_file, opened.created]);
    Ok(())
}

/// Puts stamped message `seq` into `var` each time the reader has taken the previous one (the
/// variable is absent), until all `count` are through.
fn hand_over(
    shared: &mut Shared,
    var: i64,
    count: u64,
    message: &[u8],
    total: usize,
    deadline: &Deadline,
) -> anyhow::Result<()> {
    // The variable is this run's hand-off slot: a message left in it by an interrupted run
    // (its reader killed) would be taken as ours.
    if shared.discard_var(var, deadline)? {
        say!(
            deadline,
            "removed a message left in variable {var} of {} by an earlier run",
            shared.name
        );
    }
    let mut stamped = Vec::new();
    for n in 0..count {
        seq::stamp_into(&mut stamped, n, message);
        let serialized = serialize(&Value::String(stamped.clone()));
        let what = format!(
            "the reader to take variable {var} from {} before message {n}",
            shared.name
        );
        hand_off_retry(deadline, what, || {
            let put = shared.put_var_if_absent(var, &serialized, total, deadline)?;
            Ok(put.then_some(()))
        })?;
    }
    say!(
        deadline,
        "handed {count} messages through variable {var} of {}",
        shared.name
    );
    Ok(())
}

fn read(args: &ReaderArgs) -> anyhow::Result<()> {
    let deadline = args.common.start();
    let segment = &args.segment;
    let name = segment.wait_for_key(&deadline)?;
    let id = shm::wait_for_segment(&name, &deadline)?;
    let lock = segment.lock(args.mode.mode);
    let mut shared = Shared::attach(name, id, Access::ReadWrite, lock, &deadline)?;
    let label = shared.name.to_string();
    // A hand-off segment is of no use once its run is over, whichever way it ended: it goes now
    // (unless --keep, or unless it holds what is not ours: another variable, a message we did
    // not take) and the error, if any, after.
    let taken = take_all(&mut shared, args.var, args.count, &deadline);
    let removed = if args.keep {
        Ok(())
    } else {
        shared
            .remove_store_after_read(args.var, None, &deadline)
            .map(|after| match after {
                AfterRead::Removed => say!(deadline, "removed {label}"),
                AfterRead::Left(why) => say!(deadline, "left {label} in place: {why}"),
                AfterRead::NotPermitted { uid, creator_uid } => report::warn(format_args!(
                    "{label} stays: only its owner (uid {uid}), its creator (uid {creator_uid}) \
                     or root may remove it"
                )),
                AfterRead::LockBusy(err) => report::warn(format_args!("{label} stays: {err}")),
            })
    };
    taken.and(removed)
}

/// Takes `count` stamped messages out of `var`, one at a time, and prints the summary line;
/// anything short of perfect is an error after that.
fn take_all(shared: &mut Shared, var: i64, count: u64, deadline: &Deadline) -> anyhow::Result<()> {
    let mut checker = SeqChecker::new(count, None);
    let mut take = |n: u64, checker: &mut SeqChecker| {
        let what = format!(
            "message {n} of {count} in variable {var} of {}",
            shared.name
        );
        let mut broken_before: Option<Vec<u8>> = None;
        let value = hand_off_retry(deadline, what, || {
            match shared.look_for_var(var, Take::Remove, deadline)? {
                VarLook::Found(value, _) => Ok(Some(value)),
                VarLook::Absent => Ok(None),
                VarLook::Broken(err, image) if broken_before.as_ref() == Some(&image) => Err(err),
                VarLook::Broken(_, image) => {
                    broken_before = Some(image);
                    Ok(None)
                }
            }
        })?;
        let Value::String(message) = value else {
            bail!(
                "take variable {var} from {}: it holds a PHP {value:?}, not a stamped message",
                shared.name
            );
        };
        // A run starts at 0: anything else found first was left by an interrupted run (its
        // reader killed), and is not this run's message.
        if n == 0 && seq::unstamp(&message).is_ok_and(|(stamp, _)| stamp != 0) {
            say!(
                deadline,
                "discarded {:?}, left in variable {var} by an earlier run",
                String::from_utf8_lossy(&message[..seq::STAMP_LEN - 1])
            );
            return Ok(false);
        }
        checker
            .observe(&message)
            .with_context(|| format!("check message {n} from variable {var} of {}", shared.name))?;
        Ok(true)
    };
    let mut outcome = Ok(());
    let mut n = 0;
    while n < count {
        match take(n, &mut checker) {
            Ok(true) => n += 1,
            Ok(false) => continue,
            Err(err) => {
                outcome = Err(err);
                break;
            }
        }
        if n == 1 {
            say!(deadline, "first message arrived; {} to go", count - 1);
        }
    }
    // The summary is the run's result, also when it ended early.
    let summary = checker.to_string();
    report::print_payload(summary.as_bytes())?;
    outcome?;
    ensure!(
        checker.perfect(),
        "check {count} messages from variable {var} of {}: {summary}",
        shared.name
    );
    Ok(())
}
