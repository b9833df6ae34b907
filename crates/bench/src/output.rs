//! The report: a table for people on stdout, and `--json`, `--csv` and `--plot` files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde_json::{Value, json};

use crate::link::Rate;
use crate::plan::{Imp, Kind, Mech};
use crate::results::{FLOOR_SIZE, Results, SIZES, human_bytes};

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.digits$}"))
}

fn ratio(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}x"))
}

/// The human-readable report.
pub fn text(r: &Results) -> String {
    let mut out = String::new();
    let m = &r.meta;
    let _ = writeln!(
        out,
        "ipc-bench {}",
        if m.quick {
            "(quick: short measurements, numbers are rough)"
        } else {
            "report"
        }
    );
    let _ = writeln!(out, "  command:  {}", m.command);
    let _ = writeln!(out, "  date:     {}", m.date);
    let _ = writeln!(out, "  machine:  {}", m.machine);
    let _ = writeln!(
        out,
        "  run:      pin {}, {} repetitions (repetition loop outermost, mechanisms interleaved), {:.0} s; load {} before, {} after",
        m.pin, m.reps, m.secs, m.load_before, m.load_after
    );
    let _ = writeln!(
        out,
        "  figures:  medians over repetitions; ratios are medians of per-repetition ratios; raw = the same syscalls straight from libc"
    );

    let measured = |kind| r.records.iter().any(|rec| rec.kind == kind);
    if measured(Kind::Latency) {
        let _ = writeln!(
            out,
            "\nRound trip (ping-pong), microseconds (batch: mean of the fastest batch of up to 100 timed together); CPU per round trip, microseconds (this side / peer)"
        );
        let _ = writeln!(
            out,
            "{:<20} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>13}  ceiling",
            "mechanism",
            "size",
            "median",
            "p99",
            "mean",
            "batch",
            "raw med",
            "ours/raw",
            "/floor",
            "cpu"
        );
        for mech in r.mechs() {
            let imp = Results::main_imp(mech);
            for size in r.sizes() {
                let med = r.rtt(mech, imp, size, |s| s.median_ns);
                if med.is_none() && r.rtt(mech, Imp::Raw, size, |s| s.median_ns).is_none() {
                    continue;
                }
                let floor = if mech.spins() {
                    (Mech::Spin, Imp::Raw, FLOOR_SIZE)
                } else {
                    (Mech::Futex, Imp::Raw, FLOOR_SIZE)
                };
                let _ = writeln!(
                    out,
                    "{:<20} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>13}  {}",
                    mech.title(),
                    human_bytes(mech.wire_size(size)),
                    opt(med.map(|a| a.median), 2),
                    opt(r.rtt(mech, imp, size, |s| s.p99_ns).map(|a| a.median), 2),
                    opt(r.rtt(mech, imp, size, |s| s.mean_ns).map(|a| a.median), 2),
                    opt(r.batch(mech, imp, size), 2),
                    opt(
                        r.rtt(mech, Imp::Raw, size, |s| s.median_ns)
                            .map(|a| a.median),
                        2
                    ),
                    ratio(r.rtt_ratio((mech, imp, size), (mech, Imp::Raw, size))),
                    if size == 64 {
                        ratio(r.rtt_ratio((mech, imp, size), floor))
                    } else {
                        "".into()
                    },
                    cpu_cell(r.cpu(mech, imp, Kind::Latency, size)),
                    mech.ceiling(size, m.msgmax).unwrap_or_default()
                );
            }
        }
        wakeups(&mut out, r);
        side_by_side(&mut out, r);
    }
    if measured(Kind::Throughput) {
        let _ = writeln!(out, "\nOne-way throughput, timed at the receiver");
        let _ = writeln!(
            out,
            "{:<18} {:>7} {:>11} {:>8} {:>8} {:>9} {:>9}  ceiling",
            "mechanism", "size", "msg/s", "GB/s", "best", "raw GB/s", "ours/raw"
        );
        for mech in r.mechs() {
            for size in r.sizes() {
                let gbs = r.thr(mech, Imp::Ours, size, None, Rate::gb_per_sec);
                if gbs.is_none()
                    && r.thr(mech, Imp::Raw, size, None, Rate::gb_per_sec)
                        .is_none()
                {
                    continue;
                }
                let _ = writeln!(
                    out,
                    "{:<18} {:>7} {:>11} {:>8} {:>8} {:>9} {:>9}  {}",
                    mech.title(),
                    human_bytes(mech.wire_size(size)),
                    opt(
                        r.thr(mech, Imp::Ours, size, None, Rate::messages_per_sec)
                            .map(|a| a.median),
                        0
                    ),
                    opt(gbs.map(|a| a.median), 3),
                    opt(gbs.map(|a| a.best), 3),
                    opt(
                        r.thr(mech, Imp::Raw, size, None, Rate::gb_per_sec)
                            .map(|a| a.median),
                        3
                    ),
                    ratio(r.thr_ratio((mech, Imp::Ours, size, None), (mech, Imp::Raw, size, None))),
                    mech.ceiling(size, m.msgmax).unwrap_or_default()
                );
            }
        }
        let memcpy: Vec<String> = r
            .sizes()
            .iter()
            .filter_map(|&s| {
                r.memcpy_gbs(s)
                    .map(|a| format!("{} {:.2} GB/s", human_bytes(s), a.median))
            })
            .collect();
        if !memcpy.is_empty() {
            let _ = writeln!(out, "floor: memcpy (one process) {}", memcpy.join(", "));
        }
    }

    if measured(Kind::Open) {
        let _ = writeln!(
            out,
            "\nOpen loop: round trips started on a fixed schedule, latency from the intended send time (coordinated omission corrected), microseconds"
        );
        let _ = writeln!(
            out,
            "{:<20} {:>9} {:>10} {:>9} {:>9} {:>9} {:>10} {:>8}",
            "mechanism", "target/s", "achieved/s", "p50", "p99", "p99.9", "max", "peer cpu"
        );
        for mech in r.mechs() {
            for (rate, [p50, p99, p999, max, achieved, cpu]) in r.open(mech) {
                let _ = writeln!(
                    out,
                    "{:<20} {:>9} {:>10} {:>9} {:>9} {:>9} {:>10} {:>8}",
                    mech.title(),
                    rate,
                    opt(achieved, 0),
                    opt(p50, 2),
                    opt(p99, 2),
                    opt(p999, 2),
                    opt(max, 1),
                    opt(cpu, 2)
                );
            }
        }
        let _ = writeln!(
            out,
            "(achieved below target: saturated, the schedule fell behind and the wait counts in the latency; peer cpu: the echoing side's CPU per round trip, microseconds)"
        );
    }

    let swept: Vec<Mech> = [Mech::Unix, Mech::Tcp, Mech::Fifo]
        .into_iter()
        .filter(|&m| !r.knobs(m).is_empty())
        .collect();
    if !swept.is_empty() {
        let _ = writeln!(
            out,
            "\nBuffer sizes: throughput of 64 KiB messages (ours), GB/s"
        );
        for mech in swept {
            let cells: Vec<String> = r
                .knobs(mech)
                .into_iter()
                .map(|k| {
                    format!(
                        "{k}: {}",
                        opt(
                            r.thr(mech, Imp::Ours, 65536, Some(k), Rate::gb_per_sec)
                                .map(|a| a.median),
                            2
                        )
                    )
                })
                .collect();
            let _ = writeln!(out, "{:<18} {}", mech.title(), cells.join("  "));
        }
    }

    if !r.tools.is_empty() {
        let _ = writeln!(out, "\nStandard tools (same machine, same run)");
        let _ = writeln!(
            out,
            "{:<24} {:<46} {:>10} {:>10} {:>11}",
            "tool", "figure", "theirs", "ours", "ours/theirs"
        );
        for t in &r.tools {
            let ours = ours_for_tool(r, t);
            let _ = writeln!(
                out,
                "{:<24} {:<46} {:>10} {:>10} {:>11}",
                t.tool,
                t.what,
                format!("{:.2} {}", t.value, t.unit),
                opt(ours, 2),
                ratio(ours.map(|o| o / t.value))
            );
        }
    }

    beside_the_queue(&mut out, r);

    let _ = writeln!(out, "\nThe blog's claims");
    for c in r.claims() {
        let _ = writeln!(
            out,
            "- {}: {}\n    measured: {}",
            c.claim,
            c.verdict.to_uppercase(),
            c.measured
        );
    }

    let targets = r.targets();
    let met = targets.iter().filter(|t| t.met() == Some(true)).count();
    let missed = targets.iter().filter(|t| t.met() == Some(false)).count();
    let _ = writeln!(
        out,
        "\nTargets: {met} met, {missed} missed, {} not measured",
        targets.len() - met - missed
    );
    for t in &targets {
        let status = match t.met() {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "n/a",
        };
        let _ = writeln!(
            out,
            "  {:<7} {:<58} {:>8} (limit {} {})",
            status,
            t.what,
            opt(t.value, 2),
            if t.at_most { "<=" } else { ">=" },
            t.limit
        );
    }
    if !r.notes.is_empty() {
        let _ = writeln!(out, "\nNotes");
        for note in &r.notes {
            let _ = writeln!(out, "- {note}");
        }
    }
    out
}

