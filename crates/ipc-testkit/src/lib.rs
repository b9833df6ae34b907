//! Helpers for the integration tests of the mechanism crates: spawn the real binaries with a
//! timeout on every wait, learn readiness from their stderr instead of sleeping, and check that a
//! test left no SysV object behind.
//!
//! Every child is killed when its [`Proc`] drops, so a failing or hung test never leaves a
//! process blocking CI.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use nix::sys::signal::Signal;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use wait_timeout::ChildExt;

pub mod attack;
pub mod contract;
pub mod other_user;
pub mod php;
pub mod scenarios;

/// How long any single wait in a test may take before the test fails. Generous, because CI
/// machines are slow; a correct run takes milliseconds.
pub const STEP: Duration = Duration::from_secs(20);

/// A running binary whose stdout is collected and whose stderr is read line by line.
#[derive(Debug)]
pub struct Proc {
    label: String,
    child: Child,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr_lines: Receiver<String>,
    stderr_seen: Vec<String>,
}

/// Says that a test skipped and why: on stdout (shown with `--nocapture`) and, when the
/// environment names a file in `TEST_SKIP_LOG` (scripts/test.sh does), appended there too, so
/// the suite's summary lists every kind of skip even though cargo captures test output.
pub fn skipped(line: &str) {
    println!("{line}");
    if let Some(path) = std::env::var_os("TEST_SKIP_LOG") {
        use std::io::Write;
        if let Ok(mut log) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
        {
            let _ = writeln!(log, "{line}");
        }
    }
}

/// What a spawned process reads on stdin.
enum Input {
    Null,
    /// These bytes, then end of file.
    Feed(Vec<u8>),
    /// A pipe the caller keeps.
    Keep,
}

/// How a [`Proc`] ended.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Finished {
    /// Panics with both streams shown unless the process exited 0.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.status.success(),
            "expected success, got {}: {self:?}",
            self.status
        );
        self
    }

    /// Panics unless the process exited with `code` and said `needle` on stderr.
    #[track_caller]
    pub fn assert_failure(&self, code: i32, needle: &str) -> &Self {
        assert_eq!(self.status.code(), Some(code), "unexpected exit: {self:?}");
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}: {self:?}"
        );
        self
    }

    /// Panics unless stdout is exactly `expected`.
    #[track_caller]
    pub fn assert_stdout(&self, expected: &[u8]) -> &Self {
        assert!(
            self.stdout == expected,
            "stdout differs:\n  expected {} bytes: {:?}\n  got      {} bytes: {:?}\n  stderr: {}",
            expected.len(),
            preview(expected),
            self.stdout.len(),
            preview(&self.stdout),
            self.stderr
        );
        self
    }
}

fn preview(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(200)];
    format!(
        "{}{}",
        String::from_utf8_lossy(shown),
        if bytes.len() > 200 { "…" } else { "" }
    )
}

impl Proc {
    /// Spawns `command` with stdout and stderr piped; stdin is null unless `stdin` is given.
    #[track_caller]
    pub fn spawn(label: &str, command: &mut Command) -> Proc {
        Proc::spawn_with_stdin(label, command, None)
    }

    /// Spawns `command` and feeds it `stdin`, then closes it.
    #[track_caller]
    pub fn spawn_with_stdin(label: &str, command: &mut Command, stdin: Option<Vec<u8>>) -> Proc {
        command.stderr(Stdio::piped());
        Proc::spawn_inner(label, command, stdin.map_or(Input::Null, Input::Feed))
    }

    /// Spawns `command` with stdin a pipe the caller writes ([`Proc::take_stdin`]) as slowly as
    /// it likes; `stderr_closed` as in [`Proc::spawn_stderr_closed`].
    #[track_caller]
    pub fn spawn_piped_stdin(label: &str, command: &mut Command, stderr_closed: bool) -> Proc {
        if stderr_closed {
            let (read_end, write_end) = nix::unistd::pipe().expect("pipe");
            drop(read_end);
            command.stderr(Stdio::from(write_end));
        } else {
            command.stderr(Stdio::piped());
        }
        Proc::spawn_inner(label, command, Input::Keep)
    }

