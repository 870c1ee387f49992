//! Test support for the fetch tests: a test CA made at test time (rcgen) and
//! an in-process HTTPS server on 127.0.0.1 that answers for named hosts.
//!
//! The server speaks just enough HTTP/1.1 (one request per connection,
//! `Connection: close`) to serve bodies, statuses, redirects, endless zeros,
//! raw garbage, or nothing at all (a hang). It only ever listens on loopback.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use wotgate::source::https::Fetcher;
use wotgate::source::settings::FetchLimits;

/// A certificate authority for one test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("wotgate test CA {name}"));
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        TestCa { issuer }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `hosts`, and its key.
    fn server_config(&self, hosts: &[&str]) -> Arc<rustls::ServerConfig> {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let chain = vec![cert.der().clone()];
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .unwrap(),
        )
    }
}

/// What the server answers for a host and path.
#[derive(Clone, Debug)]
pub enum Reply {
    /// 200 with this body and its Content-Length.
    Body(Vec<u8>),
    /// This status, empty body.
    Status(u16),
    /// 302 to this Location.
    Redirect(String),
    /// 200 with `len` zero bytes, streamed; `announce` sends Content-Length.
    Zeros { len: u64, announce: bool },
    /// These raw bytes instead of an HTTP response.
    Raw(Vec<u8>),
    /// Read the request, then answer nothing for an hour.
    Hang,
}

/// An HTTPS server on 127.0.0.1 for the hosts it was started with.
pub struct Server {
    pub addr: SocketAddr,
    pub hosts: Vec<String>,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    log: Arc<Mutex<Vec<String>>>,
    /// Body bytes written to clients so far (all connections).
    pub sent: Arc<AtomicU64>,
}

impl Server {
    /// Starts a server whose certificate (issued by `ca`) names `hosts`.
    pub async fn start(ca: &TestCa, hosts: &[&str]) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = TlsAcceptor::from(ca.server_config(hosts));
        let routes: Arc<Mutex<HashMap<String, Reply>>> = Arc::default();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let sent = Arc::new(AtomicU64::new(0));
        let (r, l, s) = (routes.clone(), log.clone(), sent.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, r, l, s) = (acceptor.clone(), r.clone(), l.clone(), s.clone());
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        serve(tls, r, l, s).await;
                    }
                });
            }
        });
        Server {
            addr,
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            routes,
            log,
            sent,
        }
    }

    /// Answers `reply` for `https://HOST/PATH` (any query).
    pub fn route(&self, host: &str, path: &str, reply: Reply) {
        self.routes
            .lock()
            .unwrap()
            .insert(format!("{host}{path}"), reply);
    }

    /// Every request so far, as `host/path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// A client that trusts only `ca_pem`, sends every host of this server
    /// to its loopback port and refuses every other host.
    pub fn fetcher(&self, limits: FetchLimits, ca_pem: &str) -> Fetcher {
        let mut b = Fetcher::builder(limits)
            .system_roots(false)
            .extra_ca_pem(ca_pem.as_bytes())
            .pinned_only();
        for h in &self.hosts {
            b = b.pin(h, self.addr);
        }
        b.build().unwrap()
    }
}

async fn serve<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    log: Arc<Mutex<Vec<String>>>,
    sent: Arc<AtomicU64>,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 16 * 1024 {
            return;
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let target = head
        .lines()
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("/")
        .to_string();
    let host = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("host: ")
                .or_else(|| l.strip_prefix("Host: "))
        })
        .map(|h| h.split(':').next().unwrap_or("").to_string())
        .unwrap_or_default();
    log.lock().unwrap().push(format!("{host}{target}"));
    let path = target.split('?').next().unwrap_or("").to_string();
    let reply = routes
        .lock()
        .unwrap()
        .get(&format!("{host}{path}"))
        .cloned();
    let status_line = |code: u16| {
        let reason = match code {
            200 => "OK",
            302 => "Found",
            404 => "Not Found",
            500 => "Internal Server Error",
            _ => "Status",
        };
        format!("HTTP/1.1 {code} {reason}\r\nConnection: close\r\n")
    };
    match reply.unwrap_or(Reply::Status(404)) {
        Reply::Body(b) => {
            let h = format!(
                "{}Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
                status_line(200),
                b.len()
            );
            if s.write_all(h.as_bytes()).await.is_ok() && s.write_all(&b).await.is_ok() {
                sent.fetch_add(b.len() as u64, Ordering::Relaxed);
            }
        }
        Reply::Status(code) => {
            let h = format!("{}Content-Length: 0\r\n\r\n", status_line(code));
            let _ = s.write_all(h.as_bytes()).await;
        }
        Reply::Redirect(to) => {
            let h = format!(
                "{}Location: {to}\r\nContent-Length: 0\r\n\r\n",
                status_line(302)
            );
            let _ = s.write_all(h.as_bytes()).await;
        }
        Reply::Zeros { len, announce } => {
            let mut h = status_line(200);
            if announce {
                h.push_str(&format!("Content-Length: {len}\r\n"));
            }
            h.push_str("\r\n");
            if s.write_all(h.as_bytes()).await.is_err() {
                return;
            }
            let zeros = vec![0u8; 64 * 1024];
            let mut left = len;
            while left > 0 {
                let n = left.min(zeros.len() as u64) as usize;
                if s.write_all(&zeros[..n]).await.is_err() {
                    return;
                }
                sent.fetch_add(n as u64, Ordering::Relaxed);
                left -= n as u64;
            }
        }
        Reply::Raw(b) => {
            let _ = s.write_all(&b).await;
        }
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    }
    let _ = s.shutdown().await;
}

/// Fetch limits for tests: short timeouts, the defaults otherwise.
pub fn test_limits() -> FetchLimits {
    FetchLimits {
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        ..FetchLimits::default()
    }
}
