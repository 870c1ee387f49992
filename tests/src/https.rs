//! A small HTTPS server for the daemon's fetch tests: it serves the files of
//! a directory (`ROOT/HOST/PATH`, the Host header choosing the directory)
//! inside a test network namespace, with one certificate per participant
//! domain (`DOMAIN` and `openpgpkey.DOMAIN`) issued by a test CA made at test
//! time (rcgen). It can stop answering (accept connections and say nothing)
//! and it logs every request. The runtime, its listener and its tasks end on
//! drop.
//!
//! It speaks just enough HTTP/1.1: one request per connection,
//! `Connection: close`, 200 with the file or 404. For the fault tests a URL
//! can misbehave instead ([`Fault`]: an endless body, a redirect loop, no
//! answer at all) and a domain can present a certificate of another CA.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

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

    /// The CA certificate, PEM (for `[sources] extra_ca_file`).
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for `names`, with its signing key, for rustls.
    fn certified_key(&self, names: &[String]) -> rustls::sign::CertifiedKey {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names.to_vec())
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let signing = rustls::crypto::ring::sign::any_supported_type(&der).unwrap();
        rustls::sign::CertifiedKey::new(vec![cert.der().clone()], signing)
    }

    /// A server configuration choosing, by SNI, one certificate per domain
    /// naming `DOMAIN` and `openpgpkey.DOMAIN` (the WKD advanced host).
    pub fn server_config(&self, domains: &[&str]) -> Arc<rustls::ServerConfig> {
        server_config(self.resolver(domains))
    }

    /// The certificates of [`TestCa::server_config`], replaceable later.
    fn resolver(&self, domains: &[&str]) -> Arc<SniCerts> {
        let r = SniCerts::default();
        for d in domains {
            self.add_to(&r, d);
        }
        Arc::new(r)
    }

    /// Puts a certificate from this CA for `domain` and `openpgpkey.DOMAIN` in `r`.
    fn add_to(&self, r: &SniCerts, domain: &str) {
        let names = vec![domain.to_string(), format!("openpgpkey.{domain}")];
        let ck = Arc::new(self.certified_key(&names));
        let mut map = r.0.write().unwrap();
        for n in names {
            map.insert(n, ck.clone());
        }
    }
}

fn server_config(resolver: Arc<SniCerts>) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(resolver),
    )
}

/// Certificates by SNI name, replaceable while the server runs.
#[derive(Debug, Default)]
struct SniCerts(RwLock<HashMap<String, Arc<rustls::sign::CertifiedKey>>>);

impl rustls::server::ResolvesServerCert for SniCerts {
    fn resolve(
        &self,
        hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let name = hello.server_name()?.to_ascii_lowercase();
        self.0.read().unwrap().get(&name).cloned()
    }
}

/// How one URL misbehaves (see [`HttpsServer::fault`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 200 and a body without Content-Length that never ends (up to
    /// [`ENDLESS_LIMIT`] bytes), written only as fast as the client reads.
    Endless,
    /// 302 to the same URL, again and again.
    RedirectLoop,
    /// Reads the request and never answers; the connection stays open.
    Hang,
}

/// Where an [`Fault::Endless`] body stops if the client never does.
pub const ENDLESS_LIMIT: u64 = 1 << 30;

/// What the endless bodies cost the server.
#[derive(Debug, Default)]
pub struct Endless {
    /// Body bytes the server's socket accepted, all endless answers together.
    pub written: AtomicU64,
    /// Endless answers that ended because the client closed the connection.
    pub cut_by_client: AtomicU64,
    /// Endless answers written to [`ENDLESS_LIMIT`] (the client read them all).
    pub finished: AtomicU64,
}

/// The state shared by the server's tasks.
#[derive(Default)]
struct Shared {
    log: Mutex<Vec<String>>,
    /// `(host, path)` to the fault answered there.
    faults: Mutex<HashMap<(String, String), Fault>>,
    endless: Endless,
}

