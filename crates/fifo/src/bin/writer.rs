//! `fifo-writer`: sends one message through a named pipe, as the blog's named-pipe sender does
//! (`posix_mkfifo`, `fopen($pipe, 'w')`, `fwrite`, `fclose`).
//!
//! Syscalls, in order:
//! 1. `mkfifo(3)` the FIFO if it is missing (then `chmod(2)` to exactly `--mode`); an existing
//!    FIFO is used if its owner is trusted (ourselves, root or `--trust-uid`), anything else at
//!    the path is refused;
//! 2. `open(2)` with `O_WRONLY | O_NONBLOCK`, retried while it fails with `ENXIO` (no reader
//!    yet), so the wait honours `--timeout`;
//! 3. `write(2)` until every byte is in the pipe, `poll(2)` for `POLLOUT` while it is full;
//! 4. `close(2)`: the reader sees end of file;
//! 5. `unlink(2)` the FIFO, only if this process created it (the writer started first).
//!
//! Whoever creates the FIFO removes it; see the `fifo` library docs for both start orders.
//!
//! Run the pair (either order):
//!
//! ```text
//! cargo run -p fifo --bin fifo-reader
//! cargo run -p fifo --bin fifo-writer
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ipc_common::cli::{CommonArgs, MessageArgs, MessageLimit, ModeArgs};
use ipc_common::{progress, seq};

/// The command line; each field's doc comment is its `--help` text.
#[derive(Parser, Debug)]
#[command(
    name = "fifo-writer",
    version,
    about = "The blog's named-pipe writer: sends a message through a FIFO (default /tmp/ipc-named-pipe)",
    long_about = "Sends one message through a named pipe: the blog's named-pipe sender. \
        Creates the FIFO (default /tmp/ipc-named-pipe, mode 0600) if it is missing and removes \
        it afterwards if it created it; waits up to --timeout (default 10 s) for a reader; sends \
        \"Hello from Sender: Named Pipe\" unless told otherwise."
)]
struct Args {
    /// Path of the FIFO; created if missing (an existing FIFO is used and left in place).
    #[arg(value_name = "PATH", env = "IPC_FIFO", default_value = fifo::DEFAULT_PATH)]
    path: PathBuf,

    /// Send N sequence-stamped, length-framed copies of the message (a load run for
    /// `fifo-reader --count N`) instead of the bare message.
    #[arg(long, value_name = "N", value_parser = ipc_common::seq::parse_count)]
    count: Option<u64>,

    #[command(flatten)]
    message: MessageArgs,

    #[command(flatten)]
    mode: ModeArgs,

    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> ExitCode {
    let args = Args::parse();
    ipc_common::report::main(|| run(args))
}

fn run(args: Args) -> anyhow::Result<()> {
    let deadline = args.common.start();
    let path = &args.path;
    let payload = args
        .message
        .payload(fifo::MESSAGE, MessageLimit::IN_MEMORY, &deadline)?;

    let created = fifo::create_or_use(path, args.mode.mode)?;
    let file = fifo::open_write_end(path, &deadline)?;
    progress!("opened FIFO {} for writing", path.display());

    match args.count {
        None => {
            fifo::write_all(&file, &payload, path, &deadline)?;
            progress!("wrote {} bytes to {}", payload.len(), path.display());
        }
        Some(count) => {
            // Many frames per write(2): a pipe is a byte stream, so batching changes nothing for
            // the reader and saves syscalls.
            let mut batch = Vec::with_capacity(fifo::CHUNK + seq::STAMP_LEN + 4 + payload.len());
            for n in 0..count {
                seq::frame_into(&mut batch, n, &payload);
                if batch.len() >= fifo::CHUNK || n + 1 == count {
                    fifo::write_all(&file, &batch, path, &deadline)?;
                    batch.clear();
                }
            }
            progress!("wrote {count} framed messages to {}", path.display());
        }
    }

    // Written is not read: exit 0 only once a reader has taken every byte out of the pipe.
    fifo::wait_until_read(&file, path, &deadline)?;
    drop(file);
    if let Some(guard) = created {
        guard.remove()?;
        progress!("removed FIFO {}", path.display());
    }
    Ok(())
}
