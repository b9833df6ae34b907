//! The blog's named-pipe reader, line for line: `posix_mkfifo` the FIFO at
//! `/tmp/ipc-named-pipe` unless it exists, `fopen` it for reading, `fread($pipe, 1024)`, echo
//! it, `fclose`. Read this first, then `run()` in `src/bin/reader.rs`; the story is in
//! `crates/fifo/README.md`.
//!
//! ```text
//! cargo run -q -p fifo --example fifo-blog-reader [PATH]     # either order
//! cargo run -q -p fifo --example fifo-blog-writer [PATH]
//! ```
//!
//! What goes wrong with it, and what fixes it in the hardened pair:
//! - `fread($pipe, 1024)` stops at 1024 bytes: a longer message is cut, and the rest is lost
//!   with the pipe (a writer still writing gets `EPIPE`). `fifo::read_to_end` reads until every
//!   writer has closed.
//! - `open` blocks until a writer comes, forever, and so does `read` while a writer holds the
//!   pipe open; `fifo::wait_for_writer` and `fifo::read_to_end` poll until `--timeout`.
//! - `file_exists` then `fopen` is check-then-use: a symlink or a regular file put at the path
//!   meanwhile is read as if it were the pipe. `fifo::create_or_use` and
//!   `fifo::open_read_end` check the descriptor they opened.
//! - The FIFO gets `0644` less the umask and stays behind; `fifo-reader` creates it with
//!   `--mode` (0600) and removes what it created.
//!
//! One line is not the blog's: `waiting for a writer on ...` on stderr.

use nix::fcntl::{OFlag, open};
use nix::sys::stat::{Mode, stat};
use nix::unistd::{mkfifo, read, write};
use std::io::stdout;

fn main() -> nix::Result<()> {
    let pipe_path = std::env::args().nth(1);
    let pipe_path = pipe_path.as_deref().unwrap_or("/tmp/ipc-named-pipe");

    if stat(pipe_path).is_err() {
        // if (!file_exists($pipePath)) posix_mkfifo($pipePath, 0644);
        mkfifo(pipe_path, Mode::from_bits_truncate(0o644))?;
    }
    eprintln!("waiting for a writer on {pipe_path}");
    let pipe = open(pipe_path, OFlag::O_RDONLY, Mode::empty())?; // fopen($pipePath, 'r')

    // fread($pipe, 1024): reads until 1024 bytes or end of file, whichever comes first.
    let mut message = [0u8; 1024];
    let mut len = 0;
    while len < message.len() {
        match read(&pipe, &mut message[len..])? {
            0 => break,
            n => len += n,
        }
    }
    write(stdout(), &[&message[..len], b"\n"].concat())?; // echo $message, "\n";
    Ok(()) // fclose($pipe); the FIFO stays.
}
