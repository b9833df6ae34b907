//! The lock PHP's sysvsem extension keeps (`sem_get`, `sem_acquire`, `sem_release`,
//! `sem_remove`), reproduced operation for operation, so a Rust process and a PHP script can
//! take turns on the same data:
//!
//! ```php
//! $sem = sem_get(ftok($key_file, 'T'));   // max_acquire 1, perm 0666, auto_release
//! sem_acquire($sem);
//! shm_put_var($shm, 1, $value);
//! sem_release($sem);
//! ```
//!
//! # The protocol (php-src `ext/sysvsem/sysvsem.c`)
//!
//! One PHP semaphore is a SysV set of three, under one key:
//!
//! | num | name             | meaning |
//! |-----|------------------|---------|
//! | 0   | `SYSVSEM_SEM`    | the semaphore itself: `max_acquire` free slots, 1 for a lock |
//! | 1   | `SYSVSEM_USAGE`  | how many processes have done `sem_get` and not let go yet |
//! | 2   | `SYSVSEM_SETVAL` | a guard, held while someone reads USAGE and initialises SEM |
//!
//! - `sem_get`: `semget(key, 3, perm | IPC_CREAT)`; then one atomic `semop(2)` {wait for SETVAL
//!   to be 0, SETVAL += 1 (`SEM_UNDO`), USAGE += 1 (`SEM_UNDO`)}; `semctl(USAGE, GETVAL)`; if it
//!   is 1 we are the only user, so `semctl(SEM, SETVAL, max_acquire)`; finally SETVAL -= 1
//!   (`SEM_UNDO`). A fresh set is all zeros, so nobody can acquire before the first user has set
//!   SEM.
//! - `sem_acquire`: SEM -= 1 with `SEM_UNDO`, so the kernel gives the slot back if the holder
//!   dies. `sem_release`: SEM += 1 with `SEM_UNDO` (the two adjustments cancel).
//! - letting go (PHP's request end with auto_release): USAGE -= 1 with `SEM_UNDO`, plus SEM +=
//!   count if still held (here the kernel's `SEM_UNDO` gives back a slot held at exit).
//! - `sem_remove`: `semctl(IPC_RMID)`; waiters wake with `EIDRM`.
//!
//! Where we differ, in ways PHP cannot see:
//! - every wait is a `semtimedop(2)` bounded by the run's [`Deadline`], where PHP blocks forever;
//! - the last user removes the set. PHP never removes a semaphore unless told to (`sem_remove`),
//!   so sets pile up in `ipcs -s`. When we let go, we take the SETVAL guard (so nobody can
//!   register meanwhile) and look at USAGE: if it counts only us, nobody else is using the set
//!   and we `IPC_RMID` it; otherwise we decrement USAGE and give the guard back. A newcomer
//!   blocked on the guard wakes with `EIDRM` and starts over with a fresh set, which it
//!   initialises as the first user. A set holds no data but SEM, which is back at `max_acquire`
//!   whenever nobody holds it, so nothing is lost. The same happens on SIGINT/SIGTERM (a
//!   [`Cleanup`] guard); a process that dies without cleaning up leaves its USAGE to `SEM_UNDO`
//!   and the set to the next user.
//!
//! The races, honestly. php-src's own: a crashed holder's undo is not atomic, so a newcomer may
//! see a USAGE that still counts the dead process and skip initialising SEM; the kernel's undo
//! restores SEM itself, so the lock stays correct. Ours: a PHP process between its `semget` and
//! its registering `semop` when we remove the set gets `EIDRM`, warns, and goes on without a lock
//! (PHP does not start over as we do); the window is a few instructions wide. A newcomer already
//! blocked on the guard while we leave is seen (`GETZCNT` on SETVAL) and the set is left to it.
//! A PHP script that shares the lock with us should therefore treat a `sem_acquire` that fails
//! with a warning (not merely busy) as "the set is gone" and call `sem_get` again, as the test
//! peer `tests/php/sysvshm-writer.php` does.

use std::time::Duration;

use anyhow::Context;
use nix::errno::Errno;

use crate::runtime::cleanup::Cleanup;
use crate::runtime::trust;
use crate::runtime::wait::{Deadline, Timeout};
use crate::sysv::{self, IPC_NOWAIT, Key, SEM_UNDO, SemId, SemOp};

/// The semaphore itself, initialised to `max_acquire`.
pub const SYSVSEM_SEM: u16 = 0;
/// How many processes use the set.
pub const SYSVSEM_USAGE: u16 = 1;
/// The guard held while USAGE is read and SEM initialised (and, here, while the last user
/// removes the set).
pub const SYSVSEM_SETVAL: u16 = 2;
/// Semaphores per set.
pub const SET_SIZE: u16 = 3;

