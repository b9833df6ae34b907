//! Running a reader and a writer, each under its own `strace -ff` (one trace file per thread),
//! the second started once the first says it is ready (`listening on ...`, `waiting for ...` on
//! stderr, as `scripts/run-all.sh` waits), every wait bounded.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ipc_common::runtime::cleanup;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use wait_timeout::ChildExt;

use crate::model::{Side, SideLog};

/// The Debian package that has `strace`, for the error when it is missing.
pub const STRACE_PACKAGE: &str = "strace";

/// One side's command line.
#[derive(Debug, Clone)]
pub struct SideCommand {
    /// What the titles call it (`dgram-reader`, `php dgram-uds-listener.php`).
    pub label: String,
    pub program: OsString,
    pub args: Vec<OsString>,
}

/// Which side starts first; the other starts once the first is ready or has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    ReaderFirst,
    WriterFirst,
}

/// How a pair is run.
#[derive(Debug, Clone)]
pub struct Options {
    pub strace: PathBuf,
    /// How long the first side may take to say it is ready before the second starts anyway
    /// (`None`: as long as it takes).
    pub ready_within: Option<Duration>,
    /// The most the sides may run once both are started before they are killed (`None`: no
    /// limit).
    pub limit: Option<Duration>,
    pub order: Order,
    /// `strace -s`: how much of each string to keep.
    pub string_limit: usize,
    /// Where the trace files go (a private temp dir when `None`).
    pub raw_dir: Option<PathBuf>,
}

/// How often a wait looks whether a stop signal (SIGINT, SIGTERM, SIGHUP) arrived.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// How one side ended and what it left.
#[derive(Debug)]
pub struct Outcome {
    /// `None` when it had to be killed at the limit.
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: String,
    pub log: SideLog,
}

/// `strace` on `PATH`, or `None`.
pub fn find_strace() -> Option<PathBuf> {
    find_on_path("strace")
}

/// `name` on `PATH`.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// One of our binaries: next to this executable first (cargo's target dir), then on `PATH`.
pub fn find_binary(name: &str) -> Option<PathBuf> {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(name)))
        .filter(|p| is_executable(p))
        .or_else(|| find_on_path(name))
}

/// A side running under strace.
struct Running {
    side: Side,
    label: String,
    child: Child,
    stdout: Option<JoinHandle<Vec<u8>>>,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(
        side: Side,
        command: &SideCommand,
        options: &Options,
        dir: &Path,
    ) -> anyhow::Result<Running> {
        let prefix = dir.join(side.name());
        let mut child = Command::new(&options.strace)
            .args(["-q", "-ff", "-ttt", "-T", "-yy"])
            .arg("-s")
            .arg(options.string_limit.to_string())
            .arg("-o")
            .arg(&prefix)
            .arg("--")
            .arg(&command.program)
            .args(&command.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| {
                format!("start {} under {}", command.label, options.strace.display())
            })?;
        let mut out = child.stdout.take().context("piped stdout")?;
        let stdout = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = out.read_to_end(&mut bytes);
            bytes
        });
        let err = child.stderr.take().context("piped stderr")?;
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).split(b'\n') {
                let Ok(line) = line else { break };
                if tx
                    .send(String::from_utf8_lossy(&line).into_owned())
                    .is_err()
                {
                    break;
                }
            }
        });
        Ok(Running {
            side,
            label: command.label.clone(),
            child,
            stdout: Some(stdout),
            lines,
            seen: Vec::new(),
        })
    }

    /// Waits until a stderr line says the side is ready (and returns it), or it ends, or the
    /// deadline passes, or a stop signal arrives (`None` each time).
    fn wait_ready(&mut self, deadline: Instant) -> Option<String> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || cleanup::stop_signal().is_some() {
                return None;
            }
            match self.lines.recv_timeout(left.min(SIGNAL_POLL)) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains("listening on ") || line.contains("waiting for ") {
                        return Some(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                // Stderr closed: the side ended.
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Waits for the end (until `deadline` or a stop signal, then kills the traced processes and
    /// strace).
    fn finish(mut self, deadline: Instant, dir: &Path) -> Outcome {
        let status = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let stop = left.is_zero() || cleanup::stop_signal().is_some();
            match self.child.wait_timeout(left.min(SIGNAL_POLL)) {
                Ok(Some(status)) => break Some(status),
                Ok(None) if !stop => continue,
                _ => {}
            }
            // Strace leaves its tracees running when it dies: kill them by the thread ids
            // its files name (all ours), then strace itself.
            for (tid, _) in thread_files(dir, self.side) {
                if let Ok(tid) = i32::try_from(tid) {
                    let _ = kill(Pid::from_raw(tid), Signal::SIGKILL);
                }
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
            break None;
        };
        let stdout = self
            .stdout
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let mut lines = std::mem::take(&mut self.seen);
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            lines.push(line);
        }
        let threads = thread_files(dir, self.side)
            .into_iter()
            .map(|(tid, path)| {
                let bytes = std::fs::read(&path).unwrap_or_default();
                (tid, String::from_utf8_lossy(&bytes).into_owned())
            })
            .collect();
        Outcome {
            status,
            stdout,
            stderr: lines.join("\n"),
            log: SideLog::parse(&self.label, threads),
        }
    }
}

/// The trace files `DIR/<side>.<tid>` strace wrote for one side.
fn thread_files(dir: &Path, side: Side) -> Vec<(u32, PathBuf)> {
    let prefix = format!("{}.", side.name());
    let mut files: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let tid = name.strip_prefix(&prefix)?.parse().ok()?;
            Some((tid, entry.path()))
        })
        .collect();
    files.sort();
    files
}

