//! A ring buffer of messages in a SysV shared memory segment, for one producer process and one
//! consumer process: the benchmark's shared-memory mechanism, and the answer to the blog's
//! "shared memory is fastest, but you need your own locking".
//!
//! # Layout
//!
//! The segment ([`sysv::Attached`]) starts with a 4 KiB header, then `capacity` bytes of data
//! (a power of two). Each shared word has a cache line of its own, so the two sides never
//! invalidate each other's lines by writing neighbouring words:
//!
//! | offset | word | written by |
//! |-------:|------|------------|
//! | 0 | magic `RNG1`, then the capacity (u32) | [`init`] |
//! | 64 | `head`: bytes published so far (wrapping u32) | producer |
//! | 128 | `consumer_parked`: 1 while the consumer sleeps on `head` | consumer |
//! | 192 | `tail`: bytes released so far (wrapping u32) | consumer |
//! | 256 | `producer_parked`: 1 while the producer sleeps on `tail` | producer |
//!
//! `head - tail` (wrapping) is the number of bytes in use. A message is a record: its length
//! (u32) and 4 spare bytes, then the payload, padded to a multiple of 8 bytes; records start
//! 8-aligned, so a record header never straddles the end of the data area, while a payload may
//! (it is then copied in two pieces).
//!
//! # Memory ordering
//!
//! - The producer copies a record into free space, then publishes it with a **Release** store of
//!   `head`. The consumer reads `head` with **Acquire**: once it sees the new value, every byte
//!   of the record written before that store is visible to it.
//! - The consumer copies the payload out, then releases the space with a **Release** store of
//!   `tail`. The producer reads `tail` with **Acquire** before writing into that space, so it
//!   never overwrites bytes the consumer is still copying.
//! - Parking (sleeping in `futex(2)`) is a Dekker hand-shake: the sleeper stores its `parked`
//!   flag, then a **SeqCst fence**, then re-reads the word; the other side stores the word, then
//!   a **SeqCst fence**, then reads the flag and calls `FUTEX_WAKE` only if it is set. The fences
//!   order each store before the following load, so at least one side sees the other's store:
//!   either the sleeper sees the new word and does not sleep, or the waker sees the flag and
//!   wakes it. A wake is therefore a syscall only when someone really sleeps.
//! - `FUTEX_WAIT(word, seen)` sleeps only while the word still holds `seen`, checked by the
//!   kernel under its lock, which closes the gap between our last look and the sleep. It still
//!   returns for reasons other than our condition (a signal, a wake meant for an earlier state,
//!   a spurious wake, the word changing and changing back), so the caller **re-checks** the ring
//!   after every return instead of trusting it.
//!
//! # Waiting
//!
//! [`Wait::Block`] parks at once: no CPU is burnt, and every hand-off to a sleeping peer costs a
//! `FUTEX_WAKE` and a wake-up (microseconds). [`Wait::Spin`] first spins on the shared word for a
//! while, so a peer that answers quickly is seen within a cache-line transfer (a fraction of a
//! microsecond), and parks after that. Spin only when the two processes run on different cores:
//! on one core the spinner merely delays the peer it waits for. Every wait is bounded by the
//! run's [`Deadline`] (the futex sleep takes the time left as its timeout).

use std::hint::spin_loop;
use std::sync::atomic::{AtomicU32, Ordering, fence};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use nix::errno::Errno;

use crate::runtime::wait::Deadline;
use crate::sysv::{self, Attached};

const MAGIC: u32 = u32::from_le_bytes(*b"RNG1");
const MAGIC_AT: usize = 0;
const CAPACITY_AT: usize = 4;
const HEAD_AT: usize = 64;
const CONSUMER_PARKED_AT: usize = 128;
const TAIL_AT: usize = 192;
const PRODUCER_PARKED_AT: usize = 256;

/// Bytes before the data area.
pub const HEADER_LEN: usize = 4096;
/// Bytes each record spends on its header.
pub const RECORD_HEADER: usize = 8;
/// The smallest and largest data areas a ring may have.
pub const MIN_CAPACITY: usize = 64;
pub const MAX_CAPACITY: usize = 1 << 30;

