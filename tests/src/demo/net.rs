//! The demo's network, all in namespaces it creates (removed on drop): the
//! MX behind one uplink to a router, the participants' HTTPS host and one
//! namespace per peer behind the same router. Documentation addresses only.
//!
//! ```text
//!   peer namespaces ──┐
//!   (2001:db8:X::10)  ├── router ── uplink (gate) ── MX 2001:db8:ffff::1, 192.0.2.1
//!   HTTPS 2001:db8:fffe::/64 ┘
//! ```

use crate::netns::{sh, NetNs};

/// The MX's addresses (Postfix listens on both).
pub const MX_V6: &str = "2001:db8:ffff::1";
pub const MX_V4: &str = "192.0.2.1";

/// One peer: its namespace key, its source address and the router's side.
pub struct PeerNet {
    pub name: &'static str,
    /// The address it sends from.
    pub addr: &'static str,
    /// The router's address on its link, with the link's prefix length.
    pub gateway: &'static str,
    pub len: u8,
}

/// Every peer the demo has: (name, source address, router address, prefix length).
pub const PEERS: [PeerNet; 8] = [
    peer("alpha", "2001:db8:a::10", "2001:db8:a::1", 64),
    peer("beta", "2001:db8:b::10", "2001:db8:b::1", 64),
    peer("gamma", "2001:db8:c::10", "2001:db8:c::1", 64),
    peer("mallory", "2001:db8:a:bad::10", "2001:db8:a:bad::1", 64),
    peer("eve", "2001:db8:e::10", "2001:db8:e::1", 64),
    peer("ipv4", "192.0.2.20", "192.0.2.17", 28),
    peer("delta", "2001:db8:d::10", "2001:db8:d::1", 64),
    peer("epsilon", "2001:db8:f::10", "2001:db8:f::1", 64),
];

const fn peer(name: &'static str, addr: &'static str, gateway: &'static str, len: u8) -> PeerNet {
    PeerNet {
        name,
        addr,
        gateway,
        len,
    }
}

/// The HTTPS host's addresses, one per participant domain.
pub const WEB_HOSTS: [(&str, &str); 7] = [
    ("mx.example", "2001:db8:fffe::100"),
    ("alpha.example", "2001:db8:fffe::a"),
    ("beta.example", "2001:db8:fffe::b"),
    ("gamma.example", "2001:db8:fffe::c"),
    ("mallory.example", "2001:db8:fffe::bad"),
    ("delta.example", "2001:db8:fffe::d"),
    ("epsilon.example", "2001:db8:fffe::f"),
];

/// The namespaces; dropped peers first, the MX last.
pub struct Net {
    pub peers: Vec<(&'static str, NetNs)>,
    pub web: NetNs,
    pub router: NetNs,
    pub mx: NetNs,
    /// The MX side of the uplink: where the gate is attached.
    pub uplink: String,
}

impl Net {
    /// Builds everything; `id` keeps names unique (at most 9 characters).
    pub fn create(id: &str) -> Net {
        assert!(
            id.len() <= 9,
            "namespace id {id:?} too long for interface names"
        );
        let mx = NetNs::new(&format!("wgdemo{id}-mx"));
        let router = NetNs::new(&format!("wgdemo{id}-router"));
        let web = NetNs::new(&format!("wgdemo{id}-https"));
        // Namespaces first, so that a failure below still removes them.
        let net = Net {
            peers: PEERS
                .iter()
                .map(|p| (p.name, NetNs::new(&format!("wgdemo{id}-{}", p.name))))
                .collect(),
            web,
            router,
            mx,
            uplink: format!("wd{id}mx"),
        };
        let uplink = net.uplink.clone();
        link(&net.mx, &uplink, &net.router, &format!("wd{id}up"));
        net.mx.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{MX_V6}/64"),
            "dev",
            &uplink,
            "nodad",
        ]);
        net.mx
            .exec(&["ip", "addr", "add", &format!("{MX_V4}/28"), "dev", &uplink]);
        let up = format!("wd{id}up");
        net.router.exec(&[
            "ip",
            "addr",
            "add",
            "2001:db8:ffff::fffe/64",
            "dev",
            &up,
            "nodad",
        ]);
        net.router
            .exec(&["ip", "addr", "add", "192.0.2.14/28", "dev", &up]);
        net.mx.exec(&[
            "ip",
            "-6",
            "route",
            "add",
            "default",
            "via",
            "2001:db8:ffff::fffe",
        ]);
        net.mx
            .exec(&["ip", "route", "add", "default", "via", "192.0.2.14"]);

        let (r, w) = (format!("wd{id}rw"), format!("wd{id}w"));
        link(&net.router, &r, &net.web, &w);
        net.router.exec(&[
            "ip",
            "addr",
            "add",
            "2001:db8:fffe::1/64",
            "dev",
            &r,
            "nodad",
        ]);
        for (_, addr) in WEB_HOSTS {
            net.web.exec(&[
                "ip",
                "addr",
                "add",
                &format!("{addr}/64"),
                "dev",
                &w,
                "nodad",
            ]);
        }
        net.web.exec(&[
            "ip",
            "-6",
            "route",
            "add",
            "default",
            "via",
            "2001:db8:fffe::1",
        ]);

        for (i, p) in PEERS.iter().enumerate() {
            let ns = &net.peers[i].1;
            let (r, c) = (format!("wd{id}r{i}"), format!("wd{id}p{i}"));
            link(&net.router, &r, ns, &c);
            let v6 = p.addr.contains(':');
            let nodad: &[&str] = if v6 { &["nodad"] } else { &[] };
            let add = |ns: &NetNs, a: &str, dev: &str| {
                let a = format!("{a}/{}", p.len);
                let mut args = vec!["ip", "addr", "add", &a, "dev", dev];
                args.extend(nodad);
                ns.exec(&args);
            };
            add(&net.router, p.gateway, &r);
            add(ns, p.addr, &c);
            let family = if v6 { "-6" } else { "-4" };
            ns.exec(&["ip", family, "route", "add", "default", "via", p.gateway]);
        }
        net.router.exec(&[
            "sysctl",
            "-q",
            "-w",
            "net.ipv6.conf.all.forwarding=1",
            "net.ipv4.ip_forward=1",
        ]);
        net
    }

    /// The namespace of peer `name`.
    pub fn peer(&self, name: &str) -> &NetNs {
        &self
            .peers
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no peer {name}"))
            .1
    }

    /// An `/etc/hosts` sending the participants' names to the HTTPS host.
    pub fn hosts_file(&self) -> String {
        let mut hosts = String::from("127.0.0.1 localhost\n::1 localhost\n");
        for (name, addr) in WEB_HOSTS {
            hosts.push_str(&format!("{addr} {name} openpgpkey.{name}\n"));
        }
        hosts
    }
}

/// A veth pair `a_if` in `a`, `b_if` in `b`, both up.
fn link(a: &NetNs, a_if: &str, b: &NetNs, b_if: &str) {
    assert!(a_if.len() < 16 && b_if.len() < 16, "{a_if} {b_if}");
    sh(&[
        "ip", "link", "add", a_if, "netns", &a.name, "type", "veth", "peer", "name", b_if, "netns",
        &b.name,
    ]);
    a.exec(&["ip", "link", "set", a_if, "up"]);
    b.exec(&["ip", "link", "set", b_if, "up"]);
}

/// The source address of peer `name`.
pub fn addr(name: &str) -> &'static str {
    PEERS
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no peer {name}"))
        .addr
}
