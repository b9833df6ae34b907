//! A ring buffer of messages in a SysV shared memory segment, for one producer process and one
//! consumer process: the benchmark's shared-memory mechanism, and the answer to the blog's
//! "shared memory is fastest, but you need your own locking".
//!
//! Two ways to move a message: copying ([`Producer::send`] copies a slice in, [`Consumer::recv`]
//! copies it out), or zero-copy ([`Producer::loan`] hands out the message's place in the ring to
//! fill in place, [`Consumer::take`] hands out the published message to read in place; dropping
//! the [`Taken`] releases its space). A loan or a taken message borrows its side mutably, so the
//! borrow checker makes a use after commit or release impossible.
//!
//! # Layout
//!
//! The segment ([`Attached`]) starts with a 4 KiB header, then `capacity` bytes of data (a
//! power of two). Each shared word has a cache line of its own, so the two sides never
//! invalidate each other's lines by writing neighbouring words (offsets in [`layout`]):
//!
//! | offset | word | written by |
//! |-------:|------|------------|
//! | 0 | magic `RNG2`, then the capacity (u32) | [`init`] |
//! | 64 | `head`: bytes published so far (wrapping u32) | producer |
//! | 128 | `consumer_parked`: 1 while the consumer sleeps on `head` | consumer |
//! | 192 | `tail`: bytes released so far (wrapping u32) | consumer |
//! | 256 | `producer_parked`: 1 while the producer sleeps on `tail` | producer |
//!
//! `head - tail` (wrapping) is the number of bytes in use. A message is a record: its length
//! (u32) and its stamp (u32), then the payload, padded to a multiple of 8 bytes. A record is
//! never split at the end of the data area (so it can be lent out as one slice): when it does
//! not fit before the end, the producer first publishes a pad record (length [`layout::PAD`])
//! that fills the rest, and the consumer skips it.
//!
//! # Memory ordering
//!
//! - The producer writes a record into free space, zeroes the header of the *next* record, then
//!   publishes the record with a **Release** store of its stamp (its stream position, low bit
//!   set) and of `head`. The consumer spins on the stamp at its own position with **Acquire**:
//!   once it sees the stamp, every byte of the record, and the zeroed next header, is visible.
//!   Spinning on the record itself rather than on `head` saves a cache-line transfer per
//!   message: the stamp arrives with the first bytes of the payload. The zeroed next header
//!   means the consumer never mistakes stale bytes from an earlier lap for a stamp.
//! - The consumer reads the payload, then releases the space with a **Release** store of
//!   `tail`. The producer reads `tail` with **Acquire** before writing into that space, so it
//!   never overwrites bytes the consumer is still reading.
//! - Parking (sleeping in `futex(2)`) is a Dekker hand-shake: the sleeper stores its `parked`
//!   flag, then a **SeqCst fence**, then re-reads the word; the other side stores the word, then
//!   a **SeqCst fence**, then reads the flag and calls `FUTEX_WAKE` only if it is set. The fences
//!   order each store before the following load, so at least one side sees the other's store:
//!   either the sleeper sees the new word and does not sleep, or the waker sees the flag and
//!   wakes it. A wake is therefore a syscall only when someone really sleeps.
//! - `FUTEX_WAIT(word, seen)` sleeps only while the word still holds `seen`, checked by the
//!   kernel under its lock. It still returns for reasons other than our condition, so the caller
//!   **re-checks** the ring after every return.
//!
//! # Trust
//!
//! Both sides are this code. A loan and a taken message are Rust slices into the shared segment:
//! sound because the protocol gives the holder sole use of those bytes; a peer that breaks the
//! protocol (another program writing the segment) could race with them. Use the copying calls
//! when the peer is not trusted.
//!
//! # Waiting
//!
//! [`Wait::Block`] parks at once: no CPU is burnt, and every hand-off to a sleeping peer costs a
//! `FUTEX_WAKE` and a wake-up (microseconds). [`Wait::Spin`] first spins for a while, so a peer
//! that answers quickly is seen within a cache-line transfer, and parks after that. Spin only
//! when the two processes run on different cores. Every wait is bounded by a [`Deadline`].

