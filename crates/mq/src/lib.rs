//! The SysV message queue of the blog, shared by `mq-writer` and `mq-reader` (and the
//! benchmark): finding or creating the queue keyed on `ftok(key file, proj)`, sending and
//! receiving with every wait bounded by one `--timeout` deadline, and no allocation per message
//! once the buffers are warm.
//!
//! # Who creates what, who removes it
//!
//! - The key file: the writer creates it if missing (`ftok(3)` needs an existing file) and leaves
//!   it for the reader; if its run fails, a key file it created is removed. The reader only waits
//!   for it. Nobody removes an existing key file: its inode is the key.
//! - The queue: the writer opens it with `msgget(key, 0)` or creates it with
//!   `msgget(key, IPC_CREAT | IPC_EXCL | mode)`, as PHP's `msg_get_queue` does. A queue it created
//!   outlives it on success (the message waits there for the reader) and is removed if its run
//!   fails, unless it may hold someone else's messages. The reader waits for the queue to appear
//!   and, after receiving, removes it with `msgctl(IPC_RMID)` as the blog's reader does, but only
//!   once it is empty (`--keep` leaves it; another user's queue, which we may not remove, is a
//!   warning). A message the reader cannot print as asked is not taken: it looks at a copy first
//!   ([`peek`], `MSG_COPY`); without `MSG_COPY` it prints the taken message raw and fails. Either
//!   way the queue stays: nothing is destroyed that we did not consume.
//! - Keys: computed from the key file we checked ([`key_of`]); a queue created before its key
//!   file was born is another file's (ftok keys collide) and is refused ([`check_owner`]).
//! - Whose: a key file or queue found rather than created is used only if a trusted user owns
//!   it (and, for the queue, created it): ourselves, root, or `--trust-uid`
//!   ([`ipc_common::runtime::trust`]). Another user's queue under our key could be read or filled by
//!   them.
//!
//! # Waiting
//!
//! The kernel cannot tell us when a queue appears or has room, so with a timeout both sides
//! call `msgsnd(2)`/`msgrcv(2)` with `IPC_NOWAIT` and retry with backoff
//! ([`ipc_common::runtime::wait::retry`]) until the deadline. With `--timeout 0` they make the truly
//! blocking calls.

pub mod cli;
pub mod serve;

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::UNIX_EPOCH;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use ipc_common::php;
use ipc_common::php::options::{Format, Printed};
use ipc_common::runtime::cleanup::Cleanup;
use ipc_common::runtime::cli::{Mode, parse_proj_id};
use ipc_common::runtime::paths;
use ipc_common::runtime::trust;
use ipc_common::runtime::wait::{self, Deadline};
use ipc_common::sysv::{self, Key, MsgBuf, MsqId};
use nix::errno::Errno;

/// The blog's key file.
pub const DEFAULT_KEY_FILE: &str = "/tmp/ipc-message-queues";

/// The blog's message.
pub const MESSAGE: &str = "Hello from Writer: Message Queue";

/// The options that name the queue, the same for both sides (and, in name and help text, as
/// shm's).
#[derive(Args, Clone, Debug)]
pub struct KeyArgs {
    /// The ftok(3) key file: the key is ftok(FILE, PROJ). The writer creates it if missing;
    /// nobody removes it.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_KEY_FILE, env = "IPC_MQ_KEY_FILE", hide_env = true)]
    pub key_file: PathBuf,

    /// The ftok(3) project id: one character, as PHP's ftok() takes it, or a number 1-255.
    #[arg(long, value_name = "ID", default_value = "T", value_parser = parse_proj_id, env = "IPC_MQ_PROJ", hide_env = true)]
    pub proj: u8,
}

/// The environment variables of the queue's options, for `--help`.
pub const ENVIRONMENT: &str =
    "  IPC_MQ_KEY_FILE, IPC_MQ_PROJ, IPC_MQ_TYPE (--key-file, --proj, --type)";

