//! Everything a run measured, and the figures the report derives from it: medians over
//! repetitions, medians of per-repetition ratios, the blog's claims and the targets.

use std::fmt;

use crate::link::{Cpu, Rate, Tail};
use crate::plan::{Imp, Kind, Mech, Pin};
use crate::stats::{self, Summary};
use crate::tools::ToolFigure;

/// A setting swept for the buffer-size claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Knob {
    /// `SO_SNDBUF` on the sender and `SO_RCVBUF` on the receiver.
    SockBuf(usize),
    /// The FIFOs' capacity (`F_SETPIPE_SZ`).
    Pipe(usize),
    /// Open loop: round trips started per second.
    Rate(u64),
}

impl fmt::Display for Knob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Knob::SockBuf(bytes) => write!(f, "SO_SNDBUF/SO_RCVBUF {}", human_bytes(*bytes)),
            Knob::Pipe(bytes) => write!(f, "pipe capacity {}", human_bytes(*bytes)),
            Knob::Rate(rate) => write!(f, "{rate}/s"),
        }
    }
}

/// `64 B`, `4 KiB`, `64 KiB`, `1 MiB`.
pub fn human_bytes(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

/// One measurement's result.
#[derive(Clone, Debug)]
pub struct Record {
    pub rep: usize,
    pub mech: Mech,
    pub imp: Imp,
    pub kind: Kind,
    /// The nominal size (the floors: 8).
    pub size: usize,
    pub knob: Option<Knob>,
    pub latency: Option<Summary>,
    pub rate: Option<Rate>,
    /// CPU per message on each side.
    pub cpu: Cpu,
    /// The floors: nanoseconds per round trip timed in batches.
    pub batch_ns: Option<f64>,
    /// Open loop: the percentiles from the intended send times.
    pub tail: Option<Tail>,
}

/// How the run was made, for the report's head.
#[derive(Clone, Debug)]
pub struct Meta {
    pub command: String,
    pub date: String,
    pub machine: String,
    pub pin: Pin,
    pub reps: usize,
    pub quick: bool,
    pub load_before: String,
    pub load_after: String,
    pub msgmax: usize,
    pub ring_bytes: usize,
    pub secs: f64,
}

/// A run's results.
#[derive(Clone, Debug)]
pub struct Results {
    pub meta: Meta,
    pub records: Vec<Record>,
    /// `memcpy` bandwidth per repetition and size.
    pub memcpy: Vec<(usize, usize, Rate)>,
    pub tools: Vec<ToolFigure>,
    pub notes: Vec<String>,
}

/// A figure over repetitions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Agg {
    pub median: f64,
    pub best: f64,
    pub reps: usize,
}

