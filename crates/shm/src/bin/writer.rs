//! `shm-writer`: the blog's shared-memory writers, `shm_attach` + `shm_put_var` (PHP's sysvshm,
//! `--api sysv`) or `shmop_open` + `shmop_write` (`--api shmop`): stores one message in a SysV
//! segment keyed on `ftok`, under PHP's `sem_get` lock.
//!
//! Syscalls as strace shows them: `openat(O_CREAT|O_EXCL)` (key file, if missing),
//! `openat(O_PATH)` + `statx` (ftok), `shmget(key, 0, 0)` else `shmget(IPC_CREAT|IPC_EXCL)`,
//! `shmctl(IPC_STAT)`,
//! `shmat`, `semget` + `semtimedop` + `semctl` (sem_get), `semtimedop` (acquire), memory writes,
//! `shmctl(IPC_STAT)`, `semtimedop` (release), `shmdt`, `semctl(IPC_RMID)` (the lock's last user).
//!
//! ```text
//! cargo run -p shm --bin shm-writer              # add `-- --api shmop` for the shmop pair
//! cargo run -p shm --bin shm-reader
//! ```

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Parser;
use ipc_common::php::{serialize, sysvshm};
use ipc_common::runtime::cleanup::Cleanup;
use ipc_common::runtime::cli::{CommonArgs, ENVIRONMENT, MessageArgs, MessageLimit, ModeArgs};
use ipc_common::runtime::paths::{self, KeyFile};
use ipc_common::runtime::report;
use ipc_common::runtime::wait::Deadline;
use ipc_common::{say, sysv};
use shm::{Access, Api, Ours, SegmentArgs, Shared};

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
    segment: SegmentArgs,

    /// Size in bytes of the segment to create; an existing segment must be at least this big.
    /// For sysv it is also the store size PHP's header records (at least 40).
    #[arg(long, value_name = "BYTES", default_value_t = shm::DEFAULT_SIZE, value_parser = shm::parse_size, env = "IPC_SHM_SIZE", hide_env = true)]
    size: usize,

    /// sysv: the variable key, shm_put_var()'s second argument [default: 1].
    #[arg(
        long,
        value_name = "N",
        allow_negative_numbers = true,
        env = "IPC_SHM_VAR",
        hide_env = true
    )]
    var: Option<i64>,

    /// shmop: where in the segment to write the bytes [default: 0].
    #[arg(long, value_name = "BYTES", env = "IPC_SHM_OFFSET", hide_env = true)]
    offset: Option<usize>,

    /// sysv: remove variable N from the store (shm_remove_var) instead of storing anything; the
    /// segment must exist.
    #[arg(long, value_name = "N", allow_negative_numbers = true, conflicts_with_all = ["message", "message_file", "var"])]
    remove_var: Option<i64>,

    #[command(flatten)]
    message: MessageArgs,

    #[command(flatten)]
    value: shm::ValueArgs,

    #[command(flatten)]
    mode: ModeArgs,

    #[command(flatten)]
    common: CommonArgs,
}

impl Args {
    /// The option combinations clap cannot check by itself, refused as usage errors (exit 2).
    fn checked(self) -> Self {
        let mut sysv_only = vec![
            ("--var", self.var.is_some()),
            ("--remove-var", self.remove_var.is_some()),
        ];
        sysv_only.extend(self.value.given());
        let shmop_only = [("--offset", self.offset.is_some())];
        shm::check_api::<Args>(self.segment.api, &sysv_only, &shmop_only);
        if self.segment.api == Api::Sysv && self.size < sysvshm::MIN_SEGMENT {
            shm::usage_error::<Args>(format!(
                "--size {} cannot hold PHP's 40-byte sysvshm header",
                self.size
            ));
        }
        self
    }
}

fn main() -> ExitCode {
    let args = Args::parse().checked();
    report::main(|| run(args))
}

fn run(args: Args) -> anyhow::Result<()> {
    let deadline = args.common.start();
    let (segment, mode) = (&args.segment, args.mode.mode);
    let var = args.var.unwrap_or(shm::DEFAULT_VAR);
    if let Some(var) = args.remove_var {
        return remove_var(segment, var, &args, &deadline);
    }
    let limit = MessageLimit {
        bytes: args.size,
        why: "a message cannot be larger than the segment (--size)".into(),
    };
    let message = args.message.payload(shm::MESSAGE, limit, &deadline)?;

    let key_file = create_key_file(&args, &deadline)?;
    let name = segment.key()?; // ftok
    let ours = match segment.api {
        Api::Sysv => Ours::Var(var),
        Api::Shmop => Ours::Nothing,
    };
    let opened = shm::open_or_create(&name, args.size, mode, ours)?; // shmget
    match &opened.created {
        Some(_) => say!(
            deadline,
            "created {name}: shmid {}, {} bytes, mode {mode}",
            opened.id.0,
            opened.size
        ),
        None => say!(
            deadline,
            "using the existing {name}: shmid {}, {} bytes",
            opened.id.0,
            opened.size
        ),
    }
    // shmat, sem_get
    let mut shared = Shared::attach(
        name,
        opened.id,
        Access::ReadWrite,
        segment.lock(mode),
        &deadline,
    )?;
    match segment.api {
        Api::Shmop => {
            let offset = args.offset.unwrap_or(0);
            shared.write_raw(offset, &message, &deadline)?;
            say!(
                deadline,
                "wrote {} bytes at offset {offset} of {}",
                message.len(),
                shared.name
            );
        }
        Api::Sysv => {
            let serialized = serialize(&args.value.value_or(message));
            shared.put_var(var, &serialized, args.size, &deadline)?;
            say!(
                deadline,
                "put variable {var} ({} serialized bytes) into {}",
                serialized.len(),
                shared.name
            );
        }
    }
    // shmdt(2): with nobody else attached, the shmop reader takes the bytes as written.
    drop(shared);
    shm::keep([key_file, opened.created]);
    Ok(())
}

/// `ftok(3)` needs an existing file: creates the key file if missing (with --mode, holding our
/// IPC namespace's name for a reader in another one); returns its guard if it did.
fn create_key_file(args: &Args, deadline: &Deadline) -> anyhow::Result<Option<Cleanup>> {
    let path = &args.segment.key_file;
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

/// `--remove-var`: `shm_remove_var` on an existing segment; creates nothing but the lock.
fn remove_var(
    segment: &SegmentArgs,
    var: i64,
    args: &Args,
    deadline: &Deadline,
) -> anyhow::Result<()> {
    let name = segment.key()?;
    let Some(id) = sysv::shm_open(name.key).with_context(|| format!("shmget {name}"))? else {
        bail!("remove variable {var}: there is no {name}");
    };
    shm::check_owner(&name, id)?;
    let lock = segment.lock(args.mode.mode);
    let mut shared = Shared::attach(name, id, Access::ReadWrite, lock, deadline)?;
    if !shared.remove_var(var, deadline)? {
        bail!(
            "remove variable {var} from {}: it is not there",
            shared.name
        );
    }
    say!(deadline, "removed variable {var} from {}", shared.name);
    Ok(())
}