fn cpu_cell((own, peer): (Option<f64>, Option<f64>)) -> String {
    match (own, peer) {
        (None, None) => "-".into(),
        (own, peer) => format!("{} / {}", opt(own, 2), opt(peer, 2)),
    }
}

/// The wake-up matrix at 64 B: how one process wakes another, latency and CPU, the floors
/// first (one cache line each way; no data), then the same through a pipe and a socket.
fn wakeups(out: &mut String, r: &Results) {
    let rows: Vec<(String, Mech, usize)> = Mech::FLOORS
        .into_iter()
        .map(|m| (m.title().to_string(), m, FLOOR_SIZE))
        .chain([
            ("pipe (FIFO, raw)".to_string(), Mech::Fifo, 64),
            ("Unix socket (raw)".to_string(), Mech::Unix, 64),
        ])
        .filter(|(_, m, size)| r.rtt(*m, Imp::Raw, *size, |s| s.median_ns).is_some())
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\nWake-up matrix: round trip between two processes, microseconds (no data; pipe and socket 64 B)"
    );
    let _ = writeln!(
        out,
        "{:<20} {:>9} {:>9} {:>10} {:>13}",
        "wake-up", "median", "p99", "batch mean", "cpu"
    );
    for (title, mech, size) in rows {
        let _ = writeln!(
            out,
            "{:<20} {:>9} {:>9} {:>10} {:>13}",
            title,
            opt(
                r.rtt(mech, Imp::Raw, size, |s| s.median_ns)
                    .map(|a| a.median),
                3
            ),
            opt(
                r.rtt(mech, Imp::Raw, size, |s| s.p99_ns).map(|a| a.median),
                3
            ),
            opt(r.batch(mech, Imp::Raw, size), 3),
            cpu_cell(r.cpu(mech, Imp::Raw, Kind::Latency, size)),
        );
    }
    let _ = writeln!(
        out,
        "(median/p99: each round trip timed, a clock read each; batch mean: round trips timed together, the fastest batch: 1000 bare ones for the cache line and the futex, up to 100 through the harness otherwise)"
    );
}

