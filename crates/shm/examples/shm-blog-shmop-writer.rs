//! The blog's shared-memory writer (PHP's shmop), line for line: `ftok` the key file
//! `/tmp/ipc-shared-memory`, `shmop_open($key, "c", 0644, 1024)`, `shmop_write` the message's
//! bytes at offset 0. Read this first, then `run()` in `src/bin/writer.rs` (`--api shmop`); the
//! story is in `crates/shm/README.md`.
//!
//! ```text
//! cargo run -q -p shm --example shm-blog-shmop-writer [KEY_FILE]     # first
//! cargo run -q -p shm --example shm-blog-shmop-reader [KEY_FILE]
//! ```
//!
//! What goes wrong with it, and what fixes it in the hardened pair:
//! - No header, no length, no lock: a reader cannot tell "written" from "not yet", nor where
//!   the message ends. `shm-writer --api shmop` writes under PHP's `sem_get` lock
//!   (`Shared::write_raw`), and its reader waits for this writer's `shmdt` (`shm_dtime`).
//! - `ftok` of a missing key file is -1 (key `0xffffffff`, shared by every such caller); `"c"`
//!   opens whatever segment has the key, whoever made it. `shm::open_or_create` creates with
//!   `IPC_EXCL` or checks owner, creator and size of what it finds.
//! - `shmop_write` silently stops at the end of the segment; `shm-writer` refuses a message
//!   bigger than `--size` up front.
//! - `0644`: every user may read the message. `shm-writer` uses `--mode` (0600).

use nix::errno::Errno;
use std::ffi::CString;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key_file = std::env::args().nth(1);
    let key_file = CString::new(key_file.as_deref().unwrap_or("/tmp/ipc-shared-memory"))?;
    let message = "Hello from Writer: Shared Memory";

    // SAFETY: ftok reads the NUL-terminated path; shmget takes plain numbers.
    let id = unsafe {
        let key = libc::ftok(key_file.as_ptr(), b'T'.into());
        libc::shmget(key, 1024, libc::IPC_CREAT | 0o644) // shmop_open($key, "c", 0644, 1024)
    };
    // SAFETY: shmat maps the segment (at least 1024 bytes: shmget refused a smaller one), and
    // the message is copied to its start, unlocked, as shmop_write($shm, $message, 0) does.
    unsafe {
        let addr = libc::shmat(Errno::result(id)?, std::ptr::null(), 0);
        Errno::result(addr as isize)?;
        std::ptr::copy_nonoverlapping(message.as_ptr(), addr.cast::<u8>(), message.len());
    }
    Ok(()) // The segment stays for the reader; exiting detaches it (shmdt).
}
