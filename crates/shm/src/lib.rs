//! The blog's shared memory, shared by `shm-writer`, `shm-reader` (and the benchmark): one SysV
//! segment keyed on `ftok(key file, 'T')`, used the way one of two PHP extensions uses it.
//!
//! - `--api sysv` (PHP's sysvshm, `shm_put_var`/`shm_get_var`): the segment holds PHP's variable
//!   store (a 40-byte `PHP_SM` header, then one record per variable holding its `serialize()`d
//!   value; see [`ipc_common::php::sysvshm`]). A PHP script can read what we write and add
//!   variables beside ours.
//! - `--api shmop` (PHP's shmop, `shmop_write`/`shmop_read`): raw bytes at an offset, nothing
//!   else: no header, no length, no way to tell "written" from "not yet written".
//!
//! The two binaries' own option groups, and the steps of their `run()` that choose between the
//! two, are in [`cli`].
//!
//! # Who creates what, who removes it
//!
//! | object | created by | removed by |
//! |---|---|---|
//! | key file | the writer, if missing | nobody (as in the blog); a writer whose run fails removes the one it created |
//! | segment | the writer: `shmget(key, 0, 0)`, else `shmget(key, size, IPC_CREAT \| IPC_EXCL \| mode)`, as PHP does | the reader after printing (the blog's `shm_remove`), unless `--keep`, and only if the store holds no other variable and ours is unchanged (shmop: the bytes are unchanged); a writer whose run fails removes the one it created, unless another process is attached or put data in it |
//! | lock (semaphore set) | whoever calls `sem_get` first, writer or reader | its last user, when it lets go (see [`ipc_common::php::sysvsem`]) |
//!
//! The reader never creates the segment (PHP's `shm_attach` would, and lay out an empty store):
//! it waits for it. A reader that fails removes nothing but the lock it was the last to use,
//! never a segment it found broken (a load run's reader excepted: its hand-off segment goes
//! whichever way the run ended, and its writer first clears a message an interrupted run left
//! in the variable). A key file, segment or semaphore set found rather than created is used only
//! if a trusted user owns it (and created it): ourselves, root, or `--trust-uid`
//! ([`ipc_common::runtime::trust`]). The lock holds no data, so it lives only while processes
//! use it: neither a writer run alone nor a PHP reader that knows nothing of it leaves a
//! semaphore set behind.
//!
//! # The lock
//!
//! Shared memory has no synchronisation of its own: a `shm_put_var` is a read-modify-write of
//! the whole store (drop the old record, move the later ones down, append), and two writers doing
//! it at once lose each other's variables or leave a torn store. Every access here (each put,
//! each read, each raw write) holds PHP's `sem_get($key)` semaphore (same key file, same
//! project id: [`ipc_common::php::sysvsem`]), so PHP scripts that lock the same way take turns
//! with us. `--no-lock` skips it, to show what goes wrong. Waiting for it honours `--timeout`.
//!
//! # Telling that the writer is done
//!
//! There is no notification in shared memory: a reader looks, and looks again (backing off from
//! 1 to 25 ms, up to `--timeout`).
//! - sysv: the variable is there and its serialized bytes parse. Under the lock that is exact.
//!   Without it (`--no-lock`, or a PHP writer that does not lock) the reader may look in the
//!   middle of a write, so a store that does not parse counts as broken only when it fails the
//!   same way twice in a row, unchanged; a writer stalled mid-write for longer than one backoff
//!   step can still be mistaken for a broken one.
//! - shmop: the bytes carry no sign of completion. The reader waits until they are not all NUL
//!   and either nobody else is attached or the same bytes were seen twice in a row
//!   ([`Shared::wait_for_raw`]; the rule and its limits are in docs/talking-to-php.md). So a
//!   segment created but not yet written is never read as empty and removed; the price is that
//!   an empty message cannot be sent (the writer refuses it). The writer ends its message with a
//!   NUL where there is room, which PHP's `shmop_write` does not: a shorter message would
//!   otherwise be read with the tail of a longer one before it.
//!
//! # Keys
//!
//! The key is computed from the key file we checked ([`key_of_file`]). ftok keys collide (16
//! bits of the inode, 8 of the device): a segment created before its key file was born is
//! refused ([`check_owner`]), the one cheap sign that it is another file's.
//!
//! # Load runs
//!
//! `ipc-load shm-reader/shm-writer --count N` hand many stamped messages through one variable
//! with the primitives here ([`Shared::put_var_if_absent`], [`Shared::look_for_var`] with
//! [`Take::Remove`], [`Shared::discard_var`]); the pacing is the load crate's.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::UNIX_EPOCH;

use anyhow::{Context, bail, ensure};
use clap::{Args, ValueEnum};
use ipc_common::php::sysvsem::Semaphore;
use ipc_common::php::sysvshm::{self, StoreError};
use ipc_common::php::{JsonFlags, Value, unserialize};
use ipc_common::runtime::cleanup::Cleanup;
use ipc_common::runtime::cli::{Mode, parse_proj_id, usage_error};
use ipc_common::runtime::paths;
use ipc_common::runtime::trust;
use ipc_common::runtime::wait::{Deadline, TimedOut, retry};
use ipc_common::sysv::{self, Attached, Key, ShmId};
use nix::errno::Errno;

pub mod cli;

/// The blog's key file.
pub const DEFAULT_KEY_FILE: &str = "/tmp/ipc-shared-memory";
/// The blog's segment size, in bytes.
pub const DEFAULT_SIZE: usize = 1024;
/// The blog's variable key (`shm_put_var($shm, 1, ...)`).
pub const DEFAULT_VAR: i64 = 1;
/// The blog's message.
pub const MESSAGE: &str = "Hello from Writer: Shared Memory";

