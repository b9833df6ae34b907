//! The thin wrapper over System V IPC that `nix` does not cover: `ftok(3)`, shared memory
//! (`shmget(2)`, `shmat(2)`, `shmdt(2)`, `shmctl(2)`), message queues (`msgget(2)`, `msgsnd(2)`,
//! `msgrcv(2)`, `msgctl(2)`) and semaphores (`semget(2)`, `semop(2)`, `semtimedop(2)`,
//! `semctl(2)`).
//!
//! Every function is one syscall with its errno as a `nix::Error`, so callers add the context
//! (`.with_context(|| format!("msgsnd to queue {key}"))`). This is the only module with `unsafe`.

use std::ffi::CString;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use nix::errno::Errno;

/// A SysV IPC key, shown as `ipcs` shows it (`0x5401abcd`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key(pub libc::key_t);

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:08x}", self.0 as u32)
    }
}

/// `ftok(3)`: the key PHP's `ftok($path, $proj)` computes, from the file's inode and device.
/// A missing file is an error here (PHP would go on with key -1, a key every caller shares).
///
/// It `stat(2)`s the path, following symlinks: a caller that checks the file first should use
/// [`open_key_file`] and [`ftok_of`] instead, which compute the key from the file it checked.
pub fn ftok(path: &Path, proj_id: u8) -> nix::Result<Key> {
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    // SAFETY: `c_path` is a valid NUL-terminated string that outlives the call.
    let key = unsafe { libc::ftok(c_path.as_ptr(), libc::c_int::from(proj_id)) };
    if key == -1 {
        Err(Errno::last())
    } else {
        Ok(Key(key))
    }
}

/// The key glibc's `ftok(3)` computes from a file's `st_dev` and `st_ino`: the low 8 bits of the
/// project id, the low 8 bits of the device and the low 16 bits of the inode. Only 32 bits of
/// identity, so two files can give the same key (see the shm crate docs).
pub fn ftok_of(dev: u64, ino: u64, proj_id: u8) -> Key {
    let key = (u32::from(proj_id) << 24) | (((dev & 0xff) as u32) << 16) | ((ino & 0xffff) as u32);
    Key(key as libc::key_t)
}

/// Opens `path` as a key file without following a symlink (`O_PATH | O_NOFOLLOW`: no read
/// permission needed, and a FIFO does not block), so that what the caller checks with
/// `File::metadata` (`fstat(2)`) is the very file whose inode gives the key ([`ftok_of`]).
/// A symlink opens as the link itself, which the caller refuses as not a regular file.
pub fn open_key_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW)
        .open(path)
}

fn check(ret: libc::c_int) -> nix::Result<libc::c_int> {
    if ret == -1 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

/// The flags [`MsgBuf::send`], [`MsgBuf::receive`] and [`SemOp`] take, so that callers need no
/// `libc` of their own.
pub use libc::{IPC_NOWAIT, MSG_NOERROR, SEM_UNDO};

/// What to say after `EACCES` on a SysV object another user created: its mode keeps us out.
pub const EACCES_HINT: &str = "the object's mode keeps us out: the side that creates it must \
    pass --mode 0660 (sharing a group) or 0666 when its peer runs as another user, and the peer \
    must pass --trust-uid with the creator's user; `ipcs` shows owner and mode";

fn creat_flags(mode: u32) -> libc::c_int {
    libc::IPC_CREAT | libc::IPC_EXCL | (mode & 0o777) as libc::c_int
}

// ---------------------------------------------------------------------------------------------
// Shared memory

/// A shared memory segment identifier (`shmid`, the second column of `ipcs -m`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShmId(pub libc::c_int);

/// `shmget(key, 0, 0)`: the existing segment, or `None` if there is none yet.
pub fn shm_open(key: Key) -> nix::Result<Option<ShmId>> {
    // SAFETY: shmget takes plain integers.
    match check(unsafe { libc::shmget(key.0, 0, 0) }) {
        Ok(id) => Ok(Some(ShmId(id))),
        Err(Errno::ENOENT) => Ok(None),
        Err(errno) => Err(errno),
    }
}

/// `shmget(key, size, IPC_CREAT | IPC_EXCL | mode)`: a new zero-filled segment; `EEXIST` if the
/// key is taken.
pub fn shm_create(key: Key, size: usize, mode: u32) -> nix::Result<ShmId> {
    // SAFETY: shmget takes plain integers.
    check(unsafe { libc::shmget(key.0, size, creat_flags(mode)) }).map(ShmId)
}

/// What `shmctl(IPC_STAT)` says about a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShmStat {
    pub size: usize,
    pub mode: u32,
    pub uid: u32,
    pub creator_uid: u32,
    pub creator_pid: i32,
    pub last_pid: i32,
    pub attached: u64,
    /// Seconds since the epoch of the last `shmdt(2)`, 0 if nobody has detached yet.
    pub detach_time: i64,
    /// Seconds since the epoch of the creation (or the last `IPC_SET`).
    pub change_time: i64,
    /// `SHM_DEST`: marked for removal (`IPC_RMID`), it goes with the last detach.
    pub removed: bool,
}