    /// The stdin pipe of a process from [`Proc::spawn_piped_stdin`].
    pub fn take_stdin(&mut self) -> Option<std::process::ChildStdin> {
        self.child.stdin.take()
    }

    /// Spawns `command` with stderr a pipe nobody reads any more (its read end closed before
    /// the start): every write to stderr fails with `EPIPE`, as under a log collector that died.
    #[track_caller]
    pub fn spawn_stderr_closed(label: &str, command: &mut Command, stdin: Option<Vec<u8>>) -> Proc {
        let (read_end, write_end) = nix::unistd::pipe().expect("pipe");
        drop(read_end);
        command.stderr(Stdio::from(write_end));
        Proc::spawn_inner(label, command, stdin.map_or(Input::Null, Input::Feed))
    }

    #[track_caller]
    fn spawn_inner(label: &str, command: &mut Command, stdin: Input) -> Proc {
        command
            .stdin(if matches!(stdin, Input::Null) {
                Stdio::null()
            } else {
                Stdio::piped()
            })
            .stdout(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|err| panic!("spawn {label} ({command:?}): {err}"));
        if let Input::Feed(bytes) = stdin {
            let mut pipe = child.stdin.take().expect("piped stdin");
            std::thread::spawn(move || {
                // The child may exit without reading it all; that shows in its own result.
                let _ = std::io::Write::write_all(&mut pipe, &bytes);
            });
        }
        let mut out = child.stdout.take().expect("piped stdout");
        let stdout = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = out.read_to_end(&mut bytes);
            bytes
        });
        let (tx, stderr_lines) = channel();
        // Without a piped stderr (closed on purpose) no line ever comes; the sender just drops.
        let Some(err) = child.stderr.take() else {
            return Proc {
                label: label.to_string(),
                child,
                stdout: Some(stdout),
                stderr_lines,
                stderr_seen: Vec::new(),
            };
        };
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
        Proc {
            label: label.to_string(),
            child,
            stdout: Some(stdout),
            stderr_lines,
            stderr_seen: Vec::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has not exited yet.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits (at most [`STEP`]) for a stderr line containing `needle` and returns it: how a test
    /// learns that a reader is listening, and on which port.
    #[track_caller]
    pub fn wait_for_stderr(&mut self, needle: &str) -> String {
        if let Some(line) = self.stderr_seen.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        let until = Instant::now() + STEP;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.stderr_lines.recv_timeout(left) {
                Ok(line) => {
                    self.stderr_seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{}: no stderr line with {needle:?} within {STEP:?}; saw {:?}",
                    self.label, self.stderr_seen
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "{}: exited before saying {needle:?}; stderr {:?}, status {:?}",
                    self.label,
                    self.stderr_seen,
                    self.child.wait()
                ),
            }
        }
    }

    /// Waits for a socket reader's `listening on URL` line and returns the URL: the address it
    /// really bound (port 0 becomes the kernel's choice).
    #[track_caller]
    pub fn listening_url(&mut self) -> String {
        let line = self.wait_for_stderr("listening on ");
        let at =
            line.find("listening on ").expect("the line has the marker") + "listening on ".len();
        line[at..].trim().to_string()
    }

    /// Sends `signal` to the process.
    #[track_caller]
    pub fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits i32"));
        kill(pid, signal).unwrap_or_else(|err| panic!("kill -{signal} {}: {err}", self.label));
    }

    /// Waits (at most [`STEP`]) for the process to exit and collects what it printed.
    #[track_caller]
    pub fn finish(mut self) -> Finished {
        let status = match self.child.wait_timeout(STEP).expect("wait for child") {
            Some(status) => status,
            None => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let seen: Vec<String> = self
                    .stderr_seen
                    .drain(..)
                    .chain(self.stderr_lines.try_iter())
                    .collect();
                panic!(
                    "{} did not exit within {STEP:?}; its stderr: {seen:?}",
                    self.label
                );
            }
        };
        let stdout = self
            .stdout
            .take()
            .expect("joined once")
            .join()
            .expect("stdout thread");
        let mut lines = std::mem::take(&mut self.stderr_seen);
        lines.extend(self.stderr_lines.try_iter());
        // The stderr thread may still be draining the last lines after exit; wait for its end.
        while let Ok(line) = self.stderr_lines.recv_timeout(STEP) {
            lines.push(line);
        }
        Finished {
            status,
            stdout,
            stderr: lines.join("\n"),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A command for one of our binaries (`env!("CARGO_BIN_EXE_...")`), with the caller's `IPC_*`
/// settings removed so that only the test's arguments decide what it does.
pub fn ours(binary: &str) -> Command {
    let mut command = Command::new(binary);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("IPC_") {
            command.env_remove(name);
        }
    }
    command
}

