//! The blog's named-pipe writer, line for line: `posix_mkfifo` the FIFO at
//! `/tmp/ipc-named-pipe` unless it exists, `fopen` it for writing, `fwrite` the message,
//! `fclose`. Read this first, then `run()` in `src/bin/writer.rs`; the story is in
//! `crates/fifo/README.md`.
//!
//! ```text
//! cargo run -q -p fifo --example fifo-blog-reader [PATH]     # either order
//! cargo run -q -p fifo --example fifo-blog-writer [PATH]
//! ```
//!
//! What goes wrong with it, and what fixes it in the hardened pair:
//! - `file_exists` then `fopen` is check-then-use: whatever is at the path by the time of the
//!   `open` gets written, and `fopen(.., 'w')` is `O_CREAT | O_TRUNC` and follows symlinks, so a
//!   regular file or a symlink put there meanwhile is truncated and overwritten.
//!   `fifo::create_or_use` and `fifo::open_write_end` never follow a symlink and check that the
//!   descriptor they opened is a FIFO of a trusted owner.
//! - `open` blocks until a reader comes, forever; `fifo::open_write_end` opens `O_NONBLOCK` and
//!   retries `ENXIO` until `--timeout`.
//! - Exit 0 after `fclose` means the bytes are in the pipe's buffer, not that anyone read them:
//!   a reader that dies now loses them. `fifo::wait_until_read` waits until `FIONREAD` shows the
//!   pipe drained.
//! - The FIFO gets `0644` less the umask (anyone may open it to read our messages) and stays
//!   behind forever; `fifo-writer` creates it with `--mode` (0600) and removes what it created.
//!
//! One line is not the blog's: `waiting for a reader on ...` on stderr.

use nix::fcntl::{OFlag, open};
use nix::sys::stat::{Mode, stat};
use nix::unistd::{mkfifo, write};

fn main() -> nix::Result<()> {
    let pipe_path = std::env::args().nth(1);
    let pipe_path = pipe_path.as_deref().unwrap_or("/tmp/ipc-named-pipe");
    let message = "Hello from Sender: Named Pipe";

    if stat(pipe_path).is_err() {
        // if (!file_exists($pipePath)) posix_mkfifo($pipePath, 0644);
        mkfifo(pipe_path, Mode::from_bits_truncate(0o644))?;
    }
    eprintln!("waiting for a reader on {pipe_path}");
    // fopen($pipePath, 'w'): O_WRONLY | O_CREAT | O_TRUNC, blocks until a reader opens it.
    let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC;
    let pipe = open(pipe_path, flags, Mode::from_bits_truncate(0o666))?;
    write(&pipe, message.as_bytes())?; // fwrite($pipe, $message);
    Ok(()) // fclose($pipe); the FIFO stays.
}
