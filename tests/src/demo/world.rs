//! The demo's web of trust: keys and certifications made with sequoia at
//! start, statements written and signed with `wotgate statement new|sign`,
//! and what each participant publishes on its HTTPS server.
//!
//! ```text
//!   ours (root, mx.example; the only key the MX holds itself)
//!    ├─> alpha.example  2001:db8:a::/48     (1) in mx.example's certified.pgp: depth 1
//!    │    ├─> beta.example 2001:db8:b::/48  (2) only in alpha's certified.pgp: depth 2
//!    │    │    └─> gamma.example 2001:db8:c::/48  (3) in gamma's WKD: depth 3 > 2
//!    │    └─> mallory.example 2001:db8:a:bad::/64 (4) refused: a deny inside alpha's /48
//!    └─> epsilon.example 2001:db8:f::/48    (8) its statement names its TLS key
//!   delta.example 2001:db8:d::/48   (7) certified by nobody; a root of alice's own web
//!   (5) eve: publishes nothing; (6) an IPv4 sender
//!   later: alpha certifies gamma and publishes it: gamma at depth 2 gets in
//! ```

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, SystemTime},
};

use anyhow::{bail, Context, Result};
use sequoia_openpgp::{serialize::Serialize, Cert};

use crate::{
    https::HttpsServer,
    postfix::tls::TestCert,
    world::{certify, key, keyring_bytes},
};

/// Where a participant publishes its statement and its certifications.
pub const STATEMENT_PATH: &str = "/.well-known/wotgate/statement.asc";
pub const CERTIFIED_PATH: &str = "/.well-known/wotgate/certified.pgp";

/// One participant: a mail domain with its key and its prefix.
pub struct Party {
    pub name: &'static str,
    pub domain: &'static str,
    pub prefix: &'static str,
    pub key: Cert,
}

/// The keys, the certifications, the TLS client certificate and the files.
pub struct DemoWorld {
    pub dir: PathBuf,
    pub ours: Cert,
    pub parties: Vec<Party>,
    /// epsilon's TLS client certificate; its statement names its key.
    pub epsilon_tls: TestCert,
    born: SystemTime,
}

/// (name, domain, prefix) of every participant that has a key.
const PARTIES: [(&str, &str, &str); 6] = [
    ("alpha", "alpha.example", "2001:db8:a::/48"),
    ("beta", "beta.example", "2001:db8:b::/48"),
    ("gamma", "gamma.example", "2001:db8:c::/48"),
    ("mallory", "mallory.example", "2001:db8:a:bad::/64"),
    ("delta", "delta.example", "2001:db8:d::/48"),
    ("epsilon", "epsilon.example", "2001:db8:f::/48"),
];

impl DemoWorld {
    /// Keys for ours and every participant, made now (30 days old, so
    /// certifications made "a day later" are valid), and epsilon's TLS
    /// certificate. `dir` must exist.
    pub fn create(dir: &Path) -> Result<DemoWorld> {
        std::fs::create_dir_all(dir.join("keys"))?;
        let born = SystemTime::now() - Duration::from_secs(30 * 86_400);
        let ours = key("<postmaster@mx.example>", born);
        let parties = PARTIES
            .iter()
            .map(|&(name, domain, prefix)| Party {
                name,
                domain,
                prefix,
                key: key(&format!("<postmaster@{domain}>"), born),
            })
            .collect();
        let epsilon_tls = TestCert::self_signed(dir, "epsilon-client", "mail.epsilon.example");
        std::fs::write(dir.join("keyring.pgp"), keyring_bytes(&[&ours]))?;
        Ok(DemoWorld {
            dir: dir.to_path_buf(),
            ours,
            parties,
            epsilon_tls,
            born,
        })
    }

    pub fn party(&self, name: &str) -> &Party {
        self.parties
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no party {name}"))
    }

    pub fn fpr(&self, name: &str) -> String {
        self.party(name).key.fingerprint().to_hex()
    }