pub mod futex;

use std::hint::spin_loop;
use std::sync::atomic::{AtomicU32, Ordering, fence};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use ipc_common::runtime::wait::Deadline;
use ipc_common::sysv::Attached;
use nix::errno::Errno;

/// Where everything is in a ring's segment: for code that reads the ring without this crate
/// (the benchmark's raw baseline uses the header words).
pub mod layout {
    /// `RNG2`, little-endian, at [`MAGIC_AT`] once [`crate::init`] is done.
    pub const MAGIC: u32 = u32::from_le_bytes(*b"RNG2");
    pub const MAGIC_AT: usize = 0;
    /// The data capacity in bytes (u32).
    pub const CAPACITY_AT: usize = 4;
    /// Bytes published so far (producer).
    pub const HEAD_AT: usize = 64;
    /// 1 while the consumer sleeps on `head` (consumer).
    pub const CONSUMER_PARKED_AT: usize = 128;
    /// Bytes released so far (consumer).
    pub const TAIL_AT: usize = 192;
    /// 1 while the producer sleeps on `tail` (producer).
    pub const PRODUCER_PARKED_AT: usize = 256;
    /// Bytes before the data area.
    pub const HEADER_LEN: usize = 4096;
    /// Bytes of a record's header: length (u32), then stamp (u32).
    pub const RECORD_HEADER: usize = 8;
    /// The length of a pad record, which fills the data area up to its end.
    pub const PAD: u32 = u32::MAX;
}

use layout::{
    CAPACITY_AT, CONSUMER_PARKED_AT, HEAD_AT, HEADER_LEN, MAGIC, MAGIC_AT, PAD, PRODUCER_PARKED_AT,
    RECORD_HEADER, TAIL_AT,
};

/// The smallest and largest data areas a ring may have.
pub const MIN_CAPACITY: usize = 64;
pub const MAX_CAPACITY: usize = 1 << 30;

/// The segment size a ring of `capacity` data bytes needs.
pub fn segment_len(capacity: usize) -> usize {
    HEADER_LEN + capacity
}

/// The largest message a ring of `capacity` bytes carries (its record and the next record's
/// header fill the whole data area).
pub fn max_message(capacity: usize) -> usize {
    capacity - 2 * RECORD_HEADER
}

fn record_len(len: usize) -> usize {
    RECORD_HEADER + len.next_multiple_of(8)
}

/// The stamp of the record at stream position `pos`: never 0 (positions are multiples of 8).
fn stamp(pos: u32) -> u32 {
    pos | 1
}

/// Makes an empty ring of `capacity` bytes in a segment, before either side uses it.
pub fn init(seg: &Attached, capacity: usize) -> anyhow::Result<()> {
    ensure!(
        capacity.is_power_of_two() && (MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity),
        "ring capacity {capacity}: give a power of two from {MIN_CAPACITY} to {MAX_CAPACITY}"
    );
    ensure!(
        seg.len() >= segment_len(capacity),
        "a ring of {capacity} bytes needs a segment of {} bytes, this one has {}",
        segment_len(capacity),
        seg.len()
    );
    seg.write(CAPACITY_AT, &(capacity as u32).to_ne_bytes())
        .context("write the ring header")?;
    // The first record's header: no stamp yet.
    seg.write(HEADER_LEN, &[0; RECORD_HEADER])
        .context("write the ring header")?;
    for at in [HEAD_AT, CONSUMER_PARKED_AT, TAIL_AT, PRODUCER_PARKED_AT] {
        seg.atomic_u32(at)
            .context("the ring's words (the segment must be attached read-write)")?
            .store(0, Ordering::Relaxed);
    }
    // Release: whoever sees the magic (Acquire in `Ring::open`) also sees the rest.
    seg.atomic_u32(MAGIC_AT)
        .context("the ring's words")?
        .store(MAGIC, Ordering::Release);
    Ok(())
}

