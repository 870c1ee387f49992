//! Building a [`Fetcher`]: the trusted roots (system store, extra CA file
//! or PEM), the rustls configuration and the reqwest client with its limits.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

use super::error::chain;
use super::{ClientError, Fetcher, FetcherBuilder, USER_AGENT};

/// Largest extra CA file read (PEM).
const MAX_CA_FILE: usize = 4 << 20;

impl FetcherBuilder {
    /// Whether the system's trust store is used (default yes).
    pub fn system_roots(mut self, yes: bool) -> Self {
        self.system_roots = yes;
        self
    }

    /// Trusts the CA certificates of a PEM file too.
    pub fn extra_ca_file(mut self, path: Option<&Path>) -> Self {
        self.extra_ca_file = path.map(Path::to_path_buf);
        self
    }

    /// Trusts the CA certificates of PEM text too (tests).
    pub fn extra_ca_pem(mut self, pem: &[u8]) -> Self {
        self.extra_ca_pem.extend_from_slice(pem);
        self
    }

    /// Sends requests for `host` to `addr` instead of resolving it (tests: a
    /// server on a loopback port answering for `alpha.example`). URLs stay as
    /// they are (port 443) in origins and errors; only the wire differs.
    pub fn pin(mut self, host: &str, addr: SocketAddr) -> Self {
        self.pins.push((host.to_ascii_lowercase(), addr));
        self
    }

    /// Refuses every host that is not pinned, without resolving it (tests:
    /// guarantees that nothing leaves loopback).
    pub fn pinned_only(mut self) -> Self {
        self.pinned_only = true;
        self
    }

    pub fn build(self) -> Result<Fetcher, ClientError> {
        install_provider();
        let mut roots = RootCertStore::empty();
        if self.system_roots {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
        if let Some(path) = &self.extra_ca_file {
            let named = crate::source::local::read_bounded(path, MAX_CA_FILE).map_err(|e| {
                ClientError::CaContent {
                    path: path.clone(),
                    problem: e.detail(),
                }
            })?;
            if named.bytes.len() > MAX_CA_FILE {
                return Err(ClientError::CaContent {
                    path: path.clone(),
                    problem: format!("larger than {MAX_CA_FILE} bytes"),
                });
            }
            add_pem(&mut roots, &named.bytes).map_err(|problem| ClientError::CaContent {
                path: path.clone(),
                problem,
            })?;
        }
        if !self.extra_ca_pem.is_empty() {
            add_pem(&mut roots, &self.extra_ca_pem).map_err(|problem| ClientError::CaContent {
                path: PathBuf::from("<extra CA PEM>"),
                problem,
            })?;
        }
        if roots.is_empty() {
            return Err(ClientError::NoRoots);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Build(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(USER_AGENT)
            .timeout(self.limits.timeout)
            .connect_timeout(self.limits.connect_timeout)
            .no_proxy();
        for (host, addr) in &self.pins {
            builder = builder.resolve(host, *addr);
        }
        let client = builder.build().map_err(|e| ClientError::Build(chain(&e)))?;
        Ok(Fetcher {
            client,
            limits: self.limits,
            ports: Arc::new(
                self.pins
                    .iter()
                    .map(|(h, a)| (h.clone(), a.port()))
                    .collect(),
            ),
            pinned_only: self.pinned_only,
        })
    }
}

fn add_pem(roots: &mut RootCertStore, pem: &[u8]) -> Result<(), String> {
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("not PEM certificates: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("not a usable CA certificate: {e}"))?;
        added += 1;
    }
    if added == 0 {
        return Err("holds no PEM certificate".into());
    }
    Ok(())
}

/// Installs ring as the process's rustls provider, once (our own config
/// names its provider explicitly; this covers anything that asks for the default).
fn install_provider() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::settings::FetchLimits;

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let e = Fetcher::builder(FetchLimits::default())
            .system_roots(false)
            .extra_ca_pem(b"not pem")
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("holds no PEM certificate"), "{e}");
        let e = Fetcher::builder(FetchLimits::default())
            .system_roots(false)
            .build()
            .unwrap_err();
        assert!(matches!(e, ClientError::NoRoots));
    }
}