/// How long letting go waits for the SETVAL guard, which others hold for a few instructions.
/// Letting go runs in `drop` and on signals, where no deadline is at hand.
const LEAVE_WAIT: Duration = Duration::from_secs(1);

/// One process's use of a PHP semaphore: what `sem_get` returns. Dropping it lets go of the set
/// (USAGE -= 1), removing the set if this process was its last user.
#[derive(Debug)]
pub struct Semaphore {
    key: Key,
    id: SemId,
    /// Lets go of the set when dropped, also from the signal thread.
    _leave: Cleanup,
}

/// A held slot of the semaphore; dropping it releases (`sem_release`).
#[derive(Debug)]
#[must_use = "dropping the guard releases the semaphore at once"]
pub struct Acquired<'a> {
    sem: &'a Semaphore,
}

impl Drop for Acquired<'_> {
    fn drop(&mut self) {
        let sem = self.sem;
        let release = op(SYSVSEM_SEM, 1, SEM_UNDO | IPC_NOWAIT);
        if let Err(errno) = sysv::sem_op(sem.id, &[release], None) {
            crate::runtime::report::warn(format_args!(
                "semop release semaphore set {}: {errno}",
                sem.key
            ));
        }
    }
}

impl Semaphore {
    /// `sem_get($key, $max_acquire, $mode)`: opens the set under `key` or creates it (with
    /// exactly `mode`), then registers this process as a user, waiting at most until `deadline`.
    pub fn get(
        key: Key,
        max_acquire: i32,
        mode: u32,
        deadline: &Deadline,
    ) -> anyhow::Result<Semaphore> {
        let what = format!("the initialisation guard (semaphore 2) of semaphore set {key}");
        let register = [
            op(SYSVSEM_SETVAL, 0, 0),
            op(SYSVSEM_SETVAL, 1, SEM_UNDO),
            op(SYSVSEM_USAGE, 1, SEM_UNDO),
        ];
        let id = loop {
            let (id, created) = open_or_create(key, mode)?;
            match semop(id, &register, deadline) {
                Ok(()) => break id,
                // Its last user removed it while we were getting in: start over.
                Err(Errno::EIDRM | Errno::EINVAL) => continue,
                Err(errno) => {
                    // A set we created but cannot use (a --mode without write permission for
                    // ourselves) would refuse every later run under this key: it goes now.
                    if created {
                        let _ = sysv::sem_remove(id);
                    }
                    return Err(semop_error(errno, key, deadline, &what));
                }
            }
        };
        let sem = Semaphore {
            key,
            id,
            _leave: Cleanup::register(format!("semaphore set {key}"), move || leave(key, id)),
        };
        let init = sem.initialise(max_acquire);
        // Give the guard back whatever happened (we hold it, so this never blocks): a failed run
        // must not leave others waiting.
        let release = sysv::sem_op(id, &[op(SYSVSEM_SETVAL, -1, SEM_UNDO | IPC_NOWAIT)], None)
            .with_context(|| format!("semop release {what}"));
        init.and(release).map(|()| sem)
    }

    fn initialise(&self, max_acquire: i32) -> anyhow::Result<()> {
        let key = self.key;
        let users = sysv::sem_value(self.id, SYSVSEM_USAGE)
            .with_context(|| format!("semctl GETVAL usage count of semaphore set {key}"))?;
        if users == 1 {
            sysv::sem_set_value(self.id, SYSVSEM_SEM, max_acquire)
                .with_context(|| format!("semctl SETVAL {max_acquire} semaphore set {key}"))?;
        }
        Ok(())
    }

    pub fn key(&self) -> Key {
        self.key
    }

    pub fn id(&self) -> SemId {
        self.id
    }

    /// `sem_acquire`: takes one slot, waiting at most until `deadline` (and saying `waiting for
    /// the lock ...` on stderr when it has to); released when the returned guard drops.
    pub fn acquire(&self, deadline: &Deadline) -> anyhow::Result<Acquired<'_>> {
        let what = format!("the lock (semaphore set {})", self.key);
        let take = [op(SYSVSEM_SEM, -1, SEM_UNDO)];
        if let Err(errno) = semop(
            self.id,
            &take,
            &Deadline::after(Timeout::from_duration(Duration::ZERO)),
        ) {
            if errno != Errno::EAGAIN {
                return Err(semop_error(errno, self.key, deadline, &what));
            }
            deadline.say(format_args!("waiting for {what}"));
            semop(self.id, &take, deadline)
                .map_err(|errno| semop_error(errno, self.key, deadline, &what))?;
        }
        Ok(Acquired { sem: self })
    }
}

