//! The blog's message-queue reader, line for line: `ftok` the key file
//! `/tmp/ipc-message-queues`, `msg_get_queue($key)`, `msg_receive($queue, 1, $type, 1024,
//! $message)`, which unserializes it, echo it, `msg_remove_queue`. Read this first, then `run()`
//! in `src/bin/reader.rs`; the story is in `crates/mq/README.md`.
//!
//! ```text
//! cargo run -q -p mq --example mq-blog-writer [KEY_FILE]     # either order
//! cargo run -q -p mq --example mq-blog-reader [KEY_FILE]
//! ```
//!
//! `unserialize()` and `echo` come from `ipc_common::php` (the hardened pair's own code).
//! What goes wrong with it, and what fixes it in the hardened pair:
//! - The 1024-byte limit: a longer message fails with `E2BIG` and stays queued, and PHP goes on
//!   to `msg_remove_queue`, which destroys it with the queue (this translation stops at the
//!   error). `mq-reader` receives up to the kernel's `msgmax` (`mq::receive`) and removes the
//!   queue only after printing.
//! - `msgrcv` blocks forever if no message comes; `mq::receive` uses `IPC_NOWAIT` and retries
//!   until `--timeout`.
//! - `msg_get_queue` creates the queue (`0666`) if the writer has not, and reads whatever queue
//!   has the key; `mq::wait_for_queue` waits for the writer's queue and `mq::check_owner`
//!   accepts only a trusted owner and creator.
//!
//! One line is not the blog's: `waiting for a message on queue ...` on stderr.

use ipc_common::php::unserialize;
use nix::errno::Errno;
use nix::unistd::write;
use std::ffi::CString;
use std::io::stdout;

#[repr(C)]
struct Message {
    mtype: libc::c_long,
    mtext: [u8; 1024],
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key_file = std::env::args().nth(1);
    let key_file = CString::new(key_file.as_deref().unwrap_or("/tmp/ipc-message-queues"))?;

    let mut message = Message {
        mtype: 0,
        mtext: [0; 1024],
    };
    // SAFETY: ftok reads the NUL-terminated path, msgget takes plain numbers, msgrcv writes at
    // most 1024 bytes of mtext after the mtype, all inside `message`.
    let (id, len) = unsafe {
        let key = libc::ftok(key_file.as_ptr(), b'T'.into());
        let mut id = libc::msgget(key, 0); // msg_get_queue($key): the existing queue,
        if id < 0 {
            id = libc::msgget(key, libc::IPC_CREAT | libc::IPC_EXCL | 0o666); // or a new one
        }
        let id = Errno::result(id)?;
        eprintln!("waiting for a message on queue {key:#010x}");
        let buf = (&raw mut message).cast(); // msg_receive($queue, 1, $type, 1024, $message)
        (
            id,
            Errno::result(libc::msgrcv(id, buf, 1024, 1, 0))? as usize,
        )
    };
    let text = unserialize(&message.mtext[..len])?.0.echo()?;
    write(stdout(), &[&text[..], b"\n"].concat())?; // echo $message, "\n";
    // SAFETY: IPC_RMID takes no buffer. msg_remove_queue($queue);
    Errno::result(unsafe { libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()) })?;
    Ok(())
}
