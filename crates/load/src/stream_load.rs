//! Load runs over the stream mechanism: `ipc-load stream-reader` and `ipc-load stream-writer`.
//! (Moved here from the stream binaries' `--count` mode by the redesign of issue 10.)
//!
//! Each client sends N messages stamped 0, 1, ... and framed (a `u32` length first) on one
//! connection, and reads the server's greeting as `stream-writer` does; the server serves
//! `--connections` clients at once (up to 64, [`stream::Server`]), checks each one's messages on
//! arrival and prints one summary line per client, in the order they finish.

use std::fmt;

use anyhow::ensure;
use clap::Subcommand;
use ipc_common::runtime::cli::{CommonArgs, MessageArgs, MessageLimit, ModeArgs};
use ipc_common::runtime::report;
use ipc_common::runtime::wait::Deadline;
use ipc_common::runtime::wait::Timeout;
use ipc_common::say;
use ipc_common::seq::{self, Deframer, SeqChecker};
use ipc_common::sockets::endpoint::StreamEndpoint;
use ipc_common::sockets::sock::Outgoing;
use stream::{Event, Limits, Listener, Receive, Served, Server};

/// The largest framed message a load run carries; a reader refuses a longer length prefix
/// before allocating anything for it.
const MAX_FRAME: usize = 64 << 20;

/// Clients a load server exchanges with at once; the rest wait in the listen backlog.
const MAX_CLIENTS: usize = 64;

/// Bytes of framed messages a load run prepares at a time.
const FRAME_BATCH: usize = 64 << 10;

/// `stream-reader` and `stream-writer` load runs.
#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Serve like stream-reader, expect N stamped, framed messages from each client and print
    /// one summary line per client; exit 1 unless all were perfect.
    #[command(name = "stream-reader")]
    Reader(ReaderArgs),
    /// Connect like stream-writer, send N stamped, framed messages and print the greeting.
    #[command(name = "stream-writer")]
    Writer(WriterArgs),
}

#[derive(clap::Args, Debug)]
pub(crate) struct ReaderArgs {
    /// Where to listen: unix://PATH or tcp://HOST:PORT (port 0: the kernel chooses; the
    /// `listening on` line says which).
    #[arg(value_name = "URL", default_value = "unix:///tmp/ipc-socket.sock")]
    endpoint: StreamEndpoint,

    /// The greeting (--message, --message-file).
    #[command(flatten)]
    greeting: MessageArgs,

    /// Serve N clients, at once (up to 64; the rest wait in the backlog), then exit.
    #[arg(
        long,
        value_name = "N",
        default_value = "1",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    connections: u64,

    /// Expect N sequence-stamped, framed messages from each client.
    #[arg(long, value_name = "N", value_parser = seq::parse_count)]
    count: u64,

    #[command(flatten)]
    mode: ModeArgs,

    #[command(flatten)]
    common: CommonArgs,
}

#[derive(clap::Args, Debug)]
pub(crate) struct WriterArgs {
    /// Where the server listens: unix://PATH or tcp://HOST:PORT.
    #[arg(value_name = "URL", default_value = "unix:///tmp/ipc-socket.sock")]
    endpoint: StreamEndpoint,

    #[command(flatten)]
    message: MessageArgs,

    /// Send N messages, each stamped with its sequence number and framed.
    #[arg(long, value_name = "N", value_parser = seq::parse_count)]
    count: u64,

    #[command(flatten)]
    common: CommonArgs,
}

pub(crate) fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Reader(args) => serve(args),
        Command::Writer(args) => send(args),
    }
}

fn serve(args: ReaderArgs) -> anyhow::Result<()> {
    let deadline = args.common.start();
    let greeting = args.greeting.payload(
        stream::server_greeting(&args.endpoint),
        MessageLimit::IN_MEMORY,
        &deadline,
    )?;
    let listener = Listener::bind(&args.endpoint, args.mode.mode)?;
    if let (true, StreamEndpoint::Unix(path)) = (listener.replaced_stale(), &args.endpoint) {
        say!(
            deadline,
            "removed stale socket {} (nobody was listening)",
            path.display()
        );
    }
    say!(deadline, "listening on {}", listener.url());

    let url = listener.url().to_string();
    let limits = Limits {
        connections: args.connections,
        max_clients: MAX_CLIENTS,
        client_timeout: Timeout::FOREVER,
    };
    let mut server = Server::with_receiver(listener, &greeting, limits, || {
        FrameCheck::new(args.count, &deadline)
    });
    let mut imperfect = 0;
    while let Some(event) = server.next(&deadline)? {
        say!(deadline, "{event}");
        // The summary is the client's result, also when its connection failed.
        let (Event::Served(Served { message: check, .. })
        | Event::Failed {
            received: check, ..
        }) = event
        else {
            continue;
        };
        report::print_payload(check.to_string().as_bytes())?;
        if !check.perfect() {
            imperfect += 1;
        }
    }
    server.close()?;
    ensure!(
        imperfect == 0,
        "check the messages of {} client(s) on {url}: {imperfect} of them lost, duplicated, \
         reordered or cut messages (see stdout)",
        args.connections,
    );
    Ok(())
}

