//! `ipc-bench`: numbers from your own machine for the claims the blog makes without measuring
//! them. Unix domain sockets beat IP sockets; UDP has lower latency than TCP; bigger buffers
//! raise throughput; shared memory is fastest but needs locking.
//!
//! Every measurement runs between two real processes: this one creates the objects (a socket
//! bound in a private temp dir or on 127.0.0.1 port 0, two FIFOs, an `IPC_PRIVATE` queue, two
//! `IPC_PRIVATE` segments holding `ipc_ring`s, a redis-server of its own for the Redis Streams
//! rows, ...), then starts itself again as the peer
//! (`ipc-bench peer ...`, hidden), which attaches and says hello through the mechanism: that
//! hello is the readiness handshake. Then:
//! - round trip: this side sends a message, the peer sends it back (`send(2)`/`recv(2)`,
//!   `write(2)`/`read(2)`, `msgsnd(2)`/`msgrcv(2)`, or the ring's copy + `futex(2)` wake), at
//!   64 B, 4 KiB and 64 KiB (`--size-sweep`: every power of 4 to 4 MiB); median, p99 and mean
//!   of every round trip after a warm-up, the mean of batches timed as a whole, and the CPU
//!   time per round trip on each side;
//! - open loop (`--kinds open --rate ...`): round trips on a fixed schedule, latency from the
//!   intended send time in an HDR histogram (p50, p99, p99.9, max);
//! - throughput: the peer sends for a while, this side receives and times it (messages/s, GB/s);
//!   UDP is flow-controlled by receiver credits so it loses nothing;
//! - the same through raw libc calls, the floors and wake-ups (one cache line and a futex
//!   between two processes, eventfd, a SysV semaphore, `memcpy`), the ring zero-copy, iceoryx2
//!   copying and zero-copy (feature `iceoryx2`), a sweep of socket buffer sizes
//!   (`SO_SNDBUF`/`SO_RCVBUF`) and pipe capacities (`F_SETPIPE_SZ`), and `iperf3`, `sockperf`,
//!   `perf bench` when installed.
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
//! cargo run --release -p bench --bin ipc-bench -- --quick
//! cargo run --release -p bench --bin ipc-bench -- --json bench.json --csv bench.csv --plot bench.svg
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use bench::link::Budget;
use bench::plan::{Imp, Kind, Knobs, Mech, Pin};
use bench::results::{ALL_SIZES, Results, SIZES};
use bench::session::{PeerArgs, pin_to_cpu};
use bench::suite::{self, Plan};
use bench::tools::ToolBudget;
use bench::{measure, output};
use clap::{Parser, Subcommand};
use ipc_common::runtime::cli::CommonArgs;
use ipc_ring as ring;