/// Which PHP extension's view of the segment to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Api {
    /// PHP's sysvshm: a store of serialized variables (`shm_put_var`, `shm_get_var`).
    Sysv,
    /// PHP's shmop: raw bytes at an offset (`shmop_write`, `shmop_read`).
    Shmop,
}

/// The options that name the segment, the same for both sides.
#[derive(Args, Clone, Debug)]
pub struct SegmentArgs {
    /// How to use the segment: `sysv` stores PHP variables as PHP's shm_put_var() does, `shmop`
    /// raw bytes as PHP's shmop_write() does.
    #[arg(
        long,
        value_enum,
        default_value = "sysv",
        env = "IPC_SHM_API",
        hide_env = true
    )]
    pub api: Api,

    /// The ftok(3) key file: the key is ftok(FILE, PROJ). The writer creates it if missing;
    /// nobody removes it.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_KEY_FILE, env = "IPC_SHM_KEY_FILE", hide_env = true)]
    pub key_file: PathBuf,

    /// The ftok(3) project id: one character, as PHP's ftok() takes it, or a number 1-255.
    #[arg(long, value_name = "ID", default_value = "T", value_parser = parse_proj_id, env = "IPC_SHM_PROJ", hide_env = true)]
    pub proj: u8,

    /// Do not take the PHP sem_get() lock around each access: shows the lost updates and torn
    /// reads the lock prevents.
    #[arg(long, env = "IPC_SHM_NO_LOCK", hide_env = true)]
    pub no_lock: bool,
}

/// The environment variables of the segment's options, for `--help` (each binary adds its own).
pub const ENVIRONMENT: &str = "  IPC_SHM_API, IPC_SHM_KEY_FILE, IPC_SHM_PROJ, IPC_SHM_NO_LOCK, IPC_SHM_VAR, \
IPC_SHM_OFFSET (--api, --key-file, --proj, --no-lock, --var, --offset)";

/// A PHP value the writer stores instead of the message (sysv; `--help`'s "PHP values").
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = ipc_common::runtime::cli::heading::PHP_VALUES)]
pub struct ValueArgs {
    /// sysv: store this PHP int instead of the message (serialized `i:42;`).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub int: Option<i64>,

    /// sysv: store this PHP float instead of the message (`d:2.5;`; INF, -INF and NAN too).
    #[arg(long, value_name = "X", allow_hyphen_values = true)]
    pub float: Option<f64>,

    /// sysv: store this PHP bool instead of the message (`b:1;` or `b:0;`).
    #[arg(long, value_name = "true|false", action = clap::ArgAction::Set)]
    pub bool: Option<bool>,

    /// sysv: store PHP null instead of the message (`N;`).
    #[arg(long)]
    pub null: bool,
}

impl ValueArgs {
    /// What `--int`, `--float`, `--bool` or `--null` ask to store, else the message.
    pub fn value_or(&self, message: Vec<u8>) -> Value {
        match (self.int, self.float, self.bool) {
            (Some(int), _, _) => Value::Int(int),
            (_, Some(float), _) => Value::Float(float),
            (_, _, Some(bool)) => Value::Bool(bool),
            _ if self.null => Value::Null,
            _ => Value::String(message),
        }
    }

    /// The options given, by name, for [`check_api`].
    pub fn given(&self) -> [(&'static str, bool); 4] {
        [
            ("--int", self.int.is_some()),
            ("--float", self.float.is_some()),
            ("--bool", self.bool.is_some()),
            ("--null", self.null),
        ]
    }
}

/// How the reader prints a sysv variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// As PHP's `echo $value;` prints it (true is 1, false and null print nothing).
    Echo,
    /// As PHP's json_encode($value) writes it (default flags: `\/`, non-ASCII as \uXXXX).
    Json,
    /// As json_encode($value, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE) writes it.
    JsonUnescaped,
}

/// Variable `var`'s value as PHP's `echo` prints it, or as `json_encode` writes it.
pub fn print_value(
    value: &Value,
    var: i64,
    format: Format,
    name: &SegmentKey,
) -> anyhow::Result<Vec<u8>> {
    let flags = match format {
        Format::Echo => {
            return value
                .echo()
                .map_err(|why| anyhow::anyhow!("print variable {var}: {why}"));
        }
        Format::Json => JsonFlags::DEFAULT,
        Format::JsonUnescaped => JsonFlags::UNESCAPED,
    };
    let json = value.to_json_with(flags).map_err(|why| {
        anyhow::anyhow!(
            "print variable {var} of {name} as JSON: {why}; the segment is left as it is \
             (--format echo prints it)"
        )
    })?;
    Ok(json.into_bytes())
}

/// Refuses, as a usage error (exit 2), an option given with the other `--api` than its own:
/// `sysv_only` and `shmop_only` name each option and whether it was given.
pub fn check_api<C: clap::CommandFactory>(
    api: Api,
    sysv_only: &[(&str, bool)],
    shmop_only: &[(&str, bool)],
) {
    let (misplaced, needs) = match api {
        Api::Sysv => (shmop_only, "shmop"),
        Api::Shmop => (sysv_only, "sysv"),
    };
    if let Some((flag, _)) = misplaced.iter().find(|(_, given)| *given) {
        usage_error::<C>(format!("{flag} needs --api {needs}"));
    }
}

/// A segment's key and where it came from, as messages name it.
#[derive(Clone, Debug)]
pub struct SegmentKey {
    pub key: Key,
    pub key_file: PathBuf,
    pub proj: u8,
    /// The key file's birth time (seconds since the epoch), where the filesystem records one: a
    /// segment created before it is not this key file's ([`check_owner`]).
    pub key_file_born: Option<i64>,
}

impl fmt::Display for SegmentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "shared memory segment {} (key file {})",
            self.key,
            self.key_file.display()
        )
    }
}

