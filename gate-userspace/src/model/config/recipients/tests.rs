//! Resolution (replace, extend), every error naming file, key and value, and
//! the lookup order of per-recipient webs.

use std::collections::BTreeSet;

use super::*;
use crate::model::fingerprint::parse_fingerprint;
use crate::model::settings::{IntroducerMode, Limits};

const SYS_ROOT: &str = "0123456789ABCDEF0123456789ABCDEF01234567";
const SYS_REFUSED: &str = "1111111111111111111111111111111111111111";
const A: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const B: &str = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

fn fprs(hex: &[&str]) -> BTreeSet<sequoia_openpgp::Fingerprint> {
    hex.iter().map(|h| parse_fingerprint(h).unwrap()).collect()
}

/// The system's web: depth 3, trust signatures, one refused key, tight limits.
fn system() -> TrustSettings {
    TrustSettings {
        depth: 3,
        mode: IntroducerMode::TrustSignatures,
        refuse: fprs(&[SYS_REFUSED]),
        limits: Limits {
            max_certifications_per_cert: 7,
            max_certification_bytes_per_cert: 4096,
        },
        ..TrustSettings::new(fprs(&[SYS_ROOT]), SystemTime::UNIX_EPOCH)
    }
}

fn parse(file: &str, text: &str) -> Result<RecipientWeb, ConfigError> {
    RecipientWeb::parse(Path::new(file), text, &system())
}

