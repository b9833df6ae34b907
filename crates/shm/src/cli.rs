//! What `shm-writer` and `shm-reader` add to the segment options ([`SegmentArgs`]): their own
//! option groups, the checks clap cannot make, and the steps of their `run()` that choose between
//! sysvshm and shmop. Nothing here prints: each step returns what happened, as a [`Note`] the
//! binary says or warns.

use std::path::Path;

use anyhow::{Context, bail};
use clap::Args;
use ipc_common::php::{Value, serialize, sysvshm};
use ipc_common::runtime::cleanup::Cleanup;
use ipc_common::runtime::cli::{MessageLimit, Mode, heading, usage_error};
use ipc_common::runtime::paths::{self, KeyFile};
use ipc_common::runtime::wait::Deadline;
use ipc_common::sysv::{self, ShmId};

use crate::{
    AfterRead, Api, DEFAULT_SIZE, DEFAULT_VAR, Format, Opened, Ours, SegmentArgs, SegmentKey,
    Shared, ValueArgs, check_api, check_owner, parse_size, print_value, read_message,
    wait_for_segment,
};

/// `--help`'s section for where in the segment each side reads or writes.
pub const SEGMENT: &str = "Segment";

/// One line for the binary to print: progress (silenced by `--quiet`) or a warning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    Progress(String),
    Warning(String),
}

/// `shm-reader`'s own options.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = SEGMENT)]
pub struct ReadArgs {
    /// sysv: the variable key to read, shm_get_var()'s second argument [default: 1].
    #[arg(
        long,
        value_name = "N",
        allow_negative_numbers = true,
        env = "IPC_SHM_VAR",
        hide_env = true
    )]
    pub var: Option<i64>,

    /// shmop: where in the segment the bytes start [default: 0].
    #[arg(long, value_name = "BYTES", env = "IPC_SHM_OFFSET", hide_env = true)]
    pub offset: Option<usize>,

    /// shmop: print exactly N bytes, NULs included, instead of stopping at the first NUL.
    #[arg(long, value_name = "N")]
    pub length: Option<usize>,

    /// Leave the segment in place for another reader instead of removing it.
    #[arg(long, env = "IPC_SHM_KEEP", hide_env = true)]
    pub keep: bool,

    /// sysv: how to print the value [default: echo].
    #[arg(long, value_enum, env = "IPC_SHM_FORMAT", hide_env = true, help_heading = heading::PHP_VALUES)]
    pub format: Option<Format>,
}

/// What the reader found: a sysv variable (its value and serialized bytes) or shmop bytes.
#[derive(Clone, Debug)]
pub enum Message {
    Var {
        var: i64,
        value: Value,
        serialized: Vec<u8>,
    },
    Raw {
        offset: usize,
        length: Option<usize>,
        bytes: Vec<u8>,
    },
}

impl ReadArgs {
    /// Refuses, as a usage error of `C` (exit 2), an option of the other `--api`.
    pub fn check<C: clap::CommandFactory>(&self, api: Api) {
        let sysv_only = [
            ("--var", self.var.is_some()),
            ("--format", self.format.is_some()),
        ];
        let shmop_only = [
            ("--offset", self.offset.is_some()),
            ("--length", self.length.is_some()),
        ];
        check_api::<C>(api, &sysv_only, &shmop_only);
    }

    /// Waits, looking under the lock, until the writer's message is there (see the crate docs).
    pub fn wait_for_message(
        &self,
        api: Api,
        shared: &mut Shared,
        deadline: &Deadline,
    ) -> anyhow::Result<Message> {
        Ok(match api {
            Api::Sysv => {
                let var = self.var.unwrap_or(DEFAULT_VAR);
                let what = format!("variable {var} in {}", shared.name);
                let (value, serialized) = shared.wait_for_var(var, what, deadline)?;
                Message::Var {
                    var,
                    value,
                    serialized,
                }
            }
            Api::Shmop => {
                let (offset, length) = (self.offset.unwrap_or(0), self.length);
                let bytes = shared.wait_for_raw(offset, length, deadline)?;
                Message::Raw {
                    offset,
                    length,
                    bytes,
                }
            }
        })
    }