    /// `issuer` (a party or `ours`) certifies `target`, a day after the keys were made.
    fn certified(&self, issuer: &str, target: &str) -> Cert {
        let by = if issuer == "ours" {
            &self.ours
        } else {
            &self.party(issuer).key
        };
        certify(
            by,
            &self.party(target).key,
            self.born + Duration::from_secs(86_400),
        )
    }

    /// Each participant writes and signs its statement with the CLI
    /// (epsilon's names its TLS key); `bin` is `wotgate`.
    pub fn sign_statements(&self, bin: &Path) -> Result<Vec<(&'static str, String)>> {
        let tls = self.epsilon_tls.spki_sha256();
        let mut out = Vec::new();
        for p in &self.parties {
            let keyfile = self.dir.join("keys").join(format!("{}.key", p.name));
            let mut f = std::fs::File::create(&keyfile)?;
            p.key.as_tsk().serialize(&mut f)?;
            let mut args = vec![
                "statement",
                "new",
                "--domain",
                p.domain,
                "--prefix",
                p.prefix,
                "--valid-for",
                "30d",
            ];
            if p.name == "epsilon" {
                args.extend(["--tls-key-fingerprint", &tls]);
            }
            let body = self.dir.join(format!("{}.body", p.name));
            std::fs::write(&body, run(bin, &args)?)?;
            let keyfile = keyfile.to_str().context("key path")?;
            let body = body.to_str().context("body path")?;
            let signed = run(bin, &["statement", "sign", "--key", keyfile, body])?;
            out.push((p.domain, signed));
        }
        Ok(out)
    }

    /// What every participant publishes at the start: statements, WKD
    /// certificates and certified.pgp files.
    pub fn publish(&self, web: &HttpsServer, statements: &[(&str, String)]) {
        for (domain, text) in statements {
            web.publish(domain, STATEMENT_PATH, text.as_bytes());
        }
        // Our MX publishes whom it certified; alpha likewise.
        web.publish(
            "mx.example",
            CERTIFIED_PATH,
            &keyring_bytes(&[
                &self.certified("ours", "alpha"),
                &self.certified("ours", "epsilon"),
            ]),
        );
        web.publish(
            "alpha.example",
            CERTIFIED_PATH,
            &keyring_bytes(&[
                &self.certified("alpha", "beta"),
                &self.certified("alpha", "mallory"),
            ]),
        );
        // WKD: every key but beta's (found only through alpha's
        // certifications); gamma's carries beta's certification.
        for name in ["alpha", "mallory", "delta", "epsilon"] {
            let p = self.party(name);
            web.publish_url(&wkd_url(p.domain), &keyring_bytes(&[&p.key]));
        }
        web.publish_url(
            &wkd_url("gamma.example"),
            &keyring_bytes(&[&self.certified("beta", "gamma")]),
        );
    }

    /// alpha certifies gamma and publishes it (gamma adds the
    /// certification to its WKD answer too).
    pub fn alpha_certifies_gamma(&self, web: &HttpsServer) {
        let gamma = self.certified("alpha", "gamma");
        web.publish(
            "alpha.example",
            CERTIFIED_PATH,
            &keyring_bytes(&[
                &self.certified("alpha", "beta"),
                &self.certified("alpha", "mallory"),
                &gamma,
            ]),
        );
        let both = gamma
            .merge_public(self.certified("beta", "gamma"))
            .expect("same key");
        web.publish_url(&wkd_url("gamma.example"), &keyring_bytes(&[&both]));
    }
}

/// The WKD URL (advanced method) of `postmaster@DOMAIN`.
pub fn wkd_url(domain: &str) -> String {
    wotgate::source::wkd::urls(&format!("postmaster@{domain}"))
        .expect("a WKD address")
        .advanced
}

/// `wotgate ARGS`: its standard output, or an error with its standard error.
pub fn run(bin: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(bin)
        .args(args)
        .output()
        .with_context(|| format!("run {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "wotgate {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
