//! Which IP addresses are public: the IANA special-purpose address registries for IPv4 and IPv6 as tables, and
//! the IPv6 forms that embed an IPv4 address, decoded so the IPv4 check applies to what is really reached.
//!
//! Used for webhook targets and channel endpoints in production mode (the SSRF defence): an address is public
//! when it is in no entry of either registry (nor multicast, nor outside IPv6 global unicast), and when every IPv4
//! address it embeds is public too.
//!
//! Registries: <https://www.iana.org/assignments/iana-ipv4-special-registry> and
//! <https://www.iana.org/assignments/iana-ipv6-special-registry> (both as of 2025). Every entry is refused, even
//! the few marked "globally reachable" (anycast relays, AS112, AMT, ORCHIDv2): none of them is a webhook receiver
//! or a marketplace API. The exceptions are the forms that carry an IPv4 address (IPv4-mapped, IPv4-compatible,
//! NAT64 `64:ff9b::/96`, 6to4, Teredo): a connection to one reaches that IPv4 address, so it is decoded and judged
//! by the IPv4 registry (DNS64 puts every public IPv4 host of an IPv6-only network under `64:ff9b::/96`).
//!
//! Limits: a NAT64 network-specific prefix (an operator's own /96) and ISATAP interface ids cannot be recognised
//! from the address alone; deployments that use them must not rely on this check for IPv4 behind them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One registry entry: an address block, its name in the registry, and the RFC that reserves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialBlock {
    /// The block in CIDR notation, as the registry writes it.
    pub cidr: &'static str,
    /// The registry's name of the block.
    pub name: &'static str,
    /// Where it is reserved.
    pub rfc: &'static str,
}

struct V4Entry {
    net: u32,
    len: u8,
    block: SpecialBlock,
}

struct V6Entry {
    net: u128,
    len: u8,
    block: SpecialBlock,
}

#[allow(clippy::too_many_arguments)]
const fn v4(
    a: u8,
    b: u8,
    c: u8,
    d: u8,
    len: u8,
    cidr: &'static str,
    name: &'static str,
    rfc: &'static str,
) -> V4Entry {
    V4Entry {
        net: Ipv4Addr::new(a, b, c, d).to_bits(),
        len,
        block: SpecialBlock { cidr, name, rfc },
    }
}

const fn v6(
    s: [u16; 8],
    len: u8,
    cidr: &'static str,
    name: &'static str,
    rfc: &'static str,
) -> V6Entry {
    V6Entry {
        net: Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]).to_bits(),
        len,
        block: SpecialBlock { cidr, name, rfc },
    }
}

