//! Whose objects we are willing to use: the owner policy for everything a run finds rather than
//! creates.
//!
//! In a shared directory such as `/tmp`, and in the SysV key space, anyone can be first: another
//! user can create `/tmp/ipc-named-pipe`, a socket file at the reader's path, the `ftok(3)` key
//! file, or a queue or segment under the key we are about to use, with a mode that lets them
//! read what we send or feed us what they like. So a run uses an object it did not create only
//! if its owner is trusted:
//!
//! - ourselves (the effective uid) and root (who can read everything anyway);
//! - a user named with `--trust-uid USER` (or `IPC_TRUST_UID`), for the legitimate case of a peer
//!   running as another user, such as PHP under `www-data`.
//!
//! What is checked: a key file's owner; an existing FIFO's owner (also on the descriptor we
//! opened, so a file swapped in meanwhile is caught); a socket file's owner before a writer
//! connects to it or a reader removes it as stale; a SysV queue, segment or semaphore set's
//! owner AND creator (the creator keeps the owner's rights even after handing the object over
//! with `IPC_SET`). An untrusted object is refused, left untouched, and the error names it, its
//! owner and the option that would admit it. IP sockets have no owner: anyone on the host may
//! connect or send to a port.
//!
//! What we create is the other half: exactly `--mode` (0600 by default), so another user cannot
//! open it unless the mode lets them.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;

use anyhow::bail;
use clap::Args;

/// Users trusted besides ourselves and root, set once from `--trust-uid`.
static ALSO_TRUSTED: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// `--trust-uid`: the owners, besides ourselves and root, whose objects a run may use.
#[derive(Args, Clone, Debug, Default)]
pub struct TrustArgs {
    /// Also use files and SysV objects owned by USER (a name or a uid; repeatable, or
    /// comma-separated), e.g. a PHP peer running as www-data. By default only objects owned by
    /// ourselves or root are used; anything else is refused and left untouched.
    #[arg(
        long = "trust-uid",
        value_name = "USER",
        value_parser = parse_user,
        value_delimiter = ',',
        env = "IPC_TRUST_UID",
        hide_env = true
    )]
    pub trust_uid: Vec<u32>,
}

impl TrustArgs {
    /// Makes the policy of this process trust the users given.
    pub fn apply(&self) {
        let mut also = lock();
        also.clear();
        also.extend(&self.trust_uid);
    }
}

fn lock() -> std::sync::MutexGuard<'static, Vec<u32>> {
    ALSO_TRUSTED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Parses a user name (`www-data`) or a numeric uid (`33`).
pub fn parse_user(text: &str) -> Result<u32, String> {
    if let Ok(uid) = text.parse::<u32>() {
        return Ok(uid);
    }
    match nix::unistd::User::from_name(text) {
        Ok(Some(user)) => Ok(user.uid.as_raw()),
        Ok(None) => Err(format!("`{text}` is neither a uid nor a known user name")),
        Err(errno) => Err(format!("look up user `{text}`: {errno}")),
    }
}

/// Whether objects owned by `uid` may be used.
pub fn trusted(uid: u32) -> bool {
    uid == 0 || uid == nix::unistd::geteuid().as_raw() || lock().contains(&uid)
}

/// Who owns an object, for an error message: `uid 1000 (alice)`.
struct Owner(u32);

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "uid {}", self.0)?;
        if let Ok(Some(user)) = nix::unistd::User::from_uid(self.0.into()) {
            write!(f, " ({})", user.name)?;
        }
        Ok(())
    }
}

/// Refuses a file (`what`, e.g. "key file") that `meta` says belongs to an untrusted user.
pub fn check_file(path: &Path, meta: &std::fs::Metadata, what: &str) -> anyhow::Result<()> {
    let uid = meta.uid();
    if !trusted(uid) {
        bail!(
            "{what} {}: belongs to {}, not to us or root; refusing to use it and leaving it \
             untouched (another user may have put it there: remove it, choose another path, or \
             pass --trust-uid {uid} if that user is your peer)",
            path.display(),
            Owner(uid)
        );
    }
    Ok(())
}

/// Refuses a SysV object (`what`, e.g. "queue 0x54010203") whose owner or creator is untrusted.
pub fn check_sysv(what: impl fmt::Display, uid: u32, creator_uid: u32) -> anyhow::Result<()> {
    for (role, id) in [("belongs to", uid), ("was created by", creator_uid)] {
        if !trusted(id) {
            bail!(
                "{what} {role} {}, not us or root; refusing to use it and leaving it untouched \
                 (another user may have created it under our key: remove it with ipcrm, choose \
                 another key file, or pass --trust-uid {id} if that user is your peer)",
                Owner(id)
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_parse_by_number_and_name() {
        assert_eq!(parse_user("33"), Ok(33));
        assert_eq!(parse_user("root"), Ok(0));
        assert!(parse_user("no-such-user-here").is_err());
    }

    #[test]
    fn ourselves_and_root_are_trusted_others_only_when_named() {
        let me = nix::unistd::geteuid().as_raw();
        assert!(trusted(me) && trusted(0));
        let stranger = if me == 4_000_000 {
            4_000_001
        } else {
            4_000_000
        };
        assert!(!trusted(stranger));
        let err = check_sysv("queue 0x00000001", me, stranger).unwrap_err();
        let expected = format!("queue 0x00000001 was created by uid {stranger}");
        assert!(err.to_string().starts_with(&expected), "{err}");
        TrustArgs {
            trust_uid: vec![stranger],
        }
        .apply();
        assert!(trusted(stranger));
        TrustArgs::default().apply();
        assert!(!trusted(stranger));
    }
}