fn send(args: WriterArgs) -> anyhow::Result<()> {
    let deadline = args.common.start();
    let message = args.message.payload(
        stream::client_message(&args.endpoint),
        MessageLimit::IN_MEMORY,
        &deadline,
    )?;
    let mut conn = stream::connect(&args.endpoint, &deadline)?;
    say!(deadline, "connected to {}", conn.peer());

    let mut greeting = Vec::new();
    let exchanged = conn.exchange(
        &mut FrameSource::new(&message, args.count)?,
        &mut |bytes: &[u8]| {
            greeting.extend_from_slice(bytes);
            Ok(())
        },
        &deadline,
    )?;
    say!(
        deadline,
        "sent {} bytes, received {} bytes",
        exchanged.sent,
        exchanged.received
    );
    report::print_payload(&greeting)?;
    conn.close();
    Ok(())
}

/// A load run's outgoing bytes: `count` messages carrying `payload`, stamped 0, 1, ... and
/// framed for a byte stream ([`seq::frame_into`]), prepared a batch at a time in one buffer.
#[derive(Debug)]
struct FrameSource<'a> {
    payload: &'a [u8],
    next: u64,
    end: u64,
    batch: Vec<u8>,
    sent: usize,
}

impl<'a> FrameSource<'a> {
    fn new(payload: &'a [u8], count: u64) -> anyhow::Result<Self> {
        let framed = seq::STAMP_LEN + payload.len();
        ensure!(
            framed <= MAX_FRAME,
            "frame a {}-byte message: a stamped message in a load run is at most {MAX_FRAME} \
             bytes, this one would be {framed}",
            payload.len()
        );
        Ok(FrameSource {
            payload,
            next: 0,
            end: count,
            batch: Vec::with_capacity(FRAME_BATCH.max(4 + framed)),
            sent: 0,
        })
    }
}

impl Outgoing for FrameSource<'_> {
    fn pending(&mut self) -> &[u8] {
        if self.sent == self.batch.len() && self.next < self.end {
            self.batch.clear();
            self.sent = 0;
            while self.next < self.end && self.batch.len() < FRAME_BATCH {
                seq::frame_into(&mut self.batch, self.next, self.payload);
                self.next += 1;
            }
        }
        &self.batch[self.sent..]
    }

    fn advance(&mut self, n: usize) {
        self.sent += n;
    }
}

/// A load run's check of one connection: reassembles the frames and checks their numbers.
#[derive(Debug)]
struct FrameCheck<'d> {
    deframer: Deframer,
    checker: SeqChecker,
    started: bool,
    deadline: &'d Deadline,
}

impl<'d> FrameCheck<'d> {
    /// Expects messages stamped `0..count`; says so on `deadline` when the first arrives.
    fn new(count: u64, deadline: &'d Deadline) -> Self {
        FrameCheck {
            deframer: Deframer::new(MAX_FRAME),
            checker: SeqChecker::new(count, None),
            started: false,
            deadline,
        }
    }

    /// Takes bytes as they arrive; a frame too long or a message without a stamp is an error.
    fn push(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.deframer.push(bytes);
        while let Some(message) = self.deframer.next_message()? {
            self.checker.observe(message)?;
            if !std::mem::replace(&mut self.started, true) {
                say!(self.deadline, "first message arrived; receiving the rest");
            }
        }
        Ok(())
    }

    /// Every message arrived once, in order, and the stream did not end inside one.
    fn perfect(&self) -> bool {
        self.checker.perfect() && self.deframer.leftover() == 0
    }
}

impl Receive for FrameCheck<'_> {
    fn receive(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.push(bytes)
    }
}

impl fmt::Display for FrameCheck<'_> {
    /// The checker's line, and the bytes of a message cut short by the end of stream, if any.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.checker)?;
        match self.deframer.leftover() {
            0 => Ok(()),
            cut => write!(f, "; the stream ended {cut} bytes into a message"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drains `source` the way a socket would: in pieces of `piece` bytes.
    fn drain(source: &mut FrameSource<'_>, piece: usize) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let pending = source.pending();
            if pending.is_empty() {
                return out;
            }
            let n = pending.len().min(piece);
            out.extend_from_slice(&pending[..n]);
            source.advance(n);
        }
    }

    #[test]
    fn framed_messages_check_perfect_however_they_are_cut() {
        let deadline = Deadline::forever();
        for piece in [1, 7, 4096, usize::MAX] {
            let mut source = FrameSource::new(b"hello", 10_000).unwrap();
            let bytes = drain(&mut source, piece);
            assert_eq!(bytes.len(), 10_000 * (4 + seq::STAMP_LEN + 5));
            let mut check = FrameCheck::new(10_000, &deadline);
            for chunk in bytes.chunks(piece.min(bytes.len())) {
                check.push(chunk).unwrap();
            }
            assert!(check.perfect(), "{check}");
        }
    }

    #[test]
    fn a_stream_cut_inside_a_message_is_not_perfect() {
        let deadline = Deadline::forever();
        let bytes = drain(&mut FrameSource::new(b"hello", 2).unwrap(), usize::MAX);
        let mut check = FrameCheck::new(2, &deadline);
        check.push(&bytes[..bytes.len() - 3]).unwrap();
        assert!(!check.perfect());
        assert_eq!(
            check.to_string(),
            "received 1 of 2 messages (16 bytes): 1 lost, 0 duplicated, 0 reordered, 0 corrupted; \
             the stream ended 17 bytes into a message"
        );
    }

    #[test]
    fn an_oversized_message_is_refused_before_framing() {
        let big = vec![0; MAX_FRAME];
        assert!(FrameSource::new(&big, 1).is_err());
    }
}