/// How a side waits when the ring is empty (consumer) or full (producer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Sleep in `futex(2)` at once.
    Block,
    /// Spin for up to this long, then sleep as [`Wait::Block`] does.
    Spin(Duration),
}

/// One side's view of a ring: the segment and where the data area is.
#[derive(Debug)]
struct Ring {
    seg: Attached,
    capacity: usize,
    wait: Wait,
}

impl Ring {
    fn open(seg: Attached, wait: Wait) -> anyhow::Result<Ring> {
        ensure!(
            seg.len() >= HEADER_LEN,
            "a {}-byte segment is too small for a ring",
            seg.len()
        );
        let magic = seg
            .atomic_u32(MAGIC_AT)
            .context("open the ring (the segment must be attached read-write)")?
            .load(Ordering::Acquire);
        ensure!(magic == MAGIC, "the segment holds no ring (no RNG2 magic)");
        let mut bytes = [0; 4];
        seg.read(CAPACITY_AT, &mut bytes)
            .context("read the ring header")?;
        let capacity = u32::from_ne_bytes(bytes) as usize;
        ensure!(
            capacity.is_power_of_two()
                && capacity >= MIN_CAPACITY
                && seg.len() >= segment_len(capacity),
            "the ring header is corrupt (capacity {capacity} in a {}-byte segment)",
            seg.len()
        );
        Ok(Ring {
            seg,
            capacity,
            wait,
        })
    }

    /// A header word, without the range check of `Attached::atomic_u32` on every message.
    fn word(&self, at: usize) -> &AtomicU32 {
        debug_assert!(at % 4 == 0 && at + 4 <= HEADER_LEN);
        // SAFETY: `at` is one of the header offsets above: 4-aligned and inside the header,
        // which `open` checked lies in the segment (attached read-write); the borrow of `self`
        // keeps the segment attached.
        unsafe { AtomicU32::from_ptr(self.seg.as_ptr().add(at).cast()) }
    }

    /// The data area's offset of stream position `pos`.
    fn offset(&self, pos: u32) -> usize {
        pos as usize & (self.capacity - 1)
    }

    /// A pointer to `offset` in the data area.
    fn data(&self, offset: usize) -> *mut u8 {
        debug_assert!(offset < self.capacity);
        self.seg.as_ptr().wrapping_add(HEADER_LEN + offset)
    }

    /// The length and stamp words of the record header at `offset`.
    fn header(&self, offset: usize) -> (&AtomicU32, &AtomicU32) {
        debug_assert!(offset % 8 == 0 && offset + RECORD_HEADER <= self.capacity);
        let at = self.data(offset);
        // SAFETY: record headers start 8-aligned in the data area and fit before its end
        // (capacity is a multiple of 8), inside the attached segment the borrow keeps alive.
        unsafe {
            (
                AtomicU32::from_ptr(at.cast()),
                AtomicU32::from_ptr(at.add(4).cast()),
            )
        }
    }

    /// After storing the word at `word_at`: wakes the peer if its flag says it sleeps there.
    fn wake_if_parked(&self, flag_at: usize, word_at: usize) -> anyhow::Result<()> {
        // Orders our store of the word before the load of the flag (see the module docs).
        fence(Ordering::SeqCst);
        if self.word(flag_at).load(Ordering::Relaxed) != 0 {
            futex::wake(self.word(word_at), 1).context("futex wake the ring's peer")?;
        }
        Ok(())
    }