/// What crossing a host costs: Redis Streams (the broker crate) over the SysV queue (ours both),
/// round trip and throughput, per size.
fn beside_the_queue(out: &mut String, r: &Results) {
    let rows = [Mech::RedisUnix, Mech::RedisTcp];
    if !r.records.iter().any(|rec| rows.contains(&rec.mech)) {
        return;
    }
    let _ = writeln!(
        out,
        "\nRedis Streams beside the SysV queue (ours both): round trip median, microseconds, and throughput, as ratios to the queue's"
    );
    let _ = writeln!(
        out,
        "{:<20} {:>7} {:>9} {:>9} {:>10} {:>10}",
        "mechanism", "size", "rtt", "rtt/mq", "msg/s", "thr/mq"
    );
    for mech in rows {
        for size in r.sizes() {
            let rtt = r.rtt(mech, Imp::Ours, size, |s| s.median_ns);
            let thr = r.thr(mech, Imp::Ours, size, None, Rate::messages_per_sec);
            if rtt.is_none() && thr.is_none() {
                continue;
            }
            let queue = (Mech::Mq, Imp::Ours, size);
            let _ = writeln!(
                out,
                "{:<20} {:>7} {:>9} {:>9} {:>10} {:>10}",
                mech.title(),
                human_bytes(size),
                opt(rtt.map(|a| a.median), 1),
                ratio(r.rtt_ratio((mech, Imp::Ours, size), queue)),
                opt(thr.map(|a| a.median), 0),
                ratio(r.thr_ratio(
                    (mech, Imp::Ours, size, None),
                    (Mech::Mq, Imp::Ours, size, None)
                ))
            );
        }
    }
}

