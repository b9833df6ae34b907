//! `ipc-bench`: numbers from your own machine for the claims the blog makes without measuring
//! them. Unix domain sockets beat IP sockets; UDP has lower latency than TCP; bigger buffers
//! raise throughput; shared memory is fastest but needs locking.
//!
//! Every measurement runs between two real processes: this one creates the objects (a socket
//! bound in a private temp dir or on 127.0.0.1 port 0, two FIFOs, an `IPC_PRIVATE` queue, two
//! `IPC_PRIVATE` segments holding `ipc_common::ring`s), then starts itself again as the peer
//! (`ipc-bench peer ...`, hidden), which attaches and says hello through the mechanism: that
//! hello is the readiness handshake. Then:
//! - round trip: this side sends a message, the peer sends it back (`send(2)`/`recv(2)`,
//!   `write(2)`/`read(2)`, `msgsnd(2)`/`msgrcv(2)`, or the ring's copy + `futex(2)` wake), at
//!   64 B, 4 KiB and 64 KiB; median, p99 and mean of every round trip after a warm-up;
//! - throughput: the peer sends for a while, this side receives and times it (messages/s, GB/s);
//!   UDP is flow-controlled by receiver credits so it loses nothing;
//! - the same through raw libc calls, the floors (a bare futex and a bare spin hand-off between
//!   two processes, `memcpy`), a sweep of socket buffer sizes (`SO_SNDBUF`/`SO_RCVBUF`) and pipe
//!   capacities (`F_SETPIPE_SZ`), and `iperf3`, `sockperf`, `perf bench` when installed.
//!
//! The repetition loop is outermost and the mechanisms are interleaved inside it, so a drifting
//! machine hits all of them alike; the report gives medians over repetitions and medians of
//! per-repetition ratios, checks the blog's claims and the project's targets.
//!
//! Who creates and removes: this process creates every object and removes it when its
//! measurement ends (cleanup guards: also on failure and on SIGINT/SIGTERM/SIGHUP); a peer
//! removes the socket file it bound. Segments are marked for removal as soon as both sides are
//! attached. Nothing is left behind.
//!
//! Run it:
//!
//! ```text
//! cargo run --release -p ipc-bench -- --quick
//! cargo run --release -p ipc-bench -- --json bench.json --csv bench.csv --plot bench.svg
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use clap::{Parser, Subcommand};
use ipc_bench::{measure, output, raw, tools};
use ipc_common::cleanup::Cleanup;
use ipc_common::cli::CommonArgs;
use ipc_common::progress;
use ipc_common::ring;

use ipc_bench::link::Budget;
use ipc_bench::measure::{Outcome, PeerArgs};
use ipc_bench::plan::{Imp, Kind, Knobs, Mech, Pin, Spec};
use ipc_bench::results::{FLOOR_SIZE, Knob, Meta, Record, Results, SIZES};
use ipc_bench::stats::Summary;
use ipc_bench::tools::ToolBudget;

/// Measures the blog's IPC mechanisms on this machine and checks the blog's claims.
#[derive(Parser, Debug)]
#[command(
    name = "ipc-bench",
    version,
    args_conflicts_with_subcommands = true,
    about = "Measures round trip and throughput of every IPC mechanism of the blog (UDS and UDP \
             datagrams, UDS and TCP streams, FIFOs, a SysV queue, a SysV shared-memory ring), \
             against raw libc, hardware floors and standard tools, and checks the blog's claims",
    long_about = "Measures round trip and throughput of every IPC mechanism of the blog (UDS and \
                  UDP datagrams, UDS and TCP streams, FIFOs, a SysV queue, a SysV shared-memory \
                  ring), against raw libc, hardware floors and standard tools, and checks the \
                  blog's claims.\n\nDefaults: 5 repetitions of 200 ms per measurement (about \
                  three minutes), or --quick (under 30 s); one core each (--pin split); the \
                  table on stdout, progress on stderr. --timeout bounds each measurement (each \
                  has its own pair of processes and deadline)."
)]
struct Args {
    #[command(subcommand)]
    hidden: Option<Hidden>,

    /// Short measurements and short tool runs: under 30 s on two cores (CI, the README).
    #[arg(long, env = "IPC_BENCH_QUICK")]
    quick: bool,

    /// Repetitions, the outermost loop (the report gives medians over them).
    #[arg(long, value_name = "N", default_value = "5", value_parser = clap::value_parser!(u32).range(1..))]
    reps: u32,

    /// Measure only these mechanisms (comma-separated); the floors run only when named
    /// (futex, spin) or when no --only is given.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "MECH")]
    only: Vec<Mech>,

    /// Measure only these figures (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "KIND")]
    kinds: Vec<Kind>,

