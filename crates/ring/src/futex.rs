//! `futex(2)` on a 32-bit word inside an attached segment ((`Attached::atomic_u32`)). The calls
//! are the shared kind, FUTEX_WAIT and FUTEX_WAKE without FUTEX_PRIVATE_FLAG: a private futex is
//! keyed on the address in one address space, a shared one on the page itself, which is what two
//! processes mapping the same SysV segment (at different addresses) have in common.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

use nix::errno::Errno;

/// `futex(word, FUTEX_WAIT, expected, timeout)`: sleeps while `*word == expected`, for at most
/// `timeout` (`None`: no limit).
///
/// Returns `Ok(())` when woken, when the word already differed (`EAGAIN`) and when a signal
/// interrupted the sleep (`EINTR`): wake-ups can be spurious, so the caller re-checks its
/// condition in every case. `Err(ETIMEDOUT)` when the time is up.
pub fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> nix::Result<()> {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: libc::c_long::from(t.subsec_nanos() as i32),
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |ts| ts as *const libc::timespec);
    // SAFETY: `word` is a live, aligned 32-bit atomic (the kernel only reads it and queues us on
    // its page); `ts_ptr` is null or points at `ts`, which outlives the call; the unused
    // arguments (uaddr2, val3) are ignored by FUTEX_WAIT.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    if ret == -1 {
        match Errno::last() {
            Errno::EAGAIN | Errno::EINTR => Ok(()),
            errno => Err(errno),
        }
    } else {
        Ok(())
    }
}

/// `futex(word, FUTEX_WAKE, count)`: wakes up to `count` processes sleeping on `word`; returns
/// how many were woken.
pub fn wake(word: &AtomicU32, count: u32) -> nix::Result<usize> {
    let count = count.min(i32::MAX as u32);
    // SAFETY: `word` is a live, aligned 32-bit atomic; FUTEX_WAKE reads no other argument.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            count,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    if ret == -1 {
        Err(Errno::last())
    } else {
        Ok(ret as usize)
    }
}
