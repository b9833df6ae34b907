//! Filesystem objects in shared directories such as `/tmp`, handled the careful way: nothing is
//! followed through a symlink, nothing is removed unless this process created it (checked by
//! inode, not by name), and a live socket is never stolen.

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, bail};

use crate::runtime::cleanup::Cleanup;
use crate::runtime::cli::Mode;
use crate::runtime::trust;
use crate::sysv::{self, Key};

/// Which kind of Unix socket a path is expected to hold; a stale-socket probe must use the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketKind {
    Stream,
    Datagram,
}

/// Makes `path` free for `bind(2)`: nothing there is fine; a socket nobody listens on any more
/// (left by a crashed or PHP process) is removed, and `true` says so; a live socket or anything
/// that is not a socket is an error, and is left untouched.
pub fn clear_stale_socket(path: &Path, kind: SocketKind) -> anyhow::Result<bool> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(err) => {
            let why = denied_hint(&err, path);
            return Err(err).with_context(|| format!("inspect {}{why}", path.display()));
        }
    };
    let file_type = meta.file_type();
    if !file_type.is_socket() {
        bail!(
            "bind {}: the path holds a {}, not a socket; left untouched (remove it yourself or \
             choose another path)",
            path.display(),
            describe(&file_type)
        );
    }
    let probe = match kind {
        SocketKind::Stream => UnixStream::connect(path).map(drop),
        SocketKind::Datagram => UnixDatagram::unbound().and_then(|s| s.connect(path)),
    };
    match probe {
        Ok(()) => bail!(
            "bind {}: address in use (a live listener is there)",
            path.display()
        ),
        Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {
            trust::check_file(path, &meta, "stale socket")
                .with_context(|| format!("bind {}", path.display()))?;
            remove_if_same(path, FileIdentity::of(&meta))
                .with_context(|| format!("remove stale socket {}", path.display()))?;
            Ok(true)
        }
        Err(err) => Err(err).with_context(|| {
            format!(
                "bind {}: cannot tell whether the socket there is live",
                path.display()
            )
        }),
    }
}

/// What a path holds, in words for an error message ("symlink", "regular file", ...).
pub fn describe(file_type: &std::fs::FileType) -> &'static str {
    if file_type.is_symlink() {
        "symlink"
    } else if file_type.is_dir() {
        "directory"
    } else if file_type.is_file() {
        "regular file"
    } else if file_type.is_fifo() {
        "FIFO"
    } else if file_type.is_socket() {
        "socket"
    } else {
        "device"
    }
}

/// What makes a file the one we saw: device and inode, plus its birth time, because a
/// filesystem reuses a freed inode number at once (ext4 does) for the next file created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileIdentity {
    dev: u64,
    ino: u64,
    born: Option<SystemTime>,
}

impl FileIdentity {
    pub fn of(meta: &std::fs::Metadata) -> Self {
        FileIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
            born: meta.created().ok(),
        }
    }
}

/// Unlinks `path` only if it is still the file we identified: a file someone put there after us
/// is not ours to delete.
pub fn remove_if_same(path: &Path, identity: FileIdentity) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if FileIdentity::of(&meta) == identity => std::fs::remove_file(path),
        Ok(_) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err),
    }
}

/// A guard that unlinks `path` when dropped, if it is still the object we created there.
/// `what` names it in messages ("socket file").
pub fn remove_on_drop(path: &Path, what: &str) -> anyhow::Result<Cleanup> {
    let meta = std::fs::symlink_metadata(path)
        .with_context(|| format!("inspect the {what} just created at {}", path.display()))?;
    let owned: PathBuf = path.to_path_buf();
    let identity = FileIdentity::of(&meta);
    Ok(Cleanup::register(
        format!("{what} {}", path.display()),
        move || Ok(remove_if_same(&owned, identity)?),
    ))
}

/// Sets exactly `mode` on the object we just created at `path`, undoing the umask; refuses a
/// symlink someone may have swapped in since.
///
/// `fchmodat(2)` with `AT_SYMLINK_NOFOLLOW` (glibc opens the path with `O_PATH | O_NOFOLLOW` and
/// changes the inode it got), so a symlink swapped in after the check is refused rather than
/// followed to someone's file.
pub fn set_mode(path: &Path, mode: Mode) -> anyhow::Result<()> {
    let meta = std::fs::symlink_metadata(path)
        .with_context(|| format!("chmod {mode} {}", path.display()))?;
    if meta.file_type().is_symlink() {
        bail!(
            "chmod {mode} {}: the path is now a symlink; refusing to follow it",
            path.display()
        );
    }
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        path,
        nix::sys::stat::Mode::from_bits_truncate(mode.0),
        nix::sys::stat::FchmodatFlags::NoFollowSymlink,
    )
    .with_context(|| format!("chmod {mode} {}", path.display()))
}

