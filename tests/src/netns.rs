//! Network namespaces and veth pairs for kernel tests, removed on drop.
//! Only documentation addresses (2001:db8::/32, 192.0.2.0/24) are used.

use std::process::{Command, Output};

/// Runs a command and panics with its output when it fails.
pub fn sh(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A named network namespace, deleted (with its interfaces) on drop.
pub struct NetNs {
    pub name: String,
}

impl NetNs {
    pub fn new(name: &str) -> NetNs {
        sh(&["ip", "netns", "add", name]);
        let ns = NetNs {
            name: name.to_string(),
        };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// `nsenter --net=...`: only the network namespace changes, so pins in
    /// /sys/fs/bpf stay visible (unlike `ip netns exec`).
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.name)).args(args);
        c
    }

    pub fn exec(&self, args: &[&str]) -> Output {
        let out = self
            .cmd(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {args:?} in {}: {e}", self.name));
        assert!(
            out.status.success(),
            "{args:?} in {} failed: {}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Two namespaces joined by a veth pair: `client` (a) and `server` (b).
pub struct Pair {
    pub client: NetNs,
    pub server: NetNs,
    pub client_if: String,
    pub server_if: String,
}

impl Pair {
    /// Addresses: server 2001:db8:ffff::1 and 192.0.2.1; client
    /// 2001:db8:ffff::2 and 192.0.2.2, plus any `extra_client` IPv6 addresses.
    pub fn new(tag: &str, extra_client: &[&str]) -> Pair {
        let id = crate::unique(tag);
        let client = NetNs::new(&format!("wgc{id}"));
        let server = NetNs::new(&format!("wgs{id}"));
        let client_if = format!("c{id}");
        let server_if = format!("s{id}");
        assert!(client_if.len() < 16, "interface name too long: {client_if}");
        sh(&[
            "ip",
            "link",
            "add",
            &client_if,
            "netns",
            &client.name,
            "type",
            "veth",
            "peer",
            "name",
            &server_if,
            "netns",
            &server.name,
        ]);
        for (ns, ifc, v6, v4) in [
            (&server, &server_if, "2001:db8:ffff::1/64", "192.0.2.1/24"),
            (&client, &client_if, "2001:db8:ffff::2/64", "192.0.2.2/24"),
        ] {
            ns.exec(&["ip", "addr", "add", v6, "dev", ifc, "nodad"]);
            ns.exec(&["ip", "addr", "add", v4, "dev", ifc]);
        }
        for (ns, ifc) in [(&server, &server_if), (&client, &client_if)] {
            ns.exec(&["ip", "link", "set", ifc, "up"]);
        }
        for a in extra_client {
            client.exec(&[
                "ip",
                "addr",
                "add",
                &format!("{a}/64"),
                "dev",
                &client_if,
                "nodad",
            ]);
            // The server needs a route back to the extra address.
            server.exec(&[
                "ip",
                "-6",
                "route",
                "add",
                &format!("{a}/128"),
                "via",
                "2001:db8:ffff::2",
                "dev",
                &server_if,
            ]);
        }
        Pair {
            client,
            server,
            client_if,
            server_if,
        }
    }
}

/// Runs `f` on a thread that has entered namespace `ns` (only that thread
/// changes namespace; sockets it creates stay in `ns`).
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        use std::os::fd::AsRawFd;
        // SAFETY: valid namespace fd; affects only this thread.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("namespace thread panicked")
}

/// A TCP listener in a namespace that accepts and echoes, counting accepts.
pub struct Listener {
    pub accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Listener {
    /// Listens on `[::]:port` (dual stack) inside `ns`.
    pub fn start(ns: &str, port: u16) -> Listener {
        use std::sync::{atomic::*, Arc};
        let listener = in_netns(ns, move || {
            let l = std::net::TcpListener::bind(("::", port)).expect("bind listener");
            l.set_nonblocking(true).unwrap();
            l
        });
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (accepted.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        a.fetch_add(1, Ordering::Relaxed);
                        std::thread::spawn(move || {
                            use std::io::{Read, Write};
                            let mut buf = [0u8; 1024];
                            let _ = conn.set_nonblocking(false);
                            while let Ok(n) = conn.read(&mut buf) {
                                if n == 0 || conn.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        });
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        Listener {
            accepted,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connects from `src` (bound) to `dst` inside `ns`, within `timeout`.
/// A SYN dropped by the gate shows as a timeout.
pub fn connect(
    ns: &str,
    src: std::net::IpAddr,
    dst: std::net::SocketAddr,
    timeout: std::time::Duration,
) -> std::io::Result<std::net::TcpStream> {
    in_netns(ns, move || {
        use socket2::{Domain, Socket, Type};
        let domain = if dst.is_ipv6() {
            Domain::IPV6
        } else {
            Domain::IPV4
        };
        let s = Socket::new(domain, Type::STREAM, None)?;
        s.bind(&std::net::SocketAddr::new(src, 0).into())?;
        s.connect_timeout(&dst.into(), timeout)?;
        Ok(s.into())
    })
}
