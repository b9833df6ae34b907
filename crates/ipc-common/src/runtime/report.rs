//! How a binary talks to its user: the payload on stdout, progress and errors on stderr, one exit
//! code. Every binary's `main` is `report::main(|| run(args))`.

use std::fmt;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::runtime::cleanup;
use crate::runtime::wait::TimedOut;

/// Exit code of a run that gave up waiting (as `timeout(1)` uses).
pub const EXIT_TIMED_OUT: u8 = 124;

/// One `warning: ...` line on stderr: something the user should know that does not fail the run
/// (written like every line, whole and never fatal).
pub fn warn(line: fmt::Arguments<'_>) {
    stderr_line(format_args!("warning: {line}"));
}

/// Writes one whole line to stderr in a single `write(2)`, so that lines of processes sharing
/// the terminal or a log (`docker-compose up`) never interleave mid-line; `eprintln!` would
/// write each piece of the format separately. A stderr nobody reads any more (a closed pipe) is
/// not a failure of the run: the line is dropped, never a panic.
pub fn stderr_line(line: fmt::Arguments<'_>) {
    let mut text = line.to_string();
    text.push('\n');
    // Unbuffered: `write_all` is one write(2) unless the kernel takes less, which a pipe does
    // not for lines under PIPE_BUF (4096) bytes.
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

/// `say!(deadline, "bound {path}")`: a progress line where the run's [`Deadline`] sends them
/// (stderr, unless `--quiet`). Binaries say what happened; libraries return it, and only
/// announce their waits through the deadline they were given.
///
/// [`Deadline`]: crate::runtime::wait::Deadline
#[macro_export]
macro_rules! say {
    ($deadline:expr, $($arg:tt)*) => {
        $deadline.say(format_args!($($arg)*))
    };
}

/// Whether fd 1 was closed when the process started (`reader >&-`). Rust's runtime opens
/// /dev/null on a closed fd 1 before `main`, so a payload printed there would vanish with exit
/// 0: [`note_standard_fds`] looks first, run by the loader from `.init_array` as C
/// constructors are.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
/// The same for fd 0 (`writer --message-file - <&-`), which would read as an empty message.
static STDIN_CLOSED: AtomicBool = AtomicBool::new(false);

extern "C" fn note_standard_fds() {
    // SAFETY: fcntl(F_GETFD) takes no pointer and only reads the descriptor table; -1 (EBADF):
    // the descriptor is not open.
    let closed = |fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1;
    STDOUT_CLOSED.store(closed(libc::STDOUT_FILENO), Ordering::Relaxed);
    STDIN_CLOSED.store(closed(libc::STDIN_FILENO), Ordering::Relaxed);
}

/// The loader calls each function in `.init_array` once, before `main`, with no thread yet;
/// ours only reads a descriptor's flags and stores an atomic.
#[used]
#[unsafe(link_section = ".init_array")]
static NOTE_STANDARD_FDS: extern "C" fn() = note_standard_fds;

/// Fails if stdout was closed when the process started. A binary that prints what it receives
/// calls it before it takes anything, so that nothing is taken (from a queue, a pipe, a peer
/// told it was read) only to be lost.
pub fn check_stdout() -> anyhow::Result<()> {
    // Keeps the constructor linked in with whatever uses the check.
    std::hint::black_box(&NOTE_STANDARD_FDS);
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        anyhow::bail!(
            "stdout is closed (started with >&-): what we receive could not be printed and \
             would be lost, so nothing is taken; give it somewhere to go (a file, a pipe, or \
             /dev/null to discard it on purpose)"
        );
    }
    Ok(())
}

/// Fails if stdin was closed when the process started: a message read from it would be empty
/// where nobody gave an empty one.
pub fn check_stdin() -> anyhow::Result<()> {
    std::hint::black_box(&NOTE_STANDARD_FDS);
    if STDIN_CLOSED.load(Ordering::Relaxed) {
        anyhow::bail!(
            "read the message from stdin: stdin is closed (started with <&-), which would read \
             as an empty message; give it one (a pipe, a file, or </dev/null for an empty one)"
        );
    }
    Ok(())
}

/// Prints a received payload the way the blog's readers `echo` it: the bytes as they are, then
/// one newline, in one `write(2)` when the kernel takes it whole (a line is never split by
/// another process's output on a shared terminal or log).
pub fn print_payload(payload: &[u8]) -> anyhow::Result<()> {
    let mut line = Vec::with_capacity(payload.len() + 1);
    line.extend_from_slice(payload);
    line.push(b'\n');
    let mut stdout = io::stdout().lock();
    // Flush first: nothing else is printed on stdout, but a caller's earlier `print!` must not
    // come after the payload. Then one write of the whole line through the raw descriptor, past
    // the line buffer that would split it at its last newline.
    stdout
        .flush()
        .and_then(|()| write_all_fd(&line))
        .map_err(|err| match err.kind() {
            io::ErrorKind::BrokenPipe => anyhow::Error::new(StdoutClosed),
            _ => anyhow::Error::new(err).context("write to stdout"),
        })
}

/// [`print_payload`] for a server, which prints message after message: there a stdout whose
/// reader went away is a failure, not the end of a `reader | head -c1`. The message `what` names
/// was taken from its sender, who may already have been told it was read, and is printed
/// nowhere: the error says so (and `what` should carry it, if small, so it is not lost).
pub fn print_taken(payload: &[u8], what: fmt::Arguments<'_>) -> anyhow::Result<()> {
    print_payload(payload).map_err(|err| match err.is::<StdoutClosed>() {
        true => anyhow::anyhow!(
            "{what} was taken but not printed: stdout was closed (whoever read it went away); \
             serve with a stdout that is read to the end"
        ),
        false => err,
    })
}

/// `write(2)` to fd 1 until all of `bytes` went out.
fn write_all_fd(mut bytes: &[u8]) -> io::Result<()> {
    let stdout = io::stdout();
    let fd = stdout.as_fd();
    while !bytes.is_empty() {
        match nix::unistd::write(fd, bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(errno) => return Err(errno.into()),
        }
    }
    Ok(())
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

/// The exit code of a run a stop signal ended: 128+N, as a shell reports a process signal N
/// killed.
pub fn stopped_exit_code() -> ExitCode {
    let signal = cleanup::stop_signal().unwrap_or(15);
    ExitCode::from(u8::try_from(128 + signal).unwrap_or(143))
}

/// Runs a binary's `run`, removing what it created and reporting its error as one line.
///
/// Exit codes: 0 success (also when stdout was closed early, as in `reader | head -c1`),
/// 1 failure, 2 usage (from clap, before this runs), 124 a wait timed out, 128+N a signal.
pub fn main(run: impl FnOnce() -> anyhow::Result<()>) -> ExitCode {
    if let Err(err) = cleanup::install_signal_handlers() {
        stderr_line(format_args!("error: {err:#}"));
        return ExitCode::FAILURE;
    }
    // `run`'s cleanup guards have dropped by the time it returns: what a failed run created is
    // gone before the error is printed.
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.is::<StdoutClosed>() => ExitCode::SUCCESS,
        Err(err) if err.chain().any(|cause| cause.is::<cleanup::Interrupted>()) => {
            stderr_line(format_args!("{err:#}: removed what this process created"));
            stopped_exit_code()
        }
        Err(err) => {
            stderr_line(format_args!("error: {err:#}"));
            if err.chain().any(|cause| cause.is::<TimedOut>()) {
                ExitCode::from(EXIT_TIMED_OUT)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