    /// Waits until `ready()` may hold: spins on it first if asked, then sleeps on the word at
    /// `word_at` while it holds `seen`, with the flag at `flag_at` raised. May return early; the
    /// caller re-checks.
    fn wait_for(
        &self,
        ready: impl Fn() -> bool,
        word_at: usize,
        flag_at: usize,
        seen: u32,
        deadline: &Deadline,
        what: &str,
    ) -> anyhow::Result<()> {
        if let Wait::Spin(limit) = self.wait {
            let mut start = None;
            let mut spins = 0u32;
            loop {
                if ready() {
                    return Ok(());
                }
                spin_loop();
                spins = spins.wrapping_add(1);
                // Reading the clock costs more than a look at the ring: every 256th turn, and
                // not at all if the peer answers within those.
                if spins % 256 == 0 && start.get_or_insert_with(Instant::now).elapsed() >= limit {
                    break;
                }
            }
        }
        let word = self.word(word_at);
        let flag = self.word(flag_at);
        flag.store(1, Ordering::Relaxed);
        // Orders the flag store before the re-check below (see the module docs).
        fence(Ordering::SeqCst);
        let slept = if word.load(Ordering::Relaxed) == seen {
            futex::wait(word, seen, deadline.remaining())
        } else {
            Ok(())
        };
        flag.store(0, Ordering::Relaxed);
        match slept {
            Ok(()) => Ok(()),
            Err(Errno::ETIMEDOUT) if deadline.expired() => Err(deadline.timed_out(what)),
            Err(Errno::ETIMEDOUT) => Ok(()),
            Err(errno) => Err(errno).with_context(|| format!("futex wait for {what}")),
        }
    }
}

/// The writing side of a ring.
#[derive(Debug)]
pub struct Producer {
    ring: Ring,
    /// Our copy of `head`: only we write it.
    head: u32,
    /// The last `tail` we read; space can only grow from there, so we re-read only when full.
    tail_seen: u32,
}

impl Producer {
    /// The producer side of the ring that [`init`] made in `seg`.
    pub fn new(seg: Attached, wait: Wait) -> anyhow::Result<Producer> {
        let ring = Ring::open(seg, wait)?;
        let head = ring.word(HEAD_AT).load(Ordering::Relaxed);
        let tail_seen = ring.word(TAIL_AT).load(Ordering::Acquire);
        Ok(Producer {
            ring,
            head,
            tail_seen,
        })
    }

    /// The largest message this ring carries.
    pub fn max_message(&self) -> usize {
        max_message(self.ring.capacity)
    }

    /// Whether `bytes` more (and the next record's header) fit now.
    fn room(&mut self, bytes: usize) -> bool {
        let fits = |tail: u32, head: u32, cap: usize| {
            head.wrapping_sub(tail) as usize + bytes + RECORD_HEADER <= cap
        };
        if fits(self.tail_seen, self.head, self.ring.capacity) {
            return true;
        }
        // Acquire: the consumer is done with the space it released.
        self.tail_seen = self.ring.word(TAIL_AT).load(Ordering::Acquire);
        fits(self.tail_seen, self.head, self.ring.capacity)
    }

    /// Whether the consumer has taken everything published (reads `tail`).
    fn is_empty(&mut self) -> bool {
        // Acquire: the consumer is done with the space it released.
        self.tail_seen = self.ring.word(TAIL_AT).load(Ordering::Acquire);
        self.tail_seen == self.head
    }

    /// Publishes the record of `len` payload bytes (or [`PAD`]) of `bytes` bytes at `head`.
    fn publish(&mut self, len: u32, bytes: usize) -> anyhow::Result<()> {
        self.publish_waking(len, bytes, true)
    }

    /// [`Producer::publish`]; `wake: false` when a record follows at once (a pad before a
    /// restart), so a sleeping consumer is woken once, for the record, not twice.
    fn publish_waking(&mut self, len: u32, bytes: usize, wake: bool) -> anyhow::Result<()> {
        let at = self.ring.offset(self.head);
        let next = self.head.wrapping_add(bytes as u32);
        let (next_len, next_stamp) = self.ring.header(self.ring.offset(next));
        next_len.store(0, Ordering::Relaxed);
        next_stamp.store(0, Ordering::Relaxed);
        let (len_word, stamp_word) = self.ring.header(at);
        len_word.store(len, Ordering::Relaxed);
        // Release: the payload and the zeroed next header above are visible with the stamp.
        stamp_word.store(stamp(self.head), Ordering::Release);
        self.head = next;
        self.ring.word(HEAD_AT).store(self.head, Ordering::Release);
        if !wake {
            return Ok(());
        }
        self.ring.wake_if_parked(CONSUMER_PARKED_AT, HEAD_AT)
    }

