//! Many readers for one datagram: multicast groups, broadcast, and the interface they use.
//!
//! What the socket options do and why the readers share their port: [README](../README.md),
//! "Multicast and broadcast".

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{Context, bail};
use nix::ifaddrs::getifaddrs;
use socket2::{InterfaceIndexOrAddress, Socket};

/// Who an address reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    /// One reader (a unicast address, or a Unix socket file).
    One,
    /// Every reader that joined the group (224.0.0.0/4, ff00::/8).
    Multicast,
    /// Every reader bound to the port on the link (255.255.255.255 or a subnet's broadcast
    /// address, which only the kernel's routing table recognises: the writer says so with
    /// `--broadcast`).
    Broadcast,
}

impl Audience {
    /// What `addr` reaches; `broadcast` is the writer's `--broadcast`.
    pub fn of(addr: &SocketAddr, broadcast: bool) -> Self {
        if addr.ip().is_multicast() {
            Audience::Multicast
        } else if broadcast {
            Audience::Broadcast
        } else {
            Audience::One
        }
    }

    /// Whether more than one reader may get the datagram (and so nobody can say who did).
    pub fn is_many(self) -> bool {
        self != Audience::One
    }

    /// What a writer can say about who got its datagram, for its progress line: nothing for
    /// one reader (a missing one was noticed), that nobody can tell for many.
    pub fn receipt(self) -> &'static str {
        match self {
            Audience::One => "",
            Audience::Multicast => {
                " (multicast: to every reader there, or none; nobody can tell who received it)"
            }
            Audience::Broadcast => {
                " (broadcast: to every reader there, or none; nobody can tell who received it)"
            }
        }
    }
}

impl std::fmt::Display for Audience {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Audience::One => "one reader",
            Audience::Multicast => "multicast",
            Audience::Broadcast => "broadcast",
        })
    }
}

/// A network interface, found by name (`eth0`) or by one of its addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub index: u32,
    /// Its first IPv4 address, which `IP_MULTICAST_IF` takes.
    pub ipv4: Option<Ipv4Addr>,
}

impl Interface {
    /// Looks up `spec`, a name or an address, with `getifaddrs(3)`.
    pub fn find(spec: &str) -> anyhow::Result<Self> {
        let by_addr: Option<IpAddr> = spec.parse().ok();
        let addrs: Vec<_> = getifaddrs()
            .context("getifaddrs (to find the interface for --interface)")?
            .collect();
        let ip_of = |a: &nix::ifaddrs::InterfaceAddress| -> Option<IpAddr> {
            let addr = a.address.as_ref()?;
            if let Some(v4) = addr.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                addr.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        };
        let Some(name) = addrs
            .iter()
            .find(|a| match by_addr {
                Some(ip) => ip_of(a) == Some(ip),
                None => a.interface_name == spec,
            })
            .map(|a| a.interface_name.clone())
        else {
            let known: std::collections::BTreeSet<_> =
                addrs.iter().map(|a| a.interface_name.as_str()).collect();
            bail!(
                "--interface {spec}: no interface has that name or address (here: {})",
                known.into_iter().collect::<Vec<_>>().join(", ")
            );
        };
        let index = nix::net::if_::if_nametoindex(name.as_str())
            .with_context(|| format!("if_nametoindex({name})"))?;
        let ipv4 = addrs
            .iter()
            .filter(|a| a.interface_name == name)
            .find_map(|a| match ip_of(a) {
                Some(IpAddr::V4(v4)) => Some(v4),
                _ => None,
            });
        Ok(Interface { name, index, ipv4 })
    }
}

/// An IPv6 group of interface- or link-local scope (ff01::/16, ff02::/16, and the same with
/// flags) exists once per link: its address is incomplete without the interface, its scope id.
/// Returns `addr` with the interface's index as that scope id; other addresses as they are.
/// Without `--interface` such a group is a usage error saying so (`bind(2)` and `connect(2)`
/// would say only EINVAL).
pub fn scoped(addr: &SocketAddr, interface: Option<&Interface>) -> Result<SocketAddr, String> {
    let SocketAddr::V6(v6) = addr else {
        return Ok(*addr);
    };
    // The scope is the low nibble of the second byte: 1 interface-local, 2 link-local.
    let link_scoped = v6.ip().is_multicast() && matches!(v6.ip().octets()[1] & 0x0f, 1 | 2);
    match (link_scoped, interface) {
        (false, _) => Ok(*addr),
        (true, None) => Err(format!(
            "udp://{addr} is a link-local group: --interface names the link it is on (as the \
             scope id of the address)"
        )),
        (true, Some(interface)) => {
            let mut v6 = *v6;
            v6.set_scope_id(interface.index);
            Ok(SocketAddr::V6(v6))
        }
    }
}

