//! The blog's eight examples: which binaries or PHP peers make each pair, and their arguments
//! for a given endpoint (a URL for sockets, a path for the FIFO, a key file for SysV).

use anyhow::{Context, bail};

use crate::model::Side;

/// One of the blog's examples, named as `scripts/run-all.sh` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Example {
    DgramUds,
    DgramUdp,
    StreamUds,
    StreamTcp,
    Fifo,
    ShmSysv,
    ShmShmop,
    Mq,
}

/// Who runs one side: our binary or the blog's PHP script from `tests/php`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Peer {
    Ours,
    Php,
}

impl Example {
    pub const ALL: [Example; 8] = [
        Example::DgramUds,
        Example::DgramUdp,
        Example::StreamUds,
        Example::StreamTcp,
        Example::Fifo,
        Example::ShmSysv,
        Example::ShmShmop,
        Example::Mq,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Example::DgramUds => "dgram-uds",
            Example::DgramUdp => "dgram-udp",
            Example::StreamUds => "stream-uds",
            Example::StreamTcp => "stream-tcp",
            Example::Fifo => "fifo",
            Example::ShmSysv => "shm-sysv",
            Example::ShmShmop => "shm-shmop",
            Example::Mq => "mq",
        }
    }

    /// An example by its name or a short alias (`dgram`, `udp`, `stream`, `tcp`, `shm`,
    /// `shmop`).
    pub fn parse(name: &str) -> Option<Example> {
        let alias = match name {
            "dgram" | "udg" | "uds" => Example::DgramUds,
            "udp" => Example::DgramUdp,
            "stream" | "unix" => Example::StreamUds,
            "tcp" => Example::StreamTcp,
            "shm" | "sysvshm" => Example::ShmSysv,
            "shmop" => Example::ShmShmop,
            _ => return Example::ALL.into_iter().find(|e| e.name() == name),
        };
        Some(alias)
    }

    /// The blog's endpoint, what the binaries use when given none.
    pub fn default_endpoint(self) -> &'static str {
        match self {
            Example::DgramUds => "udg:///tmp/ipc-socket.sock",
            Example::DgramUdp => "udp://127.0.0.1:9999",
            Example::StreamUds => "unix:///tmp/ipc-socket.sock",
            Example::StreamTcp => "tcp://127.0.0.1:9999",
            Example::Fifo => "/tmp/ipc-named-pipe",
            Example::ShmSysv | Example::ShmShmop => "/tmp/ipc-shared-memory",
            Example::Mq => "/tmp/ipc-message-queues",
        }
    }

    /// What `--endpoint` is for this example, for help and errors.
    pub fn endpoint_kind(self) -> &'static str {
        match self {
            Example::DgramUds => "udg://PATH",
            Example::DgramUdp => "udp://HOST:PORT",
            Example::StreamUds => "unix://PATH",
            Example::StreamTcp => "tcp://HOST:PORT",
            Example::Fifo => "the FIFO's path",
            Example::ShmSysv | Example::ShmShmop | Example::Mq => "the ftok key file",
        }
    }

    /// Whether the writer connects to an address the reader announces (`listening on URL`):
    /// a reader on port 0 tells the writer which port the kernel chose.
    pub fn announces_address(self) -> bool {
        matches!(
            self,
            Example::DgramUds | Example::DgramUdp | Example::StreamUds | Example::StreamTcp
        )
    }

    /// Whether the writer finishes on its own, leaving the message for a reader that comes
    /// later (the SysV examples).
    pub fn writer_needs_no_reader(self) -> bool {
        matches!(self, Example::ShmSysv | Example::ShmShmop | Example::Mq)
    }

    pub fn binary(self, side: Side) -> &'static str {
        let mechanism = match self {
            Example::DgramUds | Example::DgramUdp => "dgram",
            Example::StreamUds | Example::StreamTcp => "stream",
            Example::Fifo => "fifo",
            Example::ShmSysv | Example::ShmShmop => "shm",
            Example::Mq => "mq",
        };
        match side {
            Side::Reader => match mechanism {
                "dgram" => "dgram-reader",
                "stream" => "stream-reader",
                "fifo" => "fifo-reader",
                "shm" => "shm-reader",
                _ => "mq-reader",
            },
            Side::Writer => match mechanism {
                "dgram" => "dgram-writer",
                "stream" => "stream-writer",
                "fifo" => "fifo-writer",
                "shm" => "shm-writer",
                _ => "mq-writer",
            },
        }
    }

    /// The PHP peer in `tests/php` for one side.
    pub fn php_script(self, side: Side) -> &'static str {
        let (reader, writer) = match self {
            Example::DgramUds => ("dgram-uds-listener.php", "dgram-uds-sender.php"),
            Example::DgramUdp => ("dgram-udp-listener.php", "dgram-udp-sender.php"),
            Example::StreamUds => ("stream-uds-server.php", "stream-uds-client.php"),
            Example::StreamTcp => ("stream-tcp-server.php", "stream-tcp-client.php"),
            Example::Fifo => ("fifo-reader.php", "fifo-writer.php"),
            Example::ShmSysv => ("sysvshm-reader.php", "sysvshm-writer.php"),
            Example::ShmShmop => ("shmop-reader.php", "shmop-writer.php"),
            Example::Mq => ("mq-reader.php", "mq-writer.php"),
        };
        match side {
            Side::Reader => reader,
            Side::Writer => writer,
        }
    }

    /// Whether the side takes `--timeout` (all do but PHP's shmop writer, which never waits).
    pub fn takes_timeout(self, side: Side, peer: Peer) -> bool {
        !(self == Example::ShmShmop && side == Side::Writer && peer == Peer::Php)
    }

    /// Checks that `endpoint` suits the example (`udg://` for dgram-uds, ...).
    pub fn check_endpoint(self, endpoint: &str) -> anyhow::Result<()> {
        let scheme = match self {
            Example::DgramUds => Some("udg://"),
            Example::DgramUdp => Some("udp://"),
            Example::StreamUds => Some("unix://"),
            Example::StreamTcp => Some("tcp://"),
            _ => None,
        };
        match scheme {
            Some(scheme) if !endpoint.starts_with(scheme) => bail!(
                "--endpoint {endpoint:?} does not suit {}: it takes {}",
                self.name(),
                self.endpoint_kind()
            ),
            None if endpoint.contains("://") => bail!(
                "--endpoint {endpoint:?} does not suit {}: it takes {}",
                self.name(),
                self.endpoint_kind()
            ),
            _ => Ok(()),
        }
    }

    /// The arguments of one side at `endpoint` (already checked), without `--timeout`.
    pub fn args(self, side: Side, peer: Peer, endpoint: &str) -> anyhow::Result<Vec<String>> {
        let shmop = self == Example::ShmShmop;
        let path = || {
            endpoint
                .split_once("://")
                .map_or(endpoint, |(_, rest)| rest)
                .to_string()
        };
        let host_port = || -> anyhow::Result<Vec<String>> {
            let rest = path();
            let (host, port) = rest
                .rsplit_once(':')
                .with_context(|| format!("{endpoint} has no :PORT"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            Ok(vec![
                "--host".into(),
                host.into(),
                "--port".into(),
                port.into(),
            ])
        };
        let args = match (peer, self) {
            (Peer::Ours, Example::ShmSysv | Example::ShmShmop | Example::Mq) => {
                let mut args = vec!["--key-file".to_string(), endpoint.to_string()];
                if shmop {
                    args.extend(["--api".to_string(), "shmop".to_string()]);
                }
                args
            }
            (Peer::Ours, _) => vec![endpoint.to_string()],
            (Peer::Php, Example::DgramUds | Example::StreamUds) => {
                vec!["--socket".into(), path()]
            }
            (Peer::Php, Example::DgramUdp | Example::StreamTcp) => host_port()?,
            (Peer::Php, Example::Fifo) => vec!["--path".into(), endpoint.to_string()],
            (Peer::Php, Example::ShmSysv | Example::ShmShmop | Example::Mq) => {
                vec!["--key-file".into(), endpoint.to_string()]
            }
        };
        let _ = side;
        Ok(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases() {
        for example in Example::ALL {
            assert_eq!(Example::parse(example.name()), Some(example));
            example.check_endpoint(example.default_endpoint()).unwrap();
        }
        assert_eq!(Example::parse("dgram"), Some(Example::DgramUds));
        assert_eq!(Example::parse("nope"), None);
        assert!(Example::Fifo.check_endpoint("udg:///x").is_err());
        assert_eq!(
            Example::DgramUdp
                .args(Side::Reader, Peer::Php, "udp://127.0.0.1:0")
                .unwrap(),
            ["--host", "127.0.0.1", "--port", "0"]
        );
    }
}
