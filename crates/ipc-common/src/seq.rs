//! Sequence-numbered messages for load runs (`--count N`): the writer stamps message `i` with its
//! number, the reader checks that every number from 0 to N-1 arrived exactly once and in order,
//! and says what was lost, duplicated or reordered.
//!
//! A stamped message is `SEQ|` (ten decimal digits and a bar, so it reads well in a packet dump)
//! followed by the writer's payload. Mechanisms that keep message boundaries (datagrams, queues)
//! carry it as it is; byte streams (stream sockets, FIFOs) carry it framed: a `u32`
//! little-endian length, then the stamped message ([`frame_into`], [`Deframer`]).

use std::fmt;

use anyhow::{bail, ensure};

/// Bytes the stamp adds in front of each payload.
pub const STAMP_LEN: usize = 11;

/// Writes message `seq` (stamp, then `payload`) into `out`, reusing its allocation.
pub fn stamp_into(out: &mut Vec<u8>, seq: u64, payload: &[u8]) {
    use std::io::Write;
    out.clear();
    write!(out, "{seq:010}|").expect("writing to a Vec cannot fail");
    out.extend_from_slice(payload);
}

/// The sequence number and payload of a stamped message.
pub fn unstamp(message: &[u8]) -> anyhow::Result<(u64, &[u8])> {
    ensure!(
        message.len() >= STAMP_LEN && message[STAMP_LEN - 1] == b'|',
        "message of {} bytes has no sequence stamp",
        message.len()
    );
    let digits = &message[..STAMP_LEN - 1];
    if !digits.iter().all(u8::is_ascii_digit) {
        bail!(
            "sequence stamp {:?} is not ten digits",
            String::from_utf8_lossy(digits)
        );
    }
    let seq = std::str::from_utf8(digits)?.parse()?;
    Ok((seq, &message[STAMP_LEN..]))
}

/// Appends message `seq` to `out` framed for a byte stream: length (u32 LE), stamp, payload.
pub fn frame_into(out: &mut Vec<u8>, seq: u64, payload: &[u8]) {
    use std::io::Write;
    let len = u32::try_from(STAMP_LEN + payload.len()).expect("a framed message fits u32");
    out.extend_from_slice(&len.to_le_bytes());
    write!(out, "{seq:010}|").expect("writing to a Vec cannot fail");
    out.extend_from_slice(payload);
}

/// Splits a byte stream back into framed messages, refusing a length over `max_len` (a hostile
/// or corrupted peer cannot make us allocate more).
#[derive(Debug)]
pub struct Deframer {
    buf: Vec<u8>,
    start: usize,
    max_len: usize,
}

impl Deframer {
    pub fn new(max_len: usize) -> Self {
        Deframer {
            buf: Vec::new(),
            start: 0,
            max_len,
        }
    }

    /// Adds bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message, if one has arrived.
    pub fn next_message(&mut self) -> anyhow::Result<Option<&[u8]>> {
        let pending = &self.buf[self.start..];
        let Some(len_bytes) = pending.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_le_bytes(len_bytes.try_into().expect("4 bytes")) as usize;
        ensure!(
            len <= self.max_len,
            "framed message of {len} bytes exceeds the limit of {} bytes",
            self.max_len
        );
        if pending.len() < 4 + len {
            return Ok(None);
        }
        let begin = self.start + 4;
        self.start = begin + len;
        Ok(Some(&self.buf[begin..begin + len]))
    }

    /// Bytes of an incomplete message left over (non-zero at end of stream means truncation).
    pub fn leftover(&self) -> usize {
        self.buf.len() - self.start
    }
}

/// The most messages one load run may expect: the reader keeps one bit per message (128 MiB at
/// this count), so the number that sizes that allocation is bounded where it is parsed.
pub const MAX_COUNT: u64 = 1 << 30;

/// Parses `--count N`: 1 to [`MAX_COUNT`].
pub fn parse_count(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(n) if (1..=MAX_COUNT).contains(&n) => Ok(n),
        _ => Err(format!(
            "`{text}` is not a message count: give 1 to {MAX_COUNT} (a reader keeps one bit per \
             message)"
        )),
    }
}

/// Counts what arrived of `expected` stamped messages.
#[derive(Debug)]
pub struct SeqChecker {
    /// One bit per expected message.
    seen: Vec<u64>,
    expected: u64,
    received: u64,
    bytes: u64,
    duplicated: u64,
    reordered: u64,
    next_expected: u64,
    payload: Option<Vec<u8>>,
    corrupted: u64,
}

