//! A small web of trust made with sequoia at run time, its participants'
//! statements signed through `wotgate statement`, and the controller's config.
//!
//! ```text
//!   ours (root, mx.example)
//!    └─> alpha.example  2001:db8:a::/48           depth 1: trusted
//!         ├─> beta.example  2001:db8:b::/48       depth 2: trusted
//!         │    └─> gamma.example 2001:db8:c::/48  depth 3: beyond the depth of 2
//!         └─> mallory.example 2001:db8:a:bad::/64 refused: becomes a deny inside alpha
//!   eve.example 2001:db8:e::/48                   certified by nobody: untrusted
//! ```

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, SystemTime},
};

use openpgp::{
    cert::CertBuilder, packet::signature::SignatureBuilder, serialize::Serialize,
    types::SignatureType, Cert,
};
use sequoia_openpgp as openpgp;

/// One participant: its key, domain, prefixes and a client address inside them.
pub struct Party {
    pub name: &'static str,
    pub domain: &'static str,
    pub prefixes: &'static [&'static str],
    /// A source address inside its prefixes, used by the client namespace.
    pub client: &'static str,
    /// Whether SYNs from `client` to port 25 must pass the gate.
    pub admitted: bool,
    pub tsk: Cert,
}

pub struct World {
    pub dir: PathBuf,
    pub ours: Cert,
    pub parties: Vec<Party>,
    pub config: PathBuf,
}

/// A new key with one User ID and a signing subkey, created at `created`.
pub fn key(userid: &str, created: SystemTime) -> Cert {
    CertBuilder::new()
        .set_creation_time(created)
        .add_userid(userid)
        .add_signing_subkey()
        .generate()
        .expect("generate key")
        .0
}

/// `issuer` certifies every User ID of `target`; returns `target`'s public
/// certificate carrying the certification.
pub fn certify(issuer: &Cert, target: &Cert, when: SystemTime) -> Cert {
    let mut signer = issuer
        .primary_key()
        .key()
        .clone()
        .parts_into_secret()
        .unwrap()
        .into_keypair()
        .unwrap();
    let sigs: Vec<openpgp::Packet> = target
        .userids()
        .map(|u| {
            SignatureBuilder::new(SignatureType::PositiveCertification)
                .set_signature_creation_time(when)
                .unwrap()
                .sign_userid_binding(&mut signer, target.primary_key().key(), u.userid())
                .unwrap()
                .into()
        })
        .collect();
    target
        .clone()
        .strip_secret_key_material()
        .insert_packets(sigs)
        .unwrap()
        .0
}

/// `issuer` revokes its certifications of every User ID of `target`; returns
/// `target`'s public certificate carrying the revocations.
pub fn revoke_certification(issuer: &Cert, target: &Cert, when: SystemTime) -> Cert {
    let mut signer = issuer
        .primary_key()
        .key()
        .clone()
        .parts_into_secret()
        .unwrap()
        .into_keypair()
        .unwrap();
    let sigs: Vec<openpgp::Packet> = target
        .userids()
        .map(|u| {
            SignatureBuilder::new(SignatureType::CertificationRevocation)
                .set_signature_creation_time(when)
                .unwrap()
                .set_reason_for_revocation(
                    openpgp::types::ReasonForRevocation::Unspecified,
                    b"no longer vouched for",
                )
                .unwrap()
                .sign_userid_binding(&mut signer, target.primary_key().key(), u.userid())
                .unwrap()
                .into()
        })
        .collect();
    target
        .clone()
        .strip_secret_key_material()
        .insert_packets(sigs)
        .unwrap()
        .0
}

/// Public certificates, binary, concatenated (a keyring).
pub fn keyring_bytes(certs: &[&Cert]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in certs {
        Cert::clone(c)
            .strip_secret_key_material()
            .serialize(&mut out)
            .unwrap();
    }
    out
}

/// A statement for `domain` and `prefixes`, valid for `valid_for` (e.g.
/// `40s`, `30d`) from now, written and signed with the CLI by `tsk` (whose
/// key file is written in `dir`); the armoured signed text.
pub fn signed_statement(
    bin: &Path,
    dir: &Path,
    tsk: &Cert,
    domain: &str,
    prefixes: &[&str],
    valid_for: &str,
) -> String {
    let keyfile = dir.join(format!("{domain}.key"));
    let mut k = std::fs::File::create(&keyfile).unwrap();
    tsk.as_tsk().serialize(&mut k).unwrap();
    let mut args = vec![
        "statement",
        "new",
        "--domain",
        domain,
        "--valid-for",
        valid_for,
    ];
    for pr in prefixes {
        args.extend(["--prefix", pr]);
    }
    let body = dir.join(format!("{domain}.body"));
    std::fs::write(&body, wotgate(bin, &args)).unwrap();
    wotgate(
        bin,
        &[
            "statement",
            "sign",
            "--key",
            keyfile.to_str().unwrap(),
            body.to_str().unwrap(),
        ],
    )
}