/// Our ring beside iceoryx2, like for like: copying and zero-copy.
fn side_by_side(out: &mut String, r: &Results) {
    let pairs = [(Mech::ShmSpin, Mech::Iox), (Mech::ShmZc, Mech::IoxZc)];
    let any = pairs
        .iter()
        .any(|(_, theirs)| r.records.iter().any(|rec| rec.mech == *theirs));
    if !any {
        return;
    }
    let _ = writeln!(
        out,
        "\nShared memory beside iceoryx2 (both spinning/busy-polling, same pinning), round trip median, microseconds"
    );
    let _ = writeln!(
        out,
        "{:<10} {:>7} {:>9} {:>10} {:>9}",
        "mode", "size", "ours", "iceoryx2", "ours/iox"
    );
    for ((ours, theirs), mode) in pairs.into_iter().zip(["copy", "zero-copy"]) {
        for size in r.sizes() {
            let o = r.rtt(ours, Imp::Ours, size, |s| s.median_ns);
            let t = r.rtt(theirs, Imp::Peer, size, |s| s.median_ns);
            if o.is_none() && t.is_none() {
                continue;
            }
            let _ = writeln!(
                out,
                "{:<10} {:>7} {:>9} {:>10} {:>9}",
                mode,
                human_bytes(size),
                opt(o.map(|a| a.median), 3),
                opt(t.map(|a| a.median), 3),
                ratio(r.rtt_ratio((ours, Imp::Ours, size), (theirs, Imp::Peer, size)))
            );
        }
    }
}

/// Our figure that a tool's figure compares with.
fn ours_for_tool(r: &Results, t: &crate::tools::ToolFigure) -> Option<f64> {
    let rtt = |mech| {
        r.rtt(mech, Imp::Ours, 64, |s| s.median_ns)
            .map(|a| a.median)
    };
    match t.tool {
        "iperf3" => r
            .thr(Mech::Tcp, Imp::Ours, 65536, None, Rate::gb_per_sec)
            .map(|a| a.median),
        "sockperf" if t.what.starts_with("TCP") => rtt(Mech::Tcp),
        "sockperf" => rtt(Mech::Udp),
        "perf bench sched pipe" => rtt(Mech::Fifo),
        _ => SIZES
            .iter()
            .find(|&&s| t.what == format!("memcpy {s} B"))
            .and_then(|&s| r.memcpy_gbs(s))
            .map(|a| a.median),
    }
}