/// Unserializes the mtext as PHP's `msg_receive` does (trailing bytes ignored, as there) and
/// prints the value the chosen way.
pub fn decode(text: &[u8], key: Key, format: Format) -> anyhow::Result<Printed> {
    let (value, _) = php::unserialize(text).map_err(|err| {
        anyhow!("message on queue {key} is not PHP-serialized: {err} (--raw prints it as it is)")
    })?;
    format
        .print(&value)
        .map_err(|why| anyhow!("print the message on queue {key}: {why}"))
}

/// A queue and the key it was found by, which names it in messages (`ipcs -q` shows both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Queue {
    pub key: Key,
    pub id: MsqId,
}

/// How `ftok(3)`'s project id reads in messages: the character PHP's `ftok` takes, when it is
/// one.
#[derive(Clone, Copy, Debug)]
pub struct ProjId(pub u8);

impl fmt::Display for ProjId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_ascii_graphic() {
            write!(f, "'{}'", char::from(self.0))
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// The key of a key file, and what else the checks need of the file.
#[derive(Clone, Debug)]
pub struct KeyFile<'a> {
    pub path: &'a Path,
    pub proj: u8,
    pub key: Key,
    /// Birth time in seconds since the epoch, where the filesystem records one.
    pub born: Option<i64>,
}

/// `ftok(key_file, proj)` without the race between checking the file and `ftok` stat-ing the
/// path again: the file is opened without following a symlink, checked on that descriptor (a
/// regular file of a trusted owner), and the key computed from the same `fstat(2)` exactly as
/// glibc's `ftok` does ([`sysv::ftok_of`]).
pub fn key_of(key_file: &Path, proj: u8) -> anyhow::Result<KeyFile<'_>> {
    let file = sysv::open_key_file(key_file)
        .with_context(|| format!("open key file {}", key_file.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("fstat key file {}", key_file.display()))?;
    if !meta.file_type().is_file() {
        bail!(
            "key file {}: is a {}, not a regular file",
            key_file.display(),
            paths::describe(&meta.file_type())
        );
    }
    trust::check_file(key_file, &meta, "key file")?;
    let born = meta
        .created()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    Ok(KeyFile {
        path: key_file,
        proj,
        key: sysv::ftok_of(meta.dev(), meta.ino(), proj),
        born,
    })
}

/// The queue for `key`: `msgget(key, 0)`, else a new one with `mode`, as PHP's `msg_get_queue`.
/// Returns the guard that removes the queue if this call created it, once nothing but our own
/// messages can be in it: it is empty, or we sent last and it holds no more messages than we
/// sent (`sent` counts them). An existing queue must pass [`check_owner`].
pub fn open_or_create(
    key_file: &KeyFile<'_>,
    mode: Mode,
    sent: Arc<AtomicU64>,
) -> anyhow::Result<(Queue, Option<Cleanup>)> {
    let key = key_file.key;
    loop {
        if let Some(id) = sysv::msg_open(key).with_context(|| format!("msgget queue {key}"))? {
            let queue = Queue { key, id };
            check_owner(queue, key_file)?;
            return Ok((queue, None));
        }
        match sysv::msg_create(key, mode.0) {
            Ok(id) => {
                let guard = Cleanup::register(format!("message queue {key}"), move || {
                    remove_created(Queue { key, id }, sent.load(Ordering::Relaxed))
                });
                return Ok((Queue { key, id }, Some(guard)));
            }
            // Another writer created it between our two msgget calls: use theirs.
            Err(Errno::EEXIST) => {}
            Err(errno) => {
                return Err(errno).with_context(|| format!("msgget(IPC_CREAT) queue {key}"));
            }
        }
    }
}