impl SegmentArgs {
    /// `ftok(3)` of the key file, which must exist ([`key_of_file`]).
    pub fn key(&self) -> anyhow::Result<SegmentKey> {
        let path = &self.key_file;
        let (key, born) = key_of_file(path, self.proj)?;
        Ok(SegmentKey {
            key,
            key_file: path.clone(),
            proj: self.proj,
            key_file_born: born,
        })
    }

    /// Waits until the key file exists (the writer creates it), then its key.
    pub fn wait_for_key(&self, deadline: &Deadline) -> anyhow::Result<SegmentKey> {
        let path = &self.key_file;
        wait(deadline, format!("key file {}", path.display()), || {
            Ok(path_exists(path)?.then_some(()))
        })?;
        self.key()
    }
}

/// `ftok(3)` of a key file without the race between checking the file and `ftok` stat-ing the
/// path again: the file is opened without following a symlink, checked on that descriptor (a
/// regular file of a trusted owner, [`ipc_common::runtime::trust`]), and the key computed from the same
/// `fstat(2)` as glibc's `ftok` would ([`sysv::ftok_of`]). Also returns the file's birth time.
pub fn key_of_file(path: &Path, proj: u8) -> anyhow::Result<(Key, Option<i64>)> {
    let file =
        sysv::open_key_file(path).with_context(|| format!("open key file {}", path.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("fstat key file {}", path.display()))?;
    if !meta.file_type().is_file() {
        bail!(
            "key file {}: is a {}, not a regular file",
            path.display(),
            paths::describe(&meta.file_type())
        );
    }
    trust::check_file(path, &meta, "key file")?;
    let born = meta
        .created()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    Ok((sysv::ftok_of(meta.dev(), meta.ino(), proj), born))
}

/// ftok(3) keys collide: the key keeps only 16 bits of the inode and 8 of the device, so another
/// file (or an earlier key file whose inode number was reused) can give ours. The cheap guard: an
/// object created before our key file was born cannot be this key file's. Whole seconds, as the
/// kernel keeps the object's time.
pub fn check_not_older_than_key_file(
    what: impl fmt::Display,
    created: i64,
    key_file: &Path,
    born: Option<i64>,
    remove_with: &str,
) -> anyhow::Result<()> {
    let Some(born) = born else {
        return Ok(());
    };
    // One second of slack: the kernel stamps a SysV object with the wall clock in whole
    // seconds and a file's birth with the filesystem's own (coarse, possibly multigrain)
    // clock, which can be a second apart at a boundary (seen in the contract suite).
    if created.saturating_add(1) < born {
        bail!(
            "{what} was created {} s before its key file {} was: it belongs to another file \
             with the same ftok key (the key keeps only 16 bits of the inode and 8 of the \
             device) or to an earlier key file; refusing it and leaving it untouched (if it is \
             stale, remove it with `{remove_with}`; else choose another key file)",
            born - created,
            key_file.display()
        );
    }
    Ok(())
}

fn path_exists(path: &Path) -> anyhow::Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(err).with_context(|| format!("key file {}", path.display())),
    }
}

/// [`retry`], saying `waiting for WHAT` through the deadline once, when the first look finds
/// nothing.
pub fn wait<T>(
    deadline: &Deadline,
    what: impl fmt::Display,
    mut attempt: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let mut announced = false;
    retry(deadline, &what, || {
        let found = attempt()?;
        if found.is_none() && !announced {
            deadline.say(format_args!("waiting for {what}"));
            announced = true;
        }
        Ok(found)
    })
}

/// A segment someone else created under our key could be read or rewritten by them: only a
/// segment owned and created by a trusted user ([`ipc_common::runtime::trust`]) is used. Returns its
/// size.
pub fn check_owner(name: &SegmentKey, id: ShmId) -> anyhow::Result<usize> {
    let stat =
        sysv::shm_stat(id).map_err(|errno| denied(errno, format!("shmctl IPC_STAT {name}")))?;
    trust::check_sysv(
        format_args!("{name}, shmid {},", id.0),
        stat.uid,
        stat.creator_uid,
    )?;
    check_not_older_than_key_file(
        format_args!("{name}, shmid {},", id.0),
        stat.change_time,
        &name.key_file,
        name.key_file_born,
        &format!("ipcrm -m {}", id.0),
    )?;
    Ok(stat.size)
}

/// `errno` as the cause of `context`, with what to do about `EACCES` (another user's mode).
pub fn denied(errno: Errno, context: String) -> anyhow::Error {
    if errno == Errno::EACCES {
        anyhow::Error::new(errno).context(format!("{context} ({})", sysv::EACCES_HINT))
    } else {
        anyhow::Error::new(errno).context(context)
    }
}

/// What in a segment is this run's own: the one variable it writes (sysv), or nothing (shmop: a
/// failed raw writer has written nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ours {
    Var(i64),
    Nothing,
}

/// What [`open_or_create`] found or made.
#[derive(Debug)]
pub struct Opened {
    pub id: ShmId,
    /// The segment's real size in bytes.
    pub size: usize,
    /// The guard that removes the segment if this process created it (`None`: it existed).
    pub created: Option<Cleanup>,
}