/// The segment size a ring of `capacity` data bytes needs.
pub fn segment_len(capacity: usize) -> usize {
    HEADER_LEN + capacity
}

/// The largest message a ring of `capacity` bytes carries.
pub fn max_message(capacity: usize) -> usize {
    capacity - RECORD_HEADER
}

fn record_len(len: usize) -> usize {
    RECORD_HEADER + len.next_multiple_of(8)
}

/// Makes an empty ring of `capacity` bytes in a fresh segment, before either side uses it.
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
    for at in [HEAD_AT, CONSUMER_PARKED_AT, TAIL_AT, PRODUCER_PARKED_AT] {
        word(seg, at).store(0, Ordering::Relaxed);
    }
    // Release: whoever sees the magic (Acquire in `Ring::open`) also sees the capacity and indices.
    word(seg, MAGIC_AT).store(MAGIC, Ordering::Release);
    Ok(())
}

fn word(seg: &Attached, at: usize) -> &AtomicU32 {
    seg.atomic_u32(at)
        .expect("ring words lie in the header, checked when the ring was opened")
}

/// How a side waits when the ring is empty (consumer) or full (producer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Sleep in `futex(2)` at once.
    Block,
    /// Spin on the shared word for up to this long, then sleep as [`Wait::Block`] does.
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
        ensure!(magic == MAGIC, "the segment holds no ring (no RNG1 magic)");
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

    /// A shared word, without the range check of `Attached::atomic_u32` on every message.
    fn word(&self, at: usize) -> &AtomicU32 {
        debug_assert!(at % 4 == 0 && at + 4 <= HEADER_LEN);
        // SAFETY: `at` is one of the header offsets above: 4-aligned and inside the header,
        // which `open` checked lies in the segment (attached read-write); the borrow of `self`
        // keeps the segment attached.
        unsafe { AtomicU32::from_ptr(self.seg.as_ptr().add(at).cast()) }
    }

    fn data(&self) -> *mut u8 {
        self.seg.as_ptr().wrapping_add(HEADER_LEN)
    }

    /// Copies `bytes` into the data area at stream position `pos`, wrapping at the end.
    fn copy_in(&self, pos: u32, bytes: &[u8]) {
        let at = pos as usize & (self.capacity - 1);
        let first = bytes.len().min(self.capacity - at);
        // SAFETY: the data area is `capacity` bytes inside the attached segment (checked in
        // `open`); `at + first <= capacity` and the rest (< capacity) goes to its start. The
        // protocol gives the producer sole use of unpublished space, so nobody reads it now.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.data().add(at), first);
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr().add(first),
                self.data(),
                bytes.len() - first,
            );
        }
    }

    /// Copies bytes out of the data area from stream position `pos`, wrapping at the end.
    fn copy_out(&self, pos: u32, out: &mut [u8]) {
        let at = pos as usize & (self.capacity - 1);
        let first = out.len().min(self.capacity - at);
        // SAFETY: in bounds as in `copy_in`; these bytes were published (head read with Acquire)
        // and are not released yet, so the producer does not write them now.
        unsafe {
            std::ptr::copy_nonoverlapping(self.data().add(at), out.as_mut_ptr(), first);
            std::ptr::copy_nonoverlapping(
                self.data(),
                out.as_mut_ptr().add(first),
                out.len() - first,
            );
        }
    }

    /// After storing the word at `word_at`: wakes the peer if its flag says it sleeps there.
    fn wake_if_parked(&self, flag_at: usize, word_at: usize) -> anyhow::Result<()> {
        // Orders our store of the word before the load of the flag (see the module docs).
        fence(Ordering::SeqCst);
        if self.word(flag_at).load(Ordering::Relaxed) != 0 {
            sysv::futex_wake(self.word(word_at), 1).context("futex wake the ring's peer")?;
        }
        Ok(())
    }

    /// Waits until the word at `word_at` may differ from `seen`: spins first if asked, then
    /// sleeps with the flag at `flag_at` raised. May return early; the caller re-checks.
    fn wait_change(
        &self,
        word_at: usize,
        flag_at: usize,
        seen: u32,
        deadline: &Deadline,
        what: &str,
    ) -> anyhow::Result<()> {
        let word = self.word(word_at);
        if let Wait::Spin(limit) = self.wait {
            let start = Instant::now();
            let mut spins = 0u32;
            while word.load(Ordering::Relaxed) == seen {
                spin_loop();
                spins = spins.wrapping_add(1);
                if spins % 256 == 0 && start.elapsed() >= limit {
                    break;
                }
            }
            if word.load(Ordering::Relaxed) != seen {
                return Ok(());
            }
        }
        let flag = self.word(flag_at);
        flag.store(1, Ordering::Relaxed);
        // Orders the flag store before the re-check below (see the module docs).
        fence(Ordering::SeqCst);
        let slept = if word.load(Ordering::Relaxed) == seen {
            sysv::futex_wait(word, seen, deadline.remaining())
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

    /// Appends `msg` if there is room now; `Ok(false)` if the ring is full.
    pub fn try_send(&mut self, msg: &[u8]) -> anyhow::Result<bool> {
        if msg.len() > self.max_message() {
            bail!(
                "send a {}-byte message into the ring: it carries at most {} bytes",
                msg.len(),
                self.max_message()
            );
        }
        let need = record_len(msg.len());
        if self.head.wrapping_sub(self.tail_seen) as usize + need > self.ring.capacity {
            // Acquire: the consumer is done with the space it released.
            self.tail_seen = self.ring.word(TAIL_AT).load(Ordering::Acquire);
            if self.head.wrapping_sub(self.tail_seen) as usize + need > self.ring.capacity {
                return Ok(false);
            }
        }
        let mut header = [0; RECORD_HEADER];
        header[..4].copy_from_slice(&(msg.len() as u32).to_ne_bytes());
        self.ring.copy_in(self.head, &header);
        self.ring
            .copy_in(self.head.wrapping_add(RECORD_HEADER as u32), msg);
        self.head = self.head.wrapping_add(need as u32);
        // Release: publishes the record written above.
        self.ring.word(HEAD_AT).store(self.head, Ordering::Release);
        self.ring.wake_if_parked(CONSUMER_PARKED_AT, HEAD_AT)?;
        Ok(true)
    }

    /// Appends `msg`, waiting for room until `deadline`.
    pub fn send(&mut self, msg: &[u8], deadline: &Deadline) -> anyhow::Result<()> {
        while !self.try_send(msg)? {
            self.ring.wait_change(
                TAIL_AT,
                PRODUCER_PARKED_AT,
                self.tail_seen,
                deadline,
                "room in the shared-memory ring (the consumer to take messages)",
            )?;
        }
        Ok(())
    }
}

/// The reading side of a ring.
#[derive(Debug)]
pub struct Consumer {
    ring: Ring,
    /// Our copy of `tail`: only we write it.
    tail: u32,
    /// The last `head` we read; records up to it are ours to take without looking again.
    head_seen: u32,
}

impl Consumer {
    /// The consumer side of the ring that [`init`] made in `seg`.
    pub fn new(seg: Attached, wait: Wait) -> anyhow::Result<Consumer> {
        let ring = Ring::open(seg, wait)?;
        let tail = ring.word(TAIL_AT).load(Ordering::Relaxed);
        let head_seen = ring.word(HEAD_AT).load(Ordering::Acquire);
        Ok(Consumer {
            ring,
            tail,
            head_seen,
        })
    }

    /// Takes the next message into `buf` if one is there; returns its length.
    pub fn try_recv(&mut self, buf: &mut [u8]) -> anyhow::Result<Option<usize>> {
        if self.head_seen == self.tail {
            // Acquire: the records published up to this head are visible.
            self.head_seen = self.ring.word(HEAD_AT).load(Ordering::Acquire);
            if self.head_seen == self.tail {
                return Ok(None);
            }
        }
        let mut header = [0; RECORD_HEADER];
        self.ring.copy_out(self.tail, &mut header);
        let len = u32::from_ne_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let available = self.head_seen.wrapping_sub(self.tail) as usize;
        ensure!(
            len <= max_message(self.ring.capacity) && record_len(len) <= available,
            "the ring is corrupt: a {len}-byte record with {available} bytes published"
        );
        ensure!(
            len <= buf.len(),
            "receive a {len}-byte message from the ring into a {}-byte buffer",
            buf.len()
        );
        self.ring.copy_out(
            self.tail.wrapping_add(RECORD_HEADER as u32),
            &mut buf[..len],
        );
        self.tail = self.tail.wrapping_add(record_len(len) as u32);
        // Release: our copy above is done before the producer may reuse the space.
        self.ring.word(TAIL_AT).store(self.tail, Ordering::Release);
        self.ring.wake_if_parked(PRODUCER_PARKED_AT, TAIL_AT)?;
        Ok(Some(len))
    }

    /// Takes the next message into `buf`, waiting for one until `deadline`.
    pub fn recv(&mut self, buf: &mut [u8], deadline: &Deadline) -> anyhow::Result<usize> {
        loop {
            if let Some(len) = self.try_recv(buf)? {
                return Ok(len);
            }
            self.ring.wait_change(
                HEAD_AT,
                CONSUMER_PARKED_AT,
                self.tail,
                deadline,
                "a message in the shared-memory ring (the producer to send)",
            )?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::wait::{TimedOut, Timeout};
    use crate::sysv::{Key, ShmId};

    /// A private segment holding a fresh ring, already marked for removal: it goes when the
    /// last attachment detaches, whatever the test does. The returned attachment keeps it alive
    /// until the sides have attached.
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
            assert!(tx.try_send(&msg).unwrap(), "room for message {i}");
            let len = rx.try_recv(&mut buf).unwrap().expect("a message");
            assert_eq!(&buf[..len], &msg[..], "message {i}");
        }
        assert_eq!(rx.try_recv(&mut buf).unwrap(), None);
    }

    #[test]
    fn full_and_empty_are_seen_and_waits_time_out() {
        let (mut tx, mut rx) = pair(64, Wait::Block);
        let mut buf = [0; 64];
        assert_eq!(rx.try_recv(&mut buf).unwrap(), None);
        let err = rx.recv(&mut buf, &soon()).unwrap_err();
        assert!(err.is::<TimedOut>(), "{err:#}");
        // Four 16-byte records fill the 64 bytes; a fifth does not fit.
        for i in 0..4u8 {
            assert!(tx.try_send(&[i; 8]).unwrap());
        }
        assert!(!tx.try_send(&[9; 8]).unwrap());
        let err = tx.send(&[9; 8], &soon()).unwrap_err();
        assert!(
            err.to_string().contains("room in the shared-memory ring"),
            "{err:#}"
        );
        assert!(tx.try_send(&[0; 57]).is_err(), "over the ring's maximum");
        for i in 0..4u8 {
            assert_eq!(rx.try_recv(&mut buf).unwrap(), Some(8));
            assert_eq!(buf[..8], [i; 8]);
        }
        assert!(tx.try_send(&[9; 8]).unwrap(), "room again once drained");
        assert!(
            rx.try_recv(&mut [0; 4]).is_err(),
            "a buffer too small is an error"
        );
    }

    fn hand_off(wait: Wait) {
        const N: usize = 20_000;
        let (mut tx, mut rx) = pair(4096, wait);
        let deadline = Deadline::after(Timeout::from_duration(Duration::from_secs(20)));
        let max = 300;
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0; max];
            for i in 0..N {
                let len = rx.recv(&mut buf, &deadline).unwrap();
                assert_eq!(&buf[..len], &message(i, max)[..], "message {i}");
            }
        });
        for i in 0..N {
            tx.send(&message(i, max), &deadline).unwrap();
        }
        reader.join().unwrap();
    }

    #[test]
    fn two_threads_hand_off_every_message_blocking() {
        hand_off(Wait::Block);
    }

    #[test]
    fn two_threads_hand_off_every_message_spinning() {
        hand_off(Wait::Spin(Duration::from_micros(50)));
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
        assert_eq!(sysv::futex_wait(word, 4, None), Ok(()));
        assert_eq!(
            sysv::futex_wait(word, 5, Some(Duration::from_millis(5))),
            Err(Errno::ETIMEDOUT)
        );
        assert_eq!(sysv::futex_wake(word, 1), Ok(0));
    }
}
