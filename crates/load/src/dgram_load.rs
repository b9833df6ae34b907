//! Load runs over the datagram mechanism: `ipc-load dgram-reader` and `ipc-load dgram-writer`.
//! (Moved here from the dgram binaries' `--count` mode by the redesign of issue 10.)
//!
//! The reader expects N stamped messages from each of `--writers W` writers (writer k runs with
//! `--first-seq k*N`) and prints one summary line. Unix datagrams are never dropped (a writer
//! waits while the reader's queue is full), so the reader waits for every one until
//! `--timeout`; UDP drops what does not fit the reader's queue, so over UDP the reader stops
//! after `--idle` seconds without a datagram and reports the loss.

use std::fmt;
use std::time::Duration;

use anyhow::{bail, ensure};
use clap::Subcommand;
use dgram::{Receiver, Sender};
use ipc_common::runtime::cli::{CommonArgs, MessageArgs, ModeArgs};
use ipc_common::runtime::report;
use ipc_common::runtime::wait::{Deadline, TimedOut, Timeout};
use ipc_common::say;
use ipc_common::seq::{self, SeqChecker};
use ipc_common::sockets::endpoint::DgramEndpoint;

/// The receive queue asked for in UDP load runs, so a burst is not dropped while we catch up.
const UDP_LOAD_RCVBUF: usize = 8 << 20;

/// `dgram-reader` and `dgram-writer` load runs.
#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Bind like dgram-reader, expect N stamped datagrams from each writer, print one summary
    /// line; exit 1 unless every one arrived once and in order.
    #[command(name = "dgram-reader")]
    Reader(ReaderArgs),
    /// Connect like dgram-writer and send N datagrams stamped --first-seq, --first-seq+1, ...
    #[command(name = "dgram-writer")]
    Writer(WriterArgs),
}

#[derive(clap::Args, Debug)]
pub(crate) struct ReaderArgs {
    /// Where to listen: udg://PATH or udp://HOST:PORT (port 0: the kernel chooses; the
    /// `listening on` line says which).
    #[arg(value_name = "URL", default_value = "udg:///tmp/ipc-socket.sock")]
    endpoint: DgramEndpoint,

    /// Expect N sequence-stamped messages from each writer.
    #[arg(long, value_name = "N", value_parser = seq::parse_count)]
    count: u64,

    /// W writers send at once, writer k with `--first-seq k*N`.
    #[arg(
        long,
        value_name = "W",
        default_value = "1",
        value_parser = clap::value_parser!(u64).range(1..=1024)
    )]
    writers: u64,

    /// Over UDP: once datagrams flow, stop after SECS without one and report the rest as lost
    /// (0: wait for all of them until --timeout).
    #[arg(long, value_name = "SECS", default_value = "1")]
    idle: Timeout,

    /// Exit 0 even if datagrams were lost, reordered or duplicated (UDP promises none of
    /// that); the summary line still tells.
    #[arg(long)]
    allow_loss: bool,

    #[command(flatten)]
    mode: ModeArgs,

    #[command(flatten)]
    common: CommonArgs,
}

#[derive(clap::Args, Debug)]
pub(crate) struct WriterArgs {
    /// Where the reader listens: udg://PATH or udp://HOST:PORT.
    #[arg(value_name = "URL", default_value = "udg:///tmp/ipc-socket.sock")]
    endpoint: DgramEndpoint,

    #[command(flatten)]
    message: MessageArgs,

    /// Send N messages, each stamped with its sequence number.
    #[arg(long, value_name = "N", value_parser = seq::parse_count)]
    count: u64,

    /// The first message's sequence number (writer k of several: k*N).
    #[arg(long, value_name = "K", default_value = "0")]
    first_seq: u64,

    #[command(flatten)]
    common: CommonArgs,
}

pub(crate) fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Reader(args) => read(args),
        Command::Writer(args) => {
            // A saturated range would send fewer than --count and still exit 0.
            if args.first_seq.checked_add(args.count).is_none() {
                clap::Error::raw(
                    clap::error::ErrorKind::ArgumentConflict,
                    format!(
                        "--first-seq {} with --count {} numbers messages past {}: give a \
                         smaller --first-seq\n",
                        args.first_seq,
                        args.count,
                        u64::MAX
                    ),
                )
                .exit()
            }
            write(args)
        }
    }
}

fn read(args: ReaderArgs) -> anyhow::Result<()> {
    let deadline = args.common.start();
    let total = args.count.saturating_mul(args.writers);
    ensure!(
        total <= seq::MAX_COUNT,
        "--count {} with --writers {} expects {total} messages: at most {} per run",
        args.count,
        args.writers,
        seq::MAX_COUNT
    );
    let mut receiver = Receiver::bind(&args.endpoint, args.mode.mode)?;
    if let (true, DgramEndpoint::Unix(path)) = (receiver.replaced_stale(), &args.endpoint) {
        say!(
            deadline,
            "removed stale socket {} (nobody was listening)",
            path.display()
        );
    }
    say!(deadline, "listening on {}", receiver.url());

    let udp = matches!(args.endpoint, DgramEndpoint::Udp(_));
    if udp {
        receiver.set_receive_buffer(UDP_LOAD_RCVBUF)?;
    }
    let idle = if udp { args.idle.duration() } else { None };
    let mut tally = Tally::new(args.count, args.writers);
    let received = recv_into(&mut receiver, &mut tally, idle, &deadline);
    // The summary is the run's result, also when it ended early.
    report::print_payload(tally.to_string().as_bytes())?;
    received?;
    if !tally.perfect() && !args.allow_loss {
        bail!(
            "check {total} messages on {}: some were lost, duplicated or reordered (see stdout)",
            receiver.url()
        );
    }
    receiver.close()
}