    /// What the reader prints: the variable as `--format` asks, or the bytes as they are.
    pub fn printable(&self, message: &Message, name: &SegmentKey) -> anyhow::Result<Vec<u8>> {
        match message {
            Message::Var { var, value, .. } => {
                print_value(value, *var, self.format.unwrap_or(Format::Echo), name)
            }
            Message::Raw { bytes, .. } => Ok(bytes.clone()),
        }
    }

    /// The blog's `shm_remove` after a read, unless `--keep`: what happened, as a note.
    pub fn remove_after_read(
        &self,
        shared: Shared,
        message: &Message,
        deadline: &Deadline,
    ) -> anyhow::Result<Note> {
        let name = shared.name.to_string();
        if self.keep {
            return Ok(Note::Progress(format!(
                "kept {name} for the next reader (--keep)"
            )));
        }
        let removed = match message {
            Message::Var {
                var, serialized, ..
            } => shared.remove_store_after_read(*var, Some(serialized), deadline)?,
            Message::Raw {
                offset,
                length,
                bytes,
            } => shared.remove_after_read(deadline, |seg| {
                // Rewritten since we read it: the new message is the next reader's.
                let now = read_message(seg, *offset, *length)?;
                Ok((now != *bytes)
                    .then(|| format!("it was written again at offset {offset} after we read it")))
            })?,
        };
        Ok(removal_note(removed, &name))
    }
}

/// What [`Shared::remove_after_read`] did, as the reader says it.
pub fn removal_note(removed: AfterRead, name: &str) -> Note {
    match removed {
        AfterRead::Removed => Note::Progress(format!("removed {name}")),
        AfterRead::Left(why) => Note::Progress(format!("left {name} in place: {why}")),
        AfterRead::NotPermitted { uid, creator_uid } => Note::Warning(format!(
            "the value was read, but {name} stays: only its owner (uid {uid}), its creator (uid \
             {creator_uid}) or root may remove it, and we are uid {} (pass --keep to leave it to \
             them without this warning)",
            nix::unistd::geteuid()
        )),
        AfterRead::LockBusy(err) => {
            Note::Warning(format!("the value was read, but {name} stays: {err}"))
        }
    }
}

impl Shared {
    /// After a wait in vain (sysv): an empty segment whose failed writer is gone is removed, not
    /// leaked ([`Shared::remove_if_orphaned`]). shmop has no such rule: an unwritten segment may
    /// be the target of a writer still to come (docs/talking-to-php.md).
    pub fn remove_orphan(&mut self, api: Api) -> Option<Note> {
        if api == Api::Shmop {
            return None;
        }
        match self.remove_if_orphaned() {
            Ok(Some(pid)) => Some(Note::Progress(format!(
                "removed {}: empty, left by a writer (pid {pid}) that is gone",
                self.name
            ))),
            Ok(None) => None,
            Err(err) => Some(Note::Warning(format!("{err:#}"))),
        }
    }
}

impl SegmentArgs {
    /// [`wait_for_segment`], an error naming the IPC namespace the key file was made in if it is
    /// not ours.
    pub fn wait_for_segment(
        &self,
        name: &SegmentKey,
        deadline: &Deadline,
    ) -> anyhow::Result<ShmId> {
        wait_for_segment(name, deadline).map_err(|err| match sysv::namespace_note(&self.key_file) {
            Some(note) => err.context(note),
            None => err,
        })
    }
}

/// `shm-writer`'s own options.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = SEGMENT)]
pub struct WriteArgs {
    /// Size in bytes of the segment to create; an existing segment must be at least this big.
    /// For sysv it is also the store size PHP's header records (at least 40).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_SIZE, value_parser = parse_size, env = "IPC_SHM_SIZE", hide_env = true)]
    pub size: usize,

    /// sysv: the variable key, shm_put_var()'s second argument [default: 1].
    #[arg(
        long,
        value_name = "N",
        allow_negative_numbers = true,
        env = "IPC_SHM_VAR",
        hide_env = true
    )]
    pub var: Option<i64>,

    /// shmop: where in the segment to write the bytes [default: 0].
    #[arg(long, value_name = "BYTES", env = "IPC_SHM_OFFSET", hide_env = true)]
    pub offset: Option<usize>,

    /// sysv: remove variable N from the store (shm_remove_var) instead of storing anything; the
    /// segment must exist.
    #[arg(long, value_name = "N", allow_negative_numbers = true, conflicts_with_all = ["message", "message_file", "var"])]
    pub remove_var: Option<i64>,
}