/// Everything, for machines.
pub fn json(r: &Results) -> Value {
    let m = &r.meta;
    let records: Vec<Value> = r
        .records
        .iter()
        .map(|rec| {
            json!({
                "rep": rec.rep,
                "mechanism": rec.mech.name(),
                "impl": rec.imp.to_string(),
                "kind": rec.kind.to_string(),
                "size": rec.mech.wire_size(rec.size),
                "knob": rec.knob.map(|k| k.to_string()),
                "rtt_median_us": rec.latency.as_ref().map(|s| s.median_ns / 1e3),
                "rtt_p99_us": rec.latency.as_ref().map(|s| s.p99_ns / 1e3),
                "rtt_mean_us": rec.latency.as_ref().map(|s| s.mean_ns / 1e3),
                "samples": rec.latency.as_ref().map(|s| s.samples),
                "messages_per_s": rec.rate.map(|x| x.messages_per_sec()),
                "gb_per_s": rec.rate.map(|x| x.gb_per_sec()),
                "cpu_us_per_msg": rec.cpu.own_ns.map(|v| v / 1e3),
                "peer_cpu_us_per_msg": rec.cpu.peer_ns.map(|v| v / 1e3),
                "batch_rtt_us": rec.batch_ns.map(|v| v / 1e3),
                "open_p50_us": rec.tail.map(|t| t.p50_ns / 1e3),
                "open_p99_us": rec.tail.map(|t| t.p99_ns / 1e3),
                "open_p999_us": rec.tail.map(|t| t.p999_ns / 1e3),
                "open_max_us": rec.tail.map(|t| t.max_ns / 1e3),
                "open_achieved_per_s": rec.tail.map(|t| t.achieved),
            })
        })
        .collect();
    let memcpy: Vec<Value> = r
        .memcpy
        .iter()
        .map(|(rep, size, rate)| json!({"rep": rep, "size": size, "gb_per_s": rate.gb_per_sec()}))
        .collect();
    json!({
        "meta": {
            "command": m.command, "date": m.date, "machine": m.machine, "pin": m.pin.to_string(),
            "repetitions": m.reps, "quick": m.quick, "load_before": m.load_before,
            "load_after": m.load_after, "msgmax": m.msgmax, "ring_bytes": m.ring_bytes, "seconds": m.secs,
        },
        "records": records,
        "memcpy": memcpy,
        "tools": r.tools.iter().map(|t| json!({"tool": t.tool, "figure": t.what, "value": t.value, "unit": t.unit, "ours": ours_for_tool(r, t)})).collect::<Vec<_>>(),
        "claims": r.claims().iter().map(|c| json!({"claim": c.claim, "measured": c.measured, "verdict": c.verdict})).collect::<Vec<_>>(),
        "targets": r.targets().iter().map(|t| json!({"target": t.what, "value": t.value, "limit": t.limit, "at_most": t.at_most, "met": t.met()})).collect::<Vec<_>>(),
        "notes": r.notes,
    })
}

/// One row per measurement.
pub fn csv(r: &Results) -> String {
    let mut out = String::from(
        "rep,kind,mechanism,impl,size,knob,rtt_median_us,rtt_p99_us,rtt_mean_us,samples,messages_per_s,gb_per_s,cpu_us_per_msg,peer_cpu_us_per_msg,batch_rtt_us,open_p50_us,open_p99_us,open_p999_us,open_max_us,open_achieved_per_s\n",
    );
    let f = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
    for rec in &r.records {
        let s = rec.latency.as_ref();
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            rec.rep,
            rec.kind,
            rec.mech,
            rec.imp,
            rec.mech.wire_size(rec.size),
            rec.knob.map(|k| k.to_string()).unwrap_or_default(),
            f(s.map(|s| s.median_ns / 1e3)),
            f(s.map(|s| s.p99_ns / 1e3)),
            f(s.map(|s| s.mean_ns / 1e3)),
            s.map(|s| s.samples.to_string()).unwrap_or_default(),
            f(rec.rate.map(|x| x.messages_per_sec())),
            f(rec.rate.map(|x| x.gb_per_sec())),
            f(rec.cpu.own_ns.map(|v| v / 1e3)),
            f(rec.cpu.peer_ns.map(|v| v / 1e3)),
            f(rec.batch_ns.map(|v| v / 1e3)),
            f(rec.tail.map(|t| t.p50_ns / 1e3)),
            f(rec.tail.map(|t| t.p99_ns / 1e3)),
            f(rec.tail.map(|t| t.p999_ns / 1e3)),
            f(rec.tail.map(|t| t.max_ns / 1e3)),
            f(rec.tail.map(|t| t.achieved)),
        );
    }
    for (rep, size, rate) in &r.memcpy {
        let _ = writeln!(
            out,
            "{rep},memcpy,memcpy,raw,{size},,,,,,{},{},,,,,,,,",
            rate.messages_per_sec(),
            rate.gb_per_sec()
        );
    }
    out
}

