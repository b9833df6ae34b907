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
use ipc_common::runtime::cli::{CommonArgs, ENVIRONMENT, ModeArgs};
use ipc_common::runtime::report;
use ipc_common::runtime::wait::Deadline;
use ipc_common::say;
use shm::cli::{Note, ReadArgs, SEGMENT};
use shm::{Access, SegmentArgs, Shared};

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
    #[command(flatten, next_help_heading = SEGMENT)]
    segment: SegmentArgs,

    #[command(flatten)]
    read: ReadArgs,

    #[command(flatten)]
    mode: ModeArgs,

    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    args.read.check::<Args>(args.segment.api); // usage errors clap cannot see: exit 2
    report::main(|| run(args))
}

fn run(args: Args) -> anyhow::Result<()> {
    let deadline = args.common.start();
    report::check_stdout()?; // before anything is taken: nowhere to print it
    let (segment, read) = (&args.segment, &args.read);
    let name = segment.wait_for_key(&deadline)?; // ftok
    let id = segment.wait_for_segment(&name, &deadline)?; // shmget
    let lock = segment.lock(args.mode.mode);
    let mut shared = Shared::attach(name, id, Access::ReadOnly, lock, &deadline)?; // shmat, sem_get
    let message = read
        .wait_for_message(segment.api, &mut shared, &deadline)
        .inspect_err(|_| tell(shared.remove_orphan(segment.api), &deadline))?;
    // A value we cannot print is left where it is: nothing is removed after an error.
    report::print_payload(&read.printable(&message, &shared.name)?)?;
    let removed = read.remove_after_read(shared, &message, &deadline)?; // shmctl(IPC_RMID)
    tell(Some(removed), &deadline);
    Ok(())
}

/// Says what the library reports: progress on the deadline's channel, warnings always.
fn tell(note: Option<Note>, deadline: &Deadline) {
    match note {
        Some(Note::Progress(line)) => say!(deadline, "{line}"),
        Some(Note::Warning(line)) => report::warn(format_args!("{line}")),
        None => {}
    }
}