/// The `shm_perm.mode` bit of a segment marked for removal (`<linux/shm.h>`).
const SHM_DEST: u32 = 0o1000;

/// `shmctl(id, IPC_STAT)`.
pub fn shm_stat(id: ShmId) -> nix::Result<ShmStat> {
    // SAFETY: shmid_ds is plain old data; all-zero is a valid value.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: `ds` is a valid, writable shmid_ds.
    check(unsafe { libc::shmctl(id.0, libc::IPC_STAT, &mut ds) })?;
    Ok(ShmStat {
        size: ds.shm_segsz,
        mode: u32::from(ds.shm_perm.mode) & 0o777,
        uid: ds.shm_perm.uid,
        creator_uid: ds.shm_perm.cuid,
        creator_pid: ds.shm_cpid,
        last_pid: ds.shm_lpid,
        attached: ds.shm_nattch,
        detach_time: ds.shm_dtime,
        change_time: ds.shm_ctime,
        removed: u32::from(ds.shm_perm.mode) & SHM_DEST != 0,
    })
}

/// `shmctl(id, IPC_RMID)`: the segment goes once the last process detaches.
pub fn shm_remove(id: ShmId) -> nix::Result<()> {
    // SAFETY: IPC_RMID takes no buffer.
    check(unsafe { libc::shmctl(id.0, libc::IPC_RMID, std::ptr::null_mut()) }).map(drop)
}

/// A segment attached to this process with `shmat(2)`; dropping it detaches (`shmdt(2)`).
///
/// Other processes may write the memory at any time, so it is never handed out as a Rust slice:
/// bytes are copied in and out with volatile accesses, and shared words are reached as atomics.
#[derive(Debug)]
pub struct Attached {
    base: NonNull<u8>,
    len: usize,
    read_only: bool,
}

// SAFETY: the mapping belongs to the process, not to a thread; all access goes through volatile
// copies or atomics.
unsafe impl Send for Attached {}
// SAFETY: as above; no method hands out a plain reference into the mapping.
unsafe impl Sync for Attached {}