    /// Makes room for a record of `len` payload bytes in one piece at `head` (a pad record
    /// first if it would cross the end); `Ok(false)` if there is no room now.
    fn try_reserve(&mut self, len: usize) -> anyhow::Result<bool> {
        if len > self.max_message() {
            bail!(
                "send a {len}-byte message into the ring: it carries at most {} bytes",
                self.max_message()
            );
        }
        let need = record_len(len);
        let at = self.ring.offset(self.head);
        // A large record into an empty ring starts again at the beginning of the area, so
        // one message at a time reuses the same (cached) memory instead of moving on through
        // the whole area; small records do not pay the pad.
        // Only when the record fits before `at` too: then it fits behind the pad while the
        // consumer has not yet skipped the pad.
        let restart =
            need >= self.ring.capacity / 8 && at >= need + RECORD_HEADER && self.is_empty();
        if restart || at + need > self.ring.capacity {
            let pad = self.ring.capacity - at;
            if !self.room(pad) {
                return Ok(false);
            }
            // On a restart the ring is empty and the record fits before `at`: it fits behind
            // the pad for sure, and is published (with a wake) right after it.
            self.publish_waking(PAD, pad, !restart)?;
        }
        Ok(self.room(need))
    }

    fn wait_for_room(&mut self, len: usize, deadline: &Deadline) -> anyhow::Result<()> {
        while !self.try_reserve(len)? {
            let capacity = self.ring.capacity;
            let (head, tail_at) = (self.head, self.ring.word(TAIL_AT));
            let room = || {
                let tail = tail_at.load(Ordering::Relaxed);
                head.wrapping_sub(tail) as usize + record_len(len) + RECORD_HEADER <= capacity
            };
            self.ring.wait_for(
                room,
                TAIL_AT,
                PRODUCER_PARKED_AT,
                self.tail_seen,
                deadline,
                "room in the shared-memory ring (the consumer to take messages)",
            )?;
        }
        Ok(())
    }

    /// Appends `msg` if there is room now; `Ok(false)` if the ring is full.
    pub fn try_send(&mut self, msg: &[u8]) -> anyhow::Result<bool> {
        if !self.try_reserve(msg.len())? {
            return Ok(false);
        }
        let at = self.ring.offset(self.head);
        // SAFETY: `try_reserve` made room for the whole record from `at`, before the end of the
        // data area; the protocol gives the producer sole use of unpublished space.
        unsafe {
            std::ptr::copy_nonoverlapping(
                msg.as_ptr(),
                self.ring.data(at + RECORD_HEADER),
                msg.len(),
            );
        }
        self.publish(msg.len() as u32, record_len(msg.len()))?;
        Ok(true)
    }

    /// Appends `msg`, waiting for room until `deadline`.
    pub fn send(&mut self, msg: &[u8], deadline: &Deadline) -> anyhow::Result<()> {
        self.wait_for_room(msg.len(), deadline)?;
        assert!(self.try_send(msg)?, "room was made for the message");
        Ok(())
    }

    /// Lends the place of the next message, `len` bytes, waiting for room until `deadline`:
    /// fill it in place, then [`Loan::commit`] it. Dropping the loan instead sends nothing.
    /// The bytes start as whatever the ring held there before.
    pub fn loan(&mut self, len: usize, deadline: &Deadline) -> anyhow::Result<Loan<'_>> {
        self.wait_for_room(len, deadline)?;
        Ok(Loan {
            at: self.ring.offset(self.head),
            len,
            producer: self,
        })
    }
}

/// The place of the next message in the ring, lent to the producer ([`Producer::loan`]).
#[derive(Debug)]
pub struct Loan<'a> {
    producer: &'a mut Producer,
    at: usize,
    len: usize,
}

impl Loan<'_> {
    /// The message's bytes, in the ring.
    pub fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: `loan` made room for the whole record from `at`, before the end of the data
        // area; unpublished space is the producer's alone (see "Trust" in the module docs), and
        // the slice borrows the loan, which borrows the producer, so it ends before the commit.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.producer.ring.data(self.at + RECORD_HEADER),
                self.len,
            )
        }
    }

    /// Publishes the message.
    pub fn commit(self) -> anyhow::Result<()> {
        self.producer.publish(self.len as u32, record_len(self.len))
    }
}