impl SeqChecker {
    /// Expects messages `0..expected`, each carrying `payload` after its stamp (checked when
    /// given).
    ///
    /// `expected` is clamped to [`MAX_COUNT`]: callers bound it when parsing it.
    pub fn new(expected: u64, payload: Option<Vec<u8>>) -> Self {
        let expected = expected.min(MAX_COUNT);
        SeqChecker {
            // MAX_COUNT / 64 words always fit a usize.
            seen: vec![0; expected.div_ceil(64) as usize],
            expected,
            received: 0,
            bytes: 0,
            duplicated: 0,
            reordered: 0,
            next_expected: 0,
            payload,
            corrupted: 0,
        }
    }

    /// Records one received message; an unstamped or out-of-range message is an error.
    pub fn observe(&mut self, message: &[u8]) -> anyhow::Result<()> {
        let (seq, payload) = unstamp(message)?;
        let expected = self.expected;
        if seq >= expected {
            anyhow::bail!("sequence number {seq} is beyond the {expected} expected");
        }
        // seq < expected <= MAX_COUNT: the word index fits.
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        self.received += 1;
        self.bytes += message.len() as u64;
        if self.seen[word] & bit != 0 {
            self.duplicated += 1;
        }
        self.seen[word] |= bit;
        if seq != self.next_expected {
            self.reordered += 1;
        }
        self.next_expected = seq + 1;
        if self.payload.as_deref().is_some_and(|p| p != payload) {
            self.corrupted += 1;
        }
        Ok(())
    }

    /// Whether every expected message has arrived (then the reader can stop).
    pub fn complete(&self) -> bool {
        self.received - self.duplicated == self.expected
    }

    pub fn missing(&self) -> u64 {
        self.expected - (self.received - self.duplicated)
    }

    /// Nothing lost, duplicated, reordered or corrupted.
    pub fn perfect(&self) -> bool {
        self.reordered == 0 && self.perfect_in_any_order()
    }

    /// Every message exactly once and intact, in whatever order: the promise when several
    /// writers interleave.
    pub fn perfect_in_any_order(&self) -> bool {
        self.missing() == 0 && self.duplicated == 0 && self.corrupted == 0
    }
}

impl fmt::Display for SeqChecker {
    /// `received 100000 of 100000 messages (1100000 bytes): 0 lost, 0 duplicated, 0 reordered,
    /// 0 corrupted`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "received {} of {} messages ({} bytes): {} lost, {} duplicated, {} reordered, {} corrupted",
            self.received,
            self.expected,
            self.bytes,
            self.missing(),
            self.duplicated,
            self.reordered,
            self.corrupted
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip() {
        let mut buf = Vec::new();
        stamp_into(&mut buf, 42, b"payload");
        assert_eq!(buf, b"0000000042|payload");
        assert_eq!(unstamp(&buf).unwrap(), (42, &b"payload"[..]));
        assert!(unstamp(b"000000004x|").is_err());
        assert!(unstamp(b"short").is_err());
    }

    #[test]
    fn counts_loss_duplicates_and_reordering() {
        let mut checker = SeqChecker::new(4, Some(b"p".to_vec()));
        let mut buf = Vec::new();
        for seq in [0, 2, 1, 2] {
            stamp_into(&mut buf, seq, b"p");
            checker.observe(&buf).unwrap();
        }
        assert!(!checker.complete());
        assert_eq!(
            checker.to_string(),
            "received 4 of 4 messages (48 bytes): 1 lost, 1 duplicated, 2 reordered, 0 corrupted"
        );
        stamp_into(&mut buf, 4, b"p");
        assert!(checker.observe(&buf).is_err());
    }

    #[test]
    fn frames_survive_any_split() {
        let mut stream = Vec::new();
        for seq in 0..5 {
            frame_into(&mut stream, seq, &vec![b'x'; seq as usize * 7]);
        }
        for chunk in [1, 3, 4, 17, stream.len()] {
            let mut deframer = Deframer::new(1024);
            let mut seqs = Vec::new();
            for piece in stream.chunks(chunk) {
                deframer.push(piece);
                while let Some(message) = deframer.next_message().unwrap() {
                    let (seq, payload) = unstamp(message).unwrap();
                    assert_eq!(payload.len(), seq as usize * 7);
                    seqs.push(seq);
                }
            }
            assert_eq!(seqs, [0, 1, 2, 3, 4]);
            assert_eq!(deframer.leftover(), 0);
        }
    }

    #[test]
    fn an_oversized_frame_is_refused_before_allocating() {
        let mut deframer = Deframer::new(16);
        deframer.push(&u32::MAX.to_le_bytes());
        let err = deframer.next_message().unwrap_err();
        assert!(
            err.to_string().contains("exceeds the limit of 16 bytes"),
            "{err}"
        );
    }

    #[test]
    fn a_perfect_run_is_complete() {
        let mut checker = SeqChecker::new(3, None);
        let mut buf = Vec::new();
        for seq in 0..3 {
            stamp_into(&mut buf, seq, b"anything");
            checker.observe(&buf).unwrap();
        }
        assert!(checker.complete() && checker.perfect());
    }
}