const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// One line per series on log-log axes (the size sweep, latency against load).
pub fn lines_chart(
    path: &Path,
    caption: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> anyhow::Result<()> {
    let points: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|(_, p)| p.iter().copied())
        .filter(|(x, y)| *x > 0.0 && *y > 0.0)
        .collect();
    if points.is_empty() {
        return Ok(());
    }
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, 0.0f64, f64::MAX, 0.0f64);
    for (x, y) in &points {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y0 = y0.min(*y);
        y1 = y1.max(*y);
    }
    let root = SVGBackend::new(path, (1000, 650)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 17))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (x0 / 1.5..x1 * 1.5).log_scale(),
            (y0 / 1.5..y1 * 4.0).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&|v| format!("{v:.3e}"))
        .y_label_formatter(&|v| format!("{v}"))
        .draw()?;
    for (k, (name, pts)) in series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let pts: Vec<(f64, f64)> = pts
            .iter()
            .copied()
            .filter(|(x, y)| *x > 0.0 && *y > 0.0)
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], color.stroke_width(2)));
        chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()
        .with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

/// Open loop: one chart per mechanism beside `path` (`-open-MECH.svg`): p50, p99 and p99.9
/// against the rate achieved.
pub fn plot_open(r: &Results, path: &Path) -> anyhow::Result<()> {
    let stem = path.with_extension("");
    for mech in r.mechs() {
        let rows = r.open(mech);
        if rows.is_empty() {
            continue;
        }
        let line = |k: usize, name: &str| {
            (
                name.to_string(),
                rows.iter()
                    .filter_map(|(_, v)| v[4].zip(v[k]))
                    .collect::<Vec<(f64, f64)>>(),
            )
        };
        lines_chart(
            &PathBuf::from(format!("{}-open-{}.svg", stem.display(), mech.name())),
            &format!(
                "{}: latency against load (open loop, from intended send time), ipc-bench {}",
                mech.title(),
                r.meta.date
            ),
            "round trips per second achieved",
            "latency, microseconds",
            &[line(0, "p50"), line(1, "p99"), line(2, "p99.9")],
        )?;
    }
    Ok(())
}

/// The size sweep as two charts beside `path` (`-sizes-rtt.svg`, `-sizes-thr.svg`): round trip
/// and throughput against message size, one line per mechanism (ours).
pub fn plot_sizes(r: &Results, path: &Path) -> anyhow::Result<()> {
    let stem = path.with_extension("");
    let sizes = r.sizes();
    let series = |value: &dyn Fn(Mech, usize) -> Option<f64>| -> Vec<(String, Vec<(f64, f64)>)> {
        r.mechs()
            .into_iter()
            .map(|m| {
                (
                    m.title().to_string(),
                    sizes
                        .iter()
                        .filter_map(|&s| value(m, s).map(|v| (m.wire_size(s) as f64, v)))
                        .collect::<Vec<_>>(),
                )
            })
            .filter(|(_, p)| !p.is_empty())
            .collect()
    };
    let rtt = series(&|m, s| {
        r.rtt(m, Results::main_imp(m), s, |x| x.median_ns)
            .map(|a| a.median)
    });
    lines_chart(
        &PathBuf::from(format!("{}-sizes-rtt.svg", stem.display())),
        &format!(
            "round trip (median) by message size, ipc-bench {}",
            r.meta.date
        ),
        "message size, bytes",
        "round trip, microseconds",
        &rtt,
    )?;
    let thr = series(&|m, s| {
        r.thr(m, Imp::Ours, s, None, Rate::gb_per_sec)
            .map(|a| a.median)
    });
    lines_chart(
        &PathBuf::from(format!("{}-sizes-thr.svg", stem.display())),
        &format!(
            "one-way throughput by message size, ipc-bench {}",
            r.meta.date
        ),
        "message size, bytes",
        "GB/s",
        &thr,
    )
}

