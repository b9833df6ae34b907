//! The named pipe of the blog, shared by `fifo-writer` and `fifo-reader` (and the benchmark):
//! making sure the FIFO exists, opening either end without ever blocking in `open(2)`, and moving
//! bytes with `poll(2)` so that one `--timeout` deadline bounds every step.
//!
//! # Who creates the FIFO, who removes it
//!
//! Either side may start first, so both call [`create_or_use`]:
//! - `mkfifo(3)` creates the FIFO with exactly `--mode` (the umask is undone with `chmod(2)`);
//!   the side that created it holds a [`Cleanup`] guard and unlinks it when it is done, when its
//!   run fails, and on SIGINT/SIGTERM/SIGHUP; only if the path still holds that same FIFO.
//! - `EEXIST` with a FIFO at the path: it is used as it is (mode untouched) and left in place
//!   afterwards, because this run did not create it; only if it belongs to a trusted owner
//!   (ourselves, root, or a user named with `--trust-uid`: see [`ipc_common::runtime::trust`]), checked
//!   again with `fstat(2)` on the descriptor once opened. Another user's FIFO is refused.
//! - `EEXIST` with anything else (a symlink, a regular file, a directory, a socket): refused and
//!   left untouched.
//!
//! Reader first: the reader creates the FIFO, the writer uses it, the reader removes it after EOF.
//! Writer first: the writer creates it and waits for a reader; once it has written and closed its
//! end it removes the FIFO. The reader keeps reading from its open descriptor: `unlink(2)` takes
//! away only the name.
//!
//! A run killed with SIGKILL leaves its FIFO behind. That is harmless: the bytes in a pipe belong
//! to its open descriptors and vanish with the last `close(2)`, so the next run finds an empty FIFO
//! and uses it. Nobody in that run created it, so it stays until someone runs `rm PATH` (a FIFO has
//! no owner process we could probe to call it stale).
//!
//! # Waiting without blocking
//!
//! `open(2)` on a FIFO blocks until the other end is opened, with no timeout. So the writer opens
//! with `O_WRONLY | O_NONBLOCK`, which fails with `ENXIO` while no reader has the FIFO open, and
//! retries until the deadline ([`open_write_end`]). The reader's `O_RDONLY | O_NONBLOCK` open
//! always succeeds; it then polls for `POLLIN` ([`wait_for_writer`]): Linux reports no `POLLHUP`
//! on a FIFO that never had a writer, so the poll sleeps until a writer arrives, and `POLLHUP`
//! (writer gone) afterwards makes `read(2)` return 0, end of file. Both descriptors stay
//! non-blocking; `EAGAIN` means "poll, then try again".

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use anyhow::{Context, bail};
use ipc_common::runtime::cleanup::Cleanup;
use ipc_common::runtime::cli::Mode;
use ipc_common::runtime::paths;
use ipc_common::runtime::trust;
use ipc_common::runtime::wait::{self, Deadline};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::PollFlags;

/// The blog's FIFO path.
pub const DEFAULT_PATH: &str = "/tmp/ipc-named-pipe";

/// The blog's message.
pub const MESSAGE: &str = "Hello from Sender: Named Pipe";

/// How much one `read(2)` asks for: the Linux pipe buffer's default capacity.
pub const CHUNK: usize = 64 * 1024;

/// Makes sure a FIFO is at `path` (see the module docs): `mknodat(2)`, then `fchmodat(2)` to
/// exactly `mode`. Returns the guard that removes it if this process created it, `None` if it
/// was there already (used as it is, left in place).
pub fn create_or_use(path: &Path, mode: Mode) -> anyhow::Result<Option<Cleanup>> {
    let bits = nix::sys::stat::Mode::from_bits_truncate(mode.0);
    match nix::unistd::mkfifo(path, bits) {
        Ok(()) => {
            let guard = paths::remove_on_drop(path, "FIFO")?;
            paths::set_mode(path, mode)?;
            Ok(Some(guard))
        }
        Err(Errno::EEXIST) => {
            check_is_fifo(path)?;
            Ok(None)
        }
        Err(errno) => Err(errno).with_context(|| format!("mkfifo {}", path.display())),
    }
}

/// Refuses a path that holds anything but a FIFO, without following a symlink, and a FIFO of an
/// untrusted owner ([`ipc_common::runtime::trust`]): whoever made it could read what we write or write
/// what we read.
fn check_is_fifo(path: &Path) -> anyhow::Result<()> {
    let meta = std::fs::symlink_metadata(path)
        .with_context(|| format!("inspect FIFO {}", path.display()))?;
    let kind = meta.file_type();
    if !kind.is_fifo() {
        let held = paths::describe(&kind);
        bail!(
            "mkfifo {}: the path holds a {held}, not a FIFO; left untouched (remove it yourself \
             or choose another path)",
            path.display()
        );
    }
    trust::check_file(path, &meta, "FIFO")
}