/// The IANA IPv4 special-purpose address registry, plus multicast (its own registry, RFC 5771). Most specific
/// entries first, so a refusal names the narrowest block.
#[rustfmt::skip]
const IPV4: &[V4Entry] = &[
    v4(0, 0, 0, 0, 32, "0.0.0.0/32", "\"This host on this network\"", "RFC 1122 §3.2.1.3"),
    v4(192, 0, 0, 8, 32, "192.0.0.8/32", "IPv4 dummy address", "RFC 7600"),
    v4(192, 0, 0, 9, 32, "192.0.0.9/32", "Port Control Protocol Anycast", "RFC 7723"),
    v4(192, 0, 0, 10, 32, "192.0.0.10/32", "Traversal Using Relays around NAT Anycast", "RFC 8155"),
    v4(192, 0, 0, 170, 32, "192.0.0.170/32", "NAT64/DNS64 Discovery", "RFC 8880, RFC 7050 §2.2"),
    v4(192, 0, 0, 171, 32, "192.0.0.171/32", "NAT64/DNS64 Discovery", "RFC 8880, RFC 7050 §2.2"),
    v4(255, 255, 255, 255, 32, "255.255.255.255/32", "Limited Broadcast", "RFC 8190, RFC 919 §7"),
    v4(192, 0, 0, 0, 29, "192.0.0.0/29", "IPv4 Service Continuity Prefix", "RFC 7335"),
    v4(192, 0, 0, 0, 24, "192.0.0.0/24", "IETF Protocol Assignments", "RFC 6890 §2.1"),
    v4(192, 0, 2, 0, 24, "192.0.2.0/24", "Documentation (TEST-NET-1)", "RFC 5737"),
    v4(192, 31, 196, 0, 24, "192.31.196.0/24", "AS112-v4", "RFC 7535"),
    v4(192, 52, 193, 0, 24, "192.52.193.0/24", "AMT", "RFC 7450"),
    v4(192, 88, 99, 0, 24, "192.88.99.0/24", "Deprecated (6to4 Relay Anycast)", "RFC 7526"),
    v4(192, 175, 48, 0, 24, "192.175.48.0/24", "Direct Delegation AS112 Service", "RFC 7534"),
    v4(198, 51, 100, 0, 24, "198.51.100.0/24", "Documentation (TEST-NET-2)", "RFC 5737"),
    v4(203, 0, 113, 0, 24, "203.0.113.0/24", "Documentation (TEST-NET-3)", "RFC 5737"),
    v4(169, 254, 0, 0, 16, "169.254.0.0/16", "Link Local", "RFC 3927"),
    v4(192, 168, 0, 0, 16, "192.168.0.0/16", "Private-Use", "RFC 1918"),
    v4(198, 18, 0, 0, 15, "198.18.0.0/15", "Benchmarking", "RFC 2544"),
    v4(172, 16, 0, 0, 12, "172.16.0.0/12", "Private-Use", "RFC 1918"),
    v4(100, 64, 0, 0, 10, "100.64.0.0/10", "Shared Address Space", "RFC 6598"),
    v4(0, 0, 0, 0, 8, "0.0.0.0/8", "\"This network\"", "RFC 791 §3.2"),
    v4(10, 0, 0, 0, 8, "10.0.0.0/8", "Private-Use", "RFC 1918"),
    v4(127, 0, 0, 0, 8, "127.0.0.0/8", "Loopback", "RFC 1122 §3.2.1.3"),
    v4(224, 0, 0, 0, 4, "224.0.0.0/4", "Multicast", "RFC 5771"),
    v4(240, 0, 0, 0, 4, "240.0.0.0/4", "Reserved", "RFC 1112 §4"),
];

