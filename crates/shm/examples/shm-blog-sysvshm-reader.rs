//! The blog's shared-memory reader (PHP's sysvshm), line for line: `ftok` the key file
//! `/tmp/ipc-shared-memory`, `shm_attach` the 1024-byte segment, `shm_get_var` variable 1, echo
//! it, `shm_remove`. Read this first, then `run()` in `src/bin/reader.rs`; the story is in
//! `crates/shm/README.md`.
//!
//! ```text
//! cargo run -q -p shm --example shm-blog-sysvshm-writer [KEY_FILE]     # first
//! cargo run -q -p shm --example shm-blog-sysvshm-reader [KEY_FILE]
//! ```
//!
//! PHP's layout and `unserialize()`/`echo` come from `ipc_common::php` (the hardened pair's own
//! code, tested against PHP's bytes), so this reader reads what PHP and `shm-writer` wrote.
//! What goes wrong with it, and what fixes it in the hardened pair:
//! - `sleep(1)` is a guess, not a synchronisation: a writer that has not written a second later
//!   finds no variable 1; PHP warns, echoes an empty line and exits 0, and `shm_attach` has
//!   created an empty segment under the key. `shm::wait_for_segment` and
//!   `Shared::wait_for_var` wait for the segment and the complete variable until `--timeout`,
//!   and the reader creates no segment.
//! - No lock: the variable may be half written when we look; `Shared::wait_for_var` looks under
//!   PHP's `sem_get` lock.
//! - Whatever segment has the key is trusted, header included; `shm::check_owner` and
//!   `ipc_common::php::sysvshm` check owner, size and every offset first.

use ipc_common::php::{sysvshm, unserialize};
use nix::errno::Errno;
use nix::unistd::{sleep, write};
use std::ffi::CString;
use std::io::stdout;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key_file = std::env::args().nth(1);
    let key_file = CString::new(key_file.as_deref().unwrap_or("/tmp/ipc-shared-memory"))?;

    sleep(1); // sleep(1): "give the writer time to write"
    // SAFETY: ftok reads the NUL-terminated path; shmget and shmat take plain numbers.
    let (key, mut id) = unsafe {
        let key = libc::ftok(key_file.as_ptr(), b'T'.into());
        (key, libc::shmget(key, 0, 0)) // shm_attach($key, 1024, 0666): the existing segment,
    };
    if id < 0 {
        // SAFETY: as above. ... else a new, empty one.
        id = unsafe { libc::shmget(key, 1024, libc::IPC_CREAT | libc::IPC_EXCL | 0o666) };
    }
    let id = Errno::result(id)?;
    // SAFETY: shmat maps the segment; the slice is its 1024 bytes, as PHP assumes, shared with
    // the writer (the blog has no lock, and neither has this translation).
    let segment = unsafe {
        let addr = libc::shmat(id, std::ptr::null(), 0);
        Errno::result(addr as isize)?;
        std::slice::from_raw_parts_mut(addr.cast::<u8>(), 1024)
    };
    if !sysvshm::is_initialized(segment) {
        sysvshm::initialize(segment, 1024)?; // ... and PHP's header if it has none.
    }
    let message = match sysvshm::get(segment, 1)? {
        Some(bytes) => unserialize(bytes)?.0.echo()?, // shm_get_var($shm, 1), echo
        None => {
            eprintln!("Warning: shm_get_var(): variable key 1 doesn't exist");
            Vec::new()
        }
    };
    write(stdout(), &[&message[..], b"\n"].concat())?; // echo $message, "\n";
    // SAFETY: IPC_RMID takes no buffer. shm_remove($shm);
    Errno::result(unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) })?;
    Ok(())
}