/// Panics unless `binary --version` starts with `name` and a usage error (exit 2) shows
/// `Usage: name`: a binary names itself, not its package.
#[track_caller]
pub fn assert_names_itself(binary: &str, name: &str) {
    let version = ours(binary)
        .arg("--version")
        .output()
        .expect("run --version");
    assert!(
        String::from_utf8_lossy(&version.stdout).starts_with(&format!("{name} ")),
        "{version:?}"
    );
    let usage = ours(binary)
        .arg("--no-such-option")
        .output()
        .expect("run with a wrong option");
    assert_eq!(usage.status.code(), Some(2), "{usage:?}");
    assert!(
        String::from_utf8_lossy(&usage.stderr).contains(&format!("Usage: {name}")),
        "{usage:?}"
    );
}

/// `binary` started under `umask` (octal digits, through `sh -c 'umask ...; exec'`): how a test
/// shows that a created object gets exactly `--mode`, whatever the umask.
pub fn under_umask(umask: &str, binary: &str) -> Command {
    let mut command = ours("sh");
    command
        .args(["-c", &format!("umask {umask} && exec \"$0\" \"$@\"")])
        .arg(binary);
    command
}

/// Adds `args` to `command`, and `--timeout 5` unless they give one: no child of a test waits
/// without a bound.
pub fn bounded(mut command: Command, args: &[&str]) -> Command {
    if !args.contains(&"--timeout") {
        command.args(["--timeout", "5"]);
    }
    command.args(args);
    command
}

/// Runs `command` to completion (stdin from `stdin`), with the [`STEP`] timeout.
#[track_caller]
pub fn run(label: &str, command: &mut Command, stdin: Option<Vec<u8>>) -> Finished {
    Proc::spawn_with_stdin(label, command, stdin).finish()
}

/// The port in a readiness line such as `listening on udp://127.0.0.1:40123`.
#[track_caller]
pub fn port_in(line: &str) -> u16 {
    line.rsplit(':')
        .next()
        .and_then(|tail| tail.trim().parse().ok())
        .unwrap_or_else(|| panic!("no port at the end of {line:?}"))
}

/// A private directory for one test's socket paths, FIFOs and key files. Kept short, because
/// `sun_path` holds 107 bytes.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ipct-")
        .tempdir_in("/tmp")
        .expect("create a temp dir in /tmp")
}

/// Where a test keeps its own `ftok(3)` key file: `dir/key`, created empty.
pub fn key_file(dir: &Path) -> PathBuf {
    let path = dir.join("key");
    std::fs::write(&path, b"").expect("create the key file");
    path
}

/// The SysV objects (`shm`, `msg` or `sem`) that exist now with `key`, from `/proc/sysvipc`.
pub fn sysv_objects_with_key(key: ipc_common::sysv::Key) -> Vec<String> {
    let mut found = Vec::new();
    for kind in ["shm", "msg", "sem"] {
        let table = std::fs::read_to_string(format!("/proc/sysvipc/{kind}")).unwrap_or_default();
        for line in table.lines().skip(1) {
            let first = line.split_whitespace().next().unwrap_or("");
            if first.parse::<i32>().ok() == Some(key.0) {
                found.push(format!("{kind}: {line}"));
            }
        }
    }
    found
}

/// Panics if any SysV object keyed on `key_file` (with project id `proj`) still exists: the test
/// would leak it. Never removes anything itself.
#[track_caller]
pub fn assert_no_sysv_objects(key_file: &Path, proj: u8) {
    let key = ipc_common::sysv::ftok(key_file, proj).expect("ftok the test's key file");
    let left = sysv_objects_with_key(key);
    assert!(
        left.is_empty(),
        "SysV objects with key {key} left behind: {left:#?}"
    );
}