fn err(file: &str, text: &str) -> String {
    parse(file, text).unwrap_err().to_string()
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wotgate-recip-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn replace_is_exactly_the_file_with_the_systems_limits() {
    let w = parse(
        "r.d/Alice@Example.ORG.toml",
        &format!("combine = \"replace\"\nroots = [\"{A}\"]\n"),
    )
    .unwrap();
    assert_eq!(w.recipient, Recipient::Address("alice@example.org".into()));
    assert_eq!(w.combine, Combine::Replace);
    assert_eq!(w.file, Path::new("r.d/Alice@Example.ORG.toml"));
    assert_eq!(w.trust.roots, fprs(&[A]));
    // Unset depth and mode are the documented defaults, not the system's.
    assert_eq!(w.trust.depth, crate::model::settings::DEFAULT_DEPTH);
    assert_eq!(w.trust.mode, IntroducerMode::Certifications);
    assert!(w.trust.refuse.is_empty());
    assert_eq!(w.trust.limits, system().limits);
    assert_eq!(w.trust.reference_time, SystemTime::UNIX_EPOCH);
    let later = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(9);
    assert_eq!(w.trust_at(later).reference_time, later);
    // A replacement needs its own root.
    assert_eq!(
        err("r.d/example.org.toml", "combine = \"replace\"\n"),
        "r.d/example.org.toml: roots = []: at least one root is needed"
    );
}

#[test]
fn extend_adds_to_the_system_and_overrides_what_it_gives() {
    let w = parse(
        "example.org.toml",
        &format!("combine = \"extend\"\nroots = [\"{A}\"]\nrefuse = [\"{B}\"]\nignore_certifications_by = [\"{B}\"]\n"),
    )
    .unwrap();
    assert_eq!(w.recipient, Recipient::Domain("example.org".into()));
    assert_eq!(w.trust.roots, fprs(&[SYS_ROOT, A]));
    assert_eq!(w.trust.refuse, fprs(&[SYS_REFUSED, B]));
    assert_eq!(w.trust.ignore_certifications_by, fprs(&[B]));
    assert_eq!(w.trust.depth, 3, "the system's depth when none is given");
    assert_eq!(w.trust.mode, IntroducerMode::TrustSignatures);
    assert_eq!(w.trust.limits, system().limits);

    let w = parse(
        "example.org.toml",
        "combine = \"extend\"\ndepth = 1\nmode = \"certifications\"\n",
    )
    .unwrap();
    assert_eq!(w.trust.roots, fprs(&[SYS_ROOT]), "no roots of its own");
    assert_eq!(
        (w.trust.depth, w.trust.mode),
        (1, IntroducerMode::Certifications)
    );

    // Refusing a system root, or rooting a key the system refuses, is an error.
    assert!(err(
        "x.org.toml",
        &format!("combine = \"extend\"\nrefuse = [\"{SYS_ROOT}\"]\n")
    )
    .starts_with(&format!(
        "x.org.toml: refuse = \"{SYS_ROOT}\": a root cannot also be refused"
    )));
    assert_eq!(
        err(
            "x.org.toml",
            &format!("combine = \"extend\"\nroots = [\"{SYS_REFUSED}\"]\n")
        ),
        format!("x.org.toml: roots = \"{SYS_REFUSED}\": refused by the system's [trust] refuse")
    );
}

#[test]
fn errors_name_the_file_the_key_and_the_value() {
    let f = "recipients.d/alice@example.org.toml";
    let with = |extra: &str| {
        err(
            f,
            &format!("combine = \"replace\"\nroots = [\"{A}\"]\n{extra}"),
        )
    };
    assert_eq!(with("depth = 17\n"), format!("{f}: depth = 17: at most 16"));
    assert_eq!(
        err(f, "combine = \"replace\"\nroots = [\"abc\"]\n"),
        format!("{f}: roots = \"abc\": not a v4 (40 hex digits) or v6 (64 hex digits) fingerprint")
    );
    assert!(with("mode = \"gpg\"\n").starts_with(&format!("{f}: mode = \"gpg\": expected")));
    assert!(
        with("colour = 1\n").contains("unknown field `colour`"),
        "{}",
        with("colour = 1\n")
    );
    assert!(with("[trust]\n").contains("unknown field `trust`"));
    assert_eq!(
        with("keyrings = [\"ring.pgp\"]\n"),
        format!("{f}: keyrings = [\"ring.pgp\"]: not allowed in a recipient's file: keys come from the system's sources ([trust] keyrings, WKD, published certifications)")
    );
    assert!(
        with("max_certifications_per_cert = 5\n").starts_with(&format!(
            "{f}: max_certifications_per_cert = 5: not allowed"
        ))
    );
    assert!(with("max_certification_bytes_per_cert = 5\n").contains("limits are the system's"));
    assert_eq!(
        err(f, &format!("combine = \"merge\"\nroots = [\"{A}\"]\n")),
        format!("{f}: combine = \"merge\": expected \"replace\" or \"extend\"")
    );
    assert!(
        err(f, &format!("roots = [\"{A}\"]\n")).starts_with(&format!("{f}: combine is required"))
    );
}

#[test]
fn names_must_be_an_address_or_a_domain() {
    for (name, why) in [
        ("d/@example.org.toml", "local part"),
        ("d/a b@example.org.toml", "whitespace"),
        ("d/alice@.toml", "empty domain"),
        (
            "d/alice@exa_mple.org.toml",
            "\"exa_mple\" is not a domain label",
        ),
        ("d/example..org.toml", "empty label"),
        ("d/a@b@example.org.toml", "after the @"),
    ] {
        let e = err(name, "combine = \"extend\"\n");
        assert!(
            e.starts_with(&format!("{name}: not a recipient's web: ")),
            "{e}"
        );
        assert!(e.contains(why), "{name}: {e}");
    }
    assert_eq!(
        Recipient::parse("Post.Master@Mx-1.Example.ORG"),
        Ok(Recipient::Address("post.master@mx-1.example.org".into()))
    );
    assert_eq!(
        Recipient::parse("EXAMPLE.org").unwrap().name(),
        "example.org"
    );
}

#[test]
fn reading_a_directory() {
    let d = temp("read");
    let write = |name: &str, text: &str| std::fs::write(d.join(name), text).unwrap();
    write(
        "alice@example.org.toml",
        &format!("combine = \"replace\"\nroots = [\"{A}\"]\n"),
    );
    write("example.org.toml", "combine = \"extend\"\ndepth = 1\n");
    write(".hidden.toml", "not toml at all [");
    write("README", "not read");
    let webs = read_recipient_webs(&d, &system(), 10).unwrap();
    let names: Vec<_> = webs.iter().map(|w| w.recipient.name()).collect();
    assert_eq!(names, ["alice@example.org", "example.org"]);

    // At most max_webs files.
    let e = read_recipient_webs(&d, &system(), 1)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "{}: more than 1 recipient webs (*.toml), the bound trust.max_recipient_webs",
            d.display()
        )
    );

    // Two files for one recipient once lowercased: both are named.
    write("ALICE@example.org.toml", "combine = \"extend\"\n");
    let e = read_recipient_webs(&d, &system(), 10)
        .unwrap_err()
        .to_string();
    let upper = d.join("ALICE@example.org.toml").display().to_string();
    let lower = d.join("alice@example.org.toml").display().to_string();
    assert_eq!(
        e,
        format!("{upper} and {lower} are both the web of alice@example.org: keep one")
    );
    std::fs::remove_file(d.join("ALICE@example.org.toml")).unwrap();

    // A bad file is named with its key.
    write("bob@example.org.toml", "combine = \"extend\"\ndepth = 17\n");
    let e = read_recipient_webs(&d, &system(), 10)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "{}: depth = 17: at most 16",
            d.join("bob@example.org.toml").display()
        )
    );
    let _ = std::fs::remove_dir_all(&d);

    // A missing directory is an error naming it.
    let e = read_recipient_webs(&d, &system(), 10)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!("{}: cannot read", d.display())),
        "{e}"
    );
}

#[test]
fn the_address_comes_before_its_domain_case_insensitively() {
    let d = temp("lookup");
    let write = |name: &str, text: &str| std::fs::write(d.join(name), text).unwrap();
    write(
        "Alice@Example.org.toml",
        &format!("combine = \"replace\"\nroots = [\"{A}\"]\n"),
    );
    write(
        "example.org.toml",
        &format!("combine = \"replace\"\nroots = [\"{B}\"]\n"),
    );
    write("b.example.toml", "combine = \"extend\"\n");
    let webs = read_recipient_webs(&d, &system(), 10).unwrap();
    let _ = std::fs::remove_dir_all(&d);
    let name = |a: &str| web_for(&webs, a).map(|w| w.recipient.name().to_string());
    assert_eq!(
        name("alice@example.org").as_deref(),
        Some("alice@example.org")
    );
    assert_eq!(
        name("ALICE@EXAMPLE.ORG").as_deref(),
        Some("alice@example.org")
    );
    assert_eq!(name("Bob@Example.Org").as_deref(), Some("example.org"));
    assert_eq!(name("bob@B.example").as_deref(), Some("b.example"));
    assert_eq!(
        name("bob@sub.example.org"),
        None,
        "a domain's web is not its subdomains'"
    );
    assert_eq!(name("bob@example.net"), None);
    assert_eq!(name("example.org"), None, "not an address");
}
