//! The blog's shared-memory writer (PHP's sysvshm), line for line: `ftok` the key file
//! `/tmp/ipc-shared-memory`, `shm_attach` a 1024-byte segment, `shm_put_var` the message as
//! variable 1, `shm_detach`. Read this first, then `run()` in `src/bin/writer.rs`; the story is
//! in `crates/shm/README.md`.
//!
//! ```text
//! cargo run -q -p shm --example shm-blog-sysvshm-writer [KEY_FILE]     # first
//! cargo run -q -p shm --example shm-blog-sysvshm-reader [KEY_FILE]
//! ```
//!
//! PHP's layout and `serialize()` come from `ipc_common::php` (the hardened pair's own code,
//! tested against PHP's bytes), so this writer's segment reads in PHP and in `shm-reader`.
//! What goes wrong with it, and what fixes it in the hardened pair:
//! - `ftok` of a missing key file is -1: key `0xffffffff`, shared by every such caller.
//!   `shm-writer` creates the key file (`paths::ensure_key_file`).
//! - No lock: a reader may look while the record is half written, and two writers lose each
//!   other's variables. `Shared::put_var` holds PHP's `sem_get` lock (`semtimedop`).
//! - Whatever segment has the key is used as it is, whoever made it, whatever its size: PHP
//!   trusts the header it finds. `shm::open_or_create` checks owner, creator and size
//!   (`shmctl IPC_STAT`), and `ipc_common::php::sysvshm` checks every offset.
//! - `0666`: every user may read and overwrite the message. `shm-writer` uses `--mode` (0600).

use ipc_common::php::{Value, serialize, sysvshm};
use nix::errno::Errno;
use std::ffi::CString;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key_file = std::env::args().nth(1);
    let key_file = CString::new(key_file.as_deref().unwrap_or("/tmp/ipc-shared-memory"))?;
    let message = "Hello from Writer: Shared Memory";

    // SAFETY: ftok reads the NUL-terminated path; shmget and shmat take plain numbers.
    let (key, mut id) = unsafe {
        let key = libc::ftok(key_file.as_ptr(), b'T'.into());
        (key, libc::shmget(key, 0, 0)) // shm_attach($key, 1024, 0666): the existing segment,
    };
    if id < 0 {
        // SAFETY: as above. ... else a new one.
        id = unsafe { libc::shmget(key, 1024, libc::IPC_CREAT | libc::IPC_EXCL | 0o666) };
    }
    // SAFETY: shmat maps the segment; the slice is its 1024 bytes, as PHP assumes, shared with
    // whoever else attaches (the blog has no lock, and neither has this translation).
    let segment = unsafe {
        let addr = libc::shmat(Errno::result(id)?, std::ptr::null(), 0);
        Errno::result(addr as isize)?;
        std::slice::from_raw_parts_mut(addr.cast::<u8>(), 1024)
    };
    if !sysvshm::is_initialized(segment) {
        sysvshm::initialize(segment, 1024)?; // ... and PHP's header if it has none.
    }
    let value = serialize(&Value::String(message.into()));
    if let Err(why) = sysvshm::put(segment, 1, &value) {
        eprintln!("Warning: shm_put_var(): {why}"); // PHP warns and exits 0
    }
    Ok(()) // shm_detach($shm): the segment stays for the reader.
}