impl WriteArgs {
    /// Refuses, as a usage error of `C` (exit 2), an option of the other `--api` and a sysv
    /// segment too small for PHP's header.
    pub fn check<C: clap::CommandFactory>(&self, api: Api, value: &ValueArgs) {
        let mut sysv_only = vec![
            ("--var", self.var.is_some()),
            ("--remove-var", self.remove_var.is_some()),
        ];
        sysv_only.extend(value.given());
        check_api::<C>(api, &sysv_only, &[("--offset", self.offset.is_some())]);
        if api == Api::Sysv && self.size < sysvshm::MIN_SEGMENT {
            usage_error::<C>(format!(
                "--size {} cannot hold PHP's 40-byte sysvshm header",
                self.size
            ));
        }
    }

    /// The largest message: the segment.
    pub fn limit(&self) -> MessageLimit {
        MessageLimit {
            bytes: self.size,
            why: "a message cannot be larger than the segment (--size)".into(),
        }
    }

    /// What in a segment this run creates is its own, for the guard that removes it on failure.
    pub fn ours(&self, api: Api) -> Ours {
        match api {
            Api::Sysv => Ours::Var(self.var.unwrap_or(DEFAULT_VAR)),
            Api::Shmop => Ours::Nothing,
        }
    }

    /// `shm_put_var` of the message (or `--int` ...), or `shmop_write` of its bytes, under the
    /// lock; returns what was stored, as the writer says it.
    pub fn store(
        &self,
        api: Api,
        shared: &mut Shared,
        value: &ValueArgs,
        message: Vec<u8>,
        deadline: &Deadline,
    ) -> anyhow::Result<Note> {
        Ok(Note::Progress(match api {
            Api::Shmop => {
                let offset = self.offset.unwrap_or(0);
                shared.write_raw(offset, &message, deadline)?;
                let len = message.len();
                format!("wrote {len} bytes at offset {offset} of {}", shared.name)
            }
            Api::Sysv => {
                let var = self.var.unwrap_or(DEFAULT_VAR);
                let serialized = serialize(&value.value_or(message));
                shared.put_var(var, &serialized, self.size, deadline)?;
                let len = serialized.len();
                format!(
                    "put variable {var} ({len} serialized bytes) into {}",
                    shared.name
                )
            }
        }))
    }
}

/// What [`crate::open_or_create`] did, as the writer says it.
pub fn opened_note(opened: &Opened, name: &SegmentKey, mode: Mode) -> Note {
    let id = opened.id.0;
    Note::Progress(match &opened.created {
        Some(_) => format!(
            "created {name}: shmid {id}, {} bytes, mode {mode}",
            opened.size
        ),
        None => format!(
            "using the existing {name}: shmid {id}, {} bytes",
            opened.size
        ),
    })
}

/// `ftok(3)` needs an existing file: creates the key file if missing (exactly `mode`, holding
/// our IPC namespace's name for a reader in another one). Returns its guard if it did, and what
/// to say.
pub fn create_key_file(path: &Path, mode: Mode) -> anyhow::Result<(Option<Cleanup>, Option<Note>)> {
    Ok(match paths::ensure_key_file(path, mode)? {
        KeyFile::Created(guard) => {
            let _ = sysv::record_namespace(path);
            let note = format!("created key file {}", path.display());
            (Some(guard), Some(Note::Progress(note)))
        }
        KeyFile::Existing => (None, sysv::namespace_note(path).map(Note::Warning)),
    })
}

/// `--remove-var`: `shm_remove_var` on an existing segment, under the lock (which it may
/// create); creates nothing else. Returns the segment's name.
pub fn remove_var(
    segment: &SegmentArgs,
    var: i64,
    mode: Mode,
    deadline: &Deadline,
) -> anyhow::Result<String> {
    let name = segment.key()?;
    let Some(id) = sysv::shm_open(name.key).with_context(|| format!("shmget {name}"))? else {
        bail!("remove variable {var}: there is no {name}");
    };
    check_owner(&name, id)?;
    let mut shared = Shared::attach(
        name,
        id,
        crate::Access::ReadWrite,
        segment.lock(mode),
        deadline,
    )?;
    if !shared.remove_var(var, deadline)? {
        bail!(
            "remove variable {var} from {}: it is not there",
            shared.name
        );
    }
    Ok(shared.name.to_string())
}