fn wotgate(bin: &Path, args: &[&str]) -> String {
    let out = Command::new(bin).args(args).output().expect("run wotgate");
    assert!(
        out.status.success(),
        "wotgate {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

impl World {
    /// Creates keys, certifications, signed statements and a config in `dir`.
    pub fn create(dir: &Path, bin: &Path) -> World {
        std::fs::create_dir_all(dir.join("statements")).unwrap();
        std::fs::create_dir_all(dir.join("keys")).unwrap();
        let now = SystemTime::now();
        let born = now - Duration::from_secs(30 * 86_400);
        let certified = now - Duration::from_secs(29 * 86_400);
        let ours = key("<postmaster@mx.example>", born);
        let mk = |name, domain, prefixes, client, admitted| Party {
            name,
            domain,
            prefixes,
            client,
            admitted,
            tsk: key(&format!("<postmaster@{domain}>"), born),
        };
        let parties = vec![
            mk(
                "alpha",
                "alpha.example",
                &["2001:db8:a::/48"][..],
                "2001:db8:a::10",
                true,
            ),
            mk(
                "beta",
                "beta.example",
                &["2001:db8:b::/48"][..],
                "2001:db8:b::10",
                true,
            ),
            mk(
                "gamma",
                "gamma.example",
                &["2001:db8:c::/48"][..],
                "2001:db8:c::10",
                false,
            ),
            mk(
                "mallory",
                "mallory.example",
                &["2001:db8:a:bad::/64"][..],
                "2001:db8:a:bad::10",
                false,
            ),
            mk(
                "eve",
                "eve.example",
                &["2001:db8:e::/48"][..],
                "2001:db8:e::10",
                false,
            ),
        ];
        let by = |n: &str| &parties.iter().find(|p| p.name == n).unwrap().tsk;
        let mut ring = vec![ours.clone().strip_secret_key_material()];
        for (issuer, target) in [
            (&ours, by("alpha")),
            (by("alpha"), by("beta")),
            (by("beta"), by("gamma")),
            (by("alpha"), by("mallory")),
        ] {
            ring.push(certify(issuer, target, certified));
        }
        ring.push(by("eve").clone().strip_secret_key_material());
        let mut f = std::fs::File::create(dir.join("keyring.pgp")).unwrap();
        for c in &ring {
            c.serialize(&mut f).unwrap();
        }

        // Each participant writes and signs its statement with the CLI.
        for p in &parties {
            let keyfile = dir.join("keys").join(format!("{}.key", p.name));
            let mut k = std::fs::File::create(&keyfile).unwrap();
            p.tsk.as_tsk().serialize(&mut k).unwrap();
            let mut args = vec![
                "statement",
                "new",
                "--domain",
                p.domain,
                "--valid-for",
                "30d",
            ];
            for pr in p.prefixes {
                args.extend(["--prefix", pr]);
            }
            let body = dir.join(format!("{}.body", p.name));
            std::fs::write(&body, wotgate(bin, &args)).unwrap();
            let signed = wotgate(
                bin,
                &[
                    "statement",
                    "sign",
                    "--key",
                    keyfile.to_str().unwrap(),
                    body.to_str().unwrap(),
                ],
            );
            std::fs::write(
                dir.join("statements").join(format!("{}.asc", p.name)),
                signed,
            )
            .unwrap();
        }
        let mallory = by("mallory").fingerprint().to_hex();
        let config = dir.join("wotgate.toml");
        std::fs::write(
            &config,
            format!(
                "# The controller's configuration for this world.\n\
                 state_directory = \"state\"\n\
                 [trust]\nkeyrings = [\"keyring.pgp\"]\nroots = [\"{}\"]\ndepth = 2\nrefuse = [\"{mallory}\"]\n\
                 [statements]\ndirectory = \"statements\"\nallow_documentation_prefixes = true\n",
                ours.fingerprint().to_hex()
            ),
        )
        .unwrap();
        World {
            dir: dir.to_path_buf(),
            ours,
            parties,
            config,
        }
    }

    pub fn root(&self) -> String {
        self.ours.fingerprint().to_hex()
    }

    pub fn keyring(&self) -> PathBuf {
        self.dir.join("keyring.pgp")
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl World {
    /// The daemon's configuration as an operator would write it: the shipped
    /// `examples/wotgate.toml` with this world's trust inputs and state
    /// directory, then `[gate]`, `[daemon]` and `[metrics]` keys set from
    /// `overrides` (`("gate", "interfaces", value)`). Written to `dir/name`.
    pub fn daemon_config(&self, name: &str, overrides: &[(&str, &str, toml::Value)]) -> PathBuf {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/wotgate.toml");
        let mut cfg: toml::Table = std::fs::read_to_string(&example)
            .expect("read examples/wotgate.toml")
            .parse()
            .expect("examples/wotgate.toml is TOML");
        // The example ships observe mode for a roll-out; the tests start
        // from the built-in default (enforce) and say when they observe.
        for section in ["gate", "policy"] {
            let table = cfg
                .get_mut(section)
                .and_then(toml::Value::as_table_mut)
                .unwrap_or_else(|| panic!("examples/wotgate.toml has no [{section}]"));
            assert_eq!(table.get("mode").and_then(|m| m.as_str()), Some("observe"));
            table.insert("mode".into(), "enforce".into());
        }
        let ours: toml::Table = std::fs::read_to_string(&self.config)
            .unwrap()
            .parse()
            .unwrap();
        for (key, value) in ours {
            match (cfg.get_mut(&key), value) {
                (Some(toml::Value::Table(base)), toml::Value::Table(section)) => {
                    base.extend(section)
                }
                (_, value) => {
                    cfg.insert(key, value);
                }
            }
        }
        for (section, key, value) in overrides {
            let table = cfg
                .entry(section.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(table) = table else {
                panic!("[{section}] is not a table in the example")
            };
            assert!(
                table.contains_key(*key),
                "examples/wotgate.toml has no {section}.{key}: document it there"
            );
            table.insert(key.to_string(), value.clone());
        }
        let path = self.dir.join(name);
        std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
        path
    }
}