/// The IANA IPv6 special-purpose address registry, plus multicast, deprecated site-local and the blocks the IPv6
/// address-space registry keeps outside global unicast. Most specific entries first. The embedding prefixes
/// (IPv4-mapped, NAT64 `64:ff9b::/96`, 6to4, Teredo) are decoded before this table is consulted.
#[rustfmt::skip]
const IPV6: &[V6Entry] = &[
    v6([0, 0, 0, 0, 0, 0, 0, 0], 128, "::/128", "Unspecified Address", "RFC 4291"),
    v6([0, 0, 0, 0, 0, 0, 0, 1], 128, "::1/128", "Loopback Address", "RFC 4291"),
    v6([0x2001, 1, 0, 0, 0, 0, 0, 1], 128, "2001:1::1/128", "Port Control Protocol Anycast", "RFC 7723"),
    v6([0x2001, 1, 0, 0, 0, 0, 0, 2], 128, "2001:1::2/128", "Traversal Using Relays around NAT Anycast", "RFC 8155"),
    v6([0x2001, 1, 0, 0, 0, 0, 0, 3], 128, "2001:1::3/128", "DNS-SD Service Registration Protocol Anycast", "RFC 9665"),
    v6([0, 0, 0, 0, 0, 0xffff, 0, 0], 96, "::ffff:0:0/96", "IPv4-mapped Address", "RFC 4291"),
    v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96, "64:ff9b::/96", "IPv4-IPv6 Translat.", "RFC 6052"),
    v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64, "100::/64", "Discard-Only Address Block", "RFC 6666"),
    v6([0x100, 0, 0, 1, 0, 0, 0, 0], 64, "100:0:0:1::/64", "Dummy IPv6 Prefix", "RFC 9780"),
    v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48, "64:ff9b:1::/48", "Local-use IPv4/IPv6 Translation", "RFC 8215"),
    v6([0x2001, 2, 0, 0, 0, 0, 0, 0], 48, "2001:2::/48", "Benchmarking", "RFC 5180, RFC Errata 1752"),
    v6([0x2001, 4, 0x112, 0, 0, 0, 0, 0], 48, "2001:4:112::/48", "AS112-v6", "RFC 7535"),
    v6([0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0], 48, "2620:4f:8000::/48", "Direct Delegation AS112 Service", "RFC 7534"),
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32, "2001::/32", "TEREDO", "RFC 4380, RFC 8190"),
    v6([0x2001, 3, 0, 0, 0, 0, 0, 0], 32, "2001:3::/32", "AMT", "RFC 7450"),
    v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, "2001:db8::/32", "Documentation", "RFC 3849"),
    v6([0x2001, 0x10, 0, 0, 0, 0, 0, 0], 28, "2001:10::/28", "Deprecated (previously ORCHID)", "RFC 4843"),
    v6([0x2001, 0x20, 0, 0, 0, 0, 0, 0], 28, "2001:20::/28", "ORCHIDv2", "RFC 7343"),
    v6([0x2001, 0x30, 0, 0, 0, 0, 0, 0], 28, "2001:30::/28", "Drone Remote ID Protocol Entity Tags (DETs) Prefix", "RFC 9374"),
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23, "2001::/23", "IETF Protocol Assignments", "RFC 2928"),
    v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, "3fff::/20", "Documentation", "RFC 9637"),
    v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16, "2002::/16", "6to4", "RFC 3056"),
    v6([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16, "5f00::/16", "Segment Routing (SRv6) SIDs", "RFC 9602"),
    v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, "fe80::/10", "Link-Local Unicast", "RFC 4291"),
    v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, "fec0::/10", "Site-Local (deprecated)", "RFC 3879"),
    v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, "fc00::/7", "Unique-Local", "RFC 4193, RFC 8190"),
    v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, "ff00::/8", "Multicast", "RFC 4291 §2.7"),
];

/// Everything outside `2000::/3` is unassigned or reserved by the IETF (IPv6 address-space registry).
const NOT_GLOBAL_UNICAST: SpecialBlock = SpecialBlock {
    cidr: "outside 2000::/3",
    name: "Not global unicast (reserved by the IETF)",
    rfc: "RFC 4291 §2.4",
};

/// An IPv6 form that carries an IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Embedding {
    /// `::ffff:a.b.c.d` (RFC 4291 §2.5.5.2).
    Ipv4Mapped,
    /// `::a.b.c.d`, deprecated (RFC 4291 §2.5.5.1).
    Ipv4Compatible,
    /// `64:ff9b::a.b.c.d`, NAT64 well-known prefix (RFC 6052).
    Nat64,
    /// `2002:aabb:ccdd::/48`, 6to4 (RFC 3056): the relay's IPv4 address is bits 16–47.
    SixToFour,
    /// `2001:0:SSSS:SSSS:flags:port:CCCC:CCCC`, Teredo (RFC 4380): server IPv4 in bits 32–63, client IPv4 in the
    /// last 32 bits XOR `0xffffffff`.
    TeredoServer,
    /// The Teredo client address (see [`Embedding::TeredoServer`]).
    TeredoClient,
}

impl fmt::Display for Embedding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ipv4Mapped => "IPv4-mapped",
            Self::Ipv4Compatible => "IPv4-compatible",
            Self::Nat64 => "NAT64",
            Self::SixToFour => "6to4",
            Self::TeredoServer => "Teredo server",
            Self::TeredoClient => "Teredo client",
        })
    }
}