/// The reading side of a ring.
#[derive(Debug)]
pub struct Consumer {
    ring: Ring,
    /// Our copy of `tail`: only we write it.
    tail: u32,
}

impl Consumer {
    /// The consumer side of the ring that [`init`] made in `seg`.
    pub fn new(seg: Attached, wait: Wait) -> anyhow::Result<Consumer> {
        let ring = Ring::open(seg, wait)?;
        let tail = ring.word(TAIL_AT).load(Ordering::Relaxed);
        Ok(Consumer { ring, tail })
    }

    /// The offset and length of the next message if one is published (skipping pad records).
    fn peek(&mut self) -> anyhow::Result<Option<(usize, usize)>> {
        loop {
            let at = self.ring.offset(self.tail);
            let (len_word, stamp_word) = self.ring.header(at);
            // Acquire: the record's bytes are visible once its stamp is.
            match stamp_word.load(Ordering::Acquire) {
                0 => return Ok(None),
                s if s == stamp(self.tail) => {}
                s => bail!(
                    "the ring is corrupt: stamp {s:#x} at position {}, expected {:#x}",
                    self.tail,
                    stamp(self.tail)
                ),
            }
            let len = len_word.load(Ordering::Relaxed);
            if len == PAD {
                self.release((self.ring.capacity - at) as u32)?;
                continue;
            }
            let len = len as usize;
            ensure!(
                at + record_len(len) <= self.ring.capacity,
                "the ring is corrupt: a {len}-byte record at offset {at} of {}",
                self.ring.capacity
            );
            return Ok(Some((at + RECORD_HEADER, len)));
        }
    }

    fn release(&mut self, bytes: u32) -> anyhow::Result<()> {
        self.tail = self.tail.wrapping_add(bytes);
        // Release: our reads of the record are done before the producer may reuse the space.
        self.ring.word(TAIL_AT).store(self.tail, Ordering::Release);
        self.ring.wake_if_parked(PRODUCER_PARKED_AT, TAIL_AT)
    }

    fn wait_for_message(&mut self, deadline: &Deadline) -> anyhow::Result<(usize, usize)> {
        loop {
            if let Some(found) = self.peek()? {
                return Ok(found);
            }
            let (_, stamp_word) = self.ring.header(self.ring.offset(self.tail));
            let ready = || stamp_word.load(Ordering::Relaxed) != 0;
            self.ring.wait_for(
                ready,
                HEAD_AT,
                CONSUMER_PARKED_AT,
                self.tail,
                deadline,
                "a message in the shared-memory ring (the producer to send)",
            )?;
        }
    }

    fn copy_out(&mut self, (at, len): (usize, usize), buf: &mut [u8]) -> anyhow::Result<usize> {
        ensure!(
            len <= buf.len(),
            "receive a {len}-byte message from the ring into a {}-byte buffer",
            buf.len()
        );
        // SAFETY: `peek` checked the record lies in the data area; it is published and not
        // released, so the producer does not write it now.
        unsafe { std::ptr::copy_nonoverlapping(self.ring.data(at), buf.as_mut_ptr(), len) };
        self.release(record_len(len) as u32)?;
        Ok(len)
    }

    /// Takes the next message into `buf` if one is there; returns its length.
    pub fn try_recv(&mut self, buf: &mut [u8]) -> anyhow::Result<Option<usize>> {
        match self.peek()? {
            Some(found) => self.copy_out(found, buf).map(Some),
            None => Ok(None),
        }
    }

    /// Takes the next message into `buf`, waiting for one until `deadline`.
    pub fn recv(&mut self, buf: &mut [u8], deadline: &Deadline) -> anyhow::Result<usize> {
        let found = self.wait_for_message(deadline)?;
        self.copy_out(found, buf)
    }