impl Attached {
    /// `shmat(id, NULL, flags)`, `SHM_RDONLY` if `read_only`.
    pub fn attach(id: ShmId, read_only: bool) -> nix::Result<Self> {
        let len = shm_stat(id)?.size;
        let flags = if read_only { libc::SHM_RDONLY } else { 0 };
        // SAFETY: a null address lets the kernel choose where to map.
        let addr = unsafe { libc::shmat(id.0, std::ptr::null(), flags) };
        if addr as isize == -1 {
            return Err(Errno::last());
        }
        let base = NonNull::new(addr.cast::<u8>()).ok_or(Errno::EFAULT)?;
        Ok(Attached {
            base,
            len,
            read_only,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `buf.len()` bytes from `offset` (an error if that runs past the segment).
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> nix::Result<()> {
        self.check_range(offset, buf.len())?;
        for (i, byte) in buf.iter_mut().enumerate() {
            // SAFETY: offset + i < len, checked above; volatile because another process may be
            // writing the same memory.
            *byte = unsafe { self.base.as_ptr().add(offset + i).read_volatile() };
        }
        Ok(())
    }

    /// The whole segment as it is now; `ENOMEM` if this process cannot hold a copy.
    pub fn snapshot(&self) -> nix::Result<Vec<u8>> {
        self.read_vec(0, self.len)
    }

    /// Copies `len` bytes from `offset` into a new vector: an error if that runs past the
    /// segment, `ENOMEM` (not an abort) if the memory for the copy cannot be had.
    pub fn read_vec(&self, offset: usize, len: usize) -> nix::Result<Vec<u8>> {
        self.check_range(offset, len)?;
        let mut bytes = Vec::new();
        bytes.try_reserve_exact(len).map_err(|_| Errno::ENOMEM)?;
        bytes.resize(len, 0);
        self.read(offset, &mut bytes)?;
        Ok(bytes)
    }

    /// Copies `bytes` to `offset` (an error if that runs past the segment or it is read-only).
    pub fn write(&self, offset: usize, bytes: &[u8]) -> nix::Result<()> {
        if self.read_only {
            return Err(Errno::EACCES);
        }
        self.check_range(offset, bytes.len())?;
        for (i, byte) in bytes.iter().enumerate() {
            // SAFETY: in range and writable, checked above.
            unsafe { self.base.as_ptr().add(offset + i).write_volatile(*byte) };
        }
        Ok(())
    }

    /// The 4-byte word at `offset` as an atomic, for lock-free hand-offs between processes
    /// (a futex word, a ring buffer index). `offset` must be 4-aligned and in range.
    pub fn atomic_u32(&self, offset: usize) -> nix::Result<&AtomicU32> {
        self.check_range(offset, 4)?;
        if offset % 4 != 0 || self.read_only {
            return Err(Errno::EINVAL);
        }
        // SAFETY: in range, aligned (shmat returns page-aligned memory), writable, and valid for
        // as long as `self` stays attached, which the returned borrow guarantees.
        Ok(unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(offset).cast()) })
    }

    /// Raw base pointer, for a reader that needs bulk copies with `ptr::copy_nonoverlapping`
    /// under its own synchronisation (the benchmark's ring buffer).
    pub fn as_ptr(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    fn check_range(&self, offset: usize, len: usize) -> nix::Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(Errno::EFAULT),
        }
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        // SAFETY: `base` came from shmat and is detached exactly once.
        unsafe { libc::shmdt(self.base.as_ptr().cast()) };
    }
}

// ---------------------------------------------------------------------------------------------
// Message queues

/// A message queue identifier (`msqid`, the second column of `ipcs -q`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsqId(pub libc::c_int);

/// `msgget(key, 0)`: the existing queue, or `None` if there is none yet.
pub fn msg_open(key: Key) -> nix::Result<Option<MsqId>> {
    // SAFETY: msgget takes plain integers.
    match check(unsafe { libc::msgget(key.0, 0) }) {
        Ok(id) => Ok(Some(MsqId(id))),
        Err(Errno::ENOENT) => Ok(None),
        Err(errno) => Err(errno),
    }
}

/// `msgget(key, IPC_CREAT | IPC_EXCL | mode)`.
pub fn msg_create(key: Key, mode: u32) -> nix::Result<MsqId> {
    // SAFETY: msgget takes plain integers.
    check(unsafe { libc::msgget(key.0, creat_flags(mode)) }).map(MsqId)
}

/// What `msgctl(IPC_STAT)` says about a queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsqStat {
    pub messages: u64,
    pub bytes: u64,
    pub max_bytes: u64,
    pub mode: u32,
    pub uid: u32,
    pub creator_uid: u32,
    /// The pid of the last `msgsnd(2)`, 0 if none yet.
    pub last_send_pid: i32,
    /// Seconds since the epoch of the creation (or the last `IPC_SET`).
    pub change_time: i64,
}

/// `msgctl(id, IPC_STAT)`.
pub fn msg_stat(id: MsqId) -> nix::Result<MsqStat> {
    // SAFETY: msqid_ds is plain old data; all-zero is a valid value.
    let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: `ds` is a valid, writable msqid_ds.
    check(unsafe { libc::msgctl(id.0, libc::IPC_STAT, &mut ds) })?;
    Ok(MsqStat {
        messages: ds.msg_qnum,
        bytes: ds.__msg_cbytes,
        max_bytes: ds.msg_qbytes,
        mode: u32::from(ds.msg_perm.mode) & 0o777,
        uid: ds.msg_perm.uid,
        creator_uid: ds.msg_perm.cuid,
        last_send_pid: ds.msg_lspid,
        change_time: ds.msg_ctime,
    })
}