/// What a failed writer's guard does with the queue it created: removes it only if nothing but
/// our own messages can be in it (see [`open_or_create`]); else it is left, and the error says
/// so. Not airtight: another writer that sent before our last message, with a reader taking some
/// of ours meanwhile, is not told apart.
fn remove_created(queue: Queue, sent: u64) -> anyhow::Result<()> {
    let stat = match sysv::msg_stat(queue.id) {
        Ok(stat) => stat,
        Err(Errno::EINVAL | Errno::EIDRM) => return Ok(()),
        Err(errno) => {
            return Err(errno).with_context(|| format!("msgctl(IPC_STAT) queue {}", queue.key));
        }
    };
    let ours_only = stat.messages == 0
        || (stat.last_send_pid == std::process::id() as i32 && stat.messages <= sent);
    if !ours_only {
        bail!(
            "left queue {} (msqid {}) in place: it holds {} message(s), not all sent by this run \
             (remove it with `ipcrm -q {}` once they are not needed)",
            queue.key,
            queue.id.0,
            stat.messages,
            queue.id.0
        );
    }
    match sysv::msg_remove(queue.id) {
        Ok(()) | Err(Errno::EINVAL | Errno::EIDRM) => Ok(()),
        Err(errno) => Err(errno).with_context(|| format!("msgctl(IPC_RMID) queue {}", queue.key)),
    }
}

/// Waits until `key_file` exists, then returns its key ([`key_of`]); says `waiting for key file
/// PATH to appear` through the deadline if it has to wait.
pub fn wait_for_key<'a>(
    key_file: &'a Path,
    proj: u8,
    deadline: &Deadline,
) -> anyhow::Result<KeyFile<'a>> {
    let what = format_args!("key file {} to appear", key_file.display());
    let mut waited = false;
    wait::retry(deadline, what, || {
        match std::fs::symlink_metadata(key_file) {
            Ok(_) => key_of(key_file, proj).map(Some),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                if !std::mem::replace(&mut waited, true) {
                    deadline.say(format_args!("waiting for {what}"));
                }
                Ok(None)
            }
            Err(err) => Err(err).with_context(|| format!("key file {}", key_file.display())),
        }
    })
}

/// `errno` as the cause of `context`, with what to do about `EACCES` (another user's mode).
pub fn denied(errno: Errno, context: String) -> anyhow::Error {
    if errno == Errno::EACCES {
        anyhow::Error::new(errno).context(format!("{context} ({})", sysv::EACCES_HINT))
    } else {
        anyhow::Error::new(errno).context(context)
    }
}

/// A queue someone else created under our key could be read or filled by them: only a queue
/// owned and created by a trusted user ([`ipc_common::runtime::trust`]) is used. ftok(3) keys collide
/// (16 bits of the inode, 8 of the device): a queue created before our key file was born is
/// another file's, or an earlier key file's, and is refused too.
pub fn check_owner(queue: Queue, key_file: &KeyFile<'_>) -> anyhow::Result<()> {
    let stat = sysv::msg_stat(queue.id)
        .map_err(|errno| denied(errno, format!("msgctl(IPC_STAT) queue {}", queue.key)))?;
    trust::check_sysv(
        format_args!("queue {}", queue.key),
        stat.uid,
        stat.creator_uid,
    )?;
    // One second of slack, as in shm's guard: the two clocks can be a second apart.
    if let Some(born) = key_file
        .born
        .filter(|&born| stat.change_time.saturating_add(1) < born)
    {
        bail!(
            "queue {} (msqid {}) was created {} s before its key file {} was: it belongs to \
             another file with the same ftok key (the key keeps only 16 bits of the inode and 8 \
             of the device) or to an earlier key file; refusing it and leaving it untouched (if \
             it is stale, remove it with `ipcrm -q {}`; else choose another key file)",
            queue.key,
            queue.id.0,
            born - stat.change_time,
            key_file.path.display(),
            queue.id.0
        );
    }
    Ok(())
}

/// Waits until the queue for `key` exists (the writer creates it) and checks its owner; says
/// `waiting for queue KEY to appear` through the deadline if it has to wait. A key file removed
/// or replaced meanwhile ends the wait at once ([`paths::check_key_unchanged`]): the queue would
/// never appear under `key`.
pub fn wait_for_queue(key_file: &KeyFile<'_>, deadline: &Deadline) -> anyhow::Result<Queue> {
    let key = key_file.key;
    let mut waited = false;
    let queue =
        wait::retry(
            deadline,
            format_args!("queue {key} to appear"),
            || match sysv::msg_open(key).with_context(|| format!("msgget queue {key}"))? {
                Some(id) => Ok(Some(Queue { key, id })),
                None => {
                    paths::check_key_unchanged(key_file.path, key_file.proj, key)?;
                    if !std::mem::replace(&mut waited, true) {
                        deadline.say(format_args!(
                            "waiting for queue {key} to appear (mq-writer creates it)"
                        ));
                    }
                    Ok(None)
                }
            },
        )?;
    check_owner(queue, key_file)?;
    Ok(queue)
}