/// Runs the pair. `writer_for` makes the second side's command from the first side's
/// readiness line (`listening on udp://127.0.0.1:40123` tells the writer the port), so a reader
/// on port 0 works.
pub fn run_pair(
    first: SideCommand,
    second_for: impl FnOnce(Option<&str>) -> SideCommand,
    options: &Options,
) -> anyhow::Result<[Outcome; 2]> {
    let temp;
    let dir = match &options.raw_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
            // An earlier run's files would be read as this run's, and the thread ids they name
            // (gone, perhaps reused by anyone's process) killed at the limit.
            if let Some((_, old)) = [Side::Reader, Side::Writer]
                .into_iter()
                .find_map(|side| thread_files(dir, side).into_iter().next())
            {
                bail!(
                    "--raw {}: it holds an earlier run's trace files ({}); give a new or empty \
                     directory",
                    dir.display(),
                    old.display()
                );
            }
            dir.clone()
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("ipc-trace.")
                .tempdir()
                .context("create a temp dir for the trace files")?;
            temp.path().to_path_buf()
        }
    };
    let (first_side, second_side) = match options.order {
        Order::ReaderFirst => (Side::Reader, Side::Writer),
        Order::WriterFirst => (Side::Writer, Side::Reader),
    };
    let mut first = Running::start(first_side, &first, options, &dir)?;
    let ready = first.wait_ready(deadline_after(options.ready_within));
    if let Err(stop) = cleanup::check_interrupted() {
        first.finish(Instant::now(), &dir);
        return Err(stop.into());
    }
    let second_command = second_for(ready.as_deref());
    let second = match Running::start(second_side, &second_command, options, &dir) {
        Ok(second) => second,
        Err(err) => {
            first.finish(Instant::now(), &dir);
            return Err(err);
        }
    };
    let deadline = deadline_after(options.limit);
    let first = first.finish(deadline, &dir);
    let second = second.finish(deadline, &dir);
    // A stop signal ended both sides early: no picture of a cut run; the temp dir goes with
    // `temp` (what --raw named is the caller's, and stays).
    cleanup::check_interrupted()?;
    Ok(match options.order {
        Order::ReaderFirst => [first, second],
        Order::WriterFirst => [second, first],
    })
}

/// `now + wait`, or a moment far enough away to be never (no `Instant` overflow).
fn deadline_after(wait: Option<Duration>) -> Instant {
    const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    let now = Instant::now();
    now.checked_add(wait.unwrap_or(NEVER).min(NEVER))
        .or_else(|| now.checked_add(Duration::from_secs(24 * 3600)))
        .unwrap_or(now)
}

/// Why strace traced nothing, when it says so (`strace: ... Operation not permitted`).
pub fn strace_failure(outcome: &Outcome) -> Option<&str> {
    if !outcome.log.threads.is_empty() {
        return None;
    }
    outcome
        .stderr
        .lines()
        .find(|l| l.starts_with("strace: ") || l.contains("/strace: "))
}

/// The URL in a readiness line `listening on URL`.
pub fn announced_url(line: &str) -> Option<&str> {
    let at = line.find("listening on ")? + "listening on ".len();
    line[at..].split_whitespace().next()
}
