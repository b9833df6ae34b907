//! The blog's message-queue writer, line for line: `ftok` the key file
//! `/tmp/ipc-message-queues`, `msg_get_queue($key, 0666)`, `msg_send($queue, 1, $message)`,
//! which sends `serialize($message)`. Read this first, then `run()` in `src/bin/writer.rs`; the
//! story is in `crates/mq/README.md`.
//!
//! ```text
//! cargo run -q -p mq --example mq-blog-writer [KEY_FILE]     # either order
//! cargo run -q -p mq --example mq-blog-reader [KEY_FILE]
//! ```
//!
//! `serialize()` comes from `ipc_common::php` (the hardened pair's own code, tested against
//! PHP's bytes): the message travels as `s:32:"Hello from Writer: Message Queue";`.
//! What goes wrong with it, and what fixes it in the hardened pair:
//! - `ftok` of a missing key file is -1: key `0xffffffff`, shared by every such caller.
//!   `mq-writer` creates the key file (`paths::ensure_key_file`).
//! - Whatever queue has the key is used, whoever made it; `mq::open_or_create` creates with
//!   `IPC_EXCL` or checks owner and creator (`msgctl IPC_STAT`), and `mq::check_qbytes` refuses
//!   a message the queue can never hold.
//! - A full queue blocks `msgsnd` forever; `mq::send` uses `IPC_NOWAIT` and retries until
//!   `--timeout`.
//! - `0666`: every user may read our messages or put in their own. `mq-writer` uses `--mode`.

use ipc_common::php::{Value, serialize};
use nix::errno::Errno;
use std::ffi::CString;

#[repr(C)]
struct Message {
    mtype: libc::c_long,
    mtext: [u8; 1024],
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key_file = std::env::args().nth(1);
    let key_file = CString::new(key_file.as_deref().unwrap_or("/tmp/ipc-message-queues"))?;
    let text = serialize(&Value::String("Hello from Writer: Message Queue".into()));

    let mut message = Message {
        mtype: 1,
        mtext: [0; 1024],
    };
    message.mtext[..text.len()].copy_from_slice(&text);
    // SAFETY: ftok reads the NUL-terminated path, msgget takes plain numbers, msgsnd reads
    // `text.len()` bytes of mtext after the mtype, all inside `message`.
    unsafe {
        let key = libc::ftok(key_file.as_ptr(), b'T'.into());
        let mut id = libc::msgget(key, 0); // msg_get_queue($key, 0666): the existing queue,
        if id < 0 {
            id = libc::msgget(key, libc::IPC_CREAT | libc::IPC_EXCL | 0o666); // or a new one
        }
        let message = (&raw const message).cast(); // msg_send($queue, 1, $message): blocks
        Errno::result(libc::msgsnd(Errno::result(id)?, message, text.len(), 0))?;
    }
    Ok(()) // The queue stays for the reader.
}
