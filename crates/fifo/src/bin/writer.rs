//! `fifo-writer`: the blog's named-pipe sender (`posix_mkfifo`, `fopen($pipe, 'w')`, `fwrite`,
//! `fclose`): sends one message through a FIFO.
//!
//! Syscalls as strace shows them: `mknodat(S_IFIFO)`, `openat(O_PATH)` and
//! `chmod("/proc/self/fd/N")` (only if the FIFO is missing), `openat(O_WRONLY|O_NONBLOCK)` retried
//! while it fails with `ENXIO` (no reader yet), `statx` (the owner check), `write` (`poll(POLLOUT)`
//! while the pipe is full), `ioctl(FIONREAD)` until the reader has read every byte, `close`,
//! `unlink` (only if this run created the FIFO).
//!
//! ```text
//! cargo run -p fifo --bin fifo-reader
//! cargo run -p fifo --bin fifo-writer
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ipc_common::runtime::cli::{CommonArgs, ENVIRONMENT, MessageArgs, MessageLimit, ModeArgs};
use ipc_common::say;

/// The command line; each field's doc comment is its `--help` text.
#[derive(Parser, Debug)]
#[command(
    name = "fifo-writer",
    version,
    about = "The blog's named-pipe writer: sends a message through a FIFO (default /tmp/ipc-named-pipe)",
    long_about = "Sends one message through a named pipe: the blog's named-pipe sender. \
        Creates the FIFO (default /tmp/ipc-named-pipe, mode 0600) if it is missing and removes \
        it afterwards if it created it; waits up to --timeout (default 10 s) for a reader; sends \
        \"Hello from Sender: Named Pipe\" unless told otherwise.",
    after_help = format!("{ENVIRONMENT}\n  IPC_FIFO_PATH (PATH)")
)]
struct Args {
    /// Path of the FIFO; created if missing (an existing FIFO is used and left in place).
    #[arg(value_name = "PATH", env = "IPC_FIFO_PATH", hide_env = true, default_value = fifo::DEFAULT_PATH)]
    path: PathBuf,

    #[command(flatten)]
    message: MessageArgs,

    #[command(flatten)]
    mode: ModeArgs,

    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    ipc_common::runtime::report::main(|| run(args))
}

fn run(args: Args) -> anyhow::Result<()> {
    let deadline = args.common.start();
    let path = &args.path;
    let payload = args
        .message
        .payload(fifo::MESSAGE, MessageLimit::IN_MEMORY, &deadline)?;

    let created = fifo::create_or_use(path, args.mode.mode)?;
    match &created {
        Some(_) => say!(
            deadline,
            "created FIFO {} (mode {})",
            path.display(),
            args.mode.mode
        ),
        None => say!(
            deadline,
            "using the existing FIFO {} (left in place: this run did not create it)",
            path.display()
        ),
    }
    let file = fifo::open_write_end(path, &deadline)?;
    say!(deadline, "opened FIFO {} for writing", path.display());
    fifo::write_all(&file, &payload, path, &deadline)?;
    say!(
        deadline,
        "wrote {} bytes to {}",
        payload.len(),
        path.display()
    );
    // Written is not read: exit 0 only once a reader has taken every byte out of the pipe.
    fifo::wait_until_read(&file, path, &deadline)?;

    drop(file); // close(2): the reader sees end of file
    if let Some(guard) = created {
        guard.remove()?; // unlink(2)
        say!(deadline, "removed FIFO {}", path.display());
    }
    Ok(())
}