/// `msgctl(id, IPC_SET)` with a new `msg_qbytes`: how many bytes the queue may hold (raising it
/// above `msgmnb` needs CAP_SYS_RESOURCE).
pub fn msg_set_max_bytes(id: MsqId, max_bytes: u64) -> nix::Result<()> {
    // SAFETY: msqid_ds is plain old data; all-zero is a valid value.
    let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: `ds` is a valid, writable msqid_ds; IPC_SET reads back the fields IPC_STAT filled.
    check(unsafe { libc::msgctl(id.0, libc::IPC_STAT, &mut ds) })?;
    ds.msg_qbytes = max_bytes as libc::msglen_t;
    // SAFETY: as above.
    check(unsafe { libc::msgctl(id.0, libc::IPC_SET, &mut ds) }).map(drop)
}

/// `msgctl(id, IPC_RMID)`: the queue and its messages go at once; blocked peers get `EIDRM`.
pub fn msg_remove(id: MsqId) -> nix::Result<()> {
    // SAFETY: IPC_RMID takes no buffer.
    check(unsafe { libc::msgctl(id.0, libc::IPC_RMID, std::ptr::null_mut()) }).map(drop)
}

/// The kernel's per-message limit, `/proc/sys/kernel/msgmax` (8192 by default).
pub fn msgmax() -> std::io::Result<usize> {
    let text = std::fs::read_to_string("/proc/sys/kernel/msgmax")?;
    text.trim()
        .parse()
        .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidData, err))
}

/// A reusable `struct msgbuf` (an `i64` type, then the text), so that sending and receiving
/// many messages allocates once.
#[derive(Debug, Default)]
pub struct MsgBuf {
    buf: Vec<u8>,
}

const MTYPE_LEN: usize = std::mem::size_of::<libc::c_long>();

/// `msgrcv(2)`'s flag for a copy of the message at an index (`<linux/msg.h>`).
const MSG_COPY: libc::c_int = 0o40000;

impl MsgBuf {
    pub fn new() -> Self {
        MsgBuf::default()
    }

    /// `msgsnd(id, {mtype, text}, text.len(), flags)`; `mtype` must be >= 1.
    pub fn send(
        &mut self,
        id: MsqId,
        mtype: i64,
        text: &[u8],
        flags: libc::c_int,
    ) -> nix::Result<()> {
        if mtype < 1 {
            return Err(Errno::EINVAL);
        }
        self.buf.clear();
        self.buf.extend_from_slice(&mtype.to_ne_bytes());
        self.buf.extend_from_slice(text);
        loop {
            // SAFETY: `buf` holds the mtype followed by `text.len()` bytes of text.
            let ret = unsafe { libc::msgsnd(id.0, self.buf.as_ptr().cast(), text.len(), flags) };
            match check(ret) {
                Err(Errno::EINTR) => continue,
                other => return other.map(drop),
            }
        }
    }

    /// `msgrcv(id, buf, max_len, index, MSG_COPY | IPC_NOWAIT)`: a copy of the message at
    /// position `index` (0 is the first), which stays queued. `E2BIG` for a longer one (a copy
    /// cannot be truncated), `ENOMSG` past the last message, `ENOSYS` where the kernel lacks
    /// `MSG_COPY` (CONFIG_CHECKPOINT_RESTORE).
    pub fn peek(&mut self, id: MsqId, max_len: usize, index: i64) -> nix::Result<(i64, &[u8])> {
        self.receive(id, max_len, index, MSG_COPY | libc::IPC_NOWAIT)
    }

    /// `msgrcv(id, buf, max_len, desired_type, flags)`: the received type and text. One call:
    /// `EINTR` is returned to the caller, who knows whether a deadline has passed.
    pub fn receive(
        &mut self,
        id: MsqId,
        max_len: usize,
        desired_type: i64,
        flags: libc::c_int,
    ) -> nix::Result<(i64, &[u8])> {
        // An absurd limit is ENOMEM here, not an abort.
        let wanted = max_len.checked_add(MTYPE_LEN).ok_or(Errno::ENOMEM)?;
        self.buf
            .try_reserve(wanted.saturating_sub(self.buf.len()))
            .map_err(|_| Errno::ENOMEM)?;
        self.buf.resize(wanted, 0);
        // SAFETY: `buf` has room for the mtype and `max_len` bytes of text; msgrcv writes no more.
        let ret = unsafe {
            libc::msgrcv(
                id.0,
                self.buf.as_mut_ptr().cast(),
                max_len,
                desired_type,
                flags,
            )
        };
        if ret == -1 {
            return Err(Errno::last());
        }
        let mtype = i64::from_ne_bytes(self.buf[..MTYPE_LEN].try_into().expect("8 bytes"));
        Ok((mtype, &self.buf[MTYPE_LEN..MTYPE_LEN + ret as usize]))
    }
}

