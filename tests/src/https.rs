//! A small HTTPS server for the daemon's fetch tests: it serves the files of
//! a directory (`ROOT/HOST/PATH`, the Host header choosing the directory)
//! inside a test network namespace, with one certificate per participant
//! domain (`DOMAIN` and `openpgpkey.DOMAIN`) issued by a test CA made at test
//! time (rcgen). It can stop answering (accept connections and say nothing)
//! and it logs every request. The runtime, its listener and its tasks end on
//! drop.
//!
//! It speaks just enough HTTP/1.1: one request per connection,
//! `Connection: close`, 200 with the file or 404.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
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
        let mut resolver = rustls::server::ResolvesServerCertUsingSni::new();
        for d in domains {
            let names = vec![d.to_string(), format!("openpgpkey.{d}")];
            let ck = self.certified_key(&names);
            for n in &names {
                resolver.add(n, ck.clone()).unwrap();
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(resolver)),
        )
    }
}

/// The HTTPS server; see the module doc.
pub struct HttpsServer {
    pub root: PathBuf,
    silent: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<String>>>,
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
        let acceptor = TlsAcceptor::from(ca.server_config(domains));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let silent = Arc::new(AtomicBool::new(false));
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let (s, l, r) = (silent.clone(), log.clone(), root.to_path_buf());
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
            log,
            runtime: Some(runtime),
        }
    }

    /// From now on, connections are accepted and never answered (no TLS).
    pub fn stop_answering(&self) {
        self.silent.store(true, Ordering::SeqCst);
    }

    /// Every request so far, as `host/path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Forgets the requests logged so far.
    pub fn clear_requests(&self) {
        self.log.lock().unwrap().clear();
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
    log: &Mutex<Vec<String>>,
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
    log.lock().unwrap().push(format!("{host}{target}"));
    let path = target.split('?').next().unwrap_or("");
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
