//! End to end through the `wotgate` binary and the real web-of-trust engine:
//! new, sign (plain and password-protected keys), show, verify, plan.

mod statement_fixtures;

use std::path::Path;
use std::process::{Command, Output};

use sequoia_openpgp::cert::amalgamation::key::PrimaryKey;
use sequoia_openpgp::{crypto::Password, serialize::SerializeInto, Cert};
use statement_fixtures::*;

fn wotgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wotgate"))
        .args(args)
        .env("RUST_LIB_BACKTRACE", "0")
        .output()
        .expect("run wotgate")
}

fn ok(args: &[&str]) -> String {
    let out = wotgate(args);
    assert!(
        out.status.success(),
        "wotgate {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn write_tsk(path: &Path, tsk: &Cert) {
    std::fs::write(path, tsk.as_tsk().armored().to_vec().unwrap()).unwrap();
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

const AT: &str = "2026-11-25T10:00:00Z";

/// Creates, signs and writes a statement through the CLI.
fn make(
    dir: &Path,
    name: &str,
    key: &Path,
    domain: &str,
    prefixes: &[&str],
    serial: &str,
) -> std::path::PathBuf {
    let mut args = vec![
        "statement",
        "new",
        "--domain",
        domain,
        "--not-before",
        "2026-11-24T10:00:00Z",
        "--valid-for",
        "30d",
        "--serial",
        serial,
    ];
    for pr in prefixes {
        args.extend(["--prefix", pr]);
    }
    let body = dir.join(format!("{name}.body"));
    std::fs::write(&body, ok(&args)).unwrap();
    let signed = ok(&[
        "statement",
        "sign",
        "--key",
        p(key),
        "--at",
        "2026-11-25T09:00:00Z",
        p(&body),
    ]);
    let out = dir.join(format!("{name}.asc"));
    std::fs::write(&out, signed).unwrap();
    out
}

/// The workflow's world: four participants' keys, a keyring in which alpha
/// (the root) certified beta and mallory, and one signed statement each.
struct Workflow {
    dir: std::path::PathBuf,
    sdir: std::path::PathBuf,
    beta: Key,
    mallory: Key,
    a: std::path::PathBuf,
    b: std::path::PathBuf,
    e: std::path::PathBuf,
    root: String,
}

impl Workflow {
    /// Writes keys, keyring and statements (through `statement new` and `sign`).
    fn new() -> Workflow {
        let dir = temp_dir("stmt-cli");
        let (alpha, beta, mallory, eve) = (
            Key::new("<postmaster@alpha.example>"),
            Key::new("<postmaster@beta.example>"),
            Key::new("<postmaster@mallory.example>"),
            Key::new("<eve@eve.example>"),
        );
        write_keyring(
            &dir.join("ring.pgp"),
            &[
                alpha.public(),
                certify(&alpha, &beta),
                certify(&alpha, &mallory),
                eve.public(),
            ],
        );
        for (n, k) in [
            ("alpha", &alpha),
            ("beta", &beta),
            ("mallory", &mallory),
            ("eve", &eve),
        ] {
            write_tsk(&dir.join(format!("{n}.key")), &k.tsk);
        }
        let sdir = dir.join("statements");
        std::fs::create_dir_all(&sdir).unwrap();
        let a = make(
            &sdir,
            "alpha",
            &dir.join("alpha.key"),
            "alpha.example",
            &["2001:db8:a00::/40"],
            "7",
        );
        let b = make(
            &sdir,
            "beta",
            &dir.join("beta.key"),
            "beta.example",
            &["2001:db8:a10::/48", "2001:db8:b::/48"],
            "3",
        );
        make(
            &sdir,
            "mallory",
            &dir.join("mallory.key"),
            "mallory.example",
            &["2001:db8:a02:100::/56"],
            "1",
        );
        let e = make(
            &sdir,
            "eve",
            &dir.join("eve.key"),
            "eve.example",
            &["2001:db8:e::/48"],
            "1",
        );
        let root = alpha.fpr().to_hex();
        Workflow {
            dir,
            sdir,
            beta,
            mallory,
            a,
            b,
            e,
            root,
        }
    }

    /// `statement show` prints the body and the signing subkey's Key ID.
    fn show(&self) {
        let shown = ok(&["statement", "show", p(&self.b)]);
        assert!(
            shown.contains("domain: beta.example\nserial: 3\n"),
            "{shown}"
        );
        assert!(
            shown.contains(
                &self
                    .beta
                    .tsk
                    .keys()
                    .subkeys()
                    .next()
                    .unwrap()
                    .key()
                    .keyid()
                    .to_hex()
            ),
            "{shown}"
        );
    }

    /// `statement verify` with explicit trust options.
    fn verify(&self) {
        let (dir, root) = (&self.dir, &self.root);
        let verify = |f: &Path| {
            wotgate(&[
                "statement",
                "verify",
                p(f),
                "--keyring",
                p(&dir.join("ring.pgp")),
                "--root",
                root,
                "--allow-documentation-prefixes",
                "--at",
                AT,
            ])
        };
        let out = verify(&self.b);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(
            text.contains("trusted at depth 1 and authenticated for beta.example"),
            "{text}"
        );
        assert!(
            text.contains("beta.example: ACCEPTED to allow 2 prefixes"),
            "{text}"
        );
        let out = verify(&self.e);
        assert_eq!(out.status.code(), Some(3));
        assert!(String::from_utf8_lossy(&out.stdout)
            .contains("eve.example: rejected by rule untrusted-signer"));
        // Without documentation prefixes allowed, the same statement is refused.
        let out = wotgate(&[
            "statement",
            "verify",
            p(&self.a),
            "--keyring",
            p(&dir.join("ring.pgp")),
            "--root",
            root,
            "--at",
            AT,
        ]);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("rejected by rule documentation-prefix")
        );
    }

    /// Writes the controller's configuration (mallory refused); returns its path.
    fn config(&self) -> std::path::PathBuf {
        let config = self.dir.join("wotgate.toml");
        std::fs::write(
            &config,
            format!(
                "state_directory = \"state\"\n[trust]\nkeyrings = [\"ring.pgp\"]\nroots = [\"{}\"]\nrefuse = [\"{}\"]\n[statements]\ndirectory = \"statements\"\nallow_documentation_prefixes = true\n",
                self.root,
                self.mallory.fpr().to_hex()
            ),
        )
        .unwrap();
        config
    }

    /// `plan`: text, prefix file, determinism, JSON and diff.
    fn plan(&self, config: &Path) {
        let kernel = self.dir.join("kernel.prefixes");
        let plan = ok(&[
            "plan",
            "--config",
            p(config),
            "--at",
            AT,
            "--prefix-file",
            p(&kernel),
        ]);
        assert!(
            plan.contains("allow 2001:db8:a00::/40\n    from alpha.example serial=7 depth=0"),
            "{plan}"
        );
        assert!(plan.contains("allow 2001:db8:a10::/48 (folded into 2001:db8:a00::/40)\n    from beta.example serial=3 depth=1"), "{plan}");
        assert!(
            plan.contains("deny 2001:db8:a02:100::/56\n    from mallory.example serial=1 refused"),
            "{plan}"
        );
        assert!(
            plan.contains("# rejected eve.asc: eve.example: rejected by rule untrusted-signer"),
            "{plan}"
        );
        let set = wotgate::model::prefixes::PrefixSet::load(&kernel).unwrap();
        assert_eq!(set.len(), 3, "{}", set.to_file_text());
        assert_eq!(
            plan,
            ok(&["plan", "--config", p(config), "--at", AT]),
            "plan output is deterministic"
        );
        let json: serde_json::Value =
            serde_json::from_str(&ok(&["plan", "--config", p(config), "--at", AT, "--json"]))
                .unwrap();
        assert_eq!(json["accepted_statements"], 3);
        let diff = ok(&[
            "plan",
            "--config",
            p(config),
            "--at",
            AT,
            "--diff",
            p(&kernel),
        ]);
        assert_eq!(diff, "# no change\n");
    }

    /// `verify --config` applies the controller's settings: mallory is
    /// refused there, and a recorded higher serial is a rollback.
    fn verify_with_config(&self, config: &Path) {
        let dir = &self.dir;
        let m = ok(&[
            "statement",
            "verify",
            p(&self.sdir.join("mallory.asc")),
            "--config",
            p(config),
            "--at",
            AT,
        ]);
        assert!(
            m.contains("mallory.example: ACCEPTED to deny 1 prefixes"),
            "{m}"
        );
        // Rollback: with a higher serial recorded for beta.example, the plan
        // rejects beta's statement and verify --config says why.
        std::fs::create_dir_all(dir.join("state")).unwrap();
        std::fs::write(dir.join("state").join("serials"), "beta.example 9\n").unwrap();
        let plan = ok(&["plan", "--config", p(config), "--at", AT]);
        assert!(plan.contains("# rejected beta.asc: beta.example: rejected by rule rollback: serial 3 is lower than the last accepted serial 9"), "{plan}");
        assert!(!plan.contains("from beta.example"), "{plan}");
        let out = wotgate(&[
            "statement",
            "verify",
            p(&self.b),
            "--config",
            p(config),
            "--at",
            AT,
        ]);
        assert_eq!(out.status.code(), Some(3));
        std::fs::remove_dir_all(dir.join("state")).unwrap();
    }

    /// A failed `plan --load` records no serials.
    fn failed_load_records_nothing(&self, config: &Path) {
        let dir = &self.dir;
        let load = wotgate(&[
            "--pin-dir",
            p(&dir.join("nopin")),
            "plan",
            "--config",
            p(config),
            "--at",
            AT,
            "--load",
        ]);
        assert!(!load.status.success());
        assert!(
            !dir.join("state").join("serials").exists(),
            "state is recorded only after a successful load"
        );
    }
}

#[test]
fn participant_and_controller_workflow() {
    let w = Workflow::new();
    w.show();
    w.verify();
    let config = w.config();
    w.plan(&config);
    w.verify_with_config(&config);
    w.failed_load_records_nothing(&config);
    std::fs::remove_dir_all(&w.dir).unwrap();
}

/// `k`'s secret key with every secret key encrypted under `pw`.
fn locked(k: &Key, pw: &Password) -> Cert {
    let encrypted: Vec<sequoia_openpgp::Packet> = k
        .tsk
        .keys()
        .secret()
        .map(|ka| {
            let key = ka.key().clone().encrypt_secret(pw).unwrap();
            if ka.primary() {
                key.role_into_primary().into()
            } else {
                key.role_into_subordinate().into()
            }
        })
        .collect();
    let locked = k.tsk.clone().insert_packets(encrypted).unwrap().0;
    assert!(locked
        .keys()
        .secret()
        .all(|ka| !ka.key().has_unencrypted_secret()));
    locked
}

/// `statement sign` of `body` with `key`, reading the password from `pw`.
fn sign_with(key: &Path, pw: &Path, body: &Path) -> Output {
    wotgate(&[
        "statement",
        "sign",
        "--key",
        p(key),
        "--password-file",
        p(pw),
        p(body),
    ])
}

#[test]
fn password_protected_key_and_refusals_of_sign() {
    let dir = temp_dir("stmt-sign");
    let k = Key::new("<postmaster@alpha.example>");
    write_tsk(
        &dir.join("locked.key"),
        &locked(&k, &Password::from("correct horse")),
    );
    std::fs::write(dir.join("pw"), "correct horse\n").unwrap();
    std::fs::write(dir.join("bad-pw"), "wrong\n").unwrap();
    let body = dir.join("body");
    std::fs::write(
        &body,
        ok(&[
            "statement",
            "new",
            "--domain",
            "alpha.example",
            "--prefix",
            "2a01:4f8:1::/48",
        ]),
    )
    .unwrap();

    let signed = ok(&[
        "statement",
        "sign",
        "--key",
        p(&dir.join("locked.key")),
        "--password-file",
        p(&dir.join("pw")),
        p(&body),
    ]);
    assert!(signed.starts_with("-----BEGIN PGP MESSAGE-----"));
    let bad = sign_with(&dir.join("locked.key"), &dir.join("bad-pw"), &body);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("wrong password"),
        "{bad:?}"
    );
    // A public key cannot sign; a malformed body is not signed.
    write_keyring(&dir.join("pub.key"), &[k.public()]);
    let public = wotgate(&[
        "statement",
        "sign",
        "--key",
        p(&dir.join("pub.key")),
        p(&body),
    ]);
    assert!(
        String::from_utf8_lossy(&public.stderr).contains("holds no secret key material"),
        "{public:?}"
    );
    std::fs::write(&body, "version: WOTGATEv1\nhello: world\n").unwrap();
    let malformed = sign_with(&dir.join("locked.key"), &dir.join("pw"), &body);
    assert!(
        String::from_utf8_lossy(&malformed.stderr).contains("refusing to sign a malformed body"),
        "{malformed:?}"
    );
    // `new` refuses what acceptance would never take.
    let new = |prefix: &str| {
        wotgate(&[
            "statement",
            "new",
            "--domain",
            "alpha.example",
            "--prefix",
            prefix,
        ])
    };
    assert!(String::from_utf8_lossy(&new("192.0.2.0/24").stderr).contains("is IPv4"));
    assert!(String::from_utf8_lossy(&new("fd00::/48").stderr).contains("unique-local"));
    std::fs::remove_dir_all(&dir).unwrap();
}
