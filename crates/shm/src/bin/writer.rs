//! `shm-writer`: stores a message in a SysV shared memory segment, as the blog's shared-memory
//! writers do: `shm_attach` + `shm_put_var` (PHP's sysvshm, the default `--api sysv`) or
//! `shmop_open` + `shmop_write` (PHP's shmop, `--api shmop`).
//!
//! Syscalls, in order:
//! 1. `open(2)` the key file with `O_CREAT | O_EXCL` if it is missing (mode `--mode`), then
//!    `open(2)` it `O_PATH | O_NOFOLLOW` and `fstat(2)` it: checks and `ftok(3)` key from one file;
//! 2. `shmget(2)` `(key, 0, 0)` for the existing segment, else `(key, --size, IPC_CREAT |
//!    IPC_EXCL | mode)`, as PHP does; `shmctl(2)` `IPC_STAT` checks an existing one is big enough
//!    and owned and created by a trusted user (ourselves, root or `--trust-uid`), as an existing
//!    key file and semaphore set must be;
//! 3. `sem_get`, the PHP lock: `semget(2)` the three-semaphore set (created if missing),
//!    `semtimedop(2)` to register, `semctl(2)` `GETVAL`/`SETVAL` to initialise it;
//! 4. `shmat(2)` the segment;
//! 5. `semtimedop(2)` to acquire the lock, waiting at most `--timeout`;
//! 6. plain memory accesses: sysv reads the store, lays out PHP's `PHP_SM` header if there is
//!    none, replaces variable `--var` with the `serialize()`d value; shmop copies the raw bytes and
//!    a NUL to `--offset`; `shmctl(2)` `IPC_STAT` checks the segment was not removed meanwhile;
//! 7. `semop(2)` to release the lock, then `shmdt(2)`, which the shmop reader waits for.
//!
//! The writer creates the key file and the segment when they are missing and leaves them for the
//! reader, which removes the segment. The lock's semaphore set goes with its last user, usually
//! this writer as it exits. A run that fails removes what it created (also on SIGINT/SIGTERM),
//! unless someone else's data is in it. `--count N` hands N stamped messages over one
//! variable, each once the reader has taken the previous one (see the `shm` library docs).
//!
//! Run the pair (either order):
//!
//! ```text
//! cargo run -p shm --bin shm-writer              # add `-- --api shmop` for the shmop pair
//! cargo run -p shm --bin shm-reader
//! ```

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{ArgAction, Parser};
use ipc_common::cli::{CommonArgs, MessageArgs, MessageLimit, Mode, ModeArgs};
use ipc_common::paths::{self, KeyFile};
use ipc_common::php::{Value, serialize, sysvshm};
use ipc_common::wait::Deadline;
use ipc_common::{progress, seq, sysv};
use shm::{Api, Ours, SegmentArgs, Shared};

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
    group = clap::ArgGroup::new("php_value")
        .args(["int", "float", "bool", "null"])
        .conflicts_with_all(["message", "message_file", "count", "remove_var"]),
)]
struct Args {
    #[command(flatten)]
    segment: SegmentArgs,

    /// Size in bytes of the segment to create; an existing segment must be at least this big.
    /// For sysv it is also the store size PHP's header records (at least 40).
    #[arg(long, value_name = "BYTES", default_value_t = shm::DEFAULT_SIZE, value_parser = shm::parse_size, env = "IPC_SHM_SIZE")]
    size: usize,