/// PHP's `shm_attach`/`shmop_open($key, "c")`: the existing segment (`shmget(key, 0, 0)`),
/// else a new one of `size` bytes (`IPC_CREAT | IPC_EXCL`, exactly `mode`). The guard it returns
/// removes the segment if this process created it, unless someone else may have put data in it
/// (see `remove_created`). An existing segment smaller than `size`, or of an untrusted owner
/// ([`check_owner`]), is an error.
pub fn open_or_create(
    name: &SegmentKey,
    size: usize,
    mode: Mode,
    ours: Ours,
) -> anyhow::Result<Opened> {
    let key = name.key;
    loop {
        if let Some(id) = sysv::shm_open(key).with_context(|| format!("shmget {name}"))? {
            let actual = check_owner(name, id)?;
            ensure!(
                actual >= size,
                "{name} exists (shmid {}) with {actual} bytes, fewer than the {size} bytes needed \
                 (--size); remove it with `ipcrm -m {}` or pass --size {actual}",
                id.0,
                id.0
            );
            return Ok(Opened {
                id,
                size: actual,
                created: None,
            });
        }
        match sysv::shm_create(key, size, mode.0) {
            Ok(id) => {
                let what = name.to_string();
                let guard =
                    Cleanup::register(what.clone(), move || remove_created(id, &what, ours));
                return Ok(Opened {
                    id,
                    size,
                    created: Some(guard),
                });
            }
            // Another writer created it between our two shmget calls: use theirs.
            Err(Errno::EEXIST) => continue,
            Err(errno) => {
                // The kernel's limits on a segment (shmmax) and on all of them (shmall, ENOMEM
                // also when memory is short): name them, so the fix is in the message.
                let hint = match errno {
                    Errno::EINVAL | Errno::ENOMEM => {
                        let limit = |name: &str| {
                            std::fs::read_to_string(format!("/proc/sys/kernel/{name}"))
                                .map_or_else(|_| "?".into(), |text| text.trim().to_owned())
                        };
                        format!(
                            " (over the kernel's limits, shmmax {} bytes a segment and shmall \
                             {} pages in all in /proc/sys/kernel, or the memory there is): give \
                             a smaller --size",
                            limit("shmmax"),
                            limit("shmall")
                        )
                    }
                    _ => String::new(),
                };
                anyhow::bail!("shmget create {name} of {size} bytes (mode {mode}): {errno}{hint}");
            }
        }
    }
}

/// How much of a raw segment [`remove_created`] looks at for someone else's bytes: reading a
/// huge segment whole would make the kernel allocate every page of it.
const RAW_CHECK_LEN: usize = 64 * 1024;

/// What a failed writer's guard does with the segment it created: removes it, unless another
/// process is attached to it or it holds data that is not ours (another variable in the store,
/// non-zero bytes in the first [`RAW_CHECK_LEN`] bytes of a raw segment); such a segment is
/// left, and the error says so. The window between this look and `IPC_RMID` is not closed: a
/// process that attaches in it writes into a segment already marked for removal.
fn remove_created(id: ShmId, what: &str, ours: Ours) -> anyhow::Result<()> {
    let stat = match sysv::shm_stat(id) {
        Ok(stat) => stat,
        Err(Errno::EINVAL | Errno::EIDRM) => return Ok(()),
        Err(errno) => return Err(errno).with_context(|| format!("shmctl IPC_STAT {what}")),
    };
    // The guard may run on a signal while this process is still attached.
    let others = stat
        .attached
        .saturating_sub(ATTACHED_HERE.load(Ordering::SeqCst));
    if others > 0 {
        bail!(
            "left {what} (shmid {}) in place: {others} other process(es) are attached to it and \
             may have put their data in it",
            id.0
        );
    }
    // A segment we cannot read back, nobody else without our rights could have written either.
    let theirs = Attached::attach(id, true)
        .ok()
        .and_then(|seg| foreign_data(&seg, ours));
    if let Some(theirs) = theirs {
        bail!(
            "left {what} (shmid {}) in place: it holds {theirs}, which this run did not write \
             (remove it with `ipcrm -m {}` once it is not needed)",
            id.0,
            id.0
        );
    }
    ignore_gone(sysv::shm_remove(id)).with_context(|| format!("shmctl IPC_RMID {what}"))
}

/// Someone else's data in `seg`, in words, if there is any (see [`remove_created`]).
fn foreign_data(seg: &Attached, ours: Ours) -> Option<String> {
    let len = seg.len();
    let Ok(image) = store_image(seg, 0) else {
        return Some("data we could not read".into());
    };
    if sysvshm::is_initialized(&image) {
        let mut theirs: Vec<i64> = match sysvshm::records_of(&image, len) {
            Ok(records) => records
                .iter()
                .map(|r| r.key)
                .filter(|&key| ours != Ours::Var(key))
                .collect(),
            Err(_) => return Some("a PHP variable store we cannot parse".into()),
        };
        theirs.sort_unstable();
        return (!theirs.is_empty()).then(|| format!("PHP variable(s) {}", list(&theirs)));
    }
    let look = seg.read_vec(0, len.min(RAW_CHECK_LEN)).ok()?;
    look.iter()
        .any(|&b| b != 0)
        .then(|| "raw bytes (not all zero)".into())
}

/// The first bytes of the segment that an operation on PHP's store needs, with `extra` bytes
/// after the used part for a record to append ([`sysvshm::prefix_len`]): a look never copies a
/// segment of gigabytes whole.
fn store_image(seg: &Attached, extra: usize) -> nix::Result<Vec<u8>> {
    let len = seg.len();
    let head = seg.read_vec(0, sysvshm::HEADER_LEN.min(len))?;
    seg.read_vec(0, sysvshm::prefix_len(&head, len, extra))
}

/// Waits until the writer has created the segment, and checks its owner ([`check_owner`]). A
/// key file removed or replaced meanwhile ends the wait at once: the segment would never appear
/// under this key ([`paths::check_key_unchanged`]).
pub fn wait_for_segment(name: &SegmentKey, deadline: &Deadline) -> anyhow::Result<ShmId> {
    let id = wait(deadline, format!("the writer to create {name}"), || {
        let found = sysv::shm_open(name.key).with_context(|| format!("shmget {name}"))?;
        if found.is_none() {
            paths::check_key_unchanged(&name.key_file, name.proj, name.key)?;
        }
        Ok(found)
    })?;
    check_owner(name, id)?;
    Ok(id)
}

/// Removing an object that is already gone (`EINVAL`, `EIDRM`) is not a failure.
fn ignore_gone(result: nix::Result<()>) -> nix::Result<()> {
    match result {
        Err(Errno::EINVAL | Errno::EIDRM) => Ok(()),
        other => other,
    }
}

