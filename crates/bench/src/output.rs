//! The report: a table for people on stdout, and `--json`, `--csv` and `--plot` files.

use std::fmt::Write as _;
use std::path::Path;

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

    let futex = r.rtt(Mech::Futex, Imp::Raw, FLOOR_SIZE, |s| s.median_ns);
    let spin = r.rtt(Mech::Spin, Imp::Raw, FLOOR_SIZE, |s| s.median_ns);
    let measured = |kind| r.records.iter().any(|rec| rec.kind == kind);
    if measured(Kind::Latency) {
        let _ = writeln!(out, "\nRound trip (ping-pong), microseconds");
        let _ = writeln!(
            out,
            "{:<18} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}  ceiling",
            "mechanism", "size", "median", "p99", "mean", "raw med", "ours/raw", "/floor"
        );
        for mech in r.mechs() {
            for size in SIZES {
                let med = r.rtt(mech, Imp::Ours, size, |s| s.median_ns);
                if med.is_none() && r.rtt(mech, Imp::Raw, size, |s| s.median_ns).is_none() {
                    continue;
                }
                let floor = if mech == Mech::ShmSpin {
                    (Mech::Spin, Imp::Raw, FLOOR_SIZE)
                } else {
                    (Mech::Futex, Imp::Raw, FLOOR_SIZE)
                };
                let _ = writeln!(
                    out,
                    "{:<18} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}  {}",
                    mech.title(),
                    human_bytes(mech.wire_size(size)),
                    opt(med.map(|a| a.median), 2),
                    opt(
                        r.rtt(mech, Imp::Ours, size, |s| s.p99_ns).map(|a| a.median),
                        2
                    ),
                    opt(
                        r.rtt(mech, Imp::Ours, size, |s| s.mean_ns)
                            .map(|a| a.median),
                        2
                    ),
                    opt(
                        r.rtt(mech, Imp::Raw, size, |s| s.median_ns)
                            .map(|a| a.median),
                        2
                    ),
                    ratio(r.rtt_ratio((mech, Imp::Ours, size), (mech, Imp::Raw, size))),
                    if size == 64 {
                        ratio(r.rtt_ratio((mech, Imp::Ours, size), floor))
                    } else {
                        "".into()
                    },
                    mech.ceiling(size, m.msgmax).unwrap_or_default()
                );
            }
        }
        let _ = writeln!(
            out,
            "floors (two processes, no data): futex hand-off {} us (p99 {}), spin hand-off {} us (p99 {})",
            opt(futex.map(|a| a.median), 2),
            opt(
                r.rtt(Mech::Futex, Imp::Raw, FLOOR_SIZE, |s| s.p99_ns)
                    .map(|a| a.median),
                2
            ),
            opt(spin.map(|a| a.median), 3),
            opt(
                r.rtt(Mech::Spin, Imp::Raw, FLOOR_SIZE, |s| s.p99_ns)
                    .map(|a| a.median),
                3
            ),
        );
    }
    if measured(Kind::Throughput) {
        let _ = writeln!(out, "\nOne-way throughput, timed at the receiver");
        let _ = writeln!(
            out,
            "{:<18} {:>7} {:>11} {:>8} {:>8} {:>9} {:>9}  ceiling",
            "mechanism", "size", "msg/s", "GB/s", "best", "raw GB/s", "ours/raw"
        );
        for mech in r.mechs() {
            for size in SIZES {
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
        let memcpy: Vec<String> = SIZES
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
        "rep,kind,mechanism,impl,size,knob,rtt_median_us,rtt_p99_us,rtt_mean_us,samples,messages_per_s,gb_per_s\n",
    );
    let f = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
    for rec in &r.records {
        let s = rec.latency.as_ref();
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{}",
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
        );
    }
    for (rep, size, rate) in &r.memcpy {
        let _ = writeln!(
            out,
            "{rep},memcpy,memcpy,raw,{size},,,,,,{},{}",
            rate.messages_per_sec(),
            rate.gb_per_sec()
        );
    }
    out
}

const SIZE_COLORS: [RGBColor; 3] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
];

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

    let lat = |m: Mech, s: usize| r.rtt(m, Imp::Ours, s, |x| x.median_ns).map(|a| a.median);
    let thr = |m: Mech, s: usize| {
        r.thr(m, Imp::Ours, s, None, Rate::gb_per_sec)
            .map(|a| a.median)
    };
    panel(
        &top,
        &format!("round trip, microseconds, lower is better ({run})"),
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

fn panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    caption: &str,
    mechs: &[Mech],
    n: f64,
    value: &dyn Fn(Mech, usize) -> Option<f64>,
    lines: Vec<(&str, f64)>,
) -> anyhow::Result<()> {
    let values: Vec<f64> = mechs
        .iter()
        .flat_map(|&m| SIZES.iter().filter_map(move |&s| value(m, s)))
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
        for (k, &size) in SIZES.iter().enumerate() {
            if let Some(v) = value(mech, size) {
                let x0 = i as f64 + 0.1 + k as f64 * 0.27;
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(x0, lo), (x0 + 0.25, v)],
                    SIZE_COLORS[k].filled(),
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
    for (k, &size) in SIZES.iter().enumerate() {
        chart
            .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())?
            .label(human_bytes(size))
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 10, y + 5)], SIZE_COLORS[k].filled())
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
