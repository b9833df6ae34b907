//! The options every binary shares. Each binary's `Args` flattens the groups it needs, so the
//! flags, their help text and their environment variables are spelled the same everywhere.

use std::ffi::OsString;
use std::fmt;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{Context, bail};
use clap::Args;

use crate::runtime::report;
use crate::runtime::trust::TrustArgs;
use crate::runtime::wait::{Deadline, Timeout};

/// Rejects what clap cannot check itself (options that do not fit together) with clap's usage
/// error: `error: ...`, the usage line, exit 2.
pub fn usage_error<C: clap::CommandFactory>(message: impl fmt::Display) -> ! {
    C::command()
        .error(clap::error::ErrorKind::ArgumentConflict, message)
        .exit()
}

/// The `--help` headings every binary shares, after its own (the blog's) options.
pub mod heading {
    /// Who may use what a run creates, and whose objects it uses.
    pub const PERMISSIONS: &str = "Permissions and trust";
    /// How PHP's values are written or printed.
    pub const PHP_VALUES: &str = "PHP values";
    /// Waiting and output.
    pub const RUN: &str = "Running";
}

/// The environment variables every binary reads, for the end of its `--help` (`after_help`);
/// a binary adds its own. The options themselves do not repeat them (`hide_env`).
pub const ENVIRONMENT: &str = "Environment (each sets the option of the same name; the command \
line wins):\n  IPC_TIMEOUT, IPC_QUIET, IPC_MODE, IPC_TRUST_UID, IPC_MESSAGE (the writers' \
--message)";

/// Options of every binary.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = heading::RUN)]
pub struct CommonArgs {
    /// Give up any wait after SECS seconds in total (0 waits forever).
    #[arg(
        long,
        value_name = "SECS",
        default_value = "10",
        env = "IPC_TIMEOUT",
        hide_env = true
    )]
    pub timeout: Timeout,

    /// Print nothing but errors on stderr.
    // Falsey parsing: IPC_QUIET=1/yes/true quiets, IPC_QUIET=0/no/false or empty does not.
    #[arg(
        short,
        long,
        env = "IPC_QUIET",
        hide_env = true,
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub quiet: bool,

    #[command(flatten, next_help_heading = heading::PERMISSIONS)]
    pub trust: TrustArgs,
}

impl CommonArgs {
    /// Applies `--trust-uid`, and starts the clock that `--timeout` bounds; its progress lines
    /// go to stderr unless `--quiet`.
    pub fn start(&self) -> Deadline {
        self.trust.apply();
        let deadline = Deadline::after(self.timeout);
        if self.quiet {
            deadline
        } else {
            deadline.reporting(report::stderr_line)
        }
    }
}

/// The payload options of every sending side.
#[derive(Args, Clone, Debug)]
pub struct MessageArgs {
    /// The message to send (any bytes the shell can pass, also starting with `-`) [env:
    /// IPC_MESSAGE] [default: the blog's message].
    // IPC_MESSAGE is read by `payload`, not by clap: an environment default must not conflict
    // with a --message-file typed on the command line.
    #[arg(
        short,
        long,
        value_name = "TEXT",
        allow_hyphen_values = true,
        conflicts_with = "message_file"
    )]
    pub message: Option<OsString>,

    /// Send the contents of PATH instead (`-` reads stdin); binary-safe. Reading it is bounded
    /// by --timeout and by the largest message the mechanism carries.
    #[arg(long, value_name = "PATH")]
    pub message_file: Option<PathBuf>,
}

/// The environment variable that gives the message when neither option does.
pub const MESSAGE_ENV: &str = "IPC_MESSAGE";

impl MessageArgs {
    /// The bytes to send: `--message`, else `--message-file`, else `$IPC_MESSAGE`, else
    /// `default` (the blog's message). A message over `limit` bytes is refused, and reading the
    /// file or stdin stops there and at `deadline`: `--message-file /dev/zero` or a pipe that
    /// never ends cannot hold the run.
    pub fn payload(
        &self,
        default: &str,
        limit: MessageLimit,
        deadline: &Deadline,
    ) -> anyhow::Result<Vec<u8>> {
        let bytes = if let Some(text) = &self.message {
            text.clone().into_vec()
        } else if let Some(path) = &self.message_file {
            if path.as_os_str() == "-" {
                crate::runtime::report::check_stdin()?;
                input::read_bounded(std::io::stdin().as_fd(), &limit, deadline, "stdin")?
            } else {
                let file = input::open(path)
                    .with_context(|| format!("read the message from {}", path.display()))?;
                input::read_bounded(file.as_fd(), &limit, deadline, &path.display().to_string())?
            }
        } else if let Some(text) = std::env::var_os(MESSAGE_ENV) {
            text.into_vec()
        } else {
            default.as_bytes().to_vec()
        };
        limit.check(bytes.len())?;
        Ok(bytes)
    }
}

