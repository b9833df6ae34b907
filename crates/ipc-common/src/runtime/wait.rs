//! Timeouts and waiting: every blocking step in this workspace goes through here.
//!
//! Two ways to wait, both bounded by a [`Deadline`]:
//! - readiness on a file descriptor with `poll(2)` ([`wait_fd`]), for sockets and FIFOs;
//! - [`retry`] with exponential backoff, for conditions the kernel cannot notify us about
//!   (a socket file or SysV object that does not exist yet, a connect that is refused).
//!
//! Neither is a `sleep` used as synchronisation: both re-check the real condition and give up with
//! a [`TimedOut`] error naming what they waited for. Both also end at once, with
//! [`cleanup::Interrupted`], when SIGINT, SIGTERM or SIGHUP asks the process to stop.

use std::fmt;
use std::os::fd::BorrowedFd;
use std::str::FromStr;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::runtime::cleanup;

/// `--timeout SECS`: how long one run may wait in total; `0` waits forever.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeout(Option<Duration>);

impl Timeout {
    pub const FOREVER: Timeout = Timeout(None);

    pub fn from_duration(duration: Duration) -> Self {
        Timeout(Some(duration))
    }

    pub fn duration(self) -> Option<Duration> {
        self.0
    }
}

impl Default for Timeout {
    fn default() -> Self {
        Timeout(Some(Duration::from_secs(10)))
    }
}

impl FromStr for Timeout {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let secs: f64 = text
            .trim()
            .parse()
            .map_err(|_| format!("`{text}` is not a number of seconds (0 waits forever)"))?;
        if !(0.0..=1e9).contains(&secs) {
            return Err(format!(
                "`{text}` is out of range: give 0 (forever) or up to 1e9 seconds"
            ));
        }
        Ok(if secs == 0.0 {
            Timeout::FOREVER
        } else {
            Timeout(Some(Duration::from_secs_f64(secs)))
        })
    }
}

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("forever"),
            Some(d) => write!(f, "{}s", d.as_secs_f64()),
        }
    }
}

/// The error every wait returns when its deadline passes; `report` maps it to exit code 124,
/// as `timeout(1)` does.
#[derive(Debug)]
pub struct TimedOut {
    pub waited: Timeout,
    pub what: String,
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timed out after {} waiting for {}",
            self.waited, self.what
        )
    }
}

impl std::error::Error for TimedOut {}

/// Where a run's progress lines go ("waiting for a reader on ..."): chosen once by the binary
/// (stderr, unless `--quiet`), so that library code never prints on its own.
pub type Say = fn(fmt::Arguments<'_>);

/// One point in time that every wait of a run shares, so `--timeout` bounds the whole run; it
/// also carries where the run's progress lines go ([`Deadline::say`]), the one thing a wait
/// tells its user besides its result.
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    timeout: Timeout,
    at: Option<Instant>,
    say: Option<Say>,
}

impl Deadline {
    /// A deadline `timeout` from now, silent: its waits say nothing (see
    /// [`Deadline::reporting`]).
    pub fn after(timeout: Timeout) -> Self {
        Deadline {
            timeout,
            at: timeout.0.map(|d| Instant::now() + d),
            say: None,
        }
    }

    /// The same deadline, with its progress lines going to `say`.
    pub fn reporting(self, say: Say) -> Self {
        Deadline {
            say: Some(say),
            ..self
        }
    }

    /// One progress line, where the binary wants it (nowhere for a silent deadline).
    pub fn say(&self, line: fmt::Arguments<'_>) {
        if let Some(say) = self.say {
            say(line);
        }
    }

    pub fn forever() -> Self {
        Deadline::after(Timeout::FOREVER)
    }

    /// `None` means no limit; `Some(ZERO)` means the deadline has passed.
    pub fn remaining(&self) -> Option<Duration> {
        self.at
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    pub fn expired(&self) -> bool {
        self.remaining() == Some(Duration::ZERO)
    }

    pub fn is_forever(&self) -> bool {
        self.at.is_none()
    }

    /// The remaining time as a `poll(2)` timeout, rounded up so we never spin at the end.
    pub fn poll_timeout(&self) -> PollTimeout {
        match self.remaining() {
            None => PollTimeout::NONE,
            Some(left) => {
                let millis = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
                PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX)
            }
        }
    }

