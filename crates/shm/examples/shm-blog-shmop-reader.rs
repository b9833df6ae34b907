//! The blog's shared-memory reader (PHP's shmop), line for line: `ftok` the key file
//! `/tmp/ipc-shared-memory`, `shmop_open($key, "a", 0, 0)`, `shmop_read` all `shmop_size`
//! bytes, echo them, `shmop_delete`. Read this first, then `run()` in `src/bin/reader.rs`
//! (`--api shmop`); the story is in `crates/shm/README.md`.
//!
//! ```text
//! cargo run -q -p shm --example shm-blog-shmop-writer [KEY_FILE]     # first
//! cargo run -q -p shm --example shm-blog-shmop-reader [KEY_FILE]
//! ```
//!
//! What goes wrong with it, and what fixes it in the hardened pair:
//! - It echoes the whole segment: the message, then 992 NUL bytes (invisible in a terminal,
//!   there in a file or a pipe). `shm-reader --api shmop` prints up to the first NUL, or
//!   exactly `--length` bytes (`Shared::read_raw`).
//! - `sleep(1)` is a guess, not a synchronisation: with no segment yet, `shmop_open` fails; with
//!   a segment but no message yet, it echoes NULs. `shm::wait_for_segment` and
//!   `shm::wait_for_detach` wait for the segment and for its writer's `shmdt` until `--timeout`.
//! - Whatever segment has the key is read and deleted, whoever made it; `shm::check_owner`
//!   reads only a trusted user's segment.

use nix::errno::Errno;
use nix::unistd::{sleep, write};
use std::ffi::CString;
use std::io::stdout;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key_file = std::env::args().nth(1);
    let key_file = CString::new(key_file.as_deref().unwrap_or("/tmp/ipc-shared-memory"))?;

    sleep(1); // sleep(1): "give the writer time to write"
    // SAFETY: ftok reads the NUL-terminated path; shmget takes plain numbers; IPC_STAT fills
    // the zeroed shmid_ds we pass; shmat maps the segment read-only.
    let (id, data) = unsafe {
        let key = libc::ftok(key_file.as_ptr(), b'T'.into());
        let id = Errno::result(libc::shmget(key, 0, 0))?; // shmop_open($key, "a", 0, 0)
        let mut stat: libc::shmid_ds = std::mem::zeroed();
        Errno::result(libc::shmctl(id, libc::IPC_STAT, &mut stat))?; // shmop_size($shm)
        let addr = libc::shmat(id, std::ptr::null(), libc::SHM_RDONLY);
        Errno::result(addr as isize)?;
        // shmop_read($shm, 0, shmop_size($shm)): a copy of every byte of the segment.
        (
            id,
            std::slice::from_raw_parts(addr.cast::<u8>(), stat.shm_segsz).to_vec(),
        )
    };
    write(stdout(), &[&data[..], b"\n"].concat())?; // echo $data, "\n";
    // SAFETY: IPC_RMID takes no buffer. shmop_delete($shm);
    Errno::result(unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) })?;
    Ok(())
}
