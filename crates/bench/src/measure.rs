//! One measurement between two real processes, dispatched to whose code moves the bytes: this
//! process creates the mechanism's objects, starts itself again as the peer (`ipc-bench peer
//! ...`, a hidden subcommand), waits for the peer's hello through the mechanism (the readiness
//! handshake: the objects exist before the peer starts, so nothing races), runs the loop of
//! [`crate::link`] and collects the peer. The machinery is in [`crate::session`], the table of
//! mechanisms in [`crate::mechanism`]; the implementations in [`crate::ours`], [`crate::raw`]
//! and [`crate::peers`].

use std::path::Path;

use anyhow::Context;
use ipc_common::runtime::wait::{self, Deadline, Timeout};
use ipc_common::runtime::{cleanup, report};

use crate::mechanism;
use crate::plan::Spec;
use crate::session::{Ctx, Outcome, PeerArgs, Watchdog, pin_to_cpu};

/// Runs one measurement; an error names the measurement, and a wait that ran out of time is a
/// timeout (exit 124) naming it too. `quiet`: the run's `--quiet`, restored after our code ran.
pub fn measure(spec: Spec, dir: &Path, timeout: Timeout, serial: u64) -> anyhow::Result<Outcome> {
    let ctx = Ctx::new(spec, dir, timeout, serial);
    // The mechanisms print nothing of their own: the benchmark's deadlines are silent.
    mechanism::parent(&ctx).map_err(|err| {
        if ctx.deadline.expired() && !err.is::<wait::TimedOut>() {
            ctx.deadline.timed_out(format_args!("{spec} ({err:#})"))
        } else {
            err.context(format!("measure {spec}"))
        }
    })
}

/// The peer process: pins itself, connects, says hello, serves, exits. A run that outlives its
/// deadline (the measuring side vanished) removes what it created and exits 124.
pub fn peer(args: PeerArgs) -> anyhow::Result<()> {
    if let Some(cpu) = args.cpu {
        pin_to_cpu(cpu).with_context(|| format!("pin the peer to CPU {cpu}"))?;
    }
    let deadline = Deadline::after(args.timeout);
    let spec = args.spec();
    let _watchdog = Watchdog::arm(deadline, move || {
        // Not eprintln!: its panic on a failing stderr would end this thread before the exit.
        report::stderr_line(format_args!(
            "error: {}",
            deadline.timed_out(format_args!("the measuring side of {spec} (peer gave up)"))
        ));
        cleanup::run_all();
        std::process::exit(i32::from(report::EXIT_TIMED_OUT));
    });
    mechanism::peer(&args, &spec, &deadline).with_context(|| format!("peer of {spec}"))
}