/// [`wait_for_queue`], its error noting a key file written in another IPC namespace (where the
/// queue would never appear).
pub fn wait_for_queue_noted(key_file: &KeyFile<'_>, deadline: &Deadline) -> anyhow::Result<Queue> {
    wait_for_queue(key_file, deadline).map_err(|err| match sysv::namespace_note(key_file.path) {
        Some(note) => err.context(note),
        None => err,
    })
}

/// Refuses, before anything is created, a message the kernel would never take: over `msgmax`,
/// its per-message limit, `msgsnd(2)` fails with `EINVAL`. `why` adds what made it that long
/// (PHP serialization), or is empty.
pub fn check_msgmax(len: usize, msgmax: usize, why: &str) -> anyhow::Result<()> {
    if len > msgmax {
        bail!(
            "send a {len}-byte message: over msgmax, the kernel's limit of {msgmax} bytes per \
             message (/proc/sys/kernel/msgmax){why}"
        );
    }
    Ok(())
}

/// What [`check_msgmax`] and [`check_qbytes`] add when PHP serialization made a string message
/// of `payload` bytes `serialized` bytes long.
pub fn serialization_note(payload: usize, serialized: usize) -> String {
    format!(
        "; PHP serialization added {} bytes to the {payload}-byte message (`s:{payload}:\"...\";`): \
         --raw sends the bytes as they are (PHP's msg_receive then needs $unserialize = false)",
        serialized.saturating_sub(payload)
    )
}

/// Refuses a message larger than the queue's capacity (`msg_qbytes`): it would never fit, and a
/// blocking `msgsnd(2)` would wait for ever. `why` as for [`check_msgmax`].
pub fn check_qbytes(queue: Queue, len: usize, why: &str) -> anyhow::Result<()> {
    let stat = sysv::msg_stat(queue.id)
        .map_err(|errno| denied(errno, format!("msgctl(IPC_STAT) queue {}", queue.key)))?;
    if len as u64 > stat.max_bytes {
        bail!(
            "send a {len}-byte message to queue {}: over its capacity, msg_qbytes, of {} \
             bytes{why}",
            queue.key,
            stat.max_bytes
        );
    }
    Ok(())
}

/// What a full queue makes the writer wait for; looked up only if the wait times out.
struct Room(Queue);

impl fmt::Display for Room {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "room in queue {}", self.0.key)?;
        if let Ok(stat) = sysv::msg_stat(self.0.id) {
            write!(
                f,
                " (full: {} messages, {} of its limit of {} bytes, msg_qbytes)",
                stat.messages, stat.bytes, stat.max_bytes
            )?;
        }
        Ok(())
    }
}

/// `msgsnd(2)` of `text` as type `mtype`, waiting for room until `deadline`.
pub fn send(
    buf: &mut MsgBuf,
    queue: Queue,
    mtype: i64,
    text: &[u8],
    deadline: &Deadline,
) -> anyhow::Result<()> {
    let failed = |errno: Errno| {
        denied(
            errno,
            format!(
                "msgsnd a {}-byte message of type {mtype} to queue {}",
                text.len(),
                queue.key
            ),
        )
    };
    if deadline.is_forever() {
        return buf.send(queue.id, mtype, text, 0).map_err(failed);
    }
    wait::retry(deadline, Room(queue), || {
        match buf.send(queue.id, mtype, text, sysv::IPC_NOWAIT) {
            Ok(()) => Ok(Some(())),
            Err(Errno::EAGAIN) => Ok(None),
            Err(errno) => Err(failed(errno)),
        }
    })
}

/// What the reader waits for: `msgrcv(2)`'s desired type, in words.
#[derive(Clone, Copy, Debug)]
pub struct Wanted {
    pub queue: Queue,
    pub desired_type: i64,
}