impl Results {
    /// No results yet.
    pub fn new(meta: Meta) -> Results {
        Results {
            meta,
            records: Vec::new(),
            memcpy: Vec::new(),
            tools: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn latencies(
        &self,
        mech: Mech,
        imp: Imp,
        size: usize,
    ) -> impl Iterator<Item = (usize, &Summary)> {
        self.records.iter().filter_map(move |r| {
            (r.mech == mech
                && r.imp == imp
                && r.kind == Kind::Latency
                && r.size == size
                && r.knob.is_none())
            .then_some(())
            .and(r.latency.as_ref().map(|s| (r.rep, s)))
        })
    }

    fn rates(
        &self,
        mech: Mech,
        imp: Imp,
        size: usize,
        knob: Option<Knob>,
    ) -> impl Iterator<Item = (usize, Rate)> + '_ {
        self.records.iter().filter_map(move |r| {
            (r.mech == mech
                && r.imp == imp
                && r.kind == Kind::Throughput
                && r.size == size
                && r.knob == knob)
                .then_some(())
                .and(r.rate.map(|rate| (r.rep, rate)))
        })
    }

    /// The implementation a mechanism's table row shows: ours, or the peer's for iceoryx2.
    pub fn main_imp(mech: Mech) -> Imp {
        mech.imps()[0]
    }

    /// CPU per message (µs) on the measuring side and on the peer: medians over repetitions.
    pub fn cpu(&self, mech: Mech, imp: Imp, kind: Kind, size: usize) -> (Option<f64>, Option<f64>) {
        let cpus: Vec<Cpu> = self
            .records
            .iter()
            .filter(|r| {
                r.mech == mech
                    && r.imp == imp
                    && r.kind == kind
                    && r.size == size
                    && r.knob.is_none()
            })
            .map(|r| r.cpu)
            .collect();
        let own: Vec<f64> = cpus
            .iter()
            .filter_map(|c| c.own_ns)
            .map(|v| v / 1e3)
            .collect();
        let peer: Vec<f64> = cpus
            .iter()
            .filter_map(|c| c.peer_ns)
            .map(|v| v / 1e3)
            .collect();
        (stats::median(&own), stats::median(&peer))
    }

    /// Round trip timed in batches (µs): the median over repetitions.
    pub fn batch(&self, mech: Mech, imp: Imp, size: usize) -> Option<f64> {
        let values: Vec<f64> = self
            .records
            .iter()
            .filter(|r| {
                r.mech == mech
                    && r.imp == imp
                    && r.size == size
                    && r.kind == Kind::Latency
                    && r.knob.is_none()
            })
            .filter_map(|r| r.batch_ns)
            .map(|v| v / 1e3)
            .collect();
        stats::median(&values)
    }

    /// Per repetition, one mechanism's batch-timed round trip over another's; the median.
    pub fn batch_ratio(&self, num: (Mech, Imp, usize), den: (Mech, Imp, usize)) -> Option<f64> {
        let pick = |(mech, imp, size): (Mech, Imp, usize)| -> Vec<(usize, f64)> {
            self.records
                .iter()
                .filter(|r| {
                    r.mech == mech
                        && r.imp == imp
                        && r.size == size
                        && r.kind == Kind::Latency
                        && r.knob.is_none()
                })
                .filter_map(|r| r.batch_ns.map(|b| (r.rep, b)))
                .collect()
        };
        let den = pick(den);
        stats::median_ratio(
            pick(num)
                .into_iter()
                .filter_map(|(rep, n)| den.iter().find(|(r, _)| *r == rep).map(|&(_, d)| (n, d))),
        )
    }

    /// Round trip in µs over repetitions: `pick` chooses median, p99 or mean of each.
    pub fn rtt(&self, mech: Mech, imp: Imp, size: usize, pick: fn(&Summary) -> f64) -> Option<Agg> {
        let values: Vec<f64> = self
            .latencies(mech, imp, size)
            .map(|(_, s)| pick(s) / 1e3)
            .collect();
        agg(&values, f64::min)
    }

    /// Throughput over repetitions: `pick` chooses GB/s or messages/s.
    pub fn thr(
        &self,
        mech: Mech,
        imp: Imp,
        size: usize,
        knob: Option<Knob>,
        pick: fn(&Rate) -> f64,
    ) -> Option<Agg> {
        let values: Vec<f64> = self
            .rates(mech, imp, size, knob)
            .map(|(_, r)| pick(&r))
            .collect();
        agg(&values, f64::max)
    }

    /// Per repetition, one mechanism's median round trip over another's; the median of those.
    pub fn rtt_ratio(&self, num: (Mech, Imp, usize), den: (Mech, Imp, usize)) -> Option<f64> {
        let den: Vec<(usize, f64)> = self
            .latencies(den.0, den.1, den.2)
            .map(|(rep, s)| (rep, s.median_ns))
            .collect();
        stats::median_ratio(self.latencies(num.0, num.1, num.2).filter_map(|(rep, s)| {
            den.iter()
                .find(|(r, _)| *r == rep)
                .map(|&(_, d)| (s.median_ns, d))
        }))
    }

    /// Per repetition, one throughput over another (GB/s); the median of those.
    pub fn thr_ratio(
        &self,
        num: (Mech, Imp, usize, Option<Knob>),
        den: (Mech, Imp, usize, Option<Knob>),
    ) -> Option<f64> {
        let den: Vec<(usize, f64)> = self
            .rates(den.0, den.1, den.2, den.3)
            .map(|(rep, r)| (rep, r.gb_per_sec()))
            .collect();
        stats::median_ratio(
            self.rates(num.0, num.1, num.2, num.3)
                .filter_map(|(rep, r)| {
                    den.iter()
                        .find(|(d, _)| *d == rep)
                        .map(|&(_, d)| (r.gb_per_sec(), d))
                }),
        )
    }

    /// A throughput over memcpy's at the same size, per repetition; the median of those.
    pub fn thr_vs_memcpy(&self, mech: Mech, size: usize) -> Option<f64> {
        stats::median_ratio(
            self.rates(mech, Imp::Ours, size, None)
                .filter_map(|(rep, r)| {
                    self.memcpy
                        .iter()
                        .find(|(mr, ms, _)| *mr == rep && *ms == size)
                        .map(|(_, _, m)| (r.gb_per_sec(), m.gb_per_sec()))
                }),
        )
    }

    pub fn memcpy_gbs(&self, size: usize) -> Option<Agg> {
        let values: Vec<f64> = self
            .memcpy
            .iter()
            .filter(|(_, s, _)| *s == size)
            .map(|(_, _, r)| r.gb_per_sec())
            .collect();
        agg(&values, f64::max)
    }

    pub fn tool(&self, tool: &str, what_starts: &str) -> Option<&ToolFigure> {
        self.tools
            .iter()
            .find(|t| t.tool == tool && t.what.starts_with(what_starts))
    }

    /// The sweep settings measured for `mech`, in order.
    pub fn knobs(&self, mech: Mech) -> Vec<Knob> {
        let mut knobs: Vec<Knob> = self
            .records
            .iter()
            .filter(|r| r.mech == mech)
            .filter_map(|r| r.knob)
            .filter(|k| !matches!(k, Knob::Rate(_)))
            .collect();
        knobs.sort();
        knobs.dedup();
        knobs
    }

    /// Open loop: per mechanism, per target rate (in order), the medians over repetitions of
    /// p50, p99, p99.9, max (µs), the achieved rate, and the peer's CPU per round trip (µs: the
    /// measuring side's includes its waits for the schedule).
    pub fn open(&self, mech: Mech) -> Vec<(u64, [Option<f64>; 6])> {
        let mut rates: Vec<u64> = self
            .records
            .iter()
            .filter(|r| r.mech == mech && r.kind == Kind::Open)
            .filter_map(|r| match r.knob {
                Some(Knob::Rate(rate)) => Some(rate),
                _ => None,
            })
            .collect();
        rates.sort_unstable();
        rates.dedup();
        rates
            .into_iter()
            .map(|rate| {
                let recs: Vec<&Record> = self
                    .records
                    .iter()
                    .filter(|r| {
                        r.mech == mech && r.kind == Kind::Open && r.knob == Some(Knob::Rate(rate))
                    })
                    .collect();
                let med = |f: &dyn Fn(&Record) -> Option<f64>| {
                    stats::median(&recs.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
                };
                (
                    rate,
                    [
                        med(&|r| r.tail.map(|t| t.p50_ns / 1e3)),
                        med(&|r| r.tail.map(|t| t.p99_ns / 1e3)),
                        med(&|r| r.tail.map(|t| t.p999_ns / 1e3)),
                        med(&|r| r.tail.map(|t| t.max_ns / 1e3)),
                        med(&|r| r.tail.map(|t| t.achieved)),
                        med(&|r| r.cpu.peer_ns.map(|v| v / 1e3)),
                    ],
                )
            })
            .collect()
    }

    /// The message sizes that were measured, in order.
    pub fn sizes(&self) -> Vec<usize> {
        let mut sizes: Vec<usize> = self
            .records
            .iter()
            .filter(|r| r.size != FLOOR_SIZE)
            .map(|r| r.size)
            .collect();
        sizes.sort_unstable();
        sizes.dedup();
        sizes
    }

    /// The mechanisms that were measured, in table order.
    pub fn mechs(&self) -> Vec<Mech> {
        Mech::MECHANISMS
            .into_iter()
            .filter(|m| self.records.iter().any(|r| r.mech == *m))
            .collect()
    }
}

fn agg(values: &[f64], better: fn(f64, f64) -> f64) -> Option<Agg> {
    Some(Agg {
        median: stats::median(values)?,
        best: values.iter().copied().reduce(better)?,
        reps: values.len(),
    })
}

/// The sizes measured by default.
pub const SIZES: [usize; 3] = [64, 4096, 65536];
/// The size sweep (`--size-sweep`): powers of 4 from 64 B to 4 MiB.
pub const ALL_SIZES: [usize; 9] = [
    64,
    256,
    1 << 10,
    4 << 10,
    16 << 10,
    64 << 10,
    256 << 10,
    1 << 20,
    4 << 20,
];
/// The floors' records carry this size: they move only a sequence number.
pub const FLOOR_SIZE: usize = 8;

/// One of the blog's claims, checked.
#[derive(Clone, Debug)]
pub struct Claim {
    pub claim: &'static str,
    pub measured: String,
    pub verdict: String,
}

/// One target of the issue, checked.
#[derive(Clone, Debug)]
pub struct Target {
    pub what: String,
    pub value: Option<f64>,
    /// `<= x` or `>= x`.
    pub at_most: bool,
    pub limit: f64,
}

impl Target {
    pub fn met(&self) -> Option<bool> {
        self.value.map(|v| {
            if self.at_most {
                v <= self.limit
            } else {
                v >= self.limit
            }
        })
    }
}

fn x(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.2}x"))
}

/// Verdict for "A is better than B by this ratio" (ratio > 1 means A better).
fn verdict(ratios: &[Option<f64>]) -> String {
    let known: Vec<f64> = ratios.iter().flatten().copied().collect();
    if known.is_empty() {
        return "not measured".into();
    }
    let wins = known.iter().filter(|&&r| r > 1.05).count();
    let losses = known.iter().filter(|&&r| r < 0.95).count();
    match (wins, losses) {
        (w, 0) if w == known.len() => "holds".into(),
        (0, l) if l == known.len() => "does not hold (the opposite is true)".into(),
        (0, 0) => "no measurable difference (within 5%)".into(),
        _ => "partly holds".into(),
    }
}

impl Results {
    pub fn claims(&self) -> Vec<Claim> {
        let big = 65536;
        let mut claims = Vec::new();
        let tcp_over_unix = self.rtt_ratio((Mech::Tcp, Imp::Ours, 64), (Mech::Unix, Imp::Ours, 64));
        let unix_over_tcp = self.thr_ratio(
            (Mech::Unix, Imp::Ours, big, None),
            (Mech::Tcp, Imp::Ours, big, None),
        );
        claims.push(Claim {
            claim: "Unix domain sockets beat IP sockets (streams)",
            measured: format!(
                "TCP/UDS round trip at 64 B {}; UDS/TCP throughput at 64 KiB {}",
                x(tcp_over_unix),
                x(unix_over_tcp)
            ),
            verdict: verdict(&[tcp_over_unix, unix_over_tcp]),
        });
        let udp_over_udg = self.rtt_ratio((Mech::Udp, Imp::Ours, 64), (Mech::Udg, Imp::Ours, 64));
        let udg_over_udp = self.thr_ratio(
            (Mech::Udg, Imp::Ours, big, None),
            (Mech::Udp, Imp::Ours, big, None),
        );
        claims.push(Claim {
            claim: "Unix domain sockets beat IP sockets (datagrams)",
            measured: format!(
                "UDP/UDS round trip at 64 B {}; UDS/UDP throughput at 64 KiB {}",
                x(udp_over_udg),
                x(udg_over_udp)
            ),
            verdict: verdict(&[udp_over_udg, udg_over_udp]),
        });
        let tcp_over_udp: Vec<Option<f64>> = SIZES
            .iter()
            .map(|&s| self.rtt_ratio((Mech::Tcp, Imp::Ours, s), (Mech::Udp, Imp::Ours, s)))
            .collect();
        claims.push(Claim {
            claim: "UDP has lower latency than TCP",
            measured: format!(
                "TCP/UDP round trip {} at 64 B, {} at 4 KiB, {} at 64 KiB (65000 B UDP)",
                x(tcp_over_udp[0]),
                x(tcp_over_udp[1]),
                x(tcp_over_udp[2])
            ),
            verdict: verdict(&tcp_over_udp),
        });
        let mut sweeps = Vec::new();
        let mut ratios = Vec::new();
        for mech in [Mech::Unix, Mech::Tcp, Mech::Fifo] {
            let knobs = self.knobs(mech);
            if let (Some(&small), Some(&large)) = (knobs.first(), knobs.last()) {
                let ratio = self.thr_ratio(
                    (mech, Imp::Ours, big, Some(large)),
                    (mech, Imp::Ours, big, Some(small)),
                );
                sweeps.push(format!(
                    "{} {} vs {}: {}",
                    mech.title(),
                    knob_value(large),
                    knob_value(small),
                    x(ratio)
                ));
                ratios.push(ratio);
            }
        }
        claims.push(Claim {
            claim: "Bigger buffers raise throughput (64 KiB messages)",
            measured: if sweeps.is_empty() {
                "not measured".into()
            } else {
                sweeps.join("; ")
            },
            verdict: verdict(&ratios),
        });
        let others = [
            Mech::Udg,
            Mech::Udp,
            Mech::Unix,
            Mech::Tcp,
            Mech::Fifo,
            Mech::Mq,
        ];
        let best_other_rtt = others
            .iter()
            .filter_map(|&m| {
                self.rtt(m, Imp::Ours, 64, |s| s.median_ns)
                    .map(|a| (m, a.median))
            })
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let best_other_thr = others
            .iter()
            .filter_map(|&m| {
                self.thr(m, Imp::Ours, big, None, Rate::gb_per_sec)
                    .map(|a| (m, a.median))
            })
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let mut parts = Vec::new();
        let mut shm_ratios = Vec::new();
        for shm in [Mech::Shm, Mech::ShmSpin] {
            if let Some((m, rtt)) = best_other_rtt {
                let ratio = self
                    .rtt(shm, Imp::Ours, 64, |s| s.median_ns)
                    .map(|a| rtt / a.median);
                parts.push(format!(
                    "round trip at 64 B, {} (the fastest other) / {}: {}",
                    m.title(),
                    shm.title(),
                    x(ratio)
                ));
                shm_ratios.push(ratio);
            }
            if let Some((m, gbs)) = best_other_thr {
                let ratio = self
                    .thr(shm, Imp::Ours, big, None, Rate::gb_per_sec)
                    .map(|a| a.median / gbs);
                parts.push(format!(
                    "throughput at 64 KiB, {} / {} (the fastest other): {}",
                    shm.title(),
                    m.title(),
                    x(ratio)
                ));
                shm_ratios.push(ratio);
            }
        }
        claims.push(Claim {
            claim: "Shared memory is fastest (with locking of your own: here a futex ring)",
            measured: if parts.is_empty() {
                "not measured".into()
            } else {
                parts.join("; ")
            },
            verdict: verdict(&shm_ratios),
        });
        claims
    }

