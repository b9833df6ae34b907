//! `shm-reader`: prints what a writer stored in a SysV shared memory segment, then removes the
//! segment, as the blog's shared-memory readers do: `shm_attach` + `shm_get_var` +
//! `shm_remove` (PHP's sysvshm, the default `--api sysv`) or `shmop_open` + `shmop_read` +
//! `shmop_delete` (PHP's shmop, `--api shmop`).
//!
//! Syscalls, in order:
//! 1. `stat(2)` the key file until it exists, then `open(2)` it `O_PATH | O_NOFOLLOW` and
//!    `fstat(2)` it: the checks and the `ftok(3)` key come from the same file;
//! 2. `shmget(2)` `(key, 0, 0)` until the writer has created the segment;
//! 3. `sem_get`, the PHP lock: `semget(2)` the three-semaphore set (created if missing),
//!    `semtimedop(2)` to register, `semctl(2)` `GETVAL`/`SETVAL` to initialise it;
//! 4. `shmat(2)` the segment, read-only unless `--count`;
//! 5. until the content is there, each look under the lock (`semtimedop(2)` acquire, `semop(2)`
//!    release): sysv copies the store and looks for variable `--var`, complete and
//!    unserializable; shmop copies the bytes from `--offset` until they are not all NUL and
//!    either `shmctl(2)` `IPC_STAT` counts nobody else attached or they are the same twice;
//! 6. prints the value as PHP's `echo` would (or `--format json`), or the bytes up to the first
//!    NUL (or exactly `--length` bytes);
//! 7. under the lock, `shmctl(2)` `IPC_RMID` the segment, unless `--keep` or it holds what we did
//!    not read (another variable, a value written since); then `shmdt(2)`; letting go of the
//!    lock (`semtimedop(2)`, `semctl(2)` `GETVAL`) removes its set with `semctl(2)` `IPC_RMID`
//!    if nobody else uses it.
//!
//! The reader creates nothing but, if it is missing, the lock's semaphore set. It removes the
//! segment the writer left (the blog's `shm_remove`) unless `--keep` (a segment it may not
//! remove, another user's, is a warning: the read succeeded); a run that fails removes
//! only what it created, never a segment it found broken, except that `--count` removes its
//! hand-off segment whichever way the run ended (it is of no use afterwards). It uses only a key
//! file, segment and semaphore set owned by a trusted user (ourselves, root or `--trust-uid`),
//! and a key file removed or replaced while it waits ends the wait at once. Every bound and
//! length in the segment is checked against the real segment before use.
//!
//! Run the pair (either order):
//!
//! ```text
//! cargo run -p shm --bin shm-reader              # add `-- --api shmop` for the shmop pair
//! cargo run -p shm --bin shm-writer
//! ```

use std::process::ExitCode;

use anyhow::{Context, anyhow, bail, ensure};
use clap::{Parser, ValueEnum};
use ipc_common::cli::{CommonArgs, ModeArgs};
use ipc_common::php::{JsonFlags, Value};
use ipc_common::seq::{self, SeqChecker};
use ipc_common::wait::Deadline;
use ipc_common::{progress, report, sysv};
use shm::{Api, SegmentArgs, Shared};

/// How to print a sysv variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// As PHP's `echo $value;` prints it (true is 1, false and null print nothing).
    Echo,
    /// As PHP's json_encode($value) writes it (default flags: `\/`, non-ASCII as \uXXXX).
    Json,
    /// As json_encode($value, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE) writes it.
    JsonUnescaped,
}

/// The json_encode() flags of a JSON `--format`.
fn json_flags(format: Option<Format>) -> JsonFlags {
    match format {
        Some(Format::JsonUnescaped) => JsonFlags::UNESCAPED,
        _ => JsonFlags::DEFAULT,
    }
}

/// The command line; each field's doc comment is its `--help` text.
#[derive(Parser, Debug)]
#[command(
    name = "shm-reader",
    version,
    about = "The blog's shared-memory reader: prints what shm-writer stored in a SysV segment, then removes it",
    long_about = "Prints what a writer stored in a SysV shared memory segment and removes the \
        segment, as the blog's shared-memory readers do: PHP variable 1 in PHP's sysvshm layout \
        (shm_get_var; the default), or the raw bytes from offset 0 up to the first NUL (shmop_read, \
        with --api shmop). The key is ftok(/tmp/ipc-shared-memory, 'T'). Waits up to --timeout \
        (default 10 s) for the key file, the segment and the content (shmop: bytes that are not \
        all NUL); takes PHP's sem_get() lock for every look. A segment that holds other \
        variables, or was written again since, is left in place."
)]
struct Args {
    #[command(flatten)]
    segment: SegmentArgs,

    /// sysv: the variable key to read, shm_get_var()'s second argument [default: 1].
    #[arg(
        long,
        value_name = "N",
        allow_negative_numbers = true,
        env = "IPC_SHM_VAR"
    )]
    var: Option<i64>,

    /// sysv: how to print the value [default: echo].
    #[arg(long, value_enum, env = "IPC_SHM_FORMAT")]
    format: Option<Format>,

    /// shmop: where in the segment the bytes start [default: 0].
    #[arg(long, value_name = "BYTES", env = "IPC_SHM_OFFSET")]
    offset: Option<usize>,

    /// shmop: print exactly N bytes, NULs included, instead of stopping at the first NUL.
    #[arg(long, value_name = "N")]
    length: Option<usize>,

    /// Leave the segment in place for another reader instead of removing it.
    #[arg(long, env = "IPC_SHM_KEEP")]
    keep: bool,

    /// sysv: take N stamped messages from `shm-writer --count N` out of variable --var, check
    /// that each arrived once and in order, and print a summary line instead of a value; exit 1
    /// unless all is well. At most 100 million (the check keeps a byte per message).
    #[arg(long, value_name = "N", value_parser = seq::parse_count, conflicts_with = "format")]
    count: Option<u64>,

    #[command(flatten)]
    mode: ModeArgs,

    #[command(flatten)]
    common: CommonArgs,
}