    pub fn timed_out(&self, what: impl fmt::Display) -> anyhow::Error {
        TimedOut {
            waited: self.timeout,
            what: what.to_string(),
        }
        .into()
    }
}

/// Backoff between attempts: starts at 1 ms so a peer that is almost ready costs little, doubles
/// up to 25 ms so a long wait costs almost no CPU.
const FIRST_BACKOFF: Duration = Duration::from_millis(1);
const MAX_BACKOFF: Duration = Duration::from_millis(25);

/// Calls `attempt` until it returns `Ok(Some(value))`, backing off between `Ok(None)` answers,
/// until `deadline`. An `Err` from `attempt` ends the wait at once, and so does a stop signal
/// ([`Interrupted`]): the pause is a `poll(2)` on the signal handlers' pipe, not a `sleep`.
pub fn retry<T>(
    deadline: &Deadline,
    what: impl fmt::Display,
    mut attempt: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let mut backoff = FIRST_BACKOFF;
    loop {
        cleanup::check_interrupted()?;
        if let Some(value) = attempt()? {
            return Ok(value);
        }
        let pause = match deadline.remaining() {
            None => backoff,
            Some(Duration::ZERO) => return Err(deadline.timed_out(what)),
            Some(left) => backoff.min(left),
        };
        pause_unless_interrupted(pause)?;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Sleeps for `pause`, or less if a stop signal arrives (then `Err(Interrupted)`).
fn pause_unless_interrupted(pause: Duration) -> Result<(), cleanup::Interrupted> {
    let Some(wake) = cleanup::wake_fd() else {
        std::thread::sleep(pause);
        return Ok(());
    };
    let millis = pause.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
    let timeout = PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX);
    let _ = poll(&mut [PollFd::new(wake, PollFlags::POLLIN)], timeout);
    cleanup::check_interrupted()
}

/// Waits until `fd` reports one of `events` (or an error/hang-up condition, which `poll(2)`
/// always reports) and returns what it reported.
pub fn wait_fd(
    fd: BorrowedFd<'_>,
    events: PollFlags,
    deadline: &Deadline,
    what: impl fmt::Display,
) -> anyhow::Result<PollFlags> {
    loop {
        cleanup::check_interrupted()?;
        // The signal handlers' pipe wakes the poll even for a signal that came just before it.
        let mut fds = vec![PollFd::new(fd, events)];
        if let Some(wake) = cleanup::wake_fd() {
            fds.push(PollFd::new(wake, PollFlags::POLLIN));
        }
        match poll(&mut fds, deadline.poll_timeout()) {
            Ok(0) => {
                if deadline.expired() {
                    return Err(deadline.timed_out(what));
                }
            }
            Ok(_) => {
                let revents = fds[0].revents().unwrap_or(PollFlags::empty());
                if !revents.is_empty() {
                    return Ok(revents);
                }
            }
            // A signal: the loop's check says whether it asks us to stop.
            Err(Errno::EINTR) => {}
            Err(errno) => {
                return Err(
                    anyhow::Error::new(errno).context(format!("poll while waiting for {what}"))
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_seconds_and_forever() {
        assert_eq!("0".parse::<Timeout>().unwrap(), Timeout::FOREVER);
        assert_eq!(
            "2.5".parse::<Timeout>().unwrap().duration(),
            Some(Duration::from_millis(2500))
        );
        assert!("-1".parse::<Timeout>().is_err());
        assert!("NaN".parse::<Timeout>().is_err());
        assert!("ten".parse::<Timeout>().is_err());
    }

    #[test]
    fn retry_gives_up_naming_what_it_waited_for() {
        let deadline = Deadline::after(Timeout::from_duration(Duration::from_millis(20)));
        let err = retry(&deadline, "the moon", || Ok(None::<()>)).unwrap_err();
        assert!(err.downcast_ref::<TimedOut>().is_some());
        assert_eq!(
            err.to_string(),
            "timed out after 0.02s waiting for the moon"
        );
    }

    #[test]
    fn retry_returns_the_first_success() {
        let mut calls = 0;
        let value = retry(&Deadline::forever(), "three calls", || {
            calls += 1;
            Ok((calls == 3).then_some(calls))
        })
        .unwrap();
        assert_eq!(value, 3);
    }
}
