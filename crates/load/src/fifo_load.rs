//! Load runs over the fifo mechanism: `ipc-load fifo-reader` and `ipc-load fifo-writer`.
//! (Moved here from the fifo binaries' `--count` mode by the redesign of issue 10.)

use clap::Subcommand;

/// `fifo-reader` and `fifo-writer` load runs.
#[derive(Subcommand, Debug)]
pub(crate) enum Command {}

pub(crate) fn run(command: Command) -> anyhow::Result<()> {
    match command {}
}