    /// sysv: the variable key, shm_put_var()'s second argument [default: 1].
    #[arg(
        long,
        value_name = "N",
        allow_negative_numbers = true,
        env = "IPC_SHM_VAR"
    )]
    var: Option<i64>,

    /// shmop: where in the segment to write the bytes [default: 0].
    #[arg(long, value_name = "BYTES", env = "IPC_SHM_OFFSET")]
    offset: Option<usize>,

    #[command(flatten)]
    message: MessageArgs,

    /// sysv: store this PHP int instead of the message (serialized `i:42;`).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    int: Option<i64>,

    /// sysv: store this PHP float instead of the message (`d:2.5;`; INF, -INF and NAN too).
    #[arg(long, value_name = "X", allow_hyphen_values = true)]
    float: Option<f64>,

    /// sysv: store this PHP bool instead of the message (`b:1;` or `b:0;`).
    #[arg(long, value_name = "true|false", action = ArgAction::Set)]
    bool: Option<bool>,

    /// sysv: store PHP null instead of the message (`N;`).
    #[arg(long)]
    null: bool,

    /// sysv: remove variable N from the store (shm_remove_var) instead of storing anything; the
    /// segment must exist.
    #[arg(long, value_name = "N", allow_negative_numbers = true, conflicts_with_all = ["message", "message_file", "count", "var"])]
    remove_var: Option<i64>,

    /// sysv: hand N sequence-stamped copies of the message to `shm-reader --count N` through
    /// variable --var, each once the reader has taken the previous one. At most 100 million,
    /// as many as shm-reader --count checks.
    #[arg(long, value_name = "N", value_parser = seq::parse_count)]
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
            ("--int", self.int.is_some()),
            ("--float", self.float.is_some()),
            ("--bool", self.bool.is_some()),
            ("--null", self.null),
            ("--remove-var", self.remove_var.is_some()),
            ("--count", self.count.is_some()),
        ];
        let shmop_only = [("--offset", self.offset.is_some())];
        let (misplaced, needs) = match self.segment.api {
            Api::Sysv => (&shmop_only[..], "shmop"),
            Api::Shmop => (&sysv_only[..], "sysv"),
        };
        if let Some((flag, _)) = misplaced.iter().find(|(_, given)| *given) {
            shm::usage_error::<Args>(format!("{flag} needs --api {needs}"));
        }
        if self.segment.api == Api::Sysv && self.size < sysvshm::MIN_SEGMENT {
            shm::usage_error::<Args>(format!(
                "--size {} cannot hold PHP's 40-byte sysvshm header",
                self.size
            ));
        }
        self
    }

    /// What `--int`, `--float`, `--bool` or `--null` ask to store, else the message.
    fn value(&self, message: Vec<u8>) -> Value {
        match (self.int, self.float, self.bool) {
            (Some(int), _, _) => Value::Int(int),
            (_, Some(float), _) => Value::Float(float),
            (_, _, Some(bool)) => Value::Bool(bool),
            _ if self.null => Value::Null,
            _ => Value::String(message),
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse().checked();
    ipc_common::report::main(|| run(args))
}

fn run(args: Args) -> anyhow::Result<()> {
    let deadline = args.common.start();
    let segment = &args.segment;
    let mode = args.mode.mode;
    let var = args.var.unwrap_or(shm::DEFAULT_VAR);
    if let Some(var) = args.remove_var {
        return remove_var(segment, var, mode, &deadline);
    }
    let limit = MessageLimit {
        bytes: args.size,
        why: "a message cannot be larger than the segment (--size)".into(),
    };
    let message = args.message.payload(shm::MESSAGE, limit, &deadline)?;

    let key_file = match paths::ensure_key_file(&segment.key_file, mode)? {
        KeyFile::Created(guard) => {
            progress!("created key file {}", segment.key_file.display());
            // For a reader in another IPC namespace (a container), which never sees ours.
            let _ = sysv::record_namespace(&segment.key_file);
            Some(guard)
        }
        KeyFile::Existing => {
            if let Some(note) = sysv::namespace_note(&segment.key_file) {
                ipc_common::report::warn(format_args!("{note}"));
            }
            None
        }
    };
    let name = segment.key()?;
    let ours = match segment.api {
        Api::Sysv => Ours::Var(var),
        Api::Shmop => Ours::Nothing,
    };
    let (id, segment_created) = shm::open_or_create(&name, args.size, mode, ours)?;
    let mut shared = Shared::attach(name, id, false, segment.no_lock, mode, &deadline)?;

    match (segment.api, args.count) {
        (Api::Shmop, _) => {
            let offset = args.offset.unwrap_or(0);
            shared.write_raw(offset, &message, &deadline)?;
            progress!(
                "wrote {} bytes at offset {offset} of {}",
                message.len(),
                shared.name
            );
        }
        (Api::Sysv, None) => {
            let serialized = serialize(&args.value(message));
            shared.put_var(var, &serialized, args.size, false, &deadline)?;
            progress!(
                "put variable {var} ({} serialized bytes) into {}",
                serialized.len(),
                shared.name
            );
        }
        (Api::Sysv, Some(count)) => {
            hand_over(&mut shared, var, count, &message, args.size, &deadline)?;
        }
    }

    // shmdt(2): with nobody else attached, the shmop reader takes the bytes as written.
    drop(shared);
    shm::keep([key_file, segment_created]);
    Ok(())
}

/// `--count`: puts stamped message `seq` into `var` each time the reader has taken the previous
/// one (the variable is absent), until all `count` are through.
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
        progress!(
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
        shm::hand_off_retry(deadline, what, || {
            let put = shared.put_var(var, &serialized, total, true, deadline)?;
            Ok(put.then_some(()))
        })?;
    }
    progress!(
        "handed {count} messages through variable {var} of {}",
        shared.name
    );
    Ok(())
}

/// `--remove-var`: `shm_remove_var` on an existing segment; creates nothing but the lock.
fn remove_var(
    segment: &SegmentArgs,
    var: i64,
    mode: Mode,
    deadline: &Deadline,
) -> anyhow::Result<()> {
    let name = segment.key()?;
    let Some(id) = sysv::shm_open(name.key).with_context(|| format!("shmget {name}"))? else {
        bail!("remove variable {var}: there is no {name}");
    };
    shm::check_owner(&name, id)?;
    let mut shared = Shared::attach(name, id, false, segment.no_lock, mode, deadline)?;
    if !shared.remove_var(var, deadline)? {
        bail!(
            "remove variable {var} from {}: it is not there",
            shared.name
        );
    }
    progress!("removed variable {var} from {}", shared.name);
    Ok(())
}