impl fmt::Display for Wanted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.desired_type {
            0 => f.write_str("a message")?,
            t if t > 0 => write!(f, "a message of type {t}")?,
            t => write!(f, "a message of type {} or lower", t.unsigned_abs())?,
        }
        write!(f, " on queue {}", self.queue.key)
    }
}

/// `msgrcv(2)` of one message of `desired_type` (0 any, < 0 the lowest type <= |desired_type|)
/// and at most `max_len` bytes, waiting until `deadline`. The text is copied into `out` (reused:
/// no allocation once it has grown); returns the message's type.
pub fn receive(
    buf: &mut MsgBuf,
    queue: Queue,
    max_len: usize,
    desired_type: i64,
    out: &mut Vec<u8>,
    deadline: &Deadline,
) -> anyhow::Result<i64> {
    let wanted = Wanted {
        queue,
        desired_type,
    };
    receive_as(buf, wanted, max_len, out, deadline, Waiting::Silent)
}

/// [`receive`] for the reader of one message: says `waiting for a message ... on queue KEY`
/// through the deadline, but only if none is there yet.
pub fn receive_announced(
    buf: &mut MsgBuf,
    wanted: Wanted,
    max_len: usize,
    out: &mut Vec<u8>,
    deadline: &Deadline,
) -> anyhow::Result<i64> {
    receive_as(buf, wanted, max_len, out, deadline, Waiting::Announced)
}

/// Whether a wait for a message is said (the reader of one message) or not (load runs, whose
/// queue is empty for a moment between messages all the time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Waiting {
    Silent,
    Announced,
}

fn receive_as(
    buf: &mut MsgBuf,
    wanted: Wanted,
    max_len: usize,
    out: &mut Vec<u8>,
    deadline: &Deadline,
    waiting: Waiting,
) -> anyhow::Result<i64> {
    let Wanted {
        queue,
        desired_type,
    } = wanted;
    let mut announce = waiting == Waiting::Announced;
    let flags = if deadline.is_forever() {
        0
    } else {
        sysv::IPC_NOWAIT
    };
    let mut attempt = || match buf.receive(queue.id, max_len, desired_type, flags) {
        Ok((mtype, text)) => {
            out.clear();
            out.extend_from_slice(text);
            Ok(Some(mtype))
        }
        Err(Errno::ENOMSG) => {
            if std::mem::take(&mut announce) {
                deadline.say(format_args!(
                    "waiting for {wanted} (at most {max_len} bytes)"
                ));
            }
            Ok(None)
        }
        // A signal that sets the run's flag; a blocking msgrcv just goes back to waiting.
        Err(Errno::EINTR) => Ok(None),
        Err(Errno::E2BIG) => bail!(
            "msgrcv from queue {}: the next message is longer than the receive limit of \
             {max_len} bytes (raise --max-size); it stays queued",
            queue.key
        ),
        Err(errno @ (Errno::EIDRM | Errno::EINVAL)) => Err(anyhow::Error::new(errno).context(
            format!("msgrcv from queue {}: the queue was removed", queue.key),
        )),
        Err(errno) => Err(denied(errno, format!("msgrcv from queue {}", queue.key))),
    };
    if deadline.is_forever() {
        loop {
            // A stop signal interrupts a blocking msgrcv with EINTR, which is never restarted.
            ipc_common::runtime::cleanup::check_interrupted()?;
            if let Some(mtype) = attempt()? {
                return Ok(mtype);
            }
        }
    }
    wait::retry(deadline, wanted, attempt)
}

