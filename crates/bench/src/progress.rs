//! The benchmark's own progress lines on stderr ("rep 2: ..."), silenced by `--quiet`. The
//! mechanisms' libraries print nothing by themselves (their waits speak only through a reporting
//! deadline, and the benchmark's deadlines are silent), so this switch concerns the benchmark
//! binary alone.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

static QUIET: AtomicBool = AtomicBool::new(false);

/// `--quiet`: set once by `main`.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// One progress line, whole, unless `--quiet`.
pub fn line(args: fmt::Arguments<'_>) {
    if !QUIET.load(Ordering::Relaxed) {
        ipc_common::runtime::report::stderr_line(args);
    }
}

/// `progress!("rep {n}: ...")`: one of the benchmark's progress lines.
#[macro_export]
macro_rules! progress {
    ($($arg:tt)*) => {
        $crate::progress::line(format_args!($($arg)*))
    };
}