/// Leaves each created object in place for the peer.
pub fn keep(guards: impl IntoIterator<Item = Option<Cleanup>>) {
    guards.into_iter().flatten().for_each(Cleanup::keep);
}

/// How many segments this process has attached through [`Shared`]: a cleanup guard that runs on
/// a signal counts them out of `shm_nattch`.
static ATTACHED_HERE: AtomicU64 = AtomicU64::new(0);

/// Counts one attachment in [`ATTACHED_HERE`] while it lives.
#[derive(Debug)]
struct Counted;

impl Counted {
    fn new() -> Self {
        ATTACHED_HERE.fetch_add(1, Ordering::SeqCst);
        Counted
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        ATTACHED_HERE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An attached segment with its (optional) lock: every access below holds the lock.
#[derive(Debug)]
pub struct Shared {
    pub name: SegmentKey,
    pub id: ShmId,
    seg: Attached,
    /// Declared after `seg`, so it drops (uncounts) after the detach.
    _counted: Counted,
    lock: Option<Semaphore>,
}

/// How a process attaches the segment (`shmat(2)`'s `SHM_RDONLY`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

/// Whether every access holds PHP's `sem_get` lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lock {
    /// PHP's lock: its semaphore set is created with `mode` if missing, removed by its last user.
    Php { mode: Mode },
    /// `--no-lock`: shows the lost updates and torn reads the lock prevents.
    None,
}

impl SegmentArgs {
    /// The lock `--no-lock` asks for; a set it creates gets `mode`.
    pub fn lock(&self, mode: Mode) -> Lock {
        if self.no_lock {
            Lock::None
        } else {
            Lock::Php { mode }
        }
    }
}

impl Shared {
    /// `shmat(2)` the segment, then `sem_get` its lock (`semget(2)`, `semtimedop(2)` to register)
    /// unless [`Lock::None`].
    pub fn attach(
        name: SegmentKey,
        id: ShmId,
        access: Access,
        lock: Lock,
        deadline: &Deadline,
    ) -> anyhow::Result<Shared> {
        let counted = Counted::new();
        let seg = Attached::attach(id, access == Access::ReadOnly)
            .map_err(|errno| denied(errno, format!("shmat {name}, shmid {}", id.0)))?;
        let lock = match lock {
            Lock::None => None,
            Lock::Php { mode } => Some(
                Semaphore::get(name.key, 1, mode.0, deadline)
                    .with_context(|| format!("sem_get the lock of {name}"))?,
            ),
        };
        Ok(Shared {
            name,
            id,
            seg,
            _counted: counted,
            lock,
        })
    }

    /// The segment's real size in bytes.
    pub fn len(&self) -> usize {
        self.seg.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seg.is_empty()
    }

    /// Runs `access` with the lock held (`sem_acquire` ... `sem_release`), or without it under
    /// `--no-lock`.
    fn locked<T>(
        &mut self,
        deadline: &Deadline,
        access: impl FnOnce(&Attached, &SegmentKey) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let held = match &self.lock {
            Some(sem) => Some(sem.acquire(deadline)?),
            None => None,
        };
        let result = access(&self.seg, &self.name);
        drop(held);
        result
    }

    /// For a sysvshm reader that waited in vain: removes the segment if it is an orphan, left
    /// by a writer that created it and then failed (a value that did not fit) while we were
    /// attached, which its own cleanup must not remove for our sake. An orphan holds nothing (no
    /// PHP header, which PHP's `shm_attach` would have laid out, or one with no record); its
    /// creator process is gone; and nobody else is attached. Not for shmop: an unwritten raw
    /// segment may be the target of a writer still to come. Looked at and removed under the lock, so
    /// no writer puts a value in between. Returns the creator's pid when it removed it.
    pub fn remove_if_orphaned(&mut self) -> anyhow::Result<Option<i32>> {
        let id = self.id;
        let stat = match sysv::shm_stat(id) {
            Ok(stat) => stat,
            Err(_) => return Ok(None),
        };
        let others = stat
            .attached
            .saturating_sub(ATTACHED_HERE.load(Ordering::SeqCst));
        let creator = nix::unistd::Pid::from_raw(stat.creator_pid);
        let creator_gone = nix::sys::signal::kill(creator, None) == Err(nix::errno::Errno::ESRCH);
        if stat.removed || others > 0 || !creator_gone {
            return Ok(None);
        }
        // A short look: the lock is free unless someone is about to write, and then it is no
        // orphan.
        let soon = Deadline::after(ipc_common::runtime::wait::Timeout::from_duration(
            std::time::Duration::from_millis(200),
        ));
        self.locked(&soon, |seg, name| {
            let image = store_image(seg, 0)?;
            let empty = if sysvshm::is_initialized(&image) {
                sysvshm::records_of(&image, seg.len()).is_ok_and(|records| records.is_empty())
            } else {
                // Raw (shmop): the store image is only the header's length; look at the bytes.
                let head = seg.read_vec(0, seg.len().min(RAW_CHECK_LEN))?;
                seg.len() <= RAW_CHECK_LEN && head.iter().all(|&b| b == 0)
            };
            if !empty {
                return Ok(None);
            }
            ignore_gone(sysv::shm_remove(id))
                .with_context(|| format!("shmctl IPC_RMID the orphaned {name}"))?;
            Ok(Some(stat.creator_pid))
        })
    }

    /// `shm_put_var(var, value)` with already-serialized bytes, laying out PHP's header first if
    /// the segment has none (`total` is the store size PHP's `shm_attach` would be given). A
    /// segment removed meanwhile (a reader's `IPC_RMID`) is an error: the value would go down
    /// with it.
    pub fn put_var(
        &mut self,
        var: i64,
        serialized: &[u8],
        total: usize,
        deadline: &Deadline,
    ) -> anyhow::Result<()> {
        self.put(var, serialized, total, Put::Always, deadline)
            .map(drop)
    }