// ---------------------------------------------------------------------------------------------
// Semaphores

/// A semaphore set identifier (`semid`, the second column of `ipcs -s`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SemId(pub libc::c_int);

/// `semget(key, 0, 0)`: the existing set, or `None`.
pub fn sem_open(key: Key) -> nix::Result<Option<SemId>> {
    // SAFETY: semget takes plain integers.
    match check(unsafe { libc::semget(key.0, 0, 0) }) {
        Ok(id) => Ok(Some(SemId(id))),
        Err(Errno::ENOENT) => Ok(None),
        Err(errno) => Err(errno),
    }
}

/// `semget(key, count, IPC_CREAT | IPC_EXCL | mode)`: a new set, every semaphore 0.
pub fn sem_create(key: Key, count: u16, mode: u32) -> nix::Result<SemId> {
    // SAFETY: semget takes plain integers.
    check(unsafe { libc::semget(key.0, libc::c_int::from(count), creat_flags(mode)) }).map(SemId)
}

/// What `semctl(IPC_STAT)` says about a semaphore set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SemStat {
    pub semaphores: u64,
    pub mode: u32,
    pub uid: u32,
    pub creator_uid: u32,
}

/// `semctl(id, 0, IPC_STAT)`.
pub fn sem_stat(id: SemId) -> nix::Result<SemStat> {
    // SAFETY: semid_ds is plain old data; all-zero is a valid value.
    let mut ds: libc::semid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: IPC_STAT takes a pointer to a writable semid_ds as its fourth argument.
    check(unsafe { libc::semctl(id.0, 0, libc::IPC_STAT, &mut ds as *mut libc::semid_ds) })?;
    Ok(SemStat {
        semaphores: ds.sem_nsems as u64,
        mode: u32::from(ds.sem_perm.mode) & 0o777,
        uid: ds.sem_perm.uid,
        creator_uid: ds.sem_perm.cuid,
    })
}

/// One operation of a `semop(2)` call: add `op` to semaphore `num` (0 waits for zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SemOp {
    pub num: u16,
    pub op: i16,
    /// `SEM_UNDO` and/or `IPC_NOWAIT`.
    pub flags: libc::c_int,
}

unsafe extern "C" {
    // glibc has it; the libc crate declares it only for some targets.
    fn semtimedop(
        semid: libc::c_int,
        sops: *mut libc::sembuf,
        nsops: libc::size_t,
        timeout: *const libc::timespec,
    ) -> libc::c_int;
}

/// `semtimedop(id, ops, timeout)`: all of `ops` atomically, waiting at most `timeout` (`None`
/// waits forever); `EAGAIN` when the time is up, `EINTR` on a signal.
pub fn sem_op(id: SemId, ops: &[SemOp], timeout: Option<Duration>) -> nix::Result<()> {
    let mut sops: Vec<libc::sembuf> = ops
        .iter()
        .map(|op| libc::sembuf {
            sem_num: op.num,
            sem_op: op.op,
            sem_flg: op.flags as libc::c_short,
        })
        .collect();
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: libc::c_long::from(t.subsec_nanos() as i32),
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |ts| ts as *const libc::timespec);
    // SAFETY: `sops` holds `sops.len()` valid sembufs; `ts_ptr` is null or points at `ts`.
    check(unsafe { semtimedop(id.0, sops.as_mut_ptr(), sops.len(), ts_ptr) }).map(drop)
}

/// `semctl(id, num, GETVAL)`.
pub fn sem_value(id: SemId, num: u16) -> nix::Result<i32> {
    // SAFETY: GETVAL takes no fourth argument.
    check(unsafe { libc::semctl(id.0, libc::c_int::from(num), libc::GETVAL) })
}

