//! What one measurement is: which mechanism, whose implementation, which figure, which size,
//! with which knobs; and how it travels to the peer process on its command line.

use std::fmt;
use std::time::Duration;

use anyhow::Context;
use clap::ValueEnum;
use socket2::SockRef;

use crate::link::Budget;

/// The mechanisms of the blog, and the two floors that bound what any of them can reach.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
pub enum Mech {
    /// Unix domain datagram socket (`udg://`).
    Udg,
    /// UDP over loopback (`udp://`).
    Udp,
    /// Unix domain stream socket (`unix://`).
    Unix,
    /// TCP over loopback (`tcp://`).
    Tcp,
    /// Two named pipes (FIFOs), one each way.
    Fifo,
    /// A SysV message queue (type 1 one way, type 2 the other).
    Mq,
    /// Redis Streams over redis-server's Unix socket (XADD; XREADGROUP BLOCK + XACK), a stream
    /// each way, through the broker crate; needs `redis-server`.
    RedisUnix,
    /// Redis Streams over TCP on loopback, as `redis-unix` otherwise.
    RedisTcp,
    /// The SysV shared-memory ring, blocking hand-off (futex).
    Shm,
    /// The SysV shared-memory ring, spinning before it parks.
    ShmSpin,
    /// The ring, spinning, zero-copy: the writer fills a loaned place in the ring, the reader
    /// reads it in place (only the sequence number is written and read).
    ShmZc,
    /// The best peer for shared memory: iceoryx2 publish-subscribe, busy-polling, payload copied
    /// in and out.
    Iox,
    /// iceoryx2, zero-copy: loaned samples written and read in place (sequence number only).
    IoxZc,
    /// Floor: one shared cache line, a futex wake each way (no data).
    Futex,
    /// Floor: one shared cache line, spinning (the core-to-core latency; no data).
    Spin,
    /// Wake-up: an eventfd each way (no data).
    Eventfd,
    /// Wake-up: a SysV semaphore each way (no data).
    Sem,
}

impl Mech {
    /// The mechanisms, in table order.
    pub const MECHANISMS: [Mech; 13] = [
        Mech::Udg,
        Mech::Udp,
        Mech::Unix,
        Mech::Tcp,
        Mech::Fifo,
        Mech::Mq,
        Mech::RedisUnix,
        Mech::RedisTcp,
        Mech::Shm,
        Mech::ShmSpin,
        Mech::ShmZc,
        Mech::Iox,
        Mech::IoxZc,
    ];
    /// The floors and the other wake-ups of the wake-up matrix (no data, round trips only).
    pub const FLOORS: [Mech; 4] = [Mech::Spin, Mech::Futex, Mech::Eventfd, Mech::Sem];