/// Why an address is not public: the registry block it falls in, reached directly or through an embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotPublic {
    /// The address found in `block` (the embedded IPv4 address when `via` is set).
    pub address: IpAddr,
    /// The registry entry.
    pub block: SpecialBlock,
    /// Set when `address` was decoded from an IPv6 address of this form.
    pub via: Option<Embedding>,
}

impl fmt::Display for NotPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is {} ({}, {})",
            self.address, self.block.name, self.block.cidr, self.block.rfc
        )?;
        if let Some(via) = self.via {
            write!(f, ", embedded as {via}")?;
        }
        Ok(())
    }
}

/// Every IPv4 address `ip` embeds, with the form it uses.
pub fn embedded_ipv4(ip: &Ipv6Addr) -> Vec<(Embedding, Ipv4Addr)> {
    let bits = ip.to_bits();
    let last32 = Ipv4Addr::from_bits(bits as u32);
    let s = ip.segments();
    if bits >> 32 == 0xffff {
        vec![(Embedding::Ipv4Mapped, last32)]
    } else if bits >> 32 == 0 {
        vec![(Embedding::Ipv4Compatible, last32)]
    } else if bits >> 32 == (0x64_ff9b_u128 << 64) {
        vec![(Embedding::Nat64, last32)]
    } else if s[0] == 0x2002 {
        vec![(
            Embedding::SixToFour,
            Ipv4Addr::from_bits((bits >> 80) as u32),
        )]
    } else if s[0] == 0x2001 && s[1] == 0 {
        vec![
            (
                Embedding::TeredoServer,
                Ipv4Addr::from_bits((bits >> 64) as u32),
            ),
            (Embedding::TeredoClient, Ipv4Addr::from_bits(!(bits as u32))),
        ]
    } else {
        Vec::new()
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<SpecialBlock> {
    let bits = ip.to_bits();
    IPV4.iter()
        .find(|e| e.len == 0 || bits >> (32 - e.len) == e.net >> (32 - e.len))
        .map(|e| e.block)
}

fn special_v6(ip: &Ipv6Addr) -> Option<SpecialBlock> {
    let bits = ip.to_bits();
    IPV6.iter()
        .find(|e| bits >> (128 - e.len) == e.net >> (128 - e.len))
        .map(|e| e.block)
}

/// Whether `ip` may be reached in production mode, and if not, why.
pub fn check(ip: IpAddr) -> Result<(), NotPublic> {
    match ip {
        IpAddr::V4(v4) => match special_v4(v4) {
            Some(block) => Err(NotPublic {
                address: ip,
                block,
                via: None,
            }),
            None => Ok(()),
        },
        IpAddr::V6(v6) => check_v6(&v6),
    }
}

fn check_v6(ip: &Ipv6Addr) -> Result<(), NotPublic> {
    let refuse = |block| {
        Err(NotPublic {
            address: IpAddr::V6(*ip),
            block,
            via: None,
        })
    };
    // `::` and `::1` have the IPv4-compatible shape but are their own entries.
    if ip.to_bits() <= 1 {
        return refuse(special_v6(ip).unwrap_or(NOT_GLOBAL_UNICAST));
    }
    let embedded = embedded_ipv4(ip);
    for (via, v4) in &embedded {
        if let Some(block) = special_v4(*v4) {
            return Err(NotPublic {
                address: IpAddr::V4(*v4),
                block,
                via: Some(*via),
            });
        }
    }
    if !embedded.is_empty() {
        return Ok(());
    }
    if let Some(block) = special_v6(ip) {
        return refuse(block);
    }
    if ip.segments()[0] & 0xe000 != 0x2000 {
        return refuse(NOT_GLOBAL_UNICAST);
    }
    Ok(())
}

/// Whether `ip` is a public address (see [`check`]).
pub fn is_public(ip: IpAddr) -> bool {
    check(ip).is_ok()
}

#[cfg(test)]
mod tests;