/// The largest message a mechanism carries, and why, for the error that refuses a longer one.
#[derive(Clone, Debug)]
pub struct MessageLimit {
    pub bytes: usize,
    /// Why there is a limit ("a UDP datagram over IPv4 carries at most 65507 bytes").
    pub why: std::borrow::Cow<'static, str>,
}

impl MessageLimit {
    /// What a writer that holds the message in memory accepts when the mechanism itself has no
    /// limit (streams, FIFOs).
    pub const IN_MEMORY: MessageLimit = MessageLimit {
        bytes: 1 << 30,
        why: std::borrow::Cow::Borrowed("the writer holds the message in memory, up to 1 GiB"),
    };

    fn check(&self, len: usize) -> anyhow::Result<()> {
        if len > self.bytes {
            bail!(
                "the message is over {} bytes, the most this can send ({}): send less",
                self.bytes,
                self.why
            );
        }
        Ok(())
    }
}

/// Reading the message from a file or stdin, bounded in size and time.
mod input {
    use std::fs::File;
    use std::os::fd::BorrowedFd;
    use std::os::unix::fs::OpenOptionsExt;
    use std::path::Path;

    use anyhow::Context;
    use nix::errno::Errno;
    use nix::poll::PollFlags;

    use super::MessageLimit;
    use crate::runtime::wait::{self, Deadline};

    /// Opens without blocking: a FIFO given as the message file opens at once instead of
    /// waiting for a writer outside the deadline; the reads below wait with `poll(2)`.
    pub(super) fn open(path: &Path) -> std::io::Result<File> {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
    }

    /// Reads `fd` to its end, refusing more than `limit` bytes (it reads one more to know) and
    /// waiting no longer than `deadline`.
    pub(super) fn read_bounded(
        fd: BorrowedFd<'_>,
        limit: &MessageLimit,
        deadline: &Deadline,
        what: &str,
    ) -> anyhow::Result<Vec<u8>> {
        let cap = limit.bytes.saturating_add(1);
        let mut bytes = Vec::new();
        let mut chunk = vec![0; 64 << 10];
        loop {
            let room = (cap - bytes.len()).min(chunk.len());
            if room == 0 {
                return Ok(bytes); // over the limit: the caller's check says so
            }
            // poll first, so a pipe with nothing in it yet (`sleep 4 | writer`) is waited for
            // within the deadline, whether or not the descriptor is nonblocking.
            wait::wait_fd(
                fd,
                PollFlags::POLLIN,
                deadline,
                format_args!("the message on {what}"),
            )?;
            match nix::unistd::read(fd, &mut chunk[..room]) {
                Ok(0) => return Ok(bytes),
                Ok(n) => bytes.extend_from_slice(&chunk[..n]),
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(errno) => {
                    return Err(errno).with_context(|| format!("read the message from {what}"));
                }
            }
        }
    }
}

/// `--mode` for what a process creates (socket file, FIFO, SysV object).
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = heading::PERMISSIONS)]
pub struct ModeArgs {
    /// Permission bits, in octal, for what this process creates; the default admits only the
    /// owner (the blog used 0666 for SysV objects and 0644 for files).
    #[arg(
        long,
        value_name = "OCTAL",
        default_value = "0600",
        env = "IPC_MODE",
        hide_env = true
    )]
    pub mode: Mode,
}

/// Permission bits parsed from octal (`600`, `0600` or `0o600`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mode(pub u32);

impl FromStr for Mode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let digits = text.strip_prefix("0o").unwrap_or(text);
        match u32::from_str_radix(digits, 8) {
            Ok(bits) if bits <= 0o777 => Ok(Mode(bits)),
            _ => Err(format!(
                "`{text}` is not a permission mode: give octal digits from 0 to 0777, e.g. 0600"
            )),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

/// Parses a SysV `ftok(3)` project id: one byte, given as a character (`T`) or a number (`84`).
pub fn parse_proj_id(text: &str) -> Result<u8, String> {
    match text.as_bytes() {
        [byte] if !byte.is_ascii_digit() => Ok(*byte),
        _ => match text.parse::<u8>() {
            Ok(0) | Err(_) => Err(format!(
                "`{text}` is not a project id: give one character (as PHP's ftok does, e.g. T) or 1-255"
            )),
            Ok(n) => Ok(n),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_octal() {
        assert_eq!("0600".parse(), Ok(Mode(0o600)));
        assert_eq!("666".parse(), Ok(Mode(0o666)));
        assert_eq!("0o644".parse(), Ok(Mode(0o644)));
        assert!("0800".parse::<Mode>().is_err());
        assert!("01777".parse::<Mode>().is_err());
        assert_eq!(Mode(0o600).to_string(), "0600");
    }

    #[test]
    fn project_ids_are_one_byte() {
        assert_eq!(parse_proj_id("T"), Ok(b'T'));
        assert_eq!(parse_proj_id("7"), Ok(7));
        assert_eq!(parse_proj_id("84"), Ok(84));
        assert!(parse_proj_id("0").is_err());
        assert!(parse_proj_id("TT").is_err());
        assert!(parse_proj_id("256").is_err());
    }
}