/// A socket file opened with `O_PATH | O_NOFOLLOW` and checked: the object a client connects
/// to, through [`OpenedSocket::proc_addr`], whatever the name points to by then.
#[derive(Debug)]
pub struct OpenedSocket {
    fd: std::os::fd::OwnedFd,
}

impl OpenedSocket {
    /// `/proc/self/fd/N` as a socket address: `connect(2)` to it reaches the inode we checked.
    pub fn proc_addr(&self) -> anyhow::Result<socket2::SockAddr> {
        use std::os::fd::AsRawFd;
        let path = format!("/proc/self/fd/{}", self.fd.as_raw_fd());
        if !Path::new("/proc/self/fd").is_dir() {
            bail!(
                "connect through {path}: /proc is not mounted, and without it the socket file \
                 we checked cannot be the one we connect to; mount /proc"
            );
        }
        socket2::SockAddr::unix(&path).with_context(|| format!("connect through {path}"))
    }
}

/// Opens the socket file a client is about to `connect(2)` to, and checks it: a symlink is
/// refused (`O_NOFOLLOW`), and a socket must belong to a trusted owner ([`trust`]), otherwise
/// whoever put it there would receive what we send. `None`: nothing there yet (the caller
/// waits). A file that is not a socket is an error at once: no reader will ever be there.
pub fn open_socket_to_connect(path: &Path) -> anyhow::Result<Option<OpenedSocket>> {
    use std::os::fd::OwnedFd;
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("open {} (O_PATH)", path.display())),
    };
    // fstat of the descriptor, not stat of the name: this is the object we will connect to.
    let meta = file
        .metadata()
        .with_context(|| format!("fstat {}", path.display()))?;
    let file_type = meta.file_type();
    // O_PATH | O_NOFOLLOW opens a symlink itself rather than failing with ELOOP.
    if file_type.is_symlink() {
        bail!(
            "connect to {}: the path is a symlink; refusing to follow it (connect to the socket \
             itself)",
            path.display()
        );
    }
    if !file_type.is_socket() {
        bail!(
            "connect to {}: the path holds a {}, not a socket; no reader listens there (remove it \
             or choose another path)",
            path.display(),
            describe(&file_type)
        );
    }
    trust::check_file(path, &meta, "socket file")
        .with_context(|| format!("connect to {}", path.display()))?;
    Ok(Some(OpenedSocket {
        fd: OwnedFd::from(file),
    }))
}

/// [`explain_denied`] for a permission error, nothing for any other.
pub fn denied_hint(err: &io::Error, path: &Path) -> String {
    if err.kind() == io::ErrorKind::PermissionDenied {
        explain_denied(path)
    } else {
        String::new()
    }
}

/// Why another user's object refused us, for the error: what its creator can pass so that we
/// may use it (` (the socket file's mode does not let uid 33 in: ...)`).
pub fn explain_other_users_object(what: &str) -> String {
    let uid = nix::unistd::geteuid();
    format!(
        " (the {what}'s mode does not admit us, uid {uid}: the process that creates it decides, \
         with --mode 0660 for its group or --mode 0666 for everyone; and the side that finds an \
         object of another user uses it only with --trust-uid naming that user)"
    )
}

/// The process's umask, read without changing it (`/proc/self/status`); 0o022 if unknown, the
/// usual default, so a caller errs towards setting the mode.
pub fn current_umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Umask:"))
                .and_then(|mask| u32::from_str_radix(mask.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

/// Why creating something at `path` was denied, for the error: who we run as, and who owns the
/// directory with which mode, so the fix is plain (` (we run as uid 10001, and /ipc belongs to
/// uid 0 with mode 0755: ...)`).
pub fn explain_denied(path: &Path) -> String {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let uid = nix::unistd::geteuid();
    let gid = nix::unistd::getegid();
    match std::fs::metadata(dir) {
        Ok(meta) => format!(
            " (we run as uid {uid} gid {gid}, and the directory {} belongs to uid {} gid {} with \
             mode {:04o}: give us write permission there, e.g. chown {uid} {}, or add group write \
             for a group we are in, or run as its owner)",
            dir.display(),
            meta.uid(),
            meta.gid(),
            meta.mode() & 0o7777,
            dir.display()
        ),
        Err(_) => format!(" (we run as uid {uid} gid {gid})"),
    }
}

/// What [`ensure_key_file`] found.
#[derive(Debug)]
pub enum KeyFile {
    /// We created it; the guard removes it unless kept.
    Created(Cleanup),
    /// It was there already; it is not ours to remove.
    Existing,
}

/// Makes sure the `ftok(3)` key file exists: creates it (without following a symlink) if missing,
/// otherwise checks that it is a regular file. The key depends on its inode, so a key file must
/// not be replaced while its object is in use.
pub fn ensure_key_file(path: &Path, mode: Mode) -> anyhow::Result<KeyFile> {
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode.0)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path);
    match created {
        Ok(file) => {
            file.set_permissions(std::fs::Permissions::from_mode(mode.0))
                .with_context(|| format!("chmod {mode} key file {}", path.display()))?;
            Ok(KeyFile::Created(remove_on_drop(path, "key file")?))
        }
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            check_key_file(path)?;
            Ok(KeyFile::Existing)
        }
        Err(err) => Err(err).with_context(|| format!("create key file {}", path.display())),
    }
}

