//! Removing what this process created, whichever way it ends.
//!
//! A [`Cleanup`] guard registers an action (unlink a socket file, `IPC_RMID` a queue) in a
//! process-wide registry. The action runs exactly once: when the guard drops (the run failed, was
//! interrupted by SIGINT, SIGTERM or SIGHUP and unwound, or is done with the object), or never,
//! if the guard is [`Cleanup::keep`]-ed to hand the object to the peer (a writer leaves its
//! queue for the reader). Signals need no thread: see [`install_signal_handlers`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use nix::fcntl::OFlag;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

type Action = Box<dyn FnOnce() -> anyhow::Result<()> + Send>;

struct Entry {
    what: String,
    action: Action,
}

static REGISTRY: Mutex<BTreeMap<u64, Entry>> = Mutex::new(BTreeMap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Removes one object this process created, unless kept.
#[must_use = "dropping the guard removes the object at once"]
pub struct Cleanup {
    id: u64,
}

impl fmt::Debug for Cleanup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cleanup").field("id", &self.id).finish()
    }
}

impl Cleanup {
    /// Registers `action`, described as `what` ("socket file /tmp/x.sock") in messages.
    pub fn register(
        what: impl Into<String>,
        action: impl FnOnce() -> anyhow::Result<()> + Send + 'static,
    ) -> Self {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let entry = Entry {
            what: what.into(),
            action: Box::new(action),
        };
        lock().insert(id, entry);
        Cleanup { id }
    }

    /// Leaves the object in place: it now belongs to whoever uses it next.
    pub fn keep(self) {
        lock().remove(&self.id);
        std::mem::forget(self);
    }

    /// Removes the object now, reporting whether that worked.
    pub fn remove(self) -> anyhow::Result<()> {
        let entry = lock().remove(&self.id);
        std::mem::forget(self);
        match entry {
            Some(entry) => (entry.action)().with_context(|| format!("remove {}", entry.what)),
            None => Ok(()),
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let entry = lock().remove(&self.id);
        if let Some(entry) = entry {
            run_entry(entry);
        }
    }
}

fn lock() -> std::sync::MutexGuard<'static, BTreeMap<u64, Entry>> {
    // A panic while holding the lock leaves the map intact; cleaning up matters more.
    REGISTRY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn run_entry(entry: Entry) {
    if let Err(err) = (entry.action)() {
        crate::runtime::report::stderr_line(format_args!(
            "warning: could not remove {}: {err:#}",
            entry.what
        ));
    }
}

/// Runs every action still registered, newest first (a queue before the key file it was keyed
/// on).
pub fn run_all() {
    let entries = std::mem::take(&mut *lock());
    for (_, entry) in entries.into_iter().rev() {
        run_entry(entry);
    }
}

/// The signal that asked this process to stop (SIGINT, SIGTERM or SIGHUP), 0 while none did.
static STOP_SIGNAL: OnceLock<Arc<AtomicUsize>> = OnceLock::new();
/// The read end of the self-pipe the handlers write a byte to: every wait polls it too, so a
/// signal that arrives just before a `poll(2)` still wakes it.
static WAKE: OnceLock<OwnedFd> = OnceLock::new();

/// Makes SIGINT, SIGTERM and SIGHUP end the run cleanly, without a thread: a handler records the
/// signal and writes a byte to a pipe; every bounded wait ([`crate::runtime::wait`]) also watches that
/// pipe and returns [`Interrupted`], so the run unwinds, its cleanup guards remove what it
/// created, and [`crate::runtime::report::main`] exits 128+N. A second signal of the same kind, if the
/// first is not yet handled, ends the process at once (its default action). Called once by
/// [`crate::runtime::report::main`], or by a binary with exit codes of its own (`ipc-trace`).
pub fn install_signal_handlers() -> anyhow::Result<()> {
    let (read_end, write_end) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
        .context("pipe2 for the signal handlers")?;
    let flag = STOP_SIGNAL.get_or_init(|| Arc::new(AtomicUsize::new(0)));
    for signal in [SIGINT, SIGTERM, SIGHUP] {
        let name = signal_hook::low_level::signal_name(signal).unwrap_or("a signal");
        let stopping = Arc::new(AtomicBool::new(false));
        // Order matters: the conditional default sees the flag of an earlier delivery.
        signal_hook::flag::register_conditional_default(signal, Arc::clone(&stopping))
            .and_then(|_| signal_hook::flag::register(signal, stopping))
            .and_then(|_| {
                signal_hook::flag::register_usize(signal, Arc::clone(flag), signal as usize)
            })
            .and_then(|_| signal_hook::low_level::pipe::register_raw(signal, write_end.as_raw_fd()))
            .with_context(|| format!("install the {name} handler"))?;
    }
    // The handlers hold the write end for the rest of the process.
    std::mem::forget(write_end);
    let _ = WAKE.set(read_end);
    Ok(())
}

/// The signal that asked us to stop, if one did.
pub fn stop_signal() -> Option<i32> {
    let signal = STOP_SIGNAL.get()?.load(Ordering::SeqCst);
    (signal != 0).then(|| i32::try_from(signal).unwrap_or(SIGTERM))
}

/// The descriptor a wait polls besides its own, to wake when a stop signal arrives; `None` in a
/// program that did not install the handlers (a test, a library user).
pub fn wake_fd() -> Option<BorrowedFd<'static>> {
    WAKE.get().map(AsFd::as_fd)
}

/// `Err(Interrupted)` once a stop signal arrived: for loops that wait without [`crate::runtime::wait`]
/// (an `EINTR` from a SysV call).
pub fn check_interrupted() -> Result<(), Interrupted> {
    match stop_signal() {
        Some(signal) => Err(Interrupted { signal }),
        None => Ok(()),
    }
}

/// The error of a wait that a stop signal ended; [`crate::runtime::report::main`] exits 128+N for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupted {
    pub signal: i32,
}

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = signal_hook::low_level::signal_name(self.signal).unwrap_or("a signal");
        write!(f, "interrupted by {name}")
    }
}

impl std::error::Error for Interrupted {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    fn counting(counter: &Arc<AtomicUsize>) -> Cleanup {
        let counter = Arc::clone(counter);
        Cleanup::register("a counter", move || {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
    }

    #[test]
    fn drop_runs_the_action_once_and_keep_never() {
        let counter = Arc::new(AtomicUsize::new(0));
        drop(counting(&counter));
        assert_eq!(counter.load(Ordering::SeqCst), 1);
        counting(&counter).keep();
        assert_eq!(counter.load(Ordering::SeqCst), 1);
        counting(&counter).remove().unwrap();
        assert_eq!(counter.load(Ordering::SeqCst), 2);
    }
}