    /// Whose implementations this mechanism has.
    pub fn imps(self) -> &'static [Imp] {
        match self {
            // No raw Redis: the rows compare with the SysV queue's.
            Mech::ShmZc | Mech::RedisUnix | Mech::RedisTcp => &[Imp::Ours],
            Mech::Iox | Mech::IoxZc => &[Imp::Peer],
            Mech::Futex | Mech::Spin | Mech::Eventfd | Mech::Sem => &[Imp::Raw],
            _ => &[Imp::Ours, Imp::Raw],
        }
    }

    /// Whether it is measured in round trips only.
    pub fn latency_only(self) -> bool {
        matches!(self, Mech::Iox | Mech::IoxZc) || Mech::FLOORS.contains(&self)
    }

    pub fn name(self) -> &'static str {
        match self {
            Mech::Udg => "udg",
            Mech::Udp => "udp",
            Mech::Unix => "unix",
            Mech::Tcp => "tcp",
            Mech::Fifo => "fifo",
            Mech::Mq => "mq",
            Mech::RedisUnix => "redis-unix",
            Mech::RedisTcp => "redis-tcp",
            Mech::Shm => "shm",
            Mech::ShmSpin => "shm-spin",
            Mech::ShmZc => "shm-zc",
            Mech::Iox => "iox",
            Mech::IoxZc => "iox-zc",
            Mech::Futex => "futex",
            Mech::Spin => "spin",
            Mech::Eventfd => "eventfd",
            Mech::Sem => "sem",
        }
    }

    /// What the table calls it.
    pub fn title(self) -> &'static str {
        match self {
            Mech::Udg => "UDS datagram",
            Mech::Udp => "UDP",
            Mech::Unix => "UDS stream",
            Mech::Tcp => "TCP",
            Mech::Fifo => "FIFO pair",
            Mech::Mq => "SysV queue",
            Mech::RedisUnix => "Redis Streams, UDS",
            Mech::RedisTcp => "Redis Streams, TCP",
            Mech::Shm => "shm ring (futex)",
            Mech::ShmSpin => "shm ring (spin)",
            Mech::ShmZc => "shm ring zero-copy",
            Mech::Iox => "iceoryx2 (copy)",
            Mech::IoxZc => "iceoryx2 zero-copy",
            Mech::Futex => "futex wake",
            Mech::Spin => "cache line (spin)",
            Mech::Eventfd => "eventfd",
            Mech::Sem => "SysV semaphore",
        }
    }

    pub fn spins(self) -> bool {
        matches!(
            self,
            Mech::ShmSpin | Mech::ShmZc | Mech::Iox | Mech::IoxZc | Mech::Spin
        )
    }

    /// The size a "`size`-byte message" really is on this mechanism.
    pub fn wire_size(self, size: usize) -> usize {
        match self {
            Mech::Udp => size.min(UDP_MAX),
            _ => size,
        }
    }

    /// The largest message measured: a Unix datagram must fit the socket's send buffer, which
    /// `net.core.wmem_max` caps (212992 B by default).
    /// UDP stops at its datagram limit (65,000 B are sent for 64 KiB).
    pub fn max_size(self) -> usize {
        match self {
            Mech::Udg | Mech::Udp => 64 << 10,
            // One stream entry's field: Redis's proto-max-bulk-len.
            Mech::RedisUnix | Mech::RedisTcp => broker::REDIS_MAX_BULK,
            _ => usize::MAX,
        }
    }

    /// What limits this mechanism at `size`, for the table's ceiling column.
    pub fn ceiling(self, size: usize, msgmax: usize) -> Option<String> {
        match self {
            Mech::Udp if size > UDP_MAX => Some(format!(
                "UDP carries at most {UDP_MAX} B here (65507 B IPv4 limit): sent {UDP_MAX} B; larger not measured"
            )),
            Mech::Udp => Some("receiver credits keep it lossless".into()),
            Mech::Mq if size > msgmax => Some(format!(
                "msgmax {msgmax} B: split into {} messages",
                size.div_ceil(msgmax)
            )),
            Mech::Udg if size > 16 << 10 => {
                Some("SO_SNDBUF raised to fit; over 64 KiB not measured (net.core.wmem_max)".into())
            }
            Mech::RedisUnix | Mech::RedisTcp => {
                Some("XADD, XREADGROUP, XACK: 3 round trips to redis-server per message".into())
            }
            Mech::ShmZc => Some(
                "zero-copy: the payload is lent, not moved (its GB/s is not a copy rate)".into(),
            ),
            Mech::Shm | Mech::ShmSpin if size > 256 << 10 => {
                Some("ring grown to hold two messages".into())
            }
            _ => None,
        }
    }
}

impl fmt::Display for Mech {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The largest UDP datagram the benchmark sends (fits loopback's 64 KiB MTU unfragmented).
pub const UDP_MAX: usize = 65_000;

/// Whose code moves the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
pub enum Imp {
    /// This workspace's code: ipc-common and the mechanism crates.
    Ours,
    /// The same syscalls straight through libc, blocking, as a C program makes them.
    Raw,
    /// The best other system for the job (iceoryx2 for shared memory).
    Peer,
}

impl fmt::Display for Imp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Imp::Ours => "ours",
            Imp::Raw => "raw",
            Imp::Peer => "peer",
        })
    }
}

/// Which figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
pub enum Kind {
    /// Ping-pong round trips.
    Latency,
    /// One-way throughput, timed at the receiver.
    Throughput,
    /// Open loop: round trips started on a fixed schedule (`--rate`), latency measured from
    /// the intended send time.
    Open,
}

impl Kind {
    /// Whether the peer echoes (round trips) rather than sends.
    pub fn round_trips(self) -> bool {
        matches!(self, Kind::Latency | Kind::Open)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Latency => "latency",
            Kind::Throughput => "throughput",
            Kind::Open => "open",
        })
    }
}

