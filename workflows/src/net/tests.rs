use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// One address inside every registry entry, and the block it must be refused as.
#[rustfmt::skip]
const REFUSED: &[(&str, &str)] = &[
    // IPv4 special-purpose registry.
    ("0.0.0.0", "0.0.0.0/32"),
    ("0.1.2.3", "0.0.0.0/8"),
    ("10.1.2.3", "10.0.0.0/8"),
    ("100.64.0.1", "100.64.0.0/10"),
    ("100.127.255.254", "100.64.0.0/10"),
    ("127.0.0.1", "127.0.0.0/8"),
    ("127.255.255.254", "127.0.0.0/8"),
    ("169.254.169.254", "169.254.0.0/16"),
    ("172.16.0.1", "172.16.0.0/12"),
    ("172.31.255.254", "172.16.0.0/12"),
    ("192.0.0.1", "192.0.0.0/29"),
    ("192.0.0.8", "192.0.0.8/32"),
    ("192.0.0.9", "192.0.0.9/32"),
    ("192.0.0.10", "192.0.0.10/32"),
    ("192.0.0.170", "192.0.0.170/32"),
    ("192.0.0.171", "192.0.0.171/32"),
    ("192.0.0.200", "192.0.0.0/24"),
    ("192.0.2.10", "192.0.2.0/24"),
    ("192.31.196.1", "192.31.196.0/24"),
    ("192.52.193.1", "192.52.193.0/24"),
    ("192.88.99.1", "192.88.99.0/24"),
    ("192.168.1.1", "192.168.0.0/16"),
    ("192.175.48.1", "192.175.48.0/24"),
    ("198.18.0.1", "198.18.0.0/15"),
    ("198.19.255.254", "198.18.0.0/15"),
    ("198.51.100.7", "198.51.100.0/24"),
    ("203.0.113.9", "203.0.113.0/24"),
    ("224.0.0.1", "224.0.0.0/4"),
    ("239.255.255.250", "224.0.0.0/4"),
    ("240.0.0.1", "240.0.0.0/4"),
    ("255.255.255.255", "255.255.255.255/32"),
    // IPv6 special-purpose registry.
    ("::", "::/128"),
    ("::1", "::1/128"),
    ("100::1", "100::/64"),
    ("100:0:0:1::1", "100:0:0:1::/64"),
    ("64:ff9b:1::a00:1", "64:ff9b:1::/48"),
    ("2001:1::1", "2001:1::1/128"),
    ("2001:1::2", "2001:1::2/128"),
    ("2001:1::3", "2001:1::3/128"),
    ("2001:2::1", "2001:2::/48"),
    ("2001:3::1", "2001:3::/32"),
    ("2001:4:112::1", "2001:4:112::/48"),
    ("2001:10::1", "2001:10::/28"),
    ("2001:20::1", "2001:20::/28"),
    ("2001:30::1", "2001:30::/28"),
    ("2001:100::1", "2001::/23"),
    ("2001:db8::1", "2001:db8::/32"),
    ("3fff::1", "3fff::/20"),
    ("5f00::1", "5f00::/16"),
    ("2620:4f:8000::1", "2620:4f:8000::/48"),
    ("fc00::1", "fc00::/7"),
    ("fd12:3456::1", "fc00::/7"),
    ("fe80::1", "fe80::/10"),
    ("fec0::1", "fec0::/10"),
    ("ff02::1", "ff00::/8"),
    ("4000::1", "outside 2000::/3"),
    ("1::1", "outside 2000::/3"),
];

/// Each IPv6 form that embeds an IPv4 address, carrying a non-public one: refused as that IPv4 block, via the form.
#[rustfmt::skip]
const EMBEDDED_REFUSED: &[(&str, &str, &str, Embedding)] = &[
    // The four forms of issue 9, item 6 (three of them passed the old check).
    ("::127.0.0.1", "127.0.0.1", "127.0.0.0/8", Embedding::Ipv4Compatible),
    ("64:ff9b::7f00:1", "127.0.0.1", "127.0.0.0/8", Embedding::Nat64),
    ("2002:7f00:1::", "127.0.0.1", "127.0.0.0/8", Embedding::SixToFour),
    ("::ffff:192.168.1.1", "192.168.1.1", "192.168.0.0/16", Embedding::Ipv4Mapped),
    ("::ffff:169.254.169.254", "169.254.169.254", "169.254.0.0/16", Embedding::Ipv4Mapped),
    ("::10.0.0.1", "10.0.0.1", "10.0.0.0/8", Embedding::Ipv4Compatible),
    ("64:ff9b::a9fe:a9fe", "169.254.169.254", "169.254.0.0/16", Embedding::Nat64),
    ("64:ff9b::c000:1", "192.0.0.1", "192.0.0.0/29", Embedding::Nat64),
    ("2002:a00:1:1::1", "10.0.0.1", "10.0.0.0/8", Embedding::SixToFour),
    ("2002:c0a8:101::", "192.168.1.1", "192.168.0.0/16", Embedding::SixToFour),
    // Teredo: server 127.0.0.1 in bits 32-63; client 127.0.0.1 as !0x7f000001 = 0x80fffffe in the last 32 bits.
    ("2001:0:7f00:1::8000:1", "127.0.0.1", "127.0.0.0/8", Embedding::TeredoServer),
    ("2001:0:808:808::80ff:fffe", "127.0.0.1", "127.0.0.0/8", Embedding::TeredoClient),
    ("2001:0:808:808::3fff:fffe", "192.0.0.1", "192.0.0.0/29", Embedding::TeredoClient),
];

