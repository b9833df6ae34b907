//! `ipc-trace`: runs a reader and a writer under `strace` and shows what the blog is about:
//! which system calls each process makes, in what order, and which call of one hands bytes to
//! which call of the other. See `crates/trace/README.md`.
//!
//! - [`strace`]: parsing strace's lines (never panics);
//! - [`model`]: classifying the calls that matter and linking each transfer to its counterpart;
//! - [`render`]: the terminal columns, the SVG sequence diagram, the Chrome trace JSON;
//! - [`run`]: running the pair under strace; [`examples`]: the blog's eight pairs.

pub mod examples;
pub mod model;
pub mod render;
pub mod run;
pub mod strace;