impl Args {
    /// The option combinations clap cannot check by itself, refused as usage errors (exit 2).
    fn checked(self) -> Self {
        let sysv_only = [
            ("--var", self.var.is_some()),
            ("--format", self.format.is_some()),
            ("--count", self.count.is_some()),
        ];
        let shmop_only = [
            ("--offset", self.offset.is_some()),
            ("--length", self.length.is_some()),
        ];
        let (misplaced, needs) = match self.segment.api {
            Api::Sysv => (&shmop_only[..], "shmop"),
            Api::Shmop => (&sysv_only[..], "sysv"),
        };
        if let Some((flag, _)) = misplaced.iter().find(|(_, given)| *given) {
            shm::usage_error::<Args>(format!("{flag} needs --api {needs}"));
        }
        self
    }
}

fn main() -> ExitCode {
    let args = Args::parse().checked();
    ipc_common::report::main(|| run(args))
}

fn run(args: Args) -> anyhow::Result<()> {
    let deadline = args.common.start();
    let segment = &args.segment;
    let var = args.var.unwrap_or(shm::DEFAULT_VAR);

    let name = segment.wait_for_key(&deadline)?;
    let id = shm::wait_for_segment(&name, &deadline).map_err(|err| {
        match sysv::namespace_note(&segment.key_file) {
            Some(note) => err.context(note),
            None => err,
        }
    })?;
    // Only --count writes: it takes each message out of the store.
    let read_only = args.count.is_none();
    let mut shared = Shared::attach(
        name,
        id,
        read_only,
        segment.no_lock,
        args.mode.mode,
        &deadline,
    )?;

    match (segment.api, args.count) {
        (Api::Sysv, None) => {
            let what = format!("variable {var} in {}", shared.name);
            let (value, serialized) = shared
                .wait_for_var(var, false, what, true, &deadline)
                .inspect_err(|_| remove_orphan(&mut shared))?;
            // A value we cannot print is left where it is: nothing is removed after an error.
            let printed = match args.format.unwrap_or(Format::Echo) {
                Format::Echo => value
                    .echo()
                    .map_err(|why| anyhow!("print variable {var}: {why}"))?,
                Format::Json | Format::JsonUnescaped => value
                    .to_json_with(json_flags(args.format))
                    .map_err(|why| {
                        anyhow!(
                            "print variable {var} of {} as JSON: {why}; the segment is left as \
                             it is (--format echo prints it)",
                            shared.name
                        )
                    })?
                    .into_bytes(),
            };
            report::print_payload(&printed)?;
            if !args.keep {
                return shared.remove_store_after_read(var, Some(&serialized), &deadline);
            }
        }
        (Api::Sysv, Some(count)) => {
            // A hand-off segment is of no use once its run is over, whichever way it ended, as
            // with `mq-reader --count`: it goes now (unless --keep, or unless it holds what is
            // not ours: another variable, a message we did not take) and the error, if any,
            // after.
            let taken = take_all(&mut shared, var, count, &deadline);
            let removed = if args.keep {
                Ok(())
            } else {
                shared.remove_store_after_read(var, None, &deadline)
            };
            return taken.and(removed);
        }
        (Api::Shmop, _) => {
            let offset = args.offset.unwrap_or(0);
            // No orphan rule for shmop: an unwritten segment may be the target of a writer still
            // to come (docs/talking-to-php.md).
            let bytes = shared.wait_for_raw(offset, args.length, &deadline)?;
            report::print_payload(&bytes)?;
            if !args.keep {
                let length = args.length;
                return shared.remove_after_read(&deadline, |seg| {
                    // Rewritten since we read it: the new message is the next reader's.
                    let now = shm::read_message(seg, offset, length)?;
                    Ok((now != bytes).then(|| {
                        format!("it was written again at offset {offset} after we read it")
                    }))
                });
            }
        }
    }
    progress!("kept {} for the next reader (--keep)", shared.name);
    Ok(())
}

/// `--count`: takes `count` stamped messages out of `var`, one at a time, and prints the summary
/// line; anything short of perfect is an error after that.
fn take_all(shared: &mut Shared, var: i64, count: u64, deadline: &Deadline) -> anyhow::Result<()> {
    let mut checker = SeqChecker::new(count, None);
    let mut take = |n: u64, checker: &mut SeqChecker| {
        let what = format!(
            "message {n} of {count} in variable {var} of {}",
            shared.name
        );
        let (value, _) = shared.wait_for_var(var, true, what, false, deadline)?;
        let Value::String(message) = value else {
            bail!(
                "take variable {var} from {}: it holds a PHP {value:?}, not a stamped message",
                shared.name
            );
        };
        // A run starts at 0: anything else found first was left by an interrupted run (its
        // reader killed), and is not this run's message.
        if n == 0 && seq::unstamp(&message).is_ok_and(|(stamp, _)| stamp != 0) {
            progress!(
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
            progress!("first message arrived; {} to go", count - 1);
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

/// After a wait in vain: an empty segment whose failed writer is gone is removed, not leaked
/// (see `Shared::remove_if_orphaned`).
fn remove_orphan(shared: &mut Shared) {
    match shared.remove_if_orphaned() {
        Ok(Some(pid)) => progress!(
            "removed {}: empty, left by a writer (pid {pid}) that is gone",
            shared.name
        ),
        Ok(None) => {}
        Err(err) => ipc_common::report::warn(format_args!("{err:#}")),
    }
}
