//! How a binary talks to its user: the payload on stdout, progress and errors on stderr, one exit
//! code. Every binary's `main` is `report::main(|| run(args))`.

use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::cleanup;
use crate::wait::TimedOut;

static QUIET: AtomicBool = AtomicBool::new(false);

/// Exit code of a run that gave up waiting (as `timeout(1)` uses).
pub const EXIT_TIMED_OUT: u8 = 124;

/// Silences (or restores) `progress!` lines for the whole process: `--quiet`, or a program such
/// as the benchmark that calls the mechanisms' code in a loop.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Prints one progress line on stderr unless `--quiet`: what the process is doing, for the
/// learner watching two terminals.
pub fn progress(line: fmt::Arguments<'_>) {
    if !QUIET.load(Ordering::Relaxed) {
        eprintln!("{line}");
    }
}

/// `progress!("bound {path}")`: a progress line on stderr.
#[macro_export]
macro_rules! progress {
    ($($arg:tt)*) => {
        $crate::report::progress(format_args!($($arg)*))
    };
}

/// Prints a received payload the way the blog's readers `echo` it: the bytes as they are, then
/// one newline.
pub fn print_payload(payload: &[u8]) -> anyhow::Result<()> {
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(payload)
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.flush())
        .map_err(|err| match err.kind() {
            io::ErrorKind::BrokenPipe => anyhow::Error::new(StdoutClosed),
            _ => anyhow::Error::new(err).context("write to stdout"),
        })
}

/// Whoever read our stdout stopped reading (`reader | head -c1`): not a failure of ours.
#[derive(Debug)]
struct StdoutClosed;

impl fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stdout was closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// Runs a binary's `run`, removing what it created and reporting its error as one line.
///
/// Exit codes: 0 success (also when stdout was closed early, as in `reader | head -c1`),
/// 1 failure, 2 usage (from clap, before this runs), 124 a wait timed out, 128+N a signal.
pub fn main(run: impl FnOnce() -> anyhow::Result<()>) -> ExitCode {
    if let Err(err) = cleanup::install_signal_handlers() {
        eprintln!("error: {err:#}");
        return ExitCode::FAILURE;
    }
    // `run`'s cleanup guards have dropped by the time it returns: what a failed run created is
    // gone before the error is printed.
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.is::<StdoutClosed>() => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            if err.chain().any(|cause| cause.is::<TimedOut>()) {
                ExitCode::from(EXIT_TIMED_OUT)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
