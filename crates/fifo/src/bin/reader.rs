//! `fifo-reader`: receives what a writer sends through a named pipe and prints it, as the blog's
//! named-pipe receiver does (`fopen($pipe, 'r')`, `fread` until end of file, `echo`).
//!
//! Syscalls, in order:
//! 1. `mkfifo(3)` the FIFO if it is missing (then `chmod(2)` to exactly `--mode`); an existing
//!    FIFO is used if its owner is trusted (ourselves, root or `--trust-uid`), anything else at
//!    the path is refused;
//! 2. `open(2)` with `O_RDONLY | O_NONBLOCK`, which succeeds at once;
//! 3. `poll(2)` for `POLLIN` until a writer arrives, bounded by `--timeout`;
//! 4. `read(2)` until it returns 0 (every writer closed), `poll(2)` whenever the pipe is empty;
//! 5. `close(2)`, then `unlink(2)` the FIFO, only if this process created it (the reader started
//!    first).
//!
//! stdout gets exactly the bytes received and one newline. With `--count N` it reads the
//! writer's framed, stamped messages instead and prints one summary line.
//!
//! Run the pair (either order):
//!
//! ```text
//! cargo run -p fifo --bin fifo-reader
//! cargo run -p fifo --bin fifo-writer
//! ```

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail, ensure};
use clap::Parser;
use ipc_common::cli::{CommonArgs, ModeArgs};
use ipc_common::seq::{Deframer, SeqChecker};
use ipc_common::wait::Deadline;
use ipc_common::{progress, report};

/// The command line; each field's doc comment is its `--help` text.
#[derive(Parser, Debug)]
#[command(
    name = "fifo-reader",
    version,
    about = "The blog's named-pipe reader: prints what a writer sends through a FIFO (default /tmp/ipc-named-pipe)",
    long_about = "Receives what a writer sends through a named pipe and prints it: the blog's \
        named-pipe receiver. Creates the FIFO (default /tmp/ipc-named-pipe, mode 0600) if it is \
        missing and removes it afterwards if it created it; waits up to --timeout (default 10 s) \
        for a writer, then reads to end of file."
)]
struct Args {
    /// Path of the FIFO; created if missing (an existing FIFO is used and left in place).
    #[arg(value_name = "PATH", env = "IPC_FIFO", default_value = fifo::DEFAULT_PATH)]
    path: PathBuf,

    /// Expect N framed messages from `fifo-writer --count N`, check that each arrived once and in
    /// order, and print a summary line instead of the bytes; exit 1 unless all is well.
    #[arg(long, value_name = "N", value_parser = ipc_common::seq::parse_count)]
    count: Option<u64>,

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

    let created = fifo::create_or_use(path, args.mode.mode)?;
    let file = fifo::open_read_end(path)?;
    progress!("waiting for a writer on {}", path.display());
    fifo::wait_for_writer(&file, path, &deadline)?;

    match args.count {
        None => {
            let mut payload = Vec::new();
            fifo::read_to_end(&file, &mut payload, path, &deadline)?;
            progress!("read {} bytes from {}", payload.len(), path.display());
            report::print_payload(&payload)?;
        }
        Some(count) => check_count_run(&file, count, path, &deadline)?,
    }

    drop(file);
    if let Some(guard) = created {
        guard.remove()?;
        progress!("removed FIFO {}", path.display());
    }
    Ok(())
}

/// Deframes and checks `count` stamped messages and prints the summary line; anything short of
/// perfect (lost, duplicated, reordered, cut off) is an error after that.
fn check_count_run(
    file: &File,
    count: u64,
    path: &Path,
    deadline: &Deadline,
) -> anyhow::Result<()> {
    let mut checker = SeqChecker::new(count, None);
    let mut deframer = Deframer::new(fifo::MAX_FRAME);
    let mut chunk = vec![0; fifo::CHUNK];
    let mut started = false;
    loop {
        let read = fifo::read_chunk(file, &mut chunk, path, deadline)?;
        if read == 0 {
            break;
        }
        deframer.push(&chunk[..read]);
        while let Some(message) = deframer
            .next_message()
            .with_context(|| format!("read a framed message from FIFO {}", path.display()))?
        {
            checker
                .observe(message)
                .with_context(|| format!("check a message from FIFO {}", path.display()))?;
            if !std::mem::replace(&mut started, true) {
                progress!("first message arrived; receiving the rest");
            }
        }
    }
    let summary = checker.to_string();
    report::print_payload(summary.as_bytes())?;
    let leftover = deframer.leftover();
    if leftover > 0 {
        bail!(
            "read from FIFO {}: truncated frame: the stream ended {leftover} bytes into a message \
             (was the writer killed mid-stream?)",
            path.display()
        );
    }
    ensure!(
        checker.perfect(),
        "check {count} messages from FIFO {}: {summary}",
        path.display()
    );
    Ok(())
}