/// `semctl(id, num, GETZCNT)`: how many processes are blocked waiting for semaphore `num` to
/// become zero.
pub fn sem_waiting_for_zero(id: SemId, num: u16) -> nix::Result<i32> {
    // SAFETY: GETZCNT takes no fourth argument.
    check(unsafe { libc::semctl(id.0, libc::c_int::from(num), libc::GETZCNT) })
}

/// `semctl(id, num, SETVAL, value)`.
pub fn sem_set_value(id: SemId, num: u16, value: i32) -> nix::Result<()> {
    // SAFETY: SETVAL takes the value as an int-sized union semun.
    check(unsafe { libc::semctl(id.0, libc::c_int::from(num), libc::SETVAL, value) }).map(drop)
}

/// `semctl(id, 0, IPC_RMID)`: blocked peers get `EIDRM`.
pub fn sem_remove(id: SemId) -> nix::Result<()> {
    // SAFETY: IPC_RMID takes no fourth argument.
    check(unsafe { libc::semctl(id.0, 0, libc::IPC_RMID) }).map(drop)
}

// ---------------------------------------------------------------------------------------------
// IPC namespaces
//
// SysV objects live in the IPC namespace of their creator: a writer and a reader in different
// namespaces (two containers that do not share one) use the same key file and never meet, and
// a private namespace takes the writer's object with it when its last process exits. Nothing in
// SysV says so; our writers record their namespace in a key file they create, so that the
// other side can tell.

/// The IPC namespace of this process, as `/proc/self/ns/ipc` names it (`ipc:[4026531839]`).
pub fn ipc_namespace() -> Option<String> {
    std::fs::read_link("/proc/self/ns/ipc")
        .ok()
        .and_then(|link| link.to_str().map(str::to_owned))
}

/// Writes our IPC namespace into the key file we have just created (the key depends on the
/// inode, not on the content; PHP ignores it too).
pub fn record_namespace(path: &Path) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let Some(ours) = ipc_namespace() else {
        return Ok(());
    };
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?
        .write_all(format!("{ours}\n").as_bytes())
}

/// The IPC namespace a key file records and ours, when both are known and differ.
pub fn namespace_mismatch(path: &Path) -> Option<(String, String)> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut head = [0u8; 64];
    let n = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .and_then(|mut file| file.read(&mut head))
        .ok()?;
    let line = std::str::from_utf8(&head[..n]).ok()?.lines().next()?;
    let digits = line.strip_prefix("ipc:[")?.strip_suffix(']')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ours = ipc_namespace()?;
    (line != ours).then(|| (line.to_owned(), ours))
}