/// Waits until the message `msgrcv(2)` of `desired_type` would take is queued, and returns a
/// copy of it (`MSG_COPY`), leaving it in the queue: a reader can check that it is able to print
/// a message before it takes it; says `waiting for a message ... on queue KEY` through the
/// deadline if none is there yet. `None` where the kernel has no `MSG_COPY`. Another reader may
/// take the message between this look and the caller's receive: the caller compares.
pub fn peek(
    buf: &mut MsgBuf,
    queue: Queue,
    max_len: usize,
    desired_type: i64,
    deadline: &Deadline,
) -> anyhow::Result<Option<(i64, Vec<u8>)>> {
    let wanted = Wanted {
        queue,
        desired_type,
    };
    let mut announce = true;
    wait::retry(deadline, wanted, || {
        match find_queued(buf, queue, max_len, desired_type) {
            Ok(Some(found)) => Ok(Some(Some(found))),
            Ok(None) => {
                if std::mem::take(&mut announce) {
                    deadline.say(format_args!(
                        "waiting for {wanted} (at most {max_len} bytes)"
                    ));
                }
                Ok(None)
            }
            Err(Errno::EINTR) => Ok(None),
            Err(Errno::ENOSYS) => Ok(Some(None)),
            Err(Errno::E2BIG) => bail!(
                "msgrcv from queue {}: the next message is longer than the receive limit of \
                 {max_len} bytes (raise --max-size); it stays queued",
                queue.key
            ),
            Err(errno @ (Errno::EIDRM | Errno::EINVAL)) => Err(anyhow::Error::new(errno).context(
                format!("msgrcv from queue {}: the queue was removed", queue.key),
            )),
            Err(errno) => Err(denied(
                errno,
                format!("msgrcv(MSG_COPY) from queue {}", queue.key),
            )),
        }
    })
}

/// The message `msgrcv(desired_type)` would take now, copied by index: 0 the first; N the first
/// of type N; -N the first of the lowest type up to N. `E2BIG` if it is longer than `max_len`;
/// `ENOSYS` if the scan cannot tell (a message longer than msgmax in the way).
fn find_queued(
    buf: &mut MsgBuf,
    queue: Queue,
    max_len: usize,
    desired_type: i64,
) -> nix::Result<Option<(i64, Vec<u8>)>> {
    // A copy cannot be truncated: scan with room for any message the kernel takes.
    let scan_len = sysv::msgmax().map_or(max_len, |msgmax| msgmax.max(max_len));
    let mut chosen: Option<(i64, i64)> = None;
    for index in 0.. {
        let mtype = match buf.peek(queue.id, scan_len, index) {
            Ok((mtype, _)) => mtype,
            Err(Errno::ENOMSG) => break,
            Err(Errno::E2BIG) => return Err(Errno::ENOSYS),
            Err(errno) => return Err(errno),
        };
        let better = match desired_type {
            0 => true,
            t if t > 0 => mtype == t,
            t => mtype <= t.saturating_neg() && chosen.is_none_or(|(_, best)| mtype < best),
        };
        if better {
            chosen = Some((index, mtype));
            if desired_type >= 0 {
                break;
            }
        }
    }
    let Some((index, _)) = chosen else {
        return Ok(None);
    };
    // Again within the reader's limit: a message over it is E2BIG, as msgrcv would say.
    let (mtype, text) = buf.peek(queue.id, max_len, index)?;
    Ok(Some((mtype, text.to_vec())))
}

/// What happened to a queue a reader was done with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    Removed,
    /// Messages are still in it: not ours to destroy.
    NotEmpty(u64),
    /// Only its owner or creator (or root) may remove it; we are another user.
    NotPermitted {
        uid: u32,
        creator_uid: u32,
    },
}

/// The blog reader's `msg_remove_queue`, but only for an empty queue: `msgctl(IPC_RMID)` takes
/// every message left in it, and those are not ours. A message that arrives between the look
/// and the removal is lost with the queue; the window is one syscall wide and cannot be closed
/// (a queue has no lock).
pub fn remove_if_empty(queue: Queue) -> anyhow::Result<Removal> {
    let stat = sysv::msg_stat(queue.id)
        .map_err(|errno| denied(errno, format!("msgctl(IPC_STAT) queue {}", queue.key)))?;
    if stat.messages > 0 {
        return Ok(Removal::NotEmpty(stat.messages));
    }
    match sysv::msg_remove(queue.id) {
        Ok(()) | Err(Errno::EINVAL | Errno::EIDRM) => Ok(Removal::Removed),
        Err(Errno::EPERM) => Ok(Removal::NotPermitted {
            uid: stat.uid,
            creator_uid: stat.creator_uid,
        }),
        Err(errno) => Err(errno).with_context(|| format!("msgctl(IPC_RMID) queue {}", queue.key)),
    }
}