/// `open(2)` flags both ends share: never block in `open`, never follow a symlink someone swapped
/// in after [`create_or_use`] looked.
fn open_end(path: &Path, access: OFlag) -> nix::Result<File> {
    let flags = access | OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    nix::fcntl::open(path, flags, nix::sys::stat::Mode::empty()).map(File::from)
}

/// What was opened must still be a FIFO of a trusted owner: reading or writing someone's file
/// swapped in since [`create_or_use`] looked would be wrong. `fstat(2)` on the descriptor
/// itself, so no later swap can fool it.
fn check_opened(file: &File, path: &Path) -> anyhow::Result<()> {
    let meta = file
        .metadata()
        .with_context(|| format!("fstat FIFO {}", path.display()))?;
    if !meta.file_type().is_fifo() {
        bail!(
            "open FIFO {}: the path no longer holds a FIFO; refusing to use it",
            path.display()
        );
    }
    trust::check_file(path, &meta, "FIFO")
}

/// Opens the write end, retrying on `ENXIO` (no reader yet) until `deadline`; says
/// `waiting for a reader on PATH` through the deadline when it starts waiting.
pub fn open_write_end(path: &Path, deadline: &Deadline) -> anyhow::Result<File> {
    let mut announced = false;
    let what = format!("a reader on {}", path.display());
    let file = wait::retry(deadline, &what, || match open_end(path, OFlag::O_WRONLY) {
        Ok(file) => Ok(Some(file)),
        Err(Errno::ENXIO) => {
            if !std::mem::replace(&mut announced, true) {
                deadline.say(format_args!("waiting for {what}"));
            }
            Ok(None)
        }
        Err(errno) => {
            let why = denied(errno);
            Err(errno).with_context(|| format!("open FIFO {} for writing{why}", path.display()))
        }
    })?;
    check_opened(&file, path)?;
    Ok(file)
}

/// What to say when another user's FIFO refused us.
fn denied(errno: Errno) -> String {
    if errno == Errno::EACCES {
        paths::explain_other_users_object("FIFO")
    } else {
        String::new()
    }
}

/// Opens the read end; with `O_NONBLOCK` this succeeds at once, writer or not.
pub fn open_read_end(path: &Path) -> anyhow::Result<File> {
    let file = open_end(path, OFlag::O_RDONLY).map_err(|errno| {
        let why = denied(errno);
        anyhow::Error::new(errno).context(format!("open FIFO {} for reading{why}", path.display()))
    })?;
    check_opened(&file, path)?;
    Ok(file)
}

/// Sleeps in `poll(2)` until a writer has opened the FIFO (it sent bytes, or came and went).
/// Before this, `read(2)` would return 0 and look like end of file.
pub fn wait_for_writer(file: &File, path: &Path, deadline: &Deadline) -> anyhow::Result<()> {
    wait::wait_fd(
        file.as_fd(),
        PollFlags::POLLIN,
        deadline,
        format_args!("a writer on {}", path.display()),
    )
    .map(drop)
}

/// Writes all of `bytes`, polling for `POLLOUT` while the pipe is full (the reader is slower).
pub fn write_all(
    mut file: &File,
    mut bytes: &[u8],
    path: &Path,
    deadline: &Deadline,
) -> anyhow::Result<()> {
    while !bytes.is_empty() {
        match file.write(bytes) {
            Ok(written) => bytes = &bytes[written..],
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                wait::wait_fd(
                    file.as_fd(),
                    PollFlags::POLLOUT,
                    deadline,
                    format_args!("the reader to drain FIFO {}", path.display()),
                )?;
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if err.kind() == io::ErrorKind::BrokenPipe => {
                bail!(
                    "write to FIFO {}: the reader closed its end before reading everything",
                    path.display()
                )
            }
            Err(err) => {
                return Err(err).with_context(|| format!("write to FIFO {}", path.display()));
            }
        }
    }
    Ok(())
}

