//! How many bytes the kernel still holds on the way to a peer: the two `ioctl(2)`s that tell a
//! sender whether its peer has taken everything. nix has no wrapper for them; this module is
//! their one `unsafe`.

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;

nix::ioctl_read_bad!(siocoutq, libc::TIOCOUTQ, libc::c_int);
nix::ioctl_read_bad!(fionread, libc::FIONREAD, libc::c_int);

/// `ioctl(SIOCOUTQ)` on a stream socket: bytes we sent that TCP has not had acknowledged, or
/// that a Unix peer has not read yet.
pub fn unacknowledged(socket: BorrowedFd<'_>) -> Result<usize, Errno> {
    let mut queued: libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes one int through the pointer, which points to `queued`; the
    // descriptor is borrowed, so open for the call.
    unsafe { siocoutq(socket.as_raw_fd(), &mut queued) }?;
    Ok(usize::try_from(queued).unwrap_or(0))
}

/// `ioctl(FIONREAD)` on either end of a pipe or FIFO: bytes in the pipe that no reader has
/// read yet.
pub fn unread_in_pipe(pipe: BorrowedFd<'_>) -> Result<usize, Errno> {
    let mut queued: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through the pointer, which points to `queued`; the
    // descriptor is borrowed, so open for the call.
    unsafe { fionread(pipe.as_raw_fd(), &mut queued) }?;
    Ok(usize::try_from(queued).unwrap_or(0))
}
