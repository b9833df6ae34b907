//! `shm-writer`: the blog's shared-memory writers, `shm_attach` + `shm_put_var` (PHP's sysvshm,
//! `--api sysv`) or `shmop_open` + `shmop_write` (`--api shmop`): stores one message in a SysV
//! segment keyed on `ftok`, under PHP's `sem_get` lock.
//!
//! Syscalls as strace shows them: `openat(O_CREAT|O_EXCL)` (key file, if missing),
//! `openat(O_PATH)` + `statx` (ftok), `shmget(key, 0, 0)` else `shmget(IPC_CREAT|IPC_EXCL)`,
//! `shmctl(IPC_STAT)`, `shmat`, `semget` + `semtimedop` + `semctl` (sem_get), `semtimedop`
//! (acquire), memory writes, `shmctl(IPC_STAT)`, `semtimedop` (release), `shmdt`,
//! `semctl(IPC_RMID)` (the lock's last user).
//!
//! ```text
//! cargo run -p shm --bin shm-writer              # add `-- --api shmop` for the shmop pair
//! cargo run -p shm --bin shm-reader
//! ```

use std::process::ExitCode;

use clap::Parser;
use ipc_common::runtime::cli::{CommonArgs, ENVIRONMENT, MessageArgs, ModeArgs};
use ipc_common::runtime::report;
use ipc_common::runtime::wait::Deadline;
use ipc_common::say;
use shm::cli::{self, Note, SEGMENT, WriteArgs};
use shm::{Access, SegmentArgs, Shared, ValueArgs};

/// The command line; each field's doc comment is its `--help` text.
#[derive(Parser, Debug)]
#[command(
    name = "shm-writer",
    version,
    about = "The blog's shared-memory writer: stores a message in a SysV segment (PHP sysvshm or shmop)",
    long_about = "Stores a message in a SysV shared memory segment, as the blog's shared-memory \
        writers do: as PHP variable 1 in PHP's sysvshm layout (shm_put_var; the default), or as \
        raw bytes at offset 0 (shmop_write, with --api shmop). The key is ftok(/tmp/ipc-shared-memory, \
        'T'); the segment (1024 bytes, mode 0600) and the key file are created if missing and left \
        for shm-reader. Takes PHP's sem_get() lock around the write, waiting up to --timeout \
        (default 10 s). Stores \"Hello from Writer: Shared Memory\" unless told otherwise.",
    after_help = format!("{ENVIRONMENT}\n{}\n  IPC_SHM_SIZE (--size)", shm::ENVIRONMENT),
    group = clap::ArgGroup::new("php_value")
        .args(["int", "float", "bool", "null"])
        .conflicts_with_all(["message", "message_file", "remove_var"]),
)]
struct Args {
    #[command(flatten)]
    message: MessageArgs,

    #[command(flatten, next_help_heading = SEGMENT)]
    segment: SegmentArgs,

    #[command(flatten)]
    write: WriteArgs,

    #[command(flatten)]
    value: ValueArgs,

    #[command(flatten)]
    mode: ModeArgs,

    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    args.write.check::<Args>(args.segment.api, &args.value); // usage errors clap cannot see: exit 2
    report::main(|| run(args))
}

fn run(args: Args) -> anyhow::Result<()> {
    let deadline = args.common.start();
    let (segment, write, mode) = (&args.segment, &args.write, args.mode.mode);
    if let Some(var) = write.remove_var {
        let name = cli::remove_var(segment, var, mode, &deadline)?; // shmget, shmat, sem_get
        say!(deadline, "removed variable {var} from {name}");
        return Ok(());
    }
    let message = args
        .message
        .payload(shm::MESSAGE, write.limit(), &deadline)?;

    let (key_file, note) = cli::create_key_file(&segment.key_file, mode)?; // openat(O_CREAT|O_EXCL)
    tell(note, &deadline);
    let name = segment.key()?; // ftok
    let opened = shm::open_or_create(&name, write.size, mode, write.ours(segment.api))?; // shmget
    tell(Some(cli::opened_note(&opened, &name, mode)), &deadline);
    let lock = segment.lock(mode);
    let mut shared = Shared::attach(name, opened.id, Access::ReadWrite, lock, &deadline)?; // shmat, sem_get
    let stored = write.store(segment.api, &mut shared, &args.value, message, &deadline)?;
    tell(Some(stored), &deadline);
    // shmdt(2): with nobody else attached, the shmop reader takes the bytes as written.
    drop(shared);
    shm::keep([key_file, opened.created]);
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