/// Waits until a reader has read everything we wrote: bytes sitting in the pipe are not
/// delivered, and a reader killed now would take them with it. `FIONREAD` on our end counts
/// what is still in the pipe; `poll(2)` reports `POLLERR` on the write end once every reader has
/// closed. The kernel signals neither "empty" nor, to a writer, a reader's progress, so this
/// looks again with the retry's backoff until `deadline`.
pub fn wait_until_read(file: &File, path: &Path, deadline: &Deadline) -> anyhow::Result<()> {
    wait::retry(
        deadline,
        format_args!(
            "the reader to read the rest of our bytes from FIFO {}",
            path.display()
        ),
        || {
            let unread = ipc_common::sockets::queued::unread_in_pipe(file.as_fd())
                .with_context(|| format!("ioctl(FIONREAD) on FIFO {}", path.display()))?;
            if unread == 0 {
                return Ok(Some(()));
            }
            let mut fds = [nix::poll::PollFd::new(file.as_fd(), PollFlags::empty())];
            nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO)
                .with_context(|| format!("poll FIFO {}", path.display()))?;
            if fds[0]
                .revents()
                .is_some_and(|r| r.contains(PollFlags::POLLERR))
            {
                bail!(
                    "write to FIFO {}: the reader closed its end with {unread} of our bytes \
                     unread; they are lost",
                    path.display()
                );
            }
            Ok(None)
        },
    )
}

/// One `read(2)` into `buf`, polling while the pipe is empty; 0 means end of file (every writer
/// closed). Call [`wait_for_writer`] first.
///
/// The read comes first and `poll(2)` only after it found the pipe empty (`EAGAIN`): a reader
/// that is behind its writer makes one call per read. See [`read_chunk_expecting`] for a
/// reader that waits for an answer.
pub fn read_chunk(
    file: &File,
    buf: &mut [u8],
    path: &Path,
    deadline: &Deadline,
) -> anyhow::Result<usize> {
    read_chunk_expecting(file, buf, path, deadline, Expect::Bytes)
}

/// What a reader expects to find in the pipe when it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Bytes (the writer is ahead): `read(2)` first, `poll(2)` only after `EAGAIN`.
    Bytes,
    /// Nothing yet (the answer to what we just sent): `poll(2)` first, then `read(2)`.
    Wait,
}

/// [`read_chunk`] for a reader that knows whether bytes are likely there. Turn by turn (a
/// request, then its answer), the answer is never there yet when we start reading: read-first
/// costs a `read(2)` that finds nothing, the `poll(2)` and the `read(2)` again, where
/// [`Expect::Wait`] costs the last two. (A pipe has no `SO_RCVTIMEO`: a read bounded by a
/// deadline takes at least these two.)
pub fn read_chunk_expecting(
    mut file: &File,
    buf: &mut [u8],
    path: &Path,
    deadline: &Deadline,
    expect: Expect,
) -> anyhow::Result<usize> {
    let mut poll_first = expect == Expect::Wait;
    loop {
        if std::mem::take(&mut poll_first) {
            wait::wait_fd(
                file.as_fd(),
                PollFlags::POLLIN,
                deadline,
                format_args!("the writer on {} to send more or close", path.display()),
            )?;
        }
        match file.read(buf) {
            Ok(read) => return Ok(read),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => poll_first = true,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => {
                return Err(err).with_context(|| format!("read from FIFO {}", path.display()));
            }
        }
    }
}

/// Reads until end of file, appending to `out`.
pub fn read_to_end(
    file: &File,
    out: &mut Vec<u8>,
    path: &Path,
    deadline: &Deadline,
) -> anyhow::Result<()> {
    let mut chunk = vec![0; CHUNK];
    loop {
        match read_chunk(file, &mut chunk, path, deadline)? {
            0 => return Ok(()),
            read => out.extend_from_slice(&chunk[..read]),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ipc_common::runtime::wait::{TimedOut, Timeout};

    use super::*;

    /// A nonblocking pipe, as our FIFO ends are: (read end, write end).
    fn pipe() -> (File, File) {
        let (rx, tx) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).unwrap();
        (File::from(rx), File::from(tx))
    }

    #[test]
    fn both_expectations_read_what_is_there_and_wait_for_the_rest() {
        let deadline = Deadline::after(Timeout::from_duration(Duration::from_secs(5)));
        let path = Path::new("p");
        let (rx, tx) = pipe();
        let mut buf = [0; 8];
        for expect in [Expect::Bytes, Expect::Wait] {
            write_all(&tx, b"ping", path, &deadline).unwrap();
            let n = read_chunk_expecting(&rx, &mut buf, path, &deadline, expect).unwrap();
            assert_eq!(&buf[..n], b"ping");
        }
        let soon = Deadline::after(Timeout::from_duration(Duration::from_millis(30)));
        for expect in [Expect::Bytes, Expect::Wait] {
            let err = read_chunk_expecting(&rx, &mut buf, path, &soon, expect).unwrap_err();
            assert!(err.is::<TimedOut>(), "{err:#}");
        }
        drop(tx);
        let end = read_chunk_expecting(&rx, &mut buf, path, &deadline, Expect::Wait).unwrap();
        assert_eq!(end, 0, "end of file once the writer closed");
    }
}
