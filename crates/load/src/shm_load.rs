//! Load runs over the shm mechanism: `ipc-load shm-reader` and `ipc-load shm-writer`.
//! (Moved here from the shm binaries' `--count` mode by the redesign of issue 10.)

use clap::Subcommand;

/// `shm-reader` and `shm-writer` load runs.
#[derive(Subcommand, Debug)]
pub(crate) enum Command {}

pub(crate) fn run(command: Command) -> anyhow::Result<()> {
    match command {}
}