/// A key file must be a regular file reached without a symlink, owned by a trusted user
/// ([`trust`]): `ftok(3)` follows links, and a link or a file another user put in `/tmp` would
/// let them choose our key (and create the object under it first).
pub fn check_key_file(path: &Path) -> anyhow::Result<()> {
    let meta =
        std::fs::symlink_metadata(path).with_context(|| format!("key file {}", path.display()))?;
    if !meta.file_type().is_file() {
        bail!(
            "key file {}: is a {}, not a regular file",
            path.display(),
            describe(&meta.file_type())
        );
    }
    trust::check_file(path, &meta, "key file")
}

/// Checks, while a reader waits for the object keyed on `key_file`, that the file still gives
/// `key`: the key comes from the file's inode, so a key file removed (a writer whose run failed
/// takes the one it created) or replaced means the object will never appear under `key`, and
/// waiting out the timeout would only hide why.
pub fn check_key_unchanged(key_file: &Path, proj: u8, key: Key) -> anyhow::Result<()> {
    // The key of the file itself, not of whatever a symlink there points to.
    let now = sysv::open_key_file(key_file)
        .and_then(|file| file.metadata())
        .map(|meta| sysv::ftok_of(meta.dev(), meta.ino(), proj))
        .map_err(|err| nix::errno::Errno::from_raw(err.raw_os_error().unwrap_or(libc::EIO)));
    match now {
        Ok(now) if now == key => Ok(()),
        Ok(now) => bail!(
            "key file {} was replaced while we waited: it now gives key {now}, not {key}, so \
             nothing will appear under {key} (start the writer again, then the reader)",
            key_file.display()
        ),
        Err(nix::errno::Errno::ENOENT) => bail!(
            "key file {} was removed while we waited for the object under its key {key} (did \
             the writer fail?); a new key file would give a new key",
            key_file.display()
        ),
        Err(errno) => Err(errno).with_context(|| format!("ftok key file {}", key_file.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn a_stale_socket_is_replaced_and_a_live_one_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let err = clear_stale_socket(&path, SocketKind::Stream).unwrap_err();
        assert!(
            err.to_string().contains("a live listener is there"),
            "{err}"
        );
        drop(listener);
        assert!(path.exists(), "dropping a std listener leaves the file");
        clear_stale_socket(&path, SocketKind::Stream).unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn anything_else_is_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"precious").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        for (path, kind) in [(&file, "regular file"), (&link, "symlink")] {
            let err = clear_stale_socket(path, SocketKind::Datagram).unwrap_err();
            assert!(err.to_string().contains(kind), "{err}");
        }
        assert_eq!(std::fs::read(&file).unwrap(), b"precious");
        assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
    }

    #[test]
    fn removal_spares_a_replacement() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let KeyFile::Created(guard) = ensure_key_file(&path, Mode(0o600)).unwrap() else {
            panic!("should have created the key file");
        };
        assert_eq!(path.metadata().unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"someone else's").unwrap();
        drop(guard);
        assert_eq!(std::fs::read(&path).unwrap(), b"someone else's");
        assert!(matches!(
            ensure_key_file(&path, Mode(0o600)).unwrap(),
            KeyFile::Existing
        ));
    }

    #[test]
    fn a_removed_or_replaced_key_file_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, b"").unwrap();
        let key = sysv::ftok(&path, b'T').unwrap();
        check_key_unchanged(&path, b'T', key).unwrap();
        // Keep the old inode alive, so the new file cannot reuse its number.
        let old = dir.path().join("old");
        std::fs::rename(&path, &old).unwrap();
        let err = check_key_unchanged(&path, b'T', key).unwrap_err();
        assert!(
            err.to_string().contains("was removed while we waited"),
            "{err}"
        );
        std::fs::write(&path, b"").unwrap();
        let err = check_key_unchanged(&path, b'T', key).unwrap_err();
        assert!(
            err.to_string().contains("was replaced while we waited"),
            "{err}"
        );
    }

    #[test]
    fn a_key_file_is_never_created_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        let link = dir.path().join("key");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(ensure_key_file(&link, Mode(0o600)).is_err());
        assert!(!target.exists());
    }
}