/// Two panels: round trip and throughput per mechanism, one bar per size (ours), log scales;
/// the floors as lines.
pub fn plot(r: &Results, path: &Path) -> anyhow::Result<()> {
    let mechs = r.mechs();
    let root = SVGBackend::new(path, (1100, 900)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(450);
    let n = mechs.len().max(1) as f64;
    let run = format!(
        "ipc-bench {}, {} repetitions, pin {}",
        r.meta.date, r.meta.reps, r.meta.pin
    );

    let lat = |m: Mech, s: usize| {
        r.rtt(m, Results::main_imp(m), s, |x| x.median_ns)
            .map(|a| a.median)
    };
    let thr = |m: Mech, s: usize| {
        r.thr(m, Imp::Ours, s, None, Rate::gb_per_sec)
            .map(|a| a.median)
    };
    let sizes = r.sizes();
    panel(
        &top,
        &format!("round trip, microseconds, lower is better ({run})"),
        &sizes,
        &mechs,
        n,
        &lat,
        {
            let mut lines = Vec::new();
            if let Some(f) = r.rtt(Mech::Futex, Imp::Raw, FLOOR_SIZE, |x| x.median_ns) {
                lines.push(("futex floor", f.median));
            }
            if let Some(f) = r.rtt(Mech::Spin, Imp::Raw, FLOOR_SIZE, |x| x.median_ns) {
                lines.push(("spin floor", f.median));
            }
            lines
        },
    )?;
    panel(
        &bottom,
        "one-way throughput, GB/s, higher is better (timed at the receiver)",
        &sizes,
        &mechs,
        n,
        &thr,
        {
            r.memcpy_gbs(65536)
                .map(|a| vec![("memcpy 64 KiB", a.median)])
                .unwrap_or_default()
        },
    )?;
    root.present()
        .with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    caption: &str,
    sizes: &[usize],
    mechs: &[Mech],
    n: f64,
    value: &dyn Fn(Mech, usize) -> Option<f64>,
    lines: Vec<(&str, f64)>,
) -> anyhow::Result<()> {
    let values: Vec<f64> = mechs
        .iter()
        .flat_map(|&m| sizes.iter().filter_map(move |&s| value(m, s)))
        .chain(lines.iter().map(|l| l.1))
        .filter(|v| *v > 0.0)
        .collect();
    let lo = values
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .min(1.0)
        / 2.0;
    // Headroom above the tallest bar for the legend.
    let hi = values.iter().copied().fold(0.0, f64::max).max(lo * 10.0) * 12.0;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..n, (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_label_formatter(&|v| format!("{v}"))
        .draw()?;
    for (i, &mech) in mechs.iter().enumerate() {
        let width = 0.8 / sizes.len().max(1) as f64;
        for (k, &size) in sizes.iter().enumerate() {
            if let Some(v) = value(mech, size) {
                let x0 = i as f64 + 0.1 + k as f64 * width;
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(x0, lo), (x0 + width * 0.92, v)],
                    COLORS[k % COLORS.len()].filled(),
                )))?;
            }
        }
    }
    // Mechanism names under the axis, centred under their bars (in pixels: the chart's own
    // labels sit at round numbers, not at the groups).
    let (base_x, base_y) = area.get_base_pixel();
    for (i, &mech) in mechs.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(i as f64 + 0.5, lo));
        area.draw(&Text::new(
            mech.title(),
            (x - base_x, y - base_y + 8),
            ("sans-serif", 13)
                .into_font()
                .into_text_style(area)
                .pos(Pos::new(HPos::Center, VPos::Top)),
        ))?;
    }
    for (k, &size) in sizes.iter().enumerate() {
        chart
            .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())?
            .label(human_bytes(size))
            .legend(move |(x, y)| {
                Rectangle::new(
                    [(x, y - 5), (x + 10, y + 5)],
                    COLORS[k % COLORS.len()].filled(),
                )
            });
    }
    for (name, v) in lines {
        chart
            .draw_series(LineSeries::new([(0.0, v), (n, v)], BLACK.stroke_width(1)))?
            .label(format!("{name} {v:.2}"))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 12, y)], BLACK));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    Ok(())
}

pub fn write(path: &Path, contents: &str) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("write {}", path.display()))
}