fn op(num: u16, op: i16, flags: i32) -> SemOp {
    SemOp { num, op, flags }
}

/// One atomic `semtimedop(2)`, retried after a signal, bounded by `deadline`; `EAGAIN` when the
/// deadline passes.
fn semop(id: SemId, ops: &[SemOp], deadline: &Deadline) -> nix::Result<()> {
    loop {
        // A stop signal that arrived before the call would not interrupt it: look first, and
        // sleep in slices, so one that comes between the look and the call is seen soon too.
        if crate::runtime::cleanup::stop_signal().is_some() {
            return Err(Errno::EINTR);
        }
        let result = match deadline.remaining() {
            // Time is up: one last try that does not wait.
            Some(Duration::ZERO) => {
                let nowait: Vec<SemOp> = ops
                    .iter()
                    .map(|o| op(o.num, o.op, o.flags | IPC_NOWAIT))
                    .collect();
                sysv::sem_op(id, &nowait, None)
            }
            left => sysv::sem_op(id, ops, Some(left.map_or(SLICE, |left| left.min(SLICE)))),
        };
        match result {
            // A stop signal ends the wait (semop_error turns it into Interrupted); any other
            // signal, or the end of a slice before the deadline, just means: look again.
            Err(Errno::EINTR) if crate::runtime::cleanup::stop_signal().is_some() => return result,
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) if !deadline.expired() => continue,
            other => return other,
        }
    }
}

/// The longest one `semtimedop(2)` sleeps: how late a stop signal that arrives just before the
/// call can be noticed.
const SLICE: Duration = Duration::from_millis(100);

/// Turns a failed [`semop`] into the error the user reads.
fn semop_error(errno: Errno, key: Key, deadline: &Deadline, what: &str) -> anyhow::Error {
    match errno {
        Errno::EAGAIN => deadline.timed_out(what),
        Errno::EINTR => match crate::runtime::cleanup::check_interrupted() {
            Err(stop) => anyhow::Error::new(stop).context(format!("wait for {what}")),
            Ok(()) => anyhow::Error::new(errno).context(format!("semop on {what}")),
        },
        Errno::EIDRM | Errno::EINVAL => {
            anyhow::anyhow!("semop on {what}: the semaphore set was removed while we used it")
        }
        Errno::EFBIG => anyhow::anyhow!(
            "semop on {what}: the set under key {key} has fewer than 3 semaphores: it is not a \
             PHP sem_get() semaphore"
        ),
        Errno::EACCES => anyhow::Error::new(errno).context(format!(
            "semop on {what}: its mode does not let us change it ({})",
            sysv::EACCES_HINT
        )),
        errno => anyhow::Error::new(errno).context(format!("semop on {what}")),
    }
}

/// Lets go of set `id`: removes it if we are its last user, else USAGE -= 1 (see the module
/// docs). A set that is already gone is fine.
fn leave(key: Key, id: SemId) -> anyhow::Result<()> {
    let guard = [op(SYSVSEM_SETVAL, 0, 0), op(SYSVSEM_SETVAL, 1, SEM_UNDO)];
    let unregister = op(SYSVSEM_USAGE, -1, SEM_UNDO | IPC_NOWAIT);
    match sysv::sem_op(id, &guard, Some(LEAVE_WAIT)) {
        Ok(()) => {}
        Err(Errno::EIDRM | Errno::EINVAL) => return Ok(()),
        // Busy guard or a signal: just stop counting ourselves, as PHP does.
        Err(_) => {
            return sysv::sem_op(id, &[unregister], None)
                .or_else(ignore_gone)
                .with_context(|| format!("semop let go of semaphore set {key}"));
        }
    }
    let users = sysv::sem_value(id, SYSVSEM_USAGE)
        .with_context(|| format!("semctl GETVAL usage count of semaphore set {key}"))?;
    // A newcomer blocked on the guard we hold is not counted in USAGE yet. We would start over
    // after a removal; PHP would not (its sem_get warns and goes on with a dead set, so its
    // sem_acquire fails and the script runs unlocked): leave the set to the newcomer.
    let newcomers = sysv::sem_waiting_for_zero(id, SYSVSEM_SETVAL)
        .with_context(|| format!("semctl GETZCNT initialisation guard of semaphore set {key}"))?;
    if users <= 1 && newcomers == 0 {
        return sysv::sem_remove(id)
            .or_else(ignore_gone)
            .with_context(|| format!("semctl IPC_RMID semaphore set {key}"));
    }
    let give_back = op(SYSVSEM_SETVAL, -1, SEM_UNDO | IPC_NOWAIT);
    sysv::sem_op(id, &[unregister, give_back], None)
        .or_else(ignore_gone)
        .with_context(|| format!("semop let go of semaphore set {key}"))
}

