//! `fifo-reader`: the blog's named-pipe receiver (`fopen($pipe, 'r')`, `fread` to end of file,
//! `echo`): prints what a writer sends through a FIFO.
//!
//! Syscalls as strace shows them: `mknodat(S_IFIFO)`, `openat(O_PATH)` and
//! `chmod("/proc/self/fd/N")` (only if the FIFO is missing: exactly `--mode`),
//! `openat(O_RDONLY|O_NONBLOCK)`, `statx` (the owner check), `poll(POLLIN)` until a writer comes,
//! `read` until it returns 0 (`poll` while the pipe is empty), `write(1, ...)`, `close`, `unlink`
//! (only if this run created the FIFO).
//!
//! ```text
//! cargo run -p fifo --bin fifo-reader
//! cargo run -p fifo --bin fifo-writer
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ipc_common::runtime::cli::{CommonArgs, ENVIRONMENT, ModeArgs};
use ipc_common::runtime::report;
use ipc_common::say;

/// The command line; each field's doc comment is its `--help` text.
#[derive(Parser, Debug)]
#[command(
    name = "fifo-reader",
    version,
    about = "The blog's named-pipe reader: prints what a writer sends through a FIFO (default /tmp/ipc-named-pipe)",
    long_about = "Receives what a writer sends through a named pipe and prints it: the blog's \
        named-pipe receiver. Creates the FIFO (default /tmp/ipc-named-pipe, mode 0600) if it is \
        missing and removes it afterwards if it created it; waits up to --timeout (default 10 s) \
        for a writer, then reads to end of file.",
    after_help = format!("{ENVIRONMENT}\n  IPC_FIFO_PATH (PATH)")
)]
struct Args {
    /// Path of the FIFO; created if missing (an existing FIFO is used and left in place).
    #[arg(value_name = "PATH", env = "IPC_FIFO_PATH", hide_env = true, default_value = fifo::DEFAULT_PATH)]
    path: PathBuf,

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
    report::check_stdout()?; // before anything is taken: nowhere to print it
    let path = &args.path;

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
    let file = fifo::open_read_end(path)?;
    say!(deadline, "waiting for a writer on {}", path.display());
    fifo::wait_for_writer(&file, path, &deadline)?;
    let mut payload = Vec::new();
    fifo::read_to_end(&file, &mut payload, path, &deadline)?;
    say!(
        deadline,
        "read {} bytes from {}",
        payload.len(),
        path.display()
    );
    report::print_payload(&payload)?;

    drop(file); // close(2)
    if let Some(guard) = created {
        guard.remove()?; // unlink(2)
        say!(deadline, "removed FIFO {}", path.display());
    }
    Ok(())
}
