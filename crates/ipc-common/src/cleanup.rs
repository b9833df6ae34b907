//! Removing what this process created, whichever way it ends.
//!
//! A [`Cleanup`] guard registers an action (unlink a socket file, `IPC_RMID` a queue) in a
//! process-wide registry. The action runs exactly once: when the guard drops (the run failed or
//! is done with the object), from the signal thread when SIGINT, SIGTERM or SIGHUP arrives, or
//! never, if the guard is [`Cleanup::keep`]-ed to hand the object to the peer (a writer leaves
//! its queue for the reader).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

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
        crate::report::stderr_line(format_args!(
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

/// Starts the thread that turns SIGINT, SIGTERM and SIGHUP into "remove what we created, then
/// exit 128+N". Called once by [`crate::report::main`].
pub(crate) fn install_signal_handlers() -> anyhow::Result<()> {
    let mut signals =
        Signals::new([SIGINT, SIGTERM, SIGHUP]).context("install SIGINT/SIGTERM handlers")?;
    std::thread::Builder::new()
        .name("cleanup-on-signal".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                let name = signal_hook::low_level::signal_name(signal).unwrap_or("a signal");
                crate::report::stderr_line(format_args!(
                    "interrupted by {name}: removing what this process created"
                ));
                run_all();
                std::process::exit(128 + signal);
            }
        })
        .context("start the signal thread")?;
    Ok(())
}

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