/// Measures the blog's IPC mechanisms on this machine and checks the blog's claims.
#[derive(Parser, Debug)]
#[command(
    name = "ipc-bench",
    version,
    args_conflicts_with_subcommands = true,
    about = "Measures round trip and throughput of every IPC mechanism of the blog (UDS and UDP \
             datagrams, UDS and TCP streams, FIFOs, a SysV queue and the same on Redis Streams, \
             a SysV shared-memory ring), \
             against raw libc, hardware floors, iceoryx2 and standard tools, and checks the blog's \
             claims",
    long_about = "Measures round trip and throughput of every IPC mechanism of the blog (UDS and \
                  UDP datagrams, UDS and TCP streams, FIFOs, a SysV queue and the same queue on \
                  Redis Streams over a Unix socket and TCP (when redis-server is installed: the \
                  bench starts its own), a SysV shared-memory ring), against raw libc, hardware floors (a cache line, a futex), iceoryx2 \
                  (built with --features iceoryx2) and standard tools, with CPU per message, \
                  open-loop tails (--kinds open) and sizes to 4 MiB (--size-sweep), and checks \
                  the blog's claims.\n\nDefaults: 5 repetitions of 200 ms per measurement (about \
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

    /// Measure only these figures (comma-separated) [default: latency,throughput; `open` is the
    /// open loop at --rate].
    #[arg(long, value_enum, value_delimiter = ',', value_name = "KIND")]
    kinds: Vec<Kind>,

    /// Measure only these implementations (comma-separated): ours, raw.
    #[arg(long = "impl", value_enum, value_delimiter = ',', value_name = "IMPL")]
    imps: Vec<Imp>,

    /// Measure only these message sizes (comma-separated powers of 4 from 64 to 4194304)
    /// [default: 64, 4096, 65536].
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

    /// Measure every power of 4 from 64 B to 4 MiB (round trip and throughput, charted with
    /// --plot as FILE-sizes-rtt.svg and FILE-sizes-thr.svg).
    #[arg(long, conflicts_with = "sizes")]
    size_sweep: bool,

    /// Open loop (--kinds open): round trips started per second, comma-separated, at the
    /// smallest size; latency is measured from each one's intended send time.
    #[arg(long, value_delimiter = ',', value_name = "N", default_value = "1000,10000,20000,100000,1000000", value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    rate: Vec<u64>,

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
        Ok(size) if ALL_SIZES.contains(&size) => Ok(size),
        _ => Err(format!(
            "`{text}`: give a power of 4 from 64 to 4194304 (4 MiB)"
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
    ipc_common::runtime::report::main(|| run(args))
}

fn run(args: Args) -> anyhow::Result<()> {
    if let Some(Hidden::Peer(peer)) = args.hidden {
        return measure::peer(peer);
    }
    // Applies --trust-uid; each measurement starts its own, silent, deadline from --timeout.
    let _ = args.common.start();
    // Minutes of measuring for a report that would vanish into the runtime's /dev/null.
    ipc_common::runtime::report::check_stdout().map_err(|_| {
        anyhow::anyhow!(
            "print the report: stdout is closed (started with >&-), so nothing is measured; give \
             it somewhere to go (a file, a pipe, or /dev/null with --json/--csv/--plot)"
        )
    })?;
    bench::progress::set_quiet(args.common.quiet);
    let started = Instant::now();
    if let (Some(cpu), _) = args.pin.cpus() {
        pin_to_cpu(cpu).with_context(|| format!("pin this process to CPU {cpu}"))?;
    }
    let plan = plan(&args);
    let mut results = Results::new(suite::describe(
        args.pin,
        plan.reps,
        args.quick,
        args.ring_bytes,
    ));
    results.notes.clone_from(&plan.notes);
    let mut failures = suite::run(&plan, args.common.timeout, &mut results)?;
    results.meta.load_after = suite::loadavg();
    results.meta.secs = started.elapsed().as_secs_f64();

    // Not print!: it panics when stdout fails (a full disk); the report is the run's payload.
    let report = output::text(&results);
    ipc_common::runtime::report::print_payload(
        report.strip_suffix('\n').unwrap_or(&report).as_bytes(),
    )
    .context("print the report (write it to a file or a pipe that has room)")?;
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&output::json(&results)).context("format JSON")?;
        output::write(path, &(text + "\n"))?;
    }
    if let Some(path) = &args.csv {
        output::write(path, &output::csv(&results))?;
    }
    if let Some(path) = &args.plot {
        output::plot(&results, path)?;
        if args.size_sweep {
            output::plot_sizes(&results, path)?;
        }
        output::plot_open(&results, path)?;
    }
    if results.records.is_empty() && results.tools.is_empty() && failures.is_empty() {
        // Exit 0 must mean something was measured.
        anyhow::bail!(
            "nothing was measured: no mechanism of --only has a figure of --kinds (the floors \
             and wake-ups have round trips only; see the report's notes); ask for latency or \
             throughput, or name other mechanisms"
        );
    }
    match failures.len() {
        0 => Ok(()),
        n => Err(failures
            .swap_remove(0)
            .context(format!("{n} measurement(s) failed; the first"))),
    }
}

/// What a run measures, from the options.
fn plan(args: &Args) -> Plan {
    let mut notes = Vec::new();
    let named = |m: &Mech| args.only.is_empty() || args.only.contains(m);
    let spins_allowed = args.pin != Pin::Same;
    if !spins_allowed {
        notes.push("pin same: both processes share CPU 0, so the spinning variants (shm-spin, shm-zc, iceoryx2, the cache-line floor) were skipped".into());
    }
    let keep = |m: &Mech| named(m) && (spins_allowed || !m.spins());
    if !bench::peers::BUILT
        && Mech::MECHANISMS
            .iter()
            .any(|m| m.imps() == [Imp::Peer] && named(m))
    {
        notes.push("iceoryx2 not measured: ipc-bench was built without it (cargo build --release -p bench --features iceoryx2)".into());
    }
    let keep = |m: &Mech| keep(m) && (bench::peers::BUILT || m.imps() != [Imp::Peer]);
    let redis_rows = [Mech::RedisUnix, Mech::RedisTcp];
    let redis = bench::redis::installed();
    if !redis && redis_rows.iter().any(named) {
        notes.push(bench::redis::SKIP_NOTE.into());
    }
    let keep = |m: &Mech| keep(m) && (redis || !redis_rows.contains(m));
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
        pin: args.pin,
        reps: args.reps as usize,
        memcpy: args.only.is_empty() && kinds.contains(&Kind::Throughput),
        kinds,
        sizes: if args.size_sweep {
            ALL_SIZES.to_vec()
        } else if args.sizes.is_empty() {
            SIZES.to_vec()
        } else {
            // Each size once, in order, however often it was named.
            let mut sizes = args.sizes.clone();
            sizes.sort_unstable();
            sizes.dedup();
            sizes
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
            rate: None,
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
        rates: args.rate.clone(),
        notes,
    }
}