/// `SO_REUSEADDR` and `SO_REUSEPORT`, before `bind(2)`: several readers on one port, each
/// getting every multicast and broadcast datagram. (A unicast datagram still goes to one.)
pub fn share_port(socket: &Socket, addr: &SocketAddr) -> anyhow::Result<()> {
    socket
        .set_reuse_address(true)
        .with_context(|| format!("setsockopt(SO_REUSEADDR) on {addr}"))?;
    socket
        .set_reuse_port(true)
        .with_context(|| format!("setsockopt(SO_REUSEPORT) on {addr}"))
}

/// `IP_ADD_MEMBERSHIP` / `IPV6_JOIN_GROUP`: the reader's socket joins `group` on `interface`
/// (none: the interface the route to the group picks).
pub fn join(socket: &Socket, group: IpAddr, interface: Option<&Interface>) -> anyhow::Result<()> {
    let index = interface.map_or(0, |i| i.index);
    let on = interface.map_or_else(|| "the routed interface".to_string(), |i| i.name.clone());
    let (joined, call) = match group {
        IpAddr::V4(v4) => (
            socket.join_multicast_v4_n(&v4, &InterfaceIndexOrAddress::Index(index)),
            "IP_ADD_MEMBERSHIP",
        ),
        IpAddr::V6(v6) => (socket.join_multicast_v6(&v6, index), "IPV6_JOIN_GROUP"),
    };
    joined.map_err(|err| {
        // ENODEV: no route to the group, so no interface to join it on.
        let hint = if err.raw_os_error() == Some(nix::errno::Errno::ENODEV as i32) {
            " (no route to the group: add one, e.g. `ip route add 224.0.0.0/4 dev IF`, or pass \
             --interface)"
        } else {
            ""
        };
        anyhow::anyhow!("setsockopt({call}, {group}) on {on}: {err}{hint}")
    })
}

/// The writer's multicast options, before `connect(2)`: `IP_MULTICAST_IF` (the interface),
/// `IP_MULTICAST_TTL` (how many routers it may cross; 1 = this link only) and
/// `IP_MULTICAST_LOOP` (readers on this machine get it too), or their IPv6 twins.
pub fn multicast_out(
    socket: &Socket,
    group: &SocketAddr,
    ttl: u32,
    interface: Option<&Interface>,
) -> anyhow::Result<()> {
    match group {
        SocketAddr::V4(_) => {
            if let Some(interface) = interface {
                let Some(addr) = interface.ipv4 else {
                    bail!("--interface {}: it has no IPv4 address", interface.name);
                };
                socket
                    .set_multicast_if_v4(&addr)
                    .with_context(|| format!("setsockopt(IP_MULTICAST_IF, {addr})"))?;
            }
            socket
                .set_multicast_ttl_v4(ttl)
                .with_context(|| format!("setsockopt(IP_MULTICAST_TTL, {ttl})"))?;
            socket
                .set_multicast_loop_v4(true)
                .context("setsockopt(IP_MULTICAST_LOOP, 1)")
        }
        SocketAddr::V6(_) => {
            if let Some(interface) = interface {
                socket
                    .set_multicast_if_v6(interface.index)
                    .with_context(|| {
                        format!("setsockopt(IPV6_MULTICAST_IF, {})", interface.name)
                    })?;
            }
            socket
                .set_multicast_hops_v6(ttl)
                .with_context(|| format!("setsockopt(IPV6_MULTICAST_HOPS, {ttl})"))?;
            socket
                .set_multicast_loop_v6(true)
                .context("setsockopt(IPV6_MULTICAST_LOOP, 1)")
        }
    }
}
