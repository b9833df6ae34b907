//! Load runs over the fifo mechanism: `ipc-load fifo-reader PATH --count N` and `ipc-load
//! fifo-writer PATH --count N`. The writer sends N sequence-stamped, length-framed copies of the
//! message (many frames per `write(2)`: a pipe is a byte stream, so batching changes nothing for
//! the reader); the reader deframes them, checks each arrived once and in order, and prints one
//! summary line. (Moved here from the fifo binaries' `--count` mode by the redesign of issue 10.)

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use clap::{Args, Subcommand};
use ipc_common::runtime::cli::{CommonArgs, MessageArgs, MessageLimit, ModeArgs};
use ipc_common::runtime::report;
use ipc_common::runtime::wait::Deadline;
use ipc_common::say;
use ipc_common::seq::{self, Deframer, SeqChecker};

/// The largest framed message the reader accepts: a corrupted length cannot make it allocate
/// more.
const MAX_FRAME: usize = 64 << 20;

/// `fifo-reader` and `fifo-writer` load runs.
#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Expect N framed messages from `ipc-load fifo-writer --count N`, check that each arrived
    /// once and in order, and print a summary line; exit 1 unless all is well.
    #[command(name = "fifo-reader")]
    Reader(ReaderArgs),
    /// Send N sequence-stamped, length-framed copies of the message through the FIFO.
    #[command(name = "fifo-writer")]
    Writer(WriterArgs),
}

#[derive(Args, Debug)]
pub(crate) struct ReaderArgs {
    /// Path of the FIFO; created if missing (an existing FIFO is used and left in place).
    #[arg(value_name = "PATH", default_value = fifo::DEFAULT_PATH)]
    path: PathBuf,

    /// How many messages to expect.
    #[arg(long, value_name = "N", value_parser = seq::parse_count)]
    count: u64,

    #[command(flatten)]
    mode: ModeArgs,

    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args, Debug)]
pub(crate) struct WriterArgs {
    /// Path of the FIFO; created if missing (an existing FIFO is used and left in place).
    #[arg(value_name = "PATH", default_value = fifo::DEFAULT_PATH)]
    path: PathBuf,

    /// How many stamped copies of the message to send.
    #[arg(long, value_name = "N", value_parser = seq::parse_count)]
    count: u64,

    #[command(flatten)]
    message: MessageArgs,

    #[command(flatten)]
    mode: ModeArgs,

    #[command(flatten)]
    common: CommonArgs,
}

pub(crate) fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Reader(args) => read(&args),
        Command::Writer(args) => write(&args),
    }
}

fn read(args: &ReaderArgs) -> anyhow::Result<()> {
    let deadline = args.common.start();
    let path = &args.path;
    let created = fifo::create_or_use(path, args.mode.mode)?;
    if created.is_some() {
        say!(
            deadline,
            "created FIFO {} (mode {})",
            path.display(),
            args.mode.mode
        );
    }
    let file = fifo::open_read_end(path)?;
    say!(deadline, "waiting for a writer on {}", path.display());
    fifo::wait_for_writer(&file, path, &deadline)?;
    check_count_run(&file, args.count, path, &deadline)?;
    drop(file);
    if let Some(guard) = created {
        guard.remove()?;
        say!(deadline, "removed FIFO {}", path.display());
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
    let mut deframer = Deframer::new(MAX_FRAME);
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
                say!(deadline, "first message arrived; receiving the rest");
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

fn write(args: &WriterArgs) -> anyhow::Result<()> {
    let deadline = args.common.start();
    let path = &args.path;
    let payload = args
        .message
        .payload(fifo::MESSAGE, MessageLimit::IN_MEMORY, &deadline)?;
    let created = fifo::create_or_use(path, args.mode.mode)?;
    if created.is_some() {
        say!(
            deadline,
            "created FIFO {} (mode {})",
            path.display(),
            args.mode.mode
        );
    }
    let file = fifo::open_write_end(path, &deadline)?;
    say!(deadline, "opened FIFO {} for writing", path.display());
    let count = args.count;
    let mut batch = Vec::with_capacity(fifo::CHUNK + seq::STAMP_LEN + 4 + payload.len());
    for n in 0..count {
        seq::frame_into(&mut batch, n, &payload);
        if batch.len() >= fifo::CHUNK || n + 1 == count {
            fifo::write_all(&file, &batch, path, &deadline)?;
            batch.clear();
        }
    }
    say!(
        deadline,
        "wrote {count} framed messages to {}",
        path.display()
    );
    // Written is not read: exit 0 only once a reader has taken every byte out of the pipe.
    fifo::wait_until_read(&file, path, &deadline)?;
    drop(file);
    if let Some(guard) = created {
        guard.remove()?;
        say!(deadline, "removed FIFO {}", path.display());
    }
    Ok(())
}