    /// [`Shared::put_var`], but only while `var` is absent; `false` (the store untouched) while
    /// it is there: a load run's hand-off through one variable.
    pub fn put_var_if_absent(
        &mut self,
        var: i64,
        serialized: &[u8],
        total: usize,
        deadline: &Deadline,
    ) -> anyhow::Result<bool> {
        self.put(var, serialized, total, Put::IfAbsent, deadline)
    }

    fn put(
        &mut self,
        var: i64,
        serialized: &[u8],
        total: usize,
        put: Put,
        deadline: &Deadline,
    ) -> anyhow::Result<bool> {
        let id = self.id;
        self.locked(deadline, |seg, name| {
            let context = || format!("put variable {var} into {name}");
            let len = seg.len();
            let before = store_image(seg, sysvshm::record_size(serialized.len()))
                .map_err(|errno| denied(errno, context()))?;
            let mut image = before.clone();
            if !sysvshm::is_initialized(&image) {
                sysvshm::initialize_prefix(&mut image, total, len).with_context(context)?;
            }
            if put == Put::IfAbsent
                && sysvshm::get_of(&image, len, var)
                    .with_context(context)?
                    .is_some()
            {
                return Ok(false);
            }
            sysvshm::put_of(&mut image, len, var, serialized).map_err(|err| match err {
                StoreError::NoSpace { .. } => {
                    let total = sysvshm::header_of(&image, len).map_or(total, |h| h.total as usize);
                    anyhow::anyhow!(
                        "{err}; a {total}-byte store holds one string of at most {} bytes (the \
                         old value, if any, is kept; PHP would have deleted it)",
                        sysvshm::max_string_len(total)
                    )
                    .context(context())
                }
                other => anyhow::Error::new(other).context(context()),
            })?;
            write_changes(seg, &before, &image).with_context(context)?;
            check_not_removed(id, name)?;
            Ok(true)
        })
    }

    /// `shm_remove_var(var)`: whether it was there.
    pub fn remove_var(&mut self, var: i64, deadline: &Deadline) -> anyhow::Result<bool> {
        self.locked(deadline, |seg, name| {
            let image = store_image(seg, 0)?;
            remove_from(seg, &image, var)
                .with_context(|| format!("remove variable {var} from {name}"))
        })
    }

    /// [`Shared::remove_var`] for a store that may not be laid out yet: a segment without PHP's
    /// header holds no variable to remove.
    pub fn discard_var(&mut self, var: i64, deadline: &Deadline) -> anyhow::Result<bool> {
        self.locked(deadline, |seg, name| {
            let image = store_image(seg, 0)?;
            if !sysvshm::is_initialized(&image) {
                return Ok(false);
            }
            remove_from(seg, &image, var)
                .with_context(|| format!("remove variable {var} from {name}"))
        })
    }

    /// One look for variable `var` under the lock: there and parsed ([`VarLook::Found`]; with
    /// [`Take::Remove`] also removed, `shm_remove_var`), not there yet, or a store that does not
    /// parse (with the image it was seen in: broken only if it looks the same twice in a row, see
    /// the crate docs).
    pub fn look_for_var(
        &mut self,
        var: i64,
        take: Take,
        deadline: &Deadline,
    ) -> anyhow::Result<VarLook> {
        let (image, found) = self.locked(deadline, |seg, name| {
            let image = store_image(seg, 0)
                .map_err(|errno| denied(errno, format!("read variable {var} from {name}")))?;
            let found = find_var(&image, seg.len(), var)
                .with_context(|| format!("read variable {var} from {name}"));
            if take == Take::Remove && matches!(found, Ok(Some(_))) {
                remove_from(seg, &image, var)
                    .with_context(|| format!("take variable {var} from {name}"))?;
            }
            Ok((image, found))
        })?;
        Ok(match found {
            Ok(Some((value, serialized))) => VarLook::Found(value, serialized),
            Ok(None) => VarLook::Absent,
            Err(err) => VarLook::Broken(err, image),
        })
    }

    /// `shm_get_var(var)` once the writer has put it: waits until variable `var` is in the store
    /// and parses, saying `waiting for WHAT` through the deadline if it has to wait, and returns
    /// it with its serialized bytes. A store broken the same way on two looks in a row is an
    /// error. A segment without PHP's header when the wait ends is named for what it looks like:
    /// raw bytes, a shmop segment.
    pub fn wait_for_var(
        &mut self,
        var: i64,
        what: impl fmt::Display,
        deadline: &Deadline,
    ) -> anyhow::Result<(Value, Vec<u8>)> {
        let mut broken_before: Option<Vec<u8>> = None;
        let found = wait(deadline, what, || {
            match self.look_for_var(var, Take::Read, deadline)? {
                VarLook::Found(value, serialized) => Ok(Some((value, serialized))),
                VarLook::Absent => Ok(None),
                VarLook::Broken(err, image) if broken_before.as_ref() == Some(&image) => Err(err),
                VarLook::Broken(_, image) => {
                    broken_before = Some(image);
                    Ok(None)
                }
            }
        });
        found.map_err(|err| match self.looks_raw() {
            true => err.context(format!(
                "{} has no PHP sysvshm header but holds bytes: it looks like a shmop segment \
                 (read it with --api shmop)",
                self.name
            )),
            false => err,
        })
    }

    /// Whether the segment holds bytes without PHP's store header: what a shmop writer leaves.
    fn looks_raw(&self) -> bool {
        let Ok(image) = store_image(&self.seg, 0) else {
            return false;
        };
        !sysvshm::is_initialized(&image)
            && self
                .seg
                .read_vec(0, self.seg.len().min(RAW_CHECK_LEN))
                .is_ok_and(|head| head.iter().any(|&b| b != 0))
    }

