//! Self-signed certificates for the Postfix tests (rcgen, ECDSA P-256) and
//! their SPKI SHA-256 computed independently by the openssl command.

use std::{
    io::Write,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// A certificate and its key, PEM files.
pub struct TestCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCert {
    /// Writes `DIR/NAME.pem` and `DIR/NAME.key` (mode 0600) for `dns_name`.
    pub fn self_signed(dir: &Path, name: &str, dns_name: &str) -> TestCert {
        let key = rcgen::KeyPair::generate().expect("generate key");
        let cert = rcgen::CertificateParams::new(vec![dns_name.to_string()])
            .expect("certificate params")
            .self_signed(&key)
            .expect("self-sign");
        let c = TestCert {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}.key")),
        };
        std::fs::write(&c.cert, cert.pem()).unwrap();
        std::fs::write(&c.key, key.serialize_pem()).unwrap();
        std::fs::set_permissions(&c.key, std::fs::Permissions::from_mode(0o600)).unwrap();
        c
    }

    /// SHA-256 over the certificate's DER SubjectPublicKeyInfo, as Postfix
    /// reports `ccert_pubkey_fingerprint`: colon-separated upper-case hex.
    /// Computed with openssl (`x509 -pubkey | pkey -pubin -outform DER |
    /// dgst -sha256`), not with the library that made the certificate.
    pub fn spki_sha256(&self) -> String {
        let pem = openssl(
            &[
                "x509",
                "-in",
                self.cert.to_str().unwrap(),
                "-pubkey",
                "-noout",
            ],
            b"",
        );
        let der = openssl(&["pkey", "-pubin", "-outform", "DER"], &pem);
        let digest = openssl(&["dgst", "-sha256", "-binary"], &der);
        assert_eq!(digest.len(), 32, "sha256 digest length");
        digest
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    }
}

/// Runs `openssl ARGS` with `input` on standard input; its standard output.
fn openssl(args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
