//! The blog's endpoint URLs, parsed once: `udg://PATH` and `udp://HOST:PORT` name datagram
//! sockets, `unix://PATH` and `tcp://HOST:PORT` stream sockets (the schemes PHP's
//! `stream_socket_*` functions use).
//!
//! Both types implement `FromStr` with an error that names the schemes that would have worked, so
//! clap turns a wrong scheme into a usage error (exit 2).

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// `sun_path` is 108 bytes on Linux, one of them for the terminating NUL.
pub const MAX_UNIX_PATH: usize = 107;

/// Where a datagram socket lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DgramEndpoint {
    Unix(PathBuf),
    Udp(SocketAddr),
}

/// Where a stream socket lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamEndpoint {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

const DGRAM_SCHEMES: &str = "udg://PATH (Unix domain datagram socket) or udp://HOST:PORT";
const STREAM_SCHEMES: &str = "unix://PATH (Unix domain stream socket) or tcp://HOST:PORT";

impl FromStr for DgramEndpoint {
    type Err = String;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        match split_scheme(url, DGRAM_SCHEMES)? {
            ("udg", rest) => Ok(DgramEndpoint::Unix(unix_path(url, rest)?)),
            ("udp", rest) => Ok(DgramEndpoint::Udp(inet_addr(url, rest)?)),
            (scheme, _) => Err(wrong_scheme(url, scheme, "datagram", DGRAM_SCHEMES)),
        }
    }
}

impl FromStr for StreamEndpoint {
    type Err = String;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        match split_scheme(url, STREAM_SCHEMES)? {
            ("unix", rest) => Ok(StreamEndpoint::Unix(unix_path(url, rest)?)),
            ("tcp", rest) => Ok(StreamEndpoint::Tcp(inet_addr(url, rest)?)),
            (scheme, _) => Err(wrong_scheme(url, scheme, "stream", STREAM_SCHEMES)),
        }
    }
}

impl fmt::Display for DgramEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DgramEndpoint::Unix(path) => write!(f, "udg://{}", path.display()),
            DgramEndpoint::Udp(addr) => write!(f, "udp://{addr}"),
        }
    }
}

impl fmt::Display for StreamEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamEndpoint::Unix(path) => write!(f, "unix://{}", path.display()),
            StreamEndpoint::Tcp(addr) => write!(f, "tcp://{addr}"),
        }
    }
}

fn split_scheme<'a>(url: &'a str, expected: &str) -> Result<(&'a str, &'a str), String> {
    url.split_once("://")
        .ok_or_else(|| format!("`{url}` is not an endpoint URL: use {expected}"))
}

fn wrong_scheme(url: &str, scheme: &str, kind: &str, expected: &str) -> String {
    format!("`{url}`: `{scheme}://` is not a {kind} endpoint; use {expected}")
}

fn unix_path(url: &str, rest: &str) -> Result<PathBuf, String> {
    if rest.is_empty() {
        return Err(format!("`{url}` has no path"));
    }
    if rest.contains('\0') {
        return Err(format!("`{url}`: a socket path cannot contain a NUL byte"));
    }
    let path = Path::new(rest);
    let len = path.as_os_str().as_bytes().len();
    if len > MAX_UNIX_PATH {
        return Err(format!(
            "`{url}`: the socket path is {len} bytes, the kernel takes at most {MAX_UNIX_PATH}"
        ));
    }
    Ok(path.to_path_buf())
}

fn inet_addr(url: &str, rest: &str) -> Result<SocketAddr, String> {
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if !authority.contains(':') {
        return Err(format!(
            "`{url}` has no port: use HOST:PORT, e.g. 127.0.0.1:9999"
        ));
    }
    // Literal addresses parse without touching the resolver; names (localhost) go through it.
    if let Ok(addr) = authority.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let mut addrs = authority
        .to_socket_addrs()
        .map_err(|err| format!("`{url}`: cannot resolve `{authority}`: {err}"))?;
    addrs
        .next()
        .ok_or_else(|| format!("`{url}`: `{authority}` resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_blog_defaults() {
        assert_eq!(
            "udg:///tmp/ipc-socket.sock".parse::<DgramEndpoint>(),
            Ok(DgramEndpoint::Unix("/tmp/ipc-socket.sock".into()))
        );
        assert_eq!(
            "udp://127.0.0.1:9999".parse::<DgramEndpoint>(),
            Ok(DgramEndpoint::Udp("127.0.0.1:9999".parse().unwrap()))
        );
        assert_eq!(
            "unix:///tmp/ipc-socket.sock".parse::<StreamEndpoint>(),
            Ok(StreamEndpoint::Unix("/tmp/ipc-socket.sock".into()))
        );
        assert_eq!(
            "tcp://[::1]:80".parse::<StreamEndpoint>(),
            Ok(StreamEndpoint::Tcp("[::1]:80".parse().unwrap()))
        );
    }

    #[test]
    fn display_round_trips() {
        for url in ["udg:///tmp/a b.sock", "udp://127.0.0.1:0", "udp://[::1]:9"] {
            assert_eq!(url.parse::<DgramEndpoint>().unwrap().to_string(), url);
        }
        for url in ["unix://rel/x.sock", "tcp://127.0.0.1:9999"] {
            assert_eq!(url.parse::<StreamEndpoint>().unwrap().to_string(), url);
        }
    }

    #[test]
    fn resolves_localhost() {
        let DgramEndpoint::Udp(addr) = "udp://localhost:9999".parse().unwrap() else {
            panic!("not udp");
        };
        assert!(addr.ip().is_loopback());
        assert_eq!(addr.port(), 9999);
    }

    #[test]
    fn a_wrong_scheme_names_the_right_ones() {
        let err = "tcp://127.0.0.1:1".parse::<DgramEndpoint>().unwrap_err();
        assert!(
            err.contains("udg://PATH") && err.contains("udp://HOST:PORT"),
            "{err}"
        );
        let err = "udg:///tmp/x".parse::<StreamEndpoint>().unwrap_err();
        assert!(
            err.contains("unix://PATH") && err.contains("tcp://HOST:PORT"),
            "{err}"
        );
        let err = "/tmp/x.sock".parse::<StreamEndpoint>().unwrap_err();
        assert!(err.contains("not an endpoint URL"), "{err}");
    }

    #[test]
    fn rejects_bad_paths_and_addresses() {
        assert!("udg://".parse::<DgramEndpoint>().is_err());
        let long = format!("unix:///{}", "x".repeat(MAX_UNIX_PATH));
        assert!(
            long.parse::<StreamEndpoint>()
                .unwrap_err()
                .contains("at most 107")
        );
        assert!(
            "udp://127.0.0.1"
                .parse::<DgramEndpoint>()
                .unwrap_err()
                .contains("no port")
        );
        assert!("tcp://127.0.0.1:99999".parse::<StreamEndpoint>().is_err());
    }
}