    /// `shmop_write(bytes, offset)` and a terminating NUL where there is room for one (PHP's
    /// `shmop_write` writes none, so a shorter message would be read with the tail of a longer
    /// one before it). Refuses (where PHP truncates) bytes that do not fit, and bytes that are
    /// all NUL, which no reader can tell from a segment not written yet.
    pub fn write_raw(
        &mut self,
        offset: usize,
        bytes: &[u8],
        deadline: &Deadline,
    ) -> anyhow::Result<()> {
        let size = self.len();
        let room = size.saturating_sub(offset);
        ensure!(
            bytes.len() <= room,
            "write {} bytes at offset {offset} of {} ({size} bytes): at most {room} bytes fit there \
             (shmop_write would cut the message; refusing)",
            bytes.len(),
            self.name
        );
        ensure!(
            bytes.iter().any(|&b| b != 0),
            "write {} bytes at offset {offset} of {}: a message that is empty or all NUL cannot be \
             told from a segment nobody has written yet (shmop has no length), so no reader would \
             take it; refusing",
            bytes.len(),
            self.name
        );
        let terminated = [bytes, b"\0"].concat();
        let bytes = if terminated.len() <= room {
            &terminated[..]
        } else {
            bytes
        };
        let id = self.id;
        self.locked(deadline, |seg, name| {
            seg.write(offset, bytes).map_err(|errno| {
                denied(
                    errno,
                    format!("write {} bytes at offset {offset} of {name}", bytes.len()),
                )
            })?;
            check_not_removed(id, name)
        })
    }

    /// shmop: waits until the message at `offset` is written, and returns it: the bytes up to the
    /// first NUL (or the end of the segment), or exactly `length` bytes. Written means: not all
    /// NUL (an empty message cannot be told from none), and either nobody else is attached (the
    /// writer has let go) or the same bytes were seen on two looks in a row (a writer that stays
    /// attached after writing). Each look holds the lock. See docs/talking-to-php.md.
    pub fn wait_for_raw(
        &mut self,
        offset: usize,
        length: Option<usize>,
        deadline: &Deadline,
    ) -> anyhow::Result<Vec<u8>> {
        let size = self.len();
        match length {
            Some(wanted) => ensure!(
                offset.checked_add(wanted).is_some_and(|end| end <= size),
                "read {wanted} bytes at offset {offset} of {}: the segment has only {size} bytes",
                self.name
            ),
            None => ensure!(
                offset < size,
                "read at offset {offset} of {}: the segment has only {size} bytes",
                self.name
            ),
        }
        let id = self.id;
        let what = format!(
            "the writer to write at offset {offset} of {} (bytes that are all NUL count as not \
             written yet)",
            self.name
        );
        let mut seen_before: Option<Vec<u8>> = None;
        wait(deadline, what, || {
            let bytes = self.locked(deadline, |seg, name| {
                read_message(seg, offset, length)
                    .map_err(|errno| denied(errno, format!("read at offset {offset} of {name}")))
            })?;
            if bytes.iter().all(|&b| b == 0) {
                seen_before = None;
                return Ok(None);
            }
            let attached = sysv::shm_stat(id)
                .with_context(|| format!("shmctl IPC_STAT shmid {}", id.0))?
                .attached;
            if attached <= 1 || seen_before.as_ref() == Some(&bytes) {
                return Ok(Some(bytes));
            }
            seen_before = Some(bytes);
            Ok(None)
        })
    }

    /// What the blog's reader does last, `shm_remove`, once it has printed what it read: under
    /// the lock, `IPC_RMID` the segment, unless `changed` finds a reason to leave it (another
    /// variable in the store, a value written since we read). A segment only its owner or
    /// creator may remove (a reader running as another user), or a lock that stayed busy until
    /// the timeout, leaves the segment too: the read itself succeeded, and the result says why.
    /// The lock's semaphore set goes with its last user, usually us.
    pub fn remove_after_read(
        mut self,
        deadline: &Deadline,
        changed: impl FnOnce(&Attached) -> anyhow::Result<Option<String>>,
    ) -> anyhow::Result<AfterRead> {
        let id = self.id;
        let outcome = self.locked(deadline, |seg, name| {
            if let Some(why) = changed(seg)? {
                return Ok(AfterRead::Left(why));
            }
            match ignore_gone(sysv::shm_remove(id)) {
                Ok(()) => Ok(AfterRead::Removed),
                Err(Errno::EPERM) => {
                    let stat = sysv::shm_stat(id).ok();
                    Ok(AfterRead::NotPermitted {
                        uid: stat.map_or(-1, |s| i64::from(s.uid)),
                        creator_uid: stat.map_or(-1, |s| i64::from(s.creator_uid)),
                    })
                }
                Err(errno) => Err(errno).with_context(|| format!("shmctl IPC_RMID {name}")),
            }
        });
        match outcome {
            // The lock stayed busy until the timeout: what we read was read; the segment stays.
            Err(err) if err.chain().any(|cause| cause.is::<TimedOut>()) => {
                Ok(AfterRead::LockBusy(format!("{err:#}")))
            }
            other => other,
        }
    }

