//! `shm-reader`: the blog's shared-memory readers, `shm_get_var` + `shm_remove` (PHP's sysvshm,
//! `--api sysv`) or `shmop_read` + `shmop_delete` (`--api shmop`): prints what a writer stored,
//! then removes the segment.
//!
//! Syscalls as strace shows them: `statx` (until the key file exists), `openat(O_PATH)` + `statx`
//! (ftok), `shmget(key, 0, 0)` until the segment exists, `shmctl(IPC_STAT)`, `shmat(SHM_RDONLY)`,
//! `semget` + `semtimedop` + `semctl` (sem_get), then per look `semtimedop` (acquire), memory
//! reads, `semtimedop` (release); `write(1)`; `shmctl(IPC_RMID)` under the lock; `shmdt`.
//!
//! ```text
//! cargo run -p shm --bin shm-reader              # add `-- --api shmop` for the shmop pair
//! cargo run -p shm --bin shm-writer
//! ```

use std::process::ExitCode;

use clap::Parser;
use ipc_common::runtime::cli::{CommonArgs, ENVIRONMENT, ModeArgs, heading};
use ipc_common::runtime::report;
use ipc_common::runtime::wait::Deadline;
use ipc_common::{say, sysv};
use shm::{Access, AfterRead, Api, Format, SegmentArgs, Shared};

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
        variables, or was written again since, is left in place.",
    after_help = format!("{ENVIRONMENT}\n{}\n  IPC_SHM_FORMAT, IPC_SHM_KEEP (--format, --keep)", shm::ENVIRONMENT)
)]
struct Args {
    #[command(flatten)]
    segment: SegmentArgs,

    /// sysv: the variable key to read, shm_get_var()'s second argument [default: 1].
    #[arg(
        long,
        value_name = "N",
        allow_negative_numbers = true,
        env = "IPC_SHM_VAR",
        hide_env = true
    )]
    var: Option<i64>,

    /// shmop: where in the segment the bytes start [default: 0].
    #[arg(long, value_name = "BYTES", env = "IPC_SHM_OFFSET", hide_env = true)]
    offset: Option<usize>,

    /// shmop: print exactly N bytes, NULs included, instead of stopping at the first NUL.
    #[arg(long, value_name = "N")]
    length: Option<usize>,

    /// Leave the segment in place for another reader instead of removing it.
    #[arg(long, env = "IPC_SHM_KEEP", hide_env = true)]
    keep: bool,

    /// sysv: how to print the value [default: echo].
    #[arg(long, value_enum, env = "IPC_SHM_FORMAT", hide_env = true, help_heading = heading::PHP_VALUES)]
    format: Option<Format>,

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
        ];
        let shmop_only = [
            ("--offset", self.offset.is_some()),
            ("--length", self.length.is_some()),
        ];
        shm::check_api::<Args>(self.segment.api, &sysv_only, &shmop_only);
        self
    }
}

fn main() -> ExitCode {
    let args = Args::parse().checked();
    report::main(|| run(args))
}

fn run(args: Args) -> anyhow::Result<()> {
    let deadline = args.common.start();
    let segment = &args.segment;
    let name = segment.wait_for_key(&deadline)?; // ftok
    let id = shm::wait_for_segment(&name, &deadline).map_err(|err| {
        match sysv::namespace_note(&segment.key_file) {
            Some(note) => err.context(note),
            None => err,
        }
    })?; // shmget
    let lock = segment.lock(args.mode.mode);
    let mut shared = Shared::attach(name, id, Access::ReadOnly, lock, &deadline)?; // shmat, sem_get
    let label = shared.name.to_string();
    let removed = match segment.api {
        Api::Sysv => {
            let var = args.var.unwrap_or(shm::DEFAULT_VAR);
            let what = format!("variable {var} in {}", shared.name);
            let (value, serialized) = shared
                .wait_for_var(var, what, &deadline)
                .inspect_err(|_| remove_orphan(&mut shared, &deadline))?;
            // A value we cannot print is left where it is: nothing is removed after an error.
            let format = args.format.unwrap_or(Format::Echo);
            report::print_payload(&shm::print_value(&value, var, format, &shared.name)?)?;
            if args.keep {
                None
            } else {
                Some(shared.remove_store_after_read(var, Some(&serialized), &deadline)?)
            }
        }
        Api::Shmop => {
            let (offset, length) = (args.offset.unwrap_or(0), args.length);
            // No orphan rule for shmop: an unwritten segment may be the target of a writer still
            // to come (docs/talking-to-php.md).
            let bytes = shared.wait_for_raw(offset, length, &deadline)?;
            report::print_payload(&bytes)?;
            if args.keep {
                None
            } else {
                Some(shared.remove_after_read(&deadline, |seg| {
                    // Rewritten since we read it: the new message is the next reader's.
                    let now = shm::read_message(seg, offset, length)?;
                    Ok((now != bytes).then(|| {
                        format!("it was written again at offset {offset} after we read it")
                    }))
                })?)
            }
        }
    };
    say_what_was_removed(removed, &label, &deadline);
    Ok(())
}

/// The blog's `shm_remove`, as it went; `None`: `--keep`.
fn say_what_was_removed(removed: Option<AfterRead>, name: &str, deadline: &Deadline) {
    match removed {
        None => say!(deadline, "kept {name} for the next reader (--keep)"),
        Some(AfterRead::Removed) => say!(deadline, "removed {name}"),
        Some(AfterRead::Left(why)) => say!(deadline, "left {name} in place: {why}"),
        Some(AfterRead::NotPermitted { uid, creator_uid }) => report::warn(format_args!(
            "the value was read, but {name} stays: only its owner (uid {uid}), its creator (uid \
             {creator_uid}) or root may remove it, and we are uid {} (pass --keep to leave it to \
             them without this warning)",
            nix::unistd::geteuid()
        )),
        Some(AfterRead::LockBusy(err)) => {
            report::warn(format_args!("the value was read, but {name} stays: {err}"));
        }
    }
}

/// After a wait in vain: an empty segment whose failed writer is gone is removed, not leaked
/// (see `Shared::remove_if_orphaned`).
fn remove_orphan(shared: &mut Shared, deadline: &Deadline) {
    match shared.remove_if_orphaned() {
        Ok(Some(pid)) => say!(
            deadline,
            "removed {}: empty, left by a writer (pid {pid}) that is gone",
            shared.name
        ),
        Ok(None) => {}
        Err(err) => report::warn(format_args!("{err:#}")),
    }
}