/// `semget(key, 0, 0)`, else `semget(key, 3, IPC_CREAT | IPC_EXCL | mode)`; a creator racing us
/// sends us back to open its set. A set we did not create must belong to a trusted user
/// ([`crate::runtime::trust`]): another user's set could hold the lock for ever. Also says whether we
/// created it.
fn open_or_create(key: Key, mode: u32) -> anyhow::Result<(SemId, bool)> {
    loop {
        if let Some(id) =
            sysv::sem_open(key).with_context(|| format!("semget semaphore set {key}"))?
        {
            match sysv::sem_stat(id) {
                Ok(stat) => trust::check_sysv(
                    format_args!("semaphore set {key} (the PHP sem_get lock)"),
                    stat.uid,
                    stat.creator_uid,
                )?,
                // Its last user removed it between the two calls: start over.
                Err(Errno::EIDRM | Errno::EINVAL) => continue,
                Err(Errno::EACCES) => {
                    return Err(Errno::EACCES).with_context(|| {
                        format!(
                            "semctl IPC_STAT semaphore set {key} (the PHP sem_get lock): its \
                             mode does not let us read it ({})",
                            sysv::EACCES_HINT
                        )
                    });
                }
                Err(errno) => {
                    return Err(errno)
                        .with_context(|| format!("semctl IPC_STAT semaphore set {key}"));
                }
            }
            return Ok((id, false));
        }
        match sysv::sem_create(key, SET_SIZE, mode) {
            Ok(id) => return Ok((id, true)),
            Err(Errno::EEXIST) => continue,
            Err(errno) => {
                return Err(errno).with_context(|| {
                    format!("semget create semaphore set {key} (mode {mode:04o})")
                });
            }
        }
    }
}

/// A set that is already gone (`EINVAL`, `EIDRM`) has nothing left to let go of.
fn ignore_gone(errno: Errno) -> nix::Result<()> {
    match errno {
        Errno::EINVAL | Errno::EIDRM => Ok(()),
        other => Err(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::wait::TimedOut;

    fn soon() -> Deadline {
        Deadline::after(Timeout::from_duration(Duration::from_millis(50)))
    }

    /// A key nobody else uses: a private set cannot be reopened by key, so tests make their own
    /// key file.
    fn fresh_key(dir: &tempfile::TempDir) -> Key {
        let path = dir.path().join("key");
        std::fs::write(&path, b"").unwrap();
        sysv::ftok(&path, b'S').unwrap()
    }

    #[test]
    fn the_first_user_initialises_and_a_second_waits() {
        let dir = tempfile::tempdir().unwrap();
        let key = fresh_key(&dir);
        let first = Semaphore::get(key, 1, 0o600, &soon()).unwrap();
        let id = first.id();
        let values = || {
            (0..SET_SIZE)
                .map(|n| sysv::sem_value(id, n).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(values(), [1, 1, 0], "SEM free, one user, guard down");

        let second = Semaphore::get(key, 1, 0o600, &soon()).unwrap();
        assert_eq!(second.id(), id, "the same set");
        assert_eq!(values(), [1, 2, 0]);
        let held = first.acquire(&soon()).unwrap();
        assert_eq!(values(), [0, 2, 0]);
        let err = second.acquire(&soon()).unwrap_err();
        assert!(err.is::<TimedOut>(), "{err:#}");
        assert!(err.to_string().contains("the lock"), "{err:#}");
        drop(held);
        drop(second.acquire(&soon()).unwrap());
        assert_eq!(values(), [1, 2, 0]);

        drop(second);
        assert_eq!(values(), [1, 1, 0], "not the last user: the set stays");
        drop(first);
        assert_eq!(sysv::sem_open(key), Ok(None), "the last user removed it");
    }

    #[test]
    fn a_newcomer_after_the_last_user_starts_a_fresh_set() {
        let dir = tempfile::tempdir().unwrap();
        let key = fresh_key(&dir);
        let first = Semaphore::get(key, 1, 0o600, &soon()).unwrap();
        let old = first.id();
        drop(first);
        let again = Semaphore::get(key, 1, 0o600, &soon()).unwrap();
        assert_ne!(again.id(), old);
        assert_eq!(sysv::sem_value(again.id(), SYSVSEM_SEM), Ok(1));
        drop(again.acquire(&soon()).unwrap());
    }
}