    /// [`Shared::remove_after_read`] for a store: leaves it if it holds a variable other than
    /// `var`, or if `var` no longer holds `seen` (its serialized bytes when we read it; `None`:
    /// it must be absent, as after a load run took it).
    pub fn remove_store_after_read(
        self,
        var: i64,
        seen: Option<&[u8]>,
        deadline: &Deadline,
    ) -> anyhow::Result<AfterRead> {
        self.remove_after_read(deadline, |seg| {
            let len = seg.len();
            let image = store_image(seg, 0)?;
            if !sysvshm::is_initialized(&image) {
                return Ok(None);
            }
            let records = sysvshm::records_of(&image, len)?;
            let mut others: Vec<i64> = records
                .iter()
                .map(|r| r.key)
                .filter(|&k| k != var)
                .collect();
            if !others.is_empty() {
                others.sort_unstable();
                return Ok(Some(format!(
                    "it also holds {} other PHP variable(s) ({}), which are not ours to destroy",
                    others.len(),
                    list(&others)
                )));
            }
            let now = records
                .iter()
                .find(|r| r.key == var)
                .map(|r| &image[r.data.clone()]);
            if now != seen {
                return Ok(Some(format!(
                    "variable {var} was written again after we read it; the new value is left \
                     for the next reader"
                )));
            }
            Ok(None)
        })
    }
}

/// What [`Shared::remove_after_read`] did with the segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AfterRead {
    Removed,
    /// Left in place, and why (another variable in it, written again since we read).
    Left(String),
    /// Only its owner or creator (or root) may remove it; we are another user.
    NotPermitted {
        uid: i64,
        creator_uid: i64,
    },
    /// The lock stayed busy until the timeout (the error).
    LockBusy(String),
}

/// Whether a look for a variable also takes it out of the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Take {
    /// `shm_get_var`: the variable stays.
    Read,
    /// `shm_get_var`, then `shm_remove_var` under the same lock.
    Remove,
}

/// What one look for a variable found ([`Shared::look_for_var`]).
#[derive(Debug)]
pub enum VarLook {
    /// The value and its serialized bytes.
    Found(Value, Vec<u8>),
    Absent,
    /// The store does not parse; the image it was seen in, to compare with the next look.
    Broken(anyhow::Error, Vec<u8>),
}

/// How [`Shared::put`] treats a variable already there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Put {
    Always,
    IfAbsent,
}

/// The first few of `vars`, for a message.
fn list(vars: &[i64]) -> String {
    let shown: Vec<String> = vars.iter().take(8).map(i64::to_string).collect();
    let more = if vars.len() > 8 { ", ..." } else { "" };
    format!("{}{more}", shown.join(", "))
}

/// A put into a segment that a reader removed meanwhile (`SHM_DEST`: it goes with its last
/// detach) is lost: no reader can find it under its key any more.
fn check_not_removed(id: ShmId, name: &SegmentKey) -> anyhow::Result<()> {
    let stat = sysv::shm_stat(id).with_context(|| format!("shmctl IPC_STAT {name}"))?;
    ensure!(
        !stat.removed,
        "write to {name} (shmid {}): the segment was removed (IPC_RMID) while we used it, so no \
         reader can find what we wrote; run the writer again",
        id.0
    );
    Ok(())
}

/// The bytes at `offset`: exactly `length`, or up to the first NUL or the end of the segment,
/// read in pages so that a message of a few bytes in a huge segment copies a few bytes.
pub fn read_message(seg: &Attached, offset: usize, length: Option<usize>) -> nix::Result<Vec<u8>> {
    if let Some(length) = length {
        return seg.read_vec(offset, length);
    }
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut at = offset;
    while at < seg.len() {
        let n = (seg.len() - at).min(chunk.len());
        seg.read(at, &mut chunk[..n])?;
        let nul = chunk[..n].iter().position(|&b| b == 0);
        let take = nul.unwrap_or(n);
        out.try_reserve(take).map_err(|_| Errno::ENOMEM)?;
        out.extend_from_slice(&chunk[..take]);
        if nul.is_some() {
            break;
        }
        at += n;
    }
    Ok(out)
}

/// Variable `var` of the first bytes `image` of a segment of `segment_len` bytes, with its
/// serialized bytes: `None` while it (or the whole store) is not there yet.
pub fn find_var(
    image: &[u8],
    segment_len: usize,
    var: i64,
) -> anyhow::Result<Option<(Value, Vec<u8>)>> {
    let bytes = match sysvshm::get_of(image, segment_len, var) {
        Ok(Some(bytes)) => bytes,
        Ok(None) | Err(StoreError::NotInitialized) => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    let (value, _) = unserialize(bytes)
        .with_context(|| format!("its {} serialized bytes are not a PHP value", bytes.len()))?;
    Ok(Some((value, bytes.to_vec())))
}

/// `shm_remove_var` on `image`, the first bytes of the segment as it is now, written back to
/// `seg`.
fn remove_from(seg: &Attached, image: &[u8], var: i64) -> anyhow::Result<bool> {
    let mut after = image.to_vec();
    let removed = sysvshm::remove_of(&mut after, seg.len(), var)?;
    write_changes(seg, image, &after)?;
    Ok(removed)
}

/// Copies back only the bytes that changed between two images of the segment: less to tear for
/// a reader that does not lock.
pub fn write_changes(seg: &Attached, before: &[u8], after: &[u8]) -> nix::Result<()> {
    let differs = |(a, b): (&u8, &u8)| a != b;
    let Some(first) = before.iter().zip(after).position(differs) else {
        return Ok(());
    };
    let last = before.iter().zip(after).rposition(differs).unwrap_or(first);
    seg.write(first, &after[first..=last])
}

/// Parses `--size`: a positive number of bytes.
pub fn parse_size(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(size) if size > 0 => Ok(size),
        _ => Err(format!(
            "`{text}` is not a segment size: give a positive number of bytes"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_older_than_its_key_file_is_refused_with_a_second_of_slack() {
        let key_file = Path::new("/tmp/key");
        let check = |created, born| {
            check_not_older_than_key_file("segment", created, key_file, born, "ipcrm -m 1")
        };
        let err = check(100, Some(102)).unwrap_err().to_string();
        assert!(
            err.starts_with("segment was created 2 s before its key file /tmp/key was"),
            "{err}"
        );
        // The two clocks can be a second apart at a boundary.
        check(100, Some(101)).unwrap();
        check(100, Some(100)).unwrap();
        check(105, Some(100)).unwrap();
        // A filesystem without birth times: nothing to compare.
        check(100, None).unwrap();
    }
}