/// Public addresses, including every embedding form carrying a public IPv4 address.
const PUBLIC: &[&str] = &[
    "8.8.8.8",
    "93.184.216.34",
    "1.1.1.1",
    "100.63.255.255",
    "100.128.0.0",
    "172.15.255.255",
    "172.32.0.0",
    "192.0.1.1",
    "198.17.255.255",
    "198.20.0.0",
    "223.255.255.255",
    "2606:2800:220:1:248:1893:25c8:1946",
    "2a00:1450:4001:82a::200e",
    "::ffff:8.8.8.8",
    "::8.8.8.8",
    "64:ff9b::808:808",
    "2002:808:808::1",
    // Teredo, server 8.8.8.8 and client 1.1.1.1 (!0x01010101 = 0xfefefefe).
    "2001:0:808:808::fefe:fefe",
];

#[test]
fn every_registry_entry_is_refused_as_its_narrowest_block() {
    for (address, cidr) in REFUSED {
        let refused = check(ip(address)).expect_err(address);
        assert_eq!(refused.block.cidr, *cidr, "{address}: {refused}");
        assert_eq!(refused.via, None, "{address}");
        assert!(!is_public(ip(address)));
    }
}

#[test]
fn every_entry_of_both_registries_has_a_test_row() {
    let tested: Vec<&str> = REFUSED.iter().map(|(_, c)| *c).collect();
    for entry in IPV4 {
        assert!(
            tested.contains(&entry.block.cidr),
            "{} has no test row",
            entry.block.cidr
        );
    }
    let decoded = ["::ffff:0:0/96", "64:ff9b::/96", "2001::/32", "2002::/16"];
    for entry in IPV6 {
        assert!(
            tested.contains(&entry.block.cidr) || decoded.contains(&entry.block.cidr),
            "{} has no test row",
            entry.block.cidr
        );
    }
}

#[test]
fn embedded_ipv4_addresses_are_decoded_and_judged_by_the_ipv4_registry() {
    for (address, v4, cidr, via) in EMBEDDED_REFUSED {
        let refused = check(ip(address)).expect_err(address);
        assert_eq!(refused.address, ip(v4), "{address}");
        assert_eq!(refused.block.cidr, *cidr, "{address}");
        assert_eq!(refused.via, Some(*via), "{address}");
    }
}

#[test]
fn public_addresses_and_embeddings_of_public_ipv4_pass() {
    for address in PUBLIC {
        assert_eq!(check(ip(address)), Ok(()), "{address}");
    }
}

#[test]
fn the_refusal_names_the_block_its_rfc_and_the_embedding() {
    let refused = check(ip("2002:7f00:1::")).expect_err("6to4 loopback");
    assert_eq!(
        refused.to_string(),
        "127.0.0.1 is Loopback (127.0.0.0/8, RFC 1122 §3.2.1.3), embedded as 6to4"
    );
    let refused = check(ip("192.0.0.1")).expect_err("service continuity");
    assert_eq!(
        refused.to_string(),
        "192.0.0.1 is IPv4 Service Continuity Prefix (192.0.0.0/29, RFC 7335)"
    );
}

#[test]
fn teredo_decodes_both_server_and_client() {
    let found = embedded_ipv4(&"2001:0:4136:e378:8000:63bf:3fff:fdd2".parse().expect("v6"));
    // RFC 4380's example: server 65.54.227.120, client 192.0.2.45.
    assert_eq!(
        found,
        vec![
            (Embedding::TeredoServer, Ipv4Addr::new(65, 54, 227, 120)),
            (Embedding::TeredoClient, Ipv4Addr::new(192, 0, 2, 45)),
        ]
    );
}
