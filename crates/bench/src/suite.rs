//! A whole run: the plan, the measurement loops (repetitions outermost, mechanisms interleaved
//! inside, ours and raw side by side), the buffer sweep, the tools, and where it ran.

use std::path::PathBuf;
use std::time::SystemTime;

use crate::progress;
use anyhow::Context;
use ipc_common::runtime::cleanup::Cleanup;
use ipc_common::runtime::wait::Timeout;

use crate::link::Budget;
use crate::measure;
use crate::plan::{Imp, Kind, Knobs, Mech, Pin, Spec};
use crate::raw;
use crate::results::{FLOOR_SIZE, Knob, Meta, Record, Results, SIZES};
use crate::session::Outcome;
use crate::stats::Summary;
use crate::tools::{self, ToolBudget};

/// What a run measures.
#[derive(Debug)]
pub struct Plan {
    /// Where the two processes run.
    pub pin: Pin,
    pub reps: usize,
    pub kinds: Vec<Kind>,
    pub sizes: Vec<usize>,
    pub imps: Vec<Imp>,
    pub mechs: Vec<Mech>,
    pub floors: Vec<Mech>,
    pub memcpy: bool,
    pub budget: Budget,
    pub knobs: Knobs,
    pub peer_cpu: Option<usize>,
    pub sweep_reps: usize,
    pub sockbufs: Vec<usize>,
    pub pipes: Vec<usize>,
    pub tools: Option<ToolBudget>,
    /// Open loop: round trips started per second, at the smallest size.
    pub rates: Vec<u64>,
    pub notes: Vec<String>,
}

impl Plan {
    pub fn spec(&self, mech: Mech, imp: Imp, kind: Kind, size: usize, knobs: Knobs) -> Spec {
        Spec {
            mech,
            imp,
            kind,
            size,
            budget: self.budget,
            knobs,
            peer_cpu: self.peer_cpu,
        }
    }
}

