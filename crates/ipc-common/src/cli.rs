//! The options every binary shares. Each binary's `Args` flattens the groups it needs, so the
//! flags, their help text and their environment variables are spelled the same everywhere.

use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::Context;
use clap::Args;

use crate::report;
use crate::trust::TrustArgs;
use crate::wait::{Deadline, Timeout};

/// Options of every binary.
#[derive(Args, Clone, Debug)]
pub struct CommonArgs {
    /// Give up any wait after SECS seconds in total (0 waits forever).
    #[arg(long, value_name = "SECS", default_value = "10", env = "IPC_TIMEOUT")]
    pub timeout: Timeout,

    /// Print nothing but errors on stderr.
    #[arg(short, long, env = "IPC_QUIET")]
    pub quiet: bool,

    #[command(flatten)]
    pub trust: TrustArgs,
}

impl CommonArgs {
    /// Applies `--quiet` and `--trust-uid`, and starts the clock that `--timeout` bounds.
    pub fn start(&self) -> Deadline {
        report::set_quiet(self.quiet);
        self.trust.apply();
        Deadline::after(self.timeout)
    }
}

/// The payload options of every sending side.
#[derive(Args, Clone, Debug)]
pub struct MessageArgs {
    /// The message to send (any bytes the shell can pass) [default: the blog's message].
    #[arg(
        short,
        long,
        value_name = "TEXT",
        env = "IPC_MESSAGE",
        conflicts_with = "message_file"
    )]
    pub message: Option<OsString>,

    /// Send the contents of PATH instead (`-` reads stdin); binary-safe.
    #[arg(long, value_name = "PATH")]
    pub message_file: Option<PathBuf>,
}

impl MessageArgs {
    /// The bytes to send: `--message`, else `--message-file`, else `default` (the blog's message).
    pub fn payload(&self, default: &str) -> anyhow::Result<Vec<u8>> {
        if let Some(text) = &self.message {
            return Ok(text.clone().into_vec());
        }
        match &self.message_file {
            None => Ok(default.as_bytes().to_vec()),
            Some(path) if path.as_os_str() == "-" => {
                let mut bytes = Vec::new();
                std::io::stdin()
                    .lock()
                    .read_to_end(&mut bytes)
                    .context("read the message from stdin")?;
                Ok(bytes)
            }
            Some(path) => std::fs::read(path)
                .with_context(|| format!("read the message from {}", path.display())),
        }
    }
}

/// `--mode` for what a process creates (socket file, FIFO, SysV object).
#[derive(Args, Clone, Debug)]
pub struct ModeArgs {
    /// Permission bits, in octal, for what this process creates; the default admits only the
    /// owner (the blog used 0666 for SysV objects and 0644 for files).
    #[arg(long, value_name = "OCTAL", default_value = "0600", env = "IPC_MODE")]
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