/// What to tell the user when the key file at `path` was created in another IPC namespace.
pub fn namespace_note(path: &Path) -> Option<String> {
    let (theirs, ours) = namespace_mismatch(path)?;
    Some(format!(
        "key file {} was created by a process in IPC namespace {theirs} and we are in {ours}: \
         SysV objects do not cross IPC namespaces, so a peer in the other one never sees ours \
         (containers must share one, e.g. docker's `ipc: service:<reader>`; see docs/docker.md)",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn ftok_matches_the_documented_formula() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let meta = file.path().metadata().unwrap();
        let expected =
            ((meta.ino() & 0xffff) | ((meta.dev() & 0xff) << 16) | (u64::from(b'T') << 24)) as u32;
        assert_eq!(ftok(file.path(), b'T').unwrap().0 as u32, expected);
        assert_eq!(
            ftok(Path::new("/nonexistent/key"), b'T'),
            Err(Errno::ENOENT)
        );
    }

    #[test]
    fn the_key_from_the_opened_files_fstat_is_libcs_ftok() {
        let dir = tempfile::tempdir().unwrap();
        for n in 0..8 {
            let path = dir.path().join(format!("key{n}"));
            std::fs::write(&path, b"").unwrap();
            let meta = open_key_file(&path).unwrap().metadata().unwrap();
            for proj in [b'T', 1, 0xff] {
                assert_eq!(
                    ftok_of(meta.dev(), meta.ino(), proj),
                    ftok(&path, proj).unwrap()
                );
            }
        }
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path().join("key0"), &link).unwrap();
        let meta = open_key_file(&link).unwrap().metadata().unwrap();
        assert!(
            meta.file_type().is_symlink(),
            "the link itself, not its target"
        );
    }

    #[test]
    fn a_key_file_records_the_ipc_namespace_of_its_creator() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, b"").unwrap();
        assert_eq!(
            namespace_mismatch(&path),
            None,
            "an empty key file says nothing"
        );
        record_namespace(&path).unwrap();
        assert_eq!(namespace_mismatch(&path), None, "ours");
        std::fs::write(&path, b"ipc:[1]\n").unwrap();
        let ours = ipc_namespace().unwrap();
        assert_eq!(namespace_mismatch(&path), Some(("ipc:[1]".into(), ours)));
        std::fs::write(&path, b"<?php echo 1;").unwrap();
        assert_eq!(
            namespace_mismatch(&path),
            None,
            "a script as key file says nothing"
        );
    }

    #[test]
    fn key_prints_like_ipcs() {
        assert_eq!(Key(0x5401_abcd).to_string(), "0x5401abcd");
        assert_eq!(Key(-1).to_string(), "0xffffffff");
    }

    #[test]
    fn a_private_segment_round_trips_and_is_removed() {
        let id = shm_create(Key(libc::IPC_PRIVATE), 4096, 0o600).unwrap();
        let seg = Attached::attach(id, false).unwrap();
        shm_remove(id).unwrap();
        assert_eq!(seg.len(), 4096);
        seg.write(4090, b"abcdef").unwrap();
        let mut back = [0; 6];
        seg.read(4090, &mut back).unwrap();
        assert_eq!(&back, b"abcdef");
        assert_eq!(seg.write(4091, b"abcdef"), Err(Errno::EFAULT));
        assert_eq!(seg.read(usize::MAX, &mut back), Err(Errno::EFAULT));
    }

    #[test]
    fn a_private_queue_carries_type_and_text() {
        let id = msg_create(Key(libc::IPC_PRIVATE), 0o600).unwrap();
        let mut buf = MsgBuf::new();
        buf.send(id, 7, b"hello", libc::IPC_NOWAIT).unwrap();
        assert_eq!(msg_stat(id).unwrap().messages, 1);
        assert_eq!(buf.receive(id, 2, 0, libc::IPC_NOWAIT), Err(Errno::E2BIG));
        match buf.peek(id, 64, 0) {
            Ok(copy) => {
                assert_eq!(copy, (7, &b"hello"[..]));
                assert_eq!(buf.peek(id, 64, 1), Err(Errno::ENOMSG));
                assert_eq!(buf.peek(id, 2, 0), Err(Errno::E2BIG));
                assert_eq!(msg_stat(id).unwrap().messages, 1, "a copy leaves it queued");
            }
            Err(errno) => println!("skipping MSG_COPY: {errno}"),
        }
        let (mtype, text) = buf.receive(id, 64, 0, libc::IPC_NOWAIT).unwrap();
        assert_eq!((mtype, text), (7, &b"hello"[..]));
        assert_eq!(buf.receive(id, 64, 0, libc::IPC_NOWAIT), Err(Errno::ENOMSG));
        assert_eq!(buf.send(id, 0, b"x", 0), Err(Errno::EINVAL));
        msg_set_max_bytes(id, 16).unwrap();
        assert_eq!(msg_stat(id).unwrap().max_bytes, 16);
        buf.send(id, 1, &[0; 16], libc::IPC_NOWAIT).unwrap();
        assert_eq!(buf.send(id, 1, b"x", libc::IPC_NOWAIT), Err(Errno::EAGAIN));
        msg_remove(id).unwrap();
    }

    #[test]
    fn a_private_semaphore_times_out() {
        let id = sem_create(Key(libc::IPC_PRIVATE), 3, 0o600).unwrap();
        sem_set_value(id, 1, 5).unwrap();
        assert_eq!(sem_value(id, 1), Ok(5));
        let stat = sem_stat(id).unwrap();
        assert_eq!((stat.semaphores, stat.mode), (3, 0o600));
        assert_eq!(stat.uid, nix::unistd::geteuid().as_raw());
        let take = SemOp {
            num: 0,
            op: -1,
            flags: 0,
        };
        assert_eq!(
            sem_op(id, &[take], Some(Duration::from_millis(5))),
            Err(Errno::EAGAIN)
        );
        sem_remove(id).unwrap();
    }
}