/// Receives stamped messages into `tally` until it has them all. With `idle`, gives up quietly
/// once that long has passed without a datagram after the first one (UDP loses datagrams by
/// design; `tally` then says what is missing).
fn recv_into(
    receiver: &mut Receiver,
    tally: &mut Tally,
    idle: Option<Duration>,
    deadline: &Deadline,
) -> anyhow::Result<()> {
    let mut started = false;
    while !tally.complete() {
        let wait_until = match idle {
            Some(gap) if started && deadline.remaining().is_none_or(|left| left > gap) => {
                Deadline::after(Timeout::from_duration(gap))
            }
            _ => *deadline,
        };
        match receiver.recv(&wait_until) {
            Ok(datagram) => {
                tally.observe(datagram)?;
                if !started {
                    say!(deadline, "first message arrived; receiving the rest");
                }
            }
            Err(err) if err.is::<TimedOut>() && !deadline.expired() => {
                say!(
                    deadline,
                    "no datagram for {}: taking the rest as lost",
                    Timeout::from_duration(idle.unwrap_or_default())
                );
                return Ok(());
            }
            Err(err) => return Err(err),
        }
        started = true;
    }
    Ok(())
}

fn write(args: WriterArgs) -> anyhow::Result<()> {
    let deadline = args.common.start();
    let limit = dgram::message_limit(&args.endpoint)?;
    let payload = args
        .message
        .payload(dgram::default_message(&args.endpoint), limit, &deadline)?;
    let mut sender = Sender::connect(&args.endpoint, &deadline)?;

    let mut datagram = Vec::with_capacity(seq::STAMP_LEN + payload.len());
    for seq in args.first_seq..args.first_seq + args.count {
        seq::stamp_into(&mut datagram, seq, &payload);
        sender.send(&datagram, &deadline)?;
    }
    say!(
        deadline,
        "sent {} messages of {} bytes to {}",
        args.count,
        datagram.len(),
        sender.url()
    );
    sender.close();
    Ok(())
}

/// The reader's check: `writers` writers each send `per_writer` stamped messages, writer k
/// numbering its own `k * per_writer ..` (its `--first-seq`).
///
/// Datagrams of concurrent writers interleave, so each writer's range is checked on its own:
/// lost, duplicated and reordered mean within one writer's messages.
#[derive(Debug)]
struct Tally {
    per_writer: u64,
    writers: Vec<SeqChecker>,
    restamped: Vec<u8>,
}

impl Tally {
    fn new(per_writer: u64, writers: u64) -> Self {
        Tally {
            per_writer,
            writers: (0..writers)
                .map(|_| SeqChecker::new(per_writer, None))
                .collect(),
            restamped: Vec::new(),
        }
    }

    /// Records one received datagram; an unstamped one, or one beyond every range, is an error.
    fn observe(&mut self, datagram: &[u8]) -> anyhow::Result<()> {
        let (seq, payload) = seq::unstamp(datagram)?;
        let expected = self.per_writer.saturating_mul(self.writers.len() as u64);
        let Some(checker) = usize::try_from(seq / self.per_writer)
            .ok()
            .and_then(|writer| self.writers.get_mut(writer))
        else {
            bail!("sequence number {seq} is beyond the {expected} expected");
        };
        // Each writer's checker counts from 0: renumber the message within its writer's range.
        seq::stamp_into(&mut self.restamped, seq % self.per_writer, payload);
        checker.observe(&self.restamped)
    }

    /// Every message of every writer has arrived.
    fn complete(&self) -> bool {
        self.writers.iter().all(SeqChecker::complete)
    }

    /// Nothing lost, duplicated or reordered.
    fn perfect(&self) -> bool {
        self.writers.iter().all(SeqChecker::perfect)
    }
}

impl fmt::Display for Tally {
    /// One writer: the checker's line; several: `writer 0: <line>; writer 1: <line>; ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let [only] = self.writers.as_slice() {
            return only.fmt(f);
        }
        for (k, checker) in self.writers.iter().enumerate() {
            let separator = if k == 0 { "" } else { "; " };
            write!(f, "{separator}writer {k}: {checker}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamped(seq: u64) -> Vec<u8> {
        let mut out = Vec::new();
        seq::stamp_into(&mut out, seq, b"p");
        out
    }

    #[test]
    fn interleaved_writers_are_each_in_order() {
        let mut tally = Tally::new(3, 2);
        for seq in [0, 3, 1, 4, 2] {
            tally.observe(&stamped(seq)).unwrap();
        }
        assert!(!tally.complete());
        tally.observe(&stamped(5)).unwrap();
        assert!(tally.complete() && tally.perfect());
        assert!(tally.observe(&stamped(6)).is_err());
        assert_eq!(
            tally.to_string(),
            "writer 0: received 3 of 3 messages (36 bytes): 0 lost, 0 duplicated, 0 reordered, \
             0 corrupted; writer 1: received 3 of 3 messages (36 bytes): 0 lost, 0 duplicated, \
             0 reordered, 0 corrupted"
        );
    }

    #[test]
    fn one_writer_reports_like_the_checker() {
        let mut tally = Tally::new(3, 1);
        for seq in [0, 2] {
            tally.observe(&stamped(seq)).unwrap();
        }
        assert!(!tally.perfect());
        assert_eq!(
            tally.to_string(),
            "received 2 of 3 messages (24 bytes): 1 lost, 0 duplicated, 1 reordered, 0 corrupted"
        );
    }
}