    pub fn targets(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        let mut push = |what: String, value: Option<f64>, at_most: bool, limit: f64| {
            targets.push(Target {
                what,
                value,
                at_most,
                limit,
            });
        };
        for mech in self.mechs() {
            for size in self.sizes() {
                let rtt = self.rtt_ratio((mech, Imp::Ours, size), (mech, Imp::Raw, size));
                if rtt.is_some() {
                    push(
                        format!(
                            "{} {} round trip: ours/raw",
                            mech.title(),
                            human_bytes(size)
                        ),
                        rtt,
                        true,
                        1.10,
                    );
                }
                let thr =
                    self.thr_ratio((mech, Imp::Ours, size, None), (mech, Imp::Raw, size, None));
                if thr.is_some() {
                    push(
                        format!(
                            "{} {} throughput: ours/raw",
                            mech.title(),
                            human_bytes(size)
                        ),
                        thr,
                        false,
                        0.90,
                    );
                }
            }
        }
        let floor = (Mech::Futex, Imp::Raw, FLOOR_SIZE);
        for (mech, limit) in [
            (Mech::Fifo, 1.25),
            (Mech::Unix, 1.45),
            (Mech::Udg, 1.45),
            (Mech::Mq, 1.35),
            (Mech::Tcp, 2.2),
            (Mech::Udp, 2.0),
            (Mech::Shm, 1.10),
        ] {
            push(
                format!("{} 64 B round trip / futex floor", mech.title()),
                self.rtt_ratio((mech, Imp::Ours, 64), floor),
                true,
                limit,
            );
        }
        push(
            "shm ring (spin) 64 B round trip / cache-line floor (batches)".into(),
            self.batch_ratio(
                (Mech::ShmSpin, Imp::Ours, 64),
                (Mech::Spin, Imp::Raw, FLOOR_SIZE),
            ),
            true,
            1.3,
        );
        push(
            "shm ring (spin) 64 B round trip / cache-line floor (medians)".into(),
            self.rtt_ratio(
                (Mech::ShmSpin, Imp::Ours, 64),
                (Mech::Spin, Imp::Raw, FLOOR_SIZE),
            ),
            true,
            1.3,
        );
        for size in [64, 65536] {
            for (ours, theirs) in [(Mech::ShmSpin, Mech::Iox), (Mech::ShmZc, Mech::IoxZc)] {
                push(
                    format!(
                        "{} {} round trip / {}",
                        ours.title(),
                        human_bytes(size),
                        theirs.title()
                    ),
                    self.rtt_ratio((ours, Imp::Ours, size), (theirs, Imp::Peer, size)),
                    true,
                    1.0,
                );
            }
        }
        push(
            "UDS stream 64 B round trip / TCP's".into(),
            self.rtt_ratio((Mech::Unix, Imp::Ours, 64), (Mech::Tcp, Imp::Ours, 64)),
            true,
            0.75,
        );
        let ring = if self
            .thr(Mech::ShmSpin, Imp::Ours, 65536, None, Rate::gb_per_sec)
            .is_some()
        {
            Mech::ShmSpin
        } else {
            Mech::Shm
        };
        push(
            format!("{} 64 KiB throughput / memcpy (median)", ring.title()),
            self.thr_vs_memcpy(ring, 65536),
            false,
            0.35,
        );
        let best = self
            .thr(ring, Imp::Ours, 65536, None, Rate::gb_per_sec)
            .zip(self.memcpy_gbs(65536))
            .map(|(r, m)| r.best / m.median);
        push(
            format!("{} 64 KiB throughput / memcpy (best run)", ring.title()),
            best,
            false,
            0.6,
        );
        push(
            format!("{} 64 KiB throughput / UDS stream's", ring.title()),
            self.thr_ratio(
                (ring, Imp::Ours, 65536, None),
                (Mech::Unix, Imp::Ours, 65536, None),
            ),
            false,
            3.0,
        );
        push(
            "shm ring (spin) 64 B throughput, million msg/s".into(),
            self.thr(Mech::ShmSpin, Imp::Ours, 64, None, Rate::messages_per_sec)
                .map(|a| a.median / 1e6),
            false,
            10.0,
        );
        push(
            "TCP 64 KiB throughput / iperf3".into(),
            self.tool("iperf3", "TCP 64 KiB")
                .zip(self.thr(Mech::Tcp, Imp::Ours, 65536, None, Rate::gb_per_sec))
                .map(|(t, ours)| ours.median / t.value),
            false,
            0.9,
        );
        for (mech, proto) in [(Mech::Tcp, "TCP"), (Mech::Udp, "UDP")] {
            push(
                format!("{proto} 64 B round trip / sockperf"),
                self.tool("sockperf", proto)
                    .zip(self.rtt(mech, Imp::Ours, 64, |s| s.median_ns))
                    .map(|(t, ours)| ours.median / t.value),
                true,
                1.1,
            );
        }
        targets
    }
}

fn knob_value(knob: Knob) -> String {
    match knob {
        Knob::SockBuf(b) | Knob::Pipe(b) => human_bytes(b),
        Knob::Rate(r) => format!("{r}/s"),
    }
}
