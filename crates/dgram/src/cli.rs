//! The datagram binaries' own option groups (`--help` headings "Multicast and broadcast" and
//! "Replies"), flattened into their `Args`.

use std::ffi::OsString;

use clap::Args;

use crate::{Interface, Listen, SendOptions};

/// `--help` heading of the multicast and broadcast options.
pub const MANY: &str = "Multicast and broadcast";
/// `--help` heading of the reply options.
pub const REPLIES: &str = "Replies";

/// `--interface`, looked up at once: an unknown one is a usage error.
fn interface(spec: &str) -> Result<Interface, String> {
    Interface::find(spec).map_err(|err| format!("{err:#}"))
}

/// The reader's multicast and broadcast options.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = MANY)]
pub struct ReaderManyArgs {
    /// Share the port with other readers (SO_REUSEADDR + SO_REUSEPORT), so each gets every
    /// broadcast datagram; automatic for a multicast group address.
    #[arg(long, env = "IPC_DGRAM_SHARED", hide_env = true)]
    pub shared: bool,

    /// Join the multicast group on this interface (a name, or one of its addresses)
    /// [default: the one the route to the group picks].
    #[arg(long, value_name = "NAME|ADDR", env = "IPC_DGRAM_INTERFACE", hide_env = true,
          value_parser = interface)]
    pub interface: Option<Interface>,
}

impl ReaderManyArgs {
    pub fn listen(&self) -> Listen {
        Listen {
            shared: self.shared,
            interface: self.interface.clone(),
        }
    }
}

/// The reader's reply option.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = REPLIES)]
pub struct ReaderReplyArgs {
    /// Answer the datagram with TEXT, sent to its sender's address from this same socket.
    /// A Unix sender must have bound an address (dgram-writer --expect-reply does).
    #[arg(
        long,
        value_name = "TEXT",
        env = "IPC_DGRAM_REPLY",
        hide_env = true,
        allow_hyphen_values = true
    )]
    pub reply: Option<OsString>,
}

/// The writer's multicast and broadcast options.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = MANY)]
pub struct WriterManyArgs {
    /// Allow a broadcast address (SO_BROADCAST), e.g. udp://255.255.255.255:9999 or a
    /// subnet's; without it the kernel refuses one (EACCES).
    #[arg(long, env = "IPC_DGRAM_BROADCAST", hide_env = true)]
    pub broadcast: bool,

    /// How many routers a multicast datagram may cross (IP_MULTICAST_TTL; 1: this link).
    #[arg(long, value_name = "HOPS", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(0..=255),
          env = "IPC_DGRAM_TTL", hide_env = true)]
    pub ttl: u32,

    /// Send multicast out of this interface (a name, or one of its addresses)
    /// [default: the one the route to the group picks].
    #[arg(long, value_name = "NAME|ADDR", env = "IPC_DGRAM_INTERFACE", hide_env = true,
          value_parser = interface)]
    pub interface: Option<Interface>,
}

/// The writer's reply option.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = REPLIES)]
pub struct WriterReplyArgs {
    /// Wait (bounded by --timeout) for the reader's reply on this same socket and print it
    /// on stdout. Needs one reader: not with a group or --broadcast.
    #[arg(long, env = "IPC_DGRAM_EXPECT_REPLY", hide_env = true)]
    pub expect_reply: bool,
}

impl WriterManyArgs {
    pub fn options(&self, reply: &WriterReplyArgs) -> SendOptions {
        SendOptions {
            broadcast: self.broadcast,
            ttl: self.ttl,
            interface: self.interface.clone(),
            expect_reply: reply.expect_reply,
        }
    }
}