/// `--pin`: where the two processes run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Pin {
    /// Wherever the scheduler puts them.
    None,
    /// One core each (the measuring side on CPU 0, the peer on CPU 1).
    Split,
    /// Both on CPU 0 (every hand-off is a context switch; spinning is skipped).
    Same,
}

impl Pin {
    /// The CPU of the measuring side and of the peer.
    pub fn cpus(self) -> (Option<usize>, Option<usize>) {
        match self {
            Pin::None => (None, None),
            Pin::Split => (Some(0), Some(1)),
            Pin::Same => (Some(0), Some(0)),
        }
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pin::None => "none",
            Pin::Split => "split",
            Pin::Same => "same",
        })
    }
}

/// Settings that change how a mechanism is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Knobs {
    /// `SO_SNDBUF` on the sender and `SO_RCVBUF` on the receiver (stream sockets).
    pub sockbuf: Option<usize>,
    /// Pipe capacity (`F_SETPIPE_SZ`) of the FIFOs.
    pub pipe: Option<usize>,
    /// Data bytes of each shared-memory ring.
    pub ring_bytes: usize,
    /// How long the spinning variants spin before they park.
    pub spin: Duration,
    /// Open loop: round trips started per second.
    pub rate: Option<u64>,
}

/// One measurement.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub mech: Mech,
    pub imp: Imp,
    pub kind: Kind,
    /// The nominal size (64, 4096, 65536); see [`Mech::wire_size`].
    pub size: usize,
    pub budget: Budget,
    pub knobs: Knobs,
    /// The peer's CPU.
    pub peer_cpu: Option<usize>,
}

impl Spec {
    /// The socket options a stream run asks for, the same for ours and raw: `TCP_NODELAY` for
    /// TCP ping-pong, and the buffer size of a sweep on the side that needs it.
    pub fn tune_stream(&self, socket: SockRef<'_>, sender: bool) -> anyhow::Result<()> {
        if self.kind.round_trips() && self.mech == Mech::Tcp {
            socket
                .set_tcp_nodelay(true)
                .context("setsockopt(TCP_NODELAY)")?;
        }
        if let Some(bytes) = self.knobs.sockbuf {
            if sender {
                socket
                    .set_send_buffer_size(bytes)
                    .context("setsockopt(SO_SNDBUF)")?;
            } else {
                socket
                    .set_recv_buffer_size(bytes)
                    .context("setsockopt(SO_RCVBUF)")?;
            }
        }
        Ok(())
    }

    pub fn wire_size(&self) -> usize {
        self.mech.wire_size(self.size)
    }

    /// The ring's data bytes: `--ring-bytes`, or more when two messages would not fit (the
    /// size sweep's largest messages).
    pub fn ring_bytes(&self) -> usize {
        self.knobs
            .ring_bytes
            .max((2 * (self.wire_size() + 64)).next_power_of_two())
    }

    /// The peer's command line for this measurement (after `peer`), without the addresses.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            format!("--mech={}", self.mech),
            format!("--imp={}", self.imp),
            format!("--kind={}", self.kind),
            format!("--size={}", self.size),
            format!("--warmup-us={}", self.budget.warmup.as_micros()),
            format!("--measure-us={}", self.budget.measure.as_micros()),
            format!("--ring-bytes={}", self.knobs.ring_bytes),
            format!("--spin-us={}", self.knobs.spin.as_micros()),
        ];
        if let Some(bytes) = self.knobs.sockbuf {
            args.push(format!("--sockbuf={bytes}"));
        }
        if let Some(bytes) = self.knobs.pipe {
            args.push(format!("--pipe={bytes}"));
        }
        if let Some(cpu) = self.peer_cpu {
            args.push(format!("--cpu={cpu}"));
        }
        if let Some(rate) = self.knobs.rate {
            args.push(format!("--rate={rate}"));
        }
        args
    }
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} ({}) at {} B",
            self.mech,
            self.kind,
            self.imp,
            self.wire_size()
        )?;
        if let Some(bytes) = self.knobs.sockbuf {
            write!(f, ", socket buffers {bytes} B")?;
        }
        if let Some(bytes) = self.knobs.pipe {
            write!(f, ", pipe capacity {bytes} B")?;
        }
        if let Some(rate) = self.knobs.rate {
            write!(f, ", {rate}/s")?;
        }
        Ok(())
    }
}
