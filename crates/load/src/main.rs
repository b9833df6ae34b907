//! `ipc-load`: load runs through the same mechanism libraries the ten examples use, between
//! real processes: a writer sends N messages stamped with their sequence numbers (framed on a
//! byte stream), a reader checks that each arrived exactly once, intact and in order, and prints
//! one summary line (`received 100000 of 100000 messages (4800000 bytes): 0 lost, 0 duplicated,
//! 0 reordered, 0 corrupted`). `scripts/reliability.sh` drives it.
//!
//! The examples stay the blog's: one message, one reader, one writer. Everything a load run
//! needs beyond that (counts, several writers, sequence checks, loss tolerance) lives here.
//!
//! ```text
//! ipc-load dgram-reader udg:///tmp/x.sock --count 100000 &
//! ipc-load dgram-writer udg:///tmp/x.sock --count 100000
//! ```

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod dgram_load;
mod fifo_load;
mod mq_load;
mod shm_load;
mod stream_load;

/// Load runs over the examples' mechanisms: many stamped messages, checked on arrival.
#[derive(Parser, Debug)]
#[command(name = "ipc-load", version)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

/// One side of one mechanism's load run.
#[derive(Subcommand, Debug)]
enum Command {
    #[command(flatten)]
    Dgram(dgram_load::Command),
    #[command(flatten)]
    Stream(stream_load::Command),
    #[command(flatten)]
    Fifo(fifo_load::Command),
    #[command(flatten)]
    Shm(shm_load::Command),
    #[command(flatten)]
    Mq(mq_load::Command),
}

fn main() -> ExitCode {
    let args = Args::parse();
    // A reader's one line on stdout is its result: refused before anything is taken when it
    // would go to the /dev/null Rust's runtime puts on a closed stdout.
    let reads = matches!(
        &args.command,
        Command::Dgram(dgram_load::Command::Reader(_))
            | Command::Stream(stream_load::Command::Reader(_))
            | Command::Fifo(fifo_load::Command::Reader(_))
            | Command::Shm(shm_load::Command::Reader(_))
            | Command::Mq(mq_load::Command::Reader(_))
    );
    ipc_common::runtime::report::main(|| {
        if reads {
            ipc_common::runtime::report::check_stdout()?;
        }
        dispatch(args.command)
    })
}

fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Dgram(command) => dgram_load::run(command),
        Command::Stream(command) => stream_load::run(command),
        Command::Fifo(command) => fifo_load::run(command),
        Command::Shm(command) => shm_load::run(command),
        Command::Mq(command) => mq_load::run(command),
    }
}