    /// The next message, in place, waiting for one until `deadline`; its space is released when
    /// the [`Taken`] is dropped (or [`Taken::release`]d, which reports a failed wake).
    pub fn take(&mut self, deadline: &Deadline) -> anyhow::Result<Taken<'_>> {
        let (at, len) = self.wait_for_message(deadline)?;
        Ok(Taken {
            consumer: self,
            at,
            len,
            released: false,
        })
    }
}

/// A published message, read in place ([`Consumer::take`]).
#[derive(Debug)]
pub struct Taken<'a> {
    consumer: &'a mut Consumer,
    at: usize,
    len: usize,
    released: bool,
}

impl Taken<'_> {
    /// The message's bytes, in the ring.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `peek` checked the record lies in the data area; published and unreleased
        // space is the consumer's to read (see "Trust" in the module docs), and the slice
        // borrows the taken message, so it ends before the release.
        unsafe { std::slice::from_raw_parts(self.consumer.ring.data(self.at), self.len) }
    }

    /// Gives the space back to the producer.
    pub fn release(mut self) -> anyhow::Result<()> {
        self.released = true;
        self.consumer.release(record_len(self.len) as u32)
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if !self.released {
            // A failed wake only delays a producer that sleeps with a timeout.
            let _ = self.consumer.release(record_len(self.len) as u32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipc_common::runtime::wait::{TimedOut, Timeout};
    use ipc_common::sysv::{self, Key, ShmId};

    /// A private segment holding a fresh ring, already marked for removal: it goes when the
    /// last attachment detaches, whatever the test does.
    fn private_ring(capacity: usize) -> (ShmId, Attached) {
        let id = sysv::shm_create(Key(libc::IPC_PRIVATE), segment_len(capacity), 0o600).unwrap();
        let seg = Attached::attach(id, false).unwrap();
        sysv::shm_remove(id).unwrap();
        init(&seg, capacity).unwrap();
        (id, seg)
    }

    fn pair(capacity: usize, wait: Wait) -> (Producer, Consumer) {
        let (id, _keep) = private_ring(capacity);
        let producer = Producer::new(Attached::attach(id, false).unwrap(), wait).unwrap();
        let consumer = Consumer::new(Attached::attach(id, false).unwrap(), wait).unwrap();
        (producer, consumer)
    }

    fn message(i: usize, max: usize) -> Vec<u8> {
        let len = (i * 7919) % (max + 1);
        (0..len).map(|j| (i * 31 + j) as u8).collect()
    }

    fn soon() -> Deadline {
        Deadline::after(Timeout::from_duration(Duration::from_millis(20)))
    }

    #[test]
    fn messages_wrap_around_the_end_intact() {
        let (mut tx, mut rx) = pair(64, Wait::Block);
        let mut buf = [0; 64];
        for i in 0..1000 {
            let msg = message(i, tx.max_message());
            if !tx.try_send(&msg).unwrap() {
                // It needed a pad record at the end and the room behind it: skip the pad.
                assert_eq!(rx.try_recv(&mut buf).unwrap(), None);
                assert!(tx.try_send(&msg).unwrap(), "room for message {i}");
            }
            let len = rx.try_recv(&mut buf).unwrap().expect("a message");
            assert_eq!(&buf[..len], &msg[..], "message {i}");
        }
        assert_eq!(rx.try_recv(&mut buf).unwrap(), None);
    }

    #[test]
    fn loans_and_taken_messages_carry_the_bytes_in_place() {
        let (mut tx, mut rx) = pair(256, Wait::Block);
        let forever = Deadline::forever();
        for i in 0..500 {
            let msg = message(i, 100);
            let mut loan = tx.loan(msg.len(), &forever).unwrap();
            loan.bytes().copy_from_slice(&msg);
            loan.commit().unwrap();
            if i % 3 == 0 {
                // A dropped loan sends nothing.
                let _unsent = tx.loan(10, &forever).unwrap();
            }
            let taken = rx.take(&forever).unwrap();
            assert_eq!(taken.bytes(), &msg[..], "message {i}");
            if i % 2 == 0 {
                taken.release().unwrap();
            }
        }
        assert_eq!(rx.try_recv(&mut [0; 256]).unwrap(), None);
    }

    #[test]
    fn full_and_empty_are_seen_and_waits_time_out() {
        let (mut tx, mut rx) = pair(64, Wait::Block);
        let mut buf = [0; 64];
        assert_eq!(rx.try_recv(&mut buf).unwrap(), None);
        let err = rx.recv(&mut buf, &soon()).unwrap_err();
        assert!(err.is::<TimedOut>(), "{err:#}");
        // Three 16-byte records and the next header fill the 64 bytes; a fourth does not fit.
        for i in 0..3u8 {
            assert!(tx.try_send(&[i; 8]).unwrap());
        }
        assert!(!tx.try_send(&[9; 8]).unwrap());
        let err = tx.send(&[9; 8], &soon()).unwrap_err();
        assert!(
            err.to_string().contains("room in the shared-memory ring"),
            "{err:#}"
        );
        assert!(tx.try_send(&[0; 49]).is_err(), "over the ring's maximum");
        for i in 0..3u8 {
            assert_eq!(rx.try_recv(&mut buf).unwrap(), Some(8));
            assert_eq!(buf[..8], [i; 8]);
        }
        assert!(tx.try_send(&[9; 8]).unwrap(), "room again once drained");
        assert!(
            rx.try_recv(&mut [0; 4]).is_err(),
            "a buffer too small is an error"
        );
    }

    fn hand_off(wait: Wait, zero_copy: bool) {
        const N: usize = 20_000;
        let (mut tx, mut rx) = pair(4096, wait);
        let deadline = Deadline::after(Timeout::from_duration(Duration::from_secs(20)));
        let max = 300;
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0; max];
            for i in 0..N {
                if zero_copy {
                    let taken = rx.take(&deadline).unwrap();
                    assert_eq!(taken.bytes(), &message(i, max)[..], "message {i}");
                } else {
                    let len = rx.recv(&mut buf, &deadline).unwrap();
                    assert_eq!(&buf[..len], &message(i, max)[..], "message {i}");
                }
            }
        });
        for i in 0..N {
            let msg = message(i, max);
            if zero_copy {
                let mut loan = tx.loan(msg.len(), &deadline).unwrap();
                loan.bytes().copy_from_slice(&msg);
                loan.commit().unwrap();
            } else {
                tx.send(&msg, &deadline).unwrap();
            }
        }
        reader.join().unwrap();
    }

    #[test]
    fn two_threads_hand_off_every_message_blocking() {
        hand_off(Wait::Block, false);
    }

    #[test]
    fn two_threads_hand_off_every_message_spinning() {
        hand_off(Wait::Spin(Duration::from_micros(50)), false);
    }

    #[test]
    fn two_threads_hand_off_every_message_zero_copy() {
        hand_off(Wait::Spin(Duration::from_micros(50)), true);
        hand_off(Wait::Block, true);
    }

    #[test]
    fn a_segment_without_a_ring_is_refused() {
        let id = sysv::shm_create(Key(libc::IPC_PRIVATE), segment_len(64), 0o600).unwrap();
        let seg = Attached::attach(id, false).unwrap();
        sysv::shm_remove(id).unwrap();
        let err = Consumer::new(seg, Wait::Block).unwrap_err();
        assert!(err.to_string().contains("no ring"), "{err:#}");
        let (_, seg) = private_ring(64);
        assert!(init(&seg, 100).is_err(), "not a power of two");
        assert!(init(&seg, 128).is_err(), "larger than the segment");
    }

    #[test]
    fn futex_wait_returns_on_a_changed_word_and_times_out_on_an_unchanged_one() {
        let (_, seg) = private_ring(64);
        let word = seg.atomic_u32(HEAD_AT).unwrap();
        word.store(5, Ordering::SeqCst);
        assert_eq!(futex::wait(word, 4, None), Ok(()));
        assert_eq!(
            futex::wait(word, 5, Some(Duration::from_millis(5))),
            Err(Errno::ETIMEDOUT)
        );
        assert_eq!(futex::wake(word, 1), Ok(0));
    }
}