    /// Measure only these implementations (comma-separated): ours, raw.
    #[arg(long = "impl", value_enum, value_delimiter = ',', value_name = "IMPL")]
    imps: Vec<Imp>,

    /// Measure only these message sizes (comma-separated; of 64, 4096, 65536).
    #[arg(long, value_delimiter = ',', value_name = "BYTES", value_parser = parse_size)]
    sizes: Vec<usize>,

    /// Milliseconds each measurement runs after its warm-up (a tenth of it) [default: 12 with
    /// --quick, else 200].
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=60_000))]
    budget_ms: Option<u64>,

    /// Where the two processes run: none (the scheduler decides), split (one core each), same
    /// (both on CPU 0; the spinning variants are skipped).
    #[arg(long, value_enum, default_value = "split", env = "IPC_BENCH_PIN")]
    pin: Pin,

    /// Data bytes of each shared-memory ring (a power of two, at least 128 KiB so that a 64 KiB
    /// message fits).
    #[arg(long, value_name = "BYTES", default_value = "1048576", value_parser = parse_ring_bytes)]
    ring_bytes: usize,

    /// How long the spinning variants spin before they sleep, in microseconds.
    #[arg(long, value_name = "US", default_value = "200")]
    spin_us: u64,

    /// Skip iperf3, sockperf and perf bench.
    #[arg(long)]
    no_tools: bool,

    /// Skip the sweep of socket buffer sizes and pipe capacities.
    #[arg(long)]
    no_sweep: bool,

    /// Also write every figure as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// Also write one CSV row per measurement to FILE.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,

    /// Also chart round trip and throughput per mechanism as an SVG to FILE.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,

    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Subcommand, Debug)]
enum Hidden {
    /// The other process of one measurement (started by ipc-bench itself).
    #[command(hide = true)]
    Peer(PeerArgs),
}

fn parse_size(text: &str) -> Result<usize, String> {
    match text.parse() {
        Ok(size) if SIZES.contains(&size) => Ok(size),
        _ => Err(format!(
            "`{text}`: the sizes measured are 64, 4096 and 65536"
        )),
    }
}

fn parse_ring_bytes(text: &str) -> Result<usize, String> {
    let bytes: usize = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of bytes"))?;
    if !bytes.is_power_of_two() || !(128 << 10..=ring::MAX_CAPACITY).contains(&bytes) {
        return Err(format!(
            "`{text}`: give a power of two from 131072 (128 KiB) to {}",
            ring::MAX_CAPACITY
        ));
    }
    Ok(bytes)
}

fn main() -> ExitCode {
    let args = Args::parse();
    ipc_common::report::main(|| run(args))
}

fn run(args: Args) -> anyhow::Result<()> {
    if let Some(Hidden::Peer(peer)) = args.hidden {
        return measure::peer(peer);
    }
    // Applies --quiet; each measurement starts its own deadline from --timeout.
    let _ = args.common.start();
    let started = Instant::now();
    let (me, _) = args.pin.cpus();
    if let Some(cpu) = me {
        raw::pin_to_cpu(cpu).with_context(|| format!("pin this process to CPU {cpu}"))?;
    }
    let dir = private_dir()?;
    progress!("socket files and FIFOs go to {}", dir.path.display());
    let plan = Plan::new(&args);
    let mut results = Results {
        meta: meta(&args, &plan),
        records: Vec::new(),
        memcpy: Vec::new(),
        tools: Vec::new(),
        notes: plan.notes.clone(),
    };
    let mut failures: Vec<anyhow::Error> = Vec::new();
    let mut serial = 0;
    let mut measure = |spec: Spec, rep: usize, knob: Option<Knob>, results: &mut Results| {
        serial += 1;
        match measure::measure(spec, &dir.path, args.common.timeout, serial) {
            Ok(outcome) => {
                let (latency, rate) = match outcome {
                    Outcome::Latency(mut samples) => (Summary::of(&mut samples), None),
                    Outcome::Throughput(rate) => (None, Some(rate)),
                };
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
                });
            }
            Err(err) => {
                eprintln!("warning: rep {}: {err:#}", rep + 1);
                results
                    .notes
                    .push(format!("failed: rep {}: {err:#}", rep + 1));
                failures.push(err);
            }
        }
    };

    for rep in 0..plan.reps {
        for kind in &plan.kinds {
            for &size in &plan.sizes {
                for &mech in &plan.mechs {
                    for &imp in &plan.imps {
                        measure(
                            plan.spec(mech, imp, *kind, size, plan.knobs),
                            rep,
                            None,
                            &mut results,
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
                        &mut results,
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
                    &mut results,
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
                    &mut results,
                );
            }
        }
    }
    if let Some(budget) = plan.tools {
        results.tools = tools::run_all(budget, args.pin, &SIZES, &mut results.notes);
    }
    results.meta.load_after = loadavg();
    results.meta.secs = started.elapsed().as_secs_f64();

    print!("{}", output::text(&results));
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&output::json(&results)).context("format JSON")?;
        output::write(path, &(text + "\n"))?;
    }
    if let Some(path) = &args.csv {
        output::write(path, &output::csv(&results))?;
    }
    if let Some(path) = &args.plot {
        output::plot(&results, path)?;
    }
    match failures.len() {
        0 => Ok(()),
        n => Err(failures
            .swap_remove(0)
            .context(format!("{n} measurement(s) failed; the first"))),
    }
}