/// Runs every measurement of `plan`, the repetition loop outermost, then the sweep and the
/// tools, into `results`; a failed measurement is a note there and one of the errors returned.
pub fn run(
    plan: &Plan,
    timeout: Timeout,
    results: &mut Results,
) -> anyhow::Result<Vec<anyhow::Error>> {
    let dir = private_dir()?;
    progress!("socket files and FIFOs go to {}", dir.path.display());
    let mut failures: Vec<anyhow::Error> = Vec::new();
    let mut serial = 0;
    let mut measure = |spec: Spec, rep: usize, knob: Option<Knob>, results: &mut Results| {
        serial += 1;
        match measure::measure(spec, &dir.path, timeout, serial) {
            Ok(outcome) => {
                let (latency, rate, cpu, batch_ns, tail) = match outcome {
                    Outcome::Latency {
                        mut samples,
                        cpu,
                        batch_ns,
                    } => (Summary::of(&mut samples), None, cpu, batch_ns, None),
                    Outcome::Throughput(rate, cpu) => (None, Some(rate), cpu, None, None),
                    Outcome::Open(tail, cpu) => (None, None, cpu, None, Some(tail)),
                };
                if let Some(t) = &tail {
                    progress!(
                        "rep {}: {spec}: p50 {:.2} us, p99 {:.2} us, p99.9 {:.2} us, {:.0}/s achieved",
                        rep + 1,
                        t.p50_ns / 1e3,
                        t.p99_ns / 1e3,
                        t.p999_ns / 1e3,
                        t.achieved
                    );
                }
                match (&latency, &rate) {
                    (Some(s), _) => progress!(
                        "rep {}: {spec}: {:.2} us median",
                        rep + 1,
                        s.median_ns / 1e3
                    ),
                    (_, Some(r)) => {
                        progress!("rep {}: {spec}: {:.3} GB/s", rep + 1, r.gb_per_sec());
                    }
                    _ => {}
                }
                results.records.push(Record {
                    rep,
                    mech: spec.mech,
                    imp: spec.imp,
                    kind: spec.kind,
                    size: spec.size,
                    knob,
                    latency,
                    rate,
                    cpu,
                    batch_ns,
                    tail,
                });
            }
            Err(err) => {
                // Not eprintln!: a stderr that fails (full, a closed pipe) drops the line, no panic.
                ipc_common::runtime::report::stderr_line(format_args!(
                    "warning: rep {}: {err:#}",
                    rep + 1
                ));
                results
                    .notes
                    .push(format!("failed: rep {}: {err:#}", rep + 1));
                failures.push(err);
            }
        }
    };

    for rep in 0..plan.reps {
        for kind in &plan.kinds {
            if *kind == Kind::Open {
                let size = plan.sizes.iter().copied().min().unwrap_or(64);
                for &mech in &plan.mechs {
                    for &rate in &plan.rates {
                        let knobs = Knobs {
                            rate: Some(rate),
                            ..plan.knobs
                        };
                        let imp = mech.imps()[0];
                        measure(
                            plan.spec(mech, imp, Kind::Open, size, knobs),
                            rep,
                            Some(Knob::Rate(rate)),
                            results,
                        );
                    }
                }
                continue;
            }
            for &size in &plan.sizes {
                for &mech in &plan.mechs {
                    if (*kind == Kind::Throughput && mech.latency_only()) || size > mech.max_size()
                    {
                        continue;
                    }
                    // Alternate which goes first, so neither always runs right after a
                    // different mechanism's teardown.
                    let mut imps: Vec<Imp> = mech
                        .imps()
                        .iter()
                        .copied()
                        .filter(|imp| *imp == Imp::Peer || plan.imps.contains(imp))
                        .collect();
                    if rep % 2 == 1 {
                        imps.reverse();
                    }
                    for imp in imps {
                        measure(
                            plan.spec(mech, imp, *kind, size, plan.knobs),
                            rep,
                            None,
                            results,
                        );
                    }
                }
            }
            if *kind == Kind::Latency {
                for &floor in &plan.floors {
                    measure(
                        plan.spec(floor, Imp::Raw, Kind::Latency, FLOOR_SIZE, plan.knobs),
                        rep,
                        None,
                        results,
                    );
                }
            }
        }
        if plan.memcpy {
            for &size in &plan.sizes {
                let rate = raw::memcpy_rate(size, plan.budget.measure / 4);
                progress!(
                    "rep {}: memcpy at {size} B: {:.2} GB/s",
                    rep + 1,
                    rate.gb_per_sec()
                );
                results.memcpy.push((rep, size, rate));
            }
        }
    }
    for rep in 0..plan.sweep_reps {
        for &bytes in &plan.sockbufs {
            for mech in [Mech::Unix, Mech::Tcp]
                .into_iter()
                .filter(|m| plan.mechs.contains(m))
            {
                let knobs = Knobs {
                    sockbuf: Some(bytes),
                    ..plan.knobs
                };
                measure(
                    plan.spec(mech, Imp::Ours, Kind::Throughput, 65536, knobs),
                    rep,
                    Some(Knob::SockBuf(bytes)),
                    results,
                );
            }
        }
        if plan.mechs.contains(&Mech::Fifo) {
            for &bytes in &plan.pipes {
                let knobs = Knobs {
                    pipe: Some(bytes),
                    ..plan.knobs
                };
                measure(
                    plan.spec(Mech::Fifo, Imp::Ours, Kind::Throughput, 65536, knobs),
                    rep,
                    Some(Knob::Pipe(bytes)),
                    results,
                );
            }
        }
    }
    if let Some(budget) = plan.tools {
        results.tools = tools::run_all(budget, plan.pin, &SIZES, &mut results.notes);
    }
    Ok(failures)
}

/// A private directory for socket files and FIFOs, removed at the end (and on a signal).
#[derive(Debug)]
pub struct PrivateDir {
    path: PathBuf,
    _guard: Cleanup,
}

fn private_dir() -> anyhow::Result<PrivateDir> {
    let dir =
        nix::unistd::mkdtemp("/tmp/ipc-bench-XXXXXX").context("mkdtemp /tmp/ipc-bench-XXXXXX")?;
    let owned = dir.clone();
    let guard = Cleanup::register(format!("temp dir {}", dir.display()), move || {
        Ok(std::fs::remove_dir_all(&owned)?)
    });
    Ok(PrivateDir {
        path: dir,
        _guard: guard,
    })
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

pub fn loadavg() -> String {
    read_trimmed("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Where and how this run is made, for the report's head.
pub fn describe(pin: Pin, reps: usize, quick: bool, ring_bytes: usize) -> Meta {
    let cpuinfo = read_trimmed("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split(':').nth(1))
        })
        .unwrap_or("unknown CPU")
        .trim()
        .to_string();
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let memory = read_trimmed("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(String::new(), |kb| {
            format!(", {} GiB", kb.div_ceil(1 << 20))
        });
    Meta {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        date: utc_now(),
        machine: format!(
            "{model}, {cpus} CPUs{memory}, Linux {}, clocksource {}",
            read_trimmed("/proc/sys/kernel/osrelease"),
            read_trimmed("/sys/devices/system/clocksource/clocksource0/current_clocksource")
        ),
        pin,
        reps,
        quick,
        load_before: loadavg(),
        load_after: String::new(),
        msgmax: ipc_common::sysv::msgmax().unwrap_or(8192),
        ring_bytes,
        secs: 0.0,
    }
}

/// Now, as `2026-01-31 12:34 UTC` (days to a civil date: Howard Hinnant's algorithm).
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}