/// The HTTPS server; see the module doc.
pub struct HttpsServer {
    pub root: PathBuf,
    silent: Arc<AtomicBool>,
    shared: Arc<Shared>,
    certs: Arc<SniCerts>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl HttpsServer {
    /// Serves `root` on `[::]:port` inside network namespace `ns`, with
    /// certificates for `domains` from `ca`.
    pub fn start(ns: &str, port: u16, ca: &TestCa, domains: &[&str], root: &Path) -> HttpsServer {
        let listener = crate::netns::in_netns(ns, move || {
            let l = std::net::TcpListener::bind(SocketAddr::from((
                std::net::Ipv6Addr::UNSPECIFIED,
                port,
            )))
            .expect("bind the HTTPS listener");
            l.set_nonblocking(true).unwrap();
            l
        });
        let certs = ca.resolver(domains);
        let acceptor = TlsAcceptor::from(server_config(certs.clone()));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let silent = Arc::new(AtomicBool::new(false));
        let shared: Arc<Shared> = Arc::default();
        let (s, l, r) = (silent.clone(), shared.clone(), root.to_path_buf());
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (acceptor, s, l, r) = (acceptor.clone(), s.clone(), l.clone(), r.clone());
                tokio::spawn(async move {
                    if s.load(Ordering::SeqCst) {
                        // Not answering: hold the connection, say nothing.
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        drop(tcp);
                        return;
                    }
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        serve(tls, &r, &l).await;
                    }
                });
            }
        });
        HttpsServer {
            root: root.to_path_buf(),
            silent,
            shared,
            certs,
            runtime: Some(runtime),
        }
    }

    /// From now on, connections are accepted and never answered (no TLS).
    pub fn stop_answering(&self) {
        self.silent.store(true, Ordering::SeqCst);
    }

    /// Every request so far, as `host/path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.shared.log.lock().unwrap().clone()
    }

    /// Forgets the requests logged so far.
    pub fn clear_requests(&self) {
        self.shared.log.lock().unwrap().clear();
    }

    /// From now on `https://HOST/PATH` (any query) answers with `fault`
    /// instead of its file; `None` restores the file.
    pub fn fault(&self, host: &str, path: &str, fault: Option<Fault>) {
        let key = (host.to_ascii_lowercase(), path.to_string());
        let mut faults = self.shared.faults.lock().unwrap();
        match fault {
            Some(f) => faults.insert(key, f),
            None => faults.remove(&key),
        };
    }

    /// What the endless bodies cost so far.
    pub fn endless(&self) -> &Endless {
        &self.shared.endless
    }

    /// From now on `domain` and `openpgpkey.DOMAIN` present a certificate
    /// issued by `ca` (e.g. one the client does not trust).
    pub fn use_ca(&self, domain: &str, ca: &TestCa) {
        ca.add_to(&self.certs, domain);
    }

    /// Publishes `bytes` at `https://HOST/PATH`.
    pub fn publish(&self, host: &str, path: &str, bytes: &[u8]) {
        let file = self.file(host, path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        // Written beside and renamed: a request never sees half a file.
        let tmp = file.with_extension("tmp-publish");
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, &file).unwrap();
    }

    /// Publishes `bytes` at a URL (`https://HOST/PATH`, any query ignored).
    pub fn publish_url(&self, url: &str, bytes: &[u8]) {
        let rest = url.strip_prefix("https://").expect("an https URL");
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        self.publish(host, path.split('?').next().unwrap(), bytes);
    }

    fn file(&self, host: &str, path: &str) -> PathBuf {
        assert!(
            !host.contains('/') && !host.starts_with('.') && !path.contains(".."),
            "{host}{path}"
        );
        self.root.join(host).join(path.trim_start_matches('/'))
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

async fn serve<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    root: &Path,
    shared: &Shared,
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
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("host").then(|| v.trim())
        })
        .map(|h| h.split(':').next().unwrap_or("").to_ascii_lowercase())
        .unwrap_or_default();
    shared.log.lock().unwrap().push(format!("{host}{target}"));
    let path = target.split('?').next().unwrap_or("");
    let fault = shared
        .faults
        .lock()
        .unwrap()
        .get(&(host.clone(), path.to_string()))
        .copied();
    if let Some(f) = fault {
        return misbehave(s, f, &target, &shared.endless).await;
    }
    let body = if host.is_empty()
        || host.contains('/')
        || host.starts_with('.')
        || path.contains("..")
        || !path.starts_with('/')
    {
        None
    } else {
        // Small files: read in place.
        std::fs::read(root.join(&host).join(&path[1..])).ok()
    };
    let reply = match &body {
        Some(b) => format!(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            b.len()
        ),
        None => "HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".into(),
    };
    if s.write_all(reply.as_bytes()).await.is_ok() {
        if let Some(b) = &body {
            let _ = s.write_all(b).await;
        }
    }
    let _ = s.shutdown().await;
}

/// Answers a request for `target` with `fault`.
async fn misbehave<S: tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    fault: Fault,
    target: &str,
    endless: &Endless,
) {
    match fault {
        Fault::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Fault::RedirectLoop => {
            let reply = format!(
                "HTTP/1.1 302 Found\r\nConnection: close\r\nLocation: {target}\r\nContent-Length: 0\r\n\r\n"
            );
            let _ = s.write_all(reply.as_bytes()).await;
        }
        Fault::Endless => {
            let head = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/octet-stream\r\n\r\n";
            if s.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = vec![b'x'; 64 * 1024];
            let mut sent = 0u64;
            while sent < ENDLESS_LIMIT {
                if s.write_all(&chunk).await.is_err() || s.flush().await.is_err() {
                    endless.cut_by_client.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                sent += chunk.len() as u64;
                endless
                    .written
                    .fetch_add(chunk.len() as u64, Ordering::SeqCst);
            }
            endless.finished.fetch_add(1, Ordering::SeqCst);
        }
    }
    let _ = s.shutdown().await;
}