/// What a run measures, from the options.
#[derive(Debug)]
struct Plan {
    reps: usize,
    kinds: Vec<Kind>,
    sizes: Vec<usize>,
    imps: Vec<Imp>,
    mechs: Vec<Mech>,
    floors: Vec<Mech>,
    memcpy: bool,
    budget: Budget,
    knobs: Knobs,
    peer_cpu: Option<usize>,
    sweep_reps: usize,
    sockbufs: Vec<usize>,
    pipes: Vec<usize>,
    tools: Option<ToolBudget>,
    notes: Vec<String>,
}

impl Plan {
    fn new(args: &Args) -> Plan {
        let mut notes = Vec::new();
        let named = |m: &Mech| args.only.is_empty() || args.only.contains(m);
        let spins_allowed = args.pin != Pin::Same;
        if !spins_allowed {
            notes.push("pin same: both processes share CPU 0, so the spinning variants (shm-spin, the spin floor) were skipped".into());
        }
        let keep = |m: &Mech| named(m) && (spins_allowed || !m.spins());
        let mechs: Vec<Mech> = Mech::MECHANISMS.into_iter().filter(keep).collect();
        let floors: Vec<Mech> = Mech::FLOORS.into_iter().filter(keep).collect();
        let imps = if args.imps.is_empty() {
            vec![Imp::Ours, Imp::Raw]
        } else {
            args.imps.clone()
        };
        let kinds = if args.kinds.is_empty() {
            vec![Kind::Latency, Kind::Throughput]
        } else {
            args.kinds.clone()
        };
        let measure =
            Duration::from_millis(args.budget_ms.unwrap_or(if args.quick { 12 } else { 200 }));
        let budget = Budget {
            warmup: (measure / 10).max(Duration::from_millis(1)),
            measure,
        };
        let sweep = !args.no_sweep && kinds.contains(&Kind::Throughput);
        let tools = (!args.no_tools && args.only.is_empty()).then_some(if args.quick {
            ToolBudget {
                secs: 1,
                pipe_loops: 20_000,
                memcpy_loops: 2_000,
            }
        } else {
            ToolBudget {
                secs: 3,
                pipe_loops: 200_000,
                memcpy_loops: 20_000,
            }
        });
        if args.no_tools || !args.only.is_empty() {
            notes.push("standard tools not run (--no-tools or --only)".into());
        }
        Plan {
            reps: args.reps as usize,
            memcpy: args.only.is_empty() && kinds.contains(&Kind::Throughput),
            kinds,
            sizes: if args.sizes.is_empty() {
                SIZES.to_vec()
            } else {
                args.sizes.clone()
            },
            imps,
            mechs,
            floors,
            budget,
            knobs: Knobs {
                sockbuf: None,
                pipe: None,
                ring_bytes: args.ring_bytes,
                spin: Duration::from_micros(args.spin_us),
            },
            peer_cpu: args.pin.cpus().1,
            sweep_reps: if sweep {
                if args.quick { 1 } else { 3 }
            } else {
                0
            },
            sockbufs: if args.quick {
                vec![16 << 10, 256 << 10, 4 << 20]
            } else {
                vec![16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20]
            },
            pipes: if args.quick {
                vec![4 << 10, 64 << 10, 1 << 20]
            } else {
                vec![4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20]
            },
            tools,
            notes,
        }
    }

    fn spec(&self, mech: Mech, imp: Imp, kind: Kind, size: usize, knobs: Knobs) -> Spec {
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

/// A private directory for socket files and FIFOs, removed at the end (and on a signal).
struct PrivateDir {
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

fn loadavg() -> String {
    read_trimmed("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn meta(args: &Args, plan: &Plan) -> Meta {
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
        pin: args.pin,
        reps: plan.reps,
        quick: args.quick,
        load_before: loadavg(),
        load_after: String::new(),
        msgmax: ipc_common::sysv::msgmax().unwrap_or(8192),
        ring_bytes: plan.knobs.ring_bytes,
        secs: 0.0,
    }
}

/// Now, as `2026-01-31 12:34 UTC` (days to a civil date: Howard Hinnant's algorithm).
fn utc_now() -> String {
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
