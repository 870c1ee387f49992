//! The fixture networks: one function each, with the README drawing next to
//! the code that builds the graph it shows.

use std::path::Path;

use anyhow::Result;
use openpgp::cert::prelude::*;
use openpgp::packet::signature::SignatureBuilder;
use openpgp::packet::Signature;
use openpgp::parse::Parse;
use openpgp::serialize::MarshalInto;
use openpgp::types::{HashAlgorithm, SignatureType};
use sequoia_openpgp as openpgp;

use super::{at, chain, keys, Net, Opts};

/// The regular expression GnuPG writes for the domain example.org.
pub const EXAMPLE_ORG_RE: &str = r"<[^>]+[@.]example\.org>$";

pub fn all(out: &Path) -> Result<()> {
    direct(out)?;
    level_one(out)?;
    chain_net(out)?;
    cycles(out)?;
    two_roots(out)?;
    refuse(out)?;
    ignore(out)?;
    refuse_ignore(out)?;
    revoked_key(out)?;
    revoked_certification(out)?;
    expired_key(out)?;
    expired_certification(out)?;
    retraction(out)?;
    sha1(out)?;
    bad_signature(out)?;
    predates_issuer(out)?;
    tsig(out)?;
    flooded(out)
}

fn direct(out: &Path) -> Result<()> {
    let mut n = Net::new("direct");
    keys(&mut n, &["Root", "Alice", "Bob"])?;
    n.certify("Root", "Alice")?;
    n.write(out, "Root -> Alice\nBob          (no certification)")
}

fn level_one(out: &Path) -> Result<()> {
    let mut n = Net::new("level-one");
    keys(&mut n, &["Root", "Alice", "Bob"])?;
    chain(&mut n, &["Root", "Alice", "Bob"])?;
    n.write(out, "Root -> Alice -> Bob")
}

fn chain_net(out: &Path) -> Result<()> {
    let mut n = Net::new("chain");
    let names = ["Root", "K1", "K2", "K3", "K4", "K5"];
    keys(&mut n, &names)?;
    chain(&mut n, &names)?;
    n.write(
        out,
        "Root -> K1 -> K2 -> K3 -> K4 -> K5   (Kn is n certifications away)",
    )
}

fn cycles(out: &Path) -> Result<()> {
    let mut n = Net::new("cycles");
    keys(&mut n, &["Root", "A", "B", "C", "D"])?;
    chain(&mut n, &["Root", "A", "B", "C", "A"])?;
    n.certify("B", "Root")?;
    n.certify("C", "D")?;
    n.write(
        out,
        "Root -> A -> B -> C -> D\n  ^     ^    |    |\n  |     +----|----+   (C -> A)\n  +----------+        (B -> Root)",
    )
}

fn two_roots(out: &Path) -> Result<()> {
    let mut n = Net::new("two-roots");
    keys(&mut n, &["Root1", "Root2", "A", "B", "C", "D", "E"])?;
    chain(&mut n, &["Root1", "A", "B", "C"])?;
    chain(&mut n, &["Root2", "D", "C"])?;
    n.certify("B", "E")?;
    n.write(out, "Root1 -> A -> B -> C\n              |    ^\n              v    |\n              E    |\nRoot2 -> D --------+")
}

fn refuse(out: &Path) -> Result<()> {
    let mut n = Net::new("refuse");
    keys(&mut n, &["Root", "M", "N", "X", "Y"])?;
    chain(&mut n, &["Root", "M", "X", "Y"])?;
    chain(&mut n, &["Root", "N", "M"])?;
    n.write(
        out,
        "Root -> M -> X -> Y      refuse: M\n  |     ^\n  +-> N-+",
    )
}

fn ignore(out: &Path) -> Result<()> {
    let mut n = Net::new("ignore");
    keys(&mut n, &["Root", "M", "N", "X", "Z"])?;
    chain(&mut n, &["Root", "M", "X"])?;
    chain(&mut n, &["Root", "N", "Z"])?;
    n.certify("M", "Z")?;
    n.write(
        out,
        "Root -> M -> X          ignore-certifications-by: M\n  |     |\n  |     v\n  +-> N -> Z",
    )
}

fn refuse_ignore(out: &Path) -> Result<()> {
    let mut n = Net::new("refuse-ignore");
    keys(&mut n, &["Root", "M", "N", "X", "W"])?;
    chain(&mut n, &["Root", "M", "X"])?;
    chain(&mut n, &["Root", "N", "M"])?;
    n.certify("N", "W")?;
    n.write(out, "Root -> M -> X          refuse: M, ignore-certifications-by: M\n  |     ^\n  +-> N-+\n      |\n      +-> W")
}

fn revoked_key(out: &Path) -> Result<()> {
    let mut n = Net::new("revoked-key");
    keys(&mut n, &["Root", "A", "B"])?;
    n.key_with(
        "C",
        &[
            "C old <c-old@revoked-key.example>".into(),
            "C <c@revoked-key.example>".into(),
        ],
        0,
        None,
    )?;
    chain(&mut n, &["Root", "A", "B"])?;
    n.certify("Root", "C")?;
    n.revoke_key("A", 100)?;
    n.revoke_uid("C", "c-old@", 50)?;
    n.write(
        out,
        "Root -> A -> B       A revoked (day 100)\n  |\n  +-> C              C's User ID <c-old@...> revoked by C (day 50)",
    )
}

fn revoked_certification(out: &Path) -> Result<()> {
    let mut n = Net::new("revoked-certification");
    keys(&mut n, &["Root", "A", "B"])?;
    n.certify("Root", "A")?;
    n.certify("Root", "B")?;
    n.revoke_cert("Root", "A", 50)?;
    n.write(
        out,
        "Root -x-> A    (certified day 1, certification revoked day 50)\nRoot ---> B",
    )
}

fn expired_key(out: &Path) -> Result<()> {
    let mut n = Net::new("expired-key");
    n.key("Root")?;
    let uid = "A <a@expired-key.example>".to_string();
    n.key_with("A", &[uid], 0, Some(30))?;
    keys(&mut n, &["B", "C"])?;
    chain(&mut n, &["Root", "A", "B"])?;
    n.certify("Root", "C")?;
    n.write(out, "Root -> A -> B      A expires day 30\n  |\n  +-> C")
}

fn expired_certification(out: &Path) -> Result<()> {
    let mut n = Net::new("expired-certification");
    keys(&mut n, &["Root", "A", "B"])?;
    n.certify_with(
        "Root",
        "A",
        Opts {
            expires_days: Some(30),
            ..Default::default()
        },
    )?;
    n.certify_with(
        "Root",
        "B",
        Opts {
            expires_days: Some(1000),
            ..Default::default()
        },
    )?;
    n.write(
        out,
        "Root -> A   (certification expires day 31)\nRoot -> B   (certification expires day 1001)",
    )
}

fn retraction(out: &Path) -> Result<()> {
    let mut n = Net::new("retraction");
    keys(&mut n, &["Root", "A", "B"])?;
    n.certify("Root", "A")?;
    n.certify_with(
        "Root",
        "A",
        Opts {
            day: Some(10),
            expires_days: Some(10),
            ..Default::default()
        },
    )?;
    n.certify_with(
        "Root",
        "B",
        Opts {
            expires_days: Some(10),
            ..Default::default()
        },
    )?;
    n.certify_with(
        "Root",
        "B",
        Opts {
            day: Some(20),
            ..Default::default()
        },
    )?;
    n.write(
        out,
        "Root -> A   day 1 forever, replaced day 10 by one expiring day 20 (retracted)\n\
         Root -> B   day 1 expiring day 11, replaced day 20 by one without expiry (renewed)",
    )
}

fn sha1(out: &Path) -> Result<()> {
    let mut n = Net::new("sha1");
    keys(&mut n, &["Root", "A", "B", "C"])?;
    n.certify_with(
        "Root",
        "A",
        Opts {
            hash: Some(HashAlgorithm::SHA1),
            ..Default::default()
        },
    )?;
    n.certify("Root", "B")?;
    n.certify("A", "C")?;
    n.write(out, "Root =SHA-1=> A -> C\nRoot -------> B")
}

fn bad_signature(out: &Path) -> Result<()> {
    let mut n = Net::new("bad-signature");
    keys(&mut n, &["Root", "A", "B"])?;
    n.certify("Root", "A")?;
    // Root's certification of B with one byte of the signature value flipped:
    // it parses and sits in place (digest prefix intact) but does not verify.
    let sig = n.make_cert("Root", "B", &Opts::default())?.remove(0);
    let mut bytes = sig.to_vec()?;
    *bytes.last_mut().expect("non-empty") ^= 0x01;
    let bad = Signature::from_bytes(&bytes)?;
    n.add("B", vec![bad])?;
    let b = &n.certs["B"];
    anyhow::ensure!(
        b.userids().next().expect("uid").certifications().count() == 1,
        "corrupted certification kept"
    );
    n.write(
        out,
        "Root -> A\nRoot -?-> B   (one byte of the signature flipped: bad signature)",
    )
}

fn predates_issuer(out: &Path) -> Result<()> {
    let mut n = Net::new("predates-issuer");
    n.key_with(
        "Root",
        &["Root <root@predates-issuer.example>".into()],
        10,
        None,
    )?;
    keys(&mut n, &["A", "B"])?;
    n.certify_with(
        "Root",
        "A",
        Opts {
            day: Some(5),
            ..Default::default()
        },
    )?;
    n.certify_with(
        "Root",
        "B",
        Opts {
            day: Some(20),
            ..Default::default()
        },
    )?;
    n.write(out, "Root (created day 10) -> A   certification dated day 5\nRoot                  -> B   certification dated day 20")
}

fn tsig(out: &Path) -> Result<()> {
    let mut n = Net::new("tsig");
    let k = |n: &mut Net, name: &str, uid: &str| {
        n.key_with(name, &[format!("{name} <{uid}>")], 0, None)
    };
    k(&mut n, "Root", "root@tsig.example")?;
    k(&mut n, "CA1", "ca1@tsig.example")?;
    k(&mut n, "Alice", "alice@example.org")?;
    k(&mut n, "Mallory", "mallory@evil.example")?;
    k(&mut n, "CA3", "ca3@example.org")?;
    k(&mut n, "Bob", "bob@example.org")?;
    k(&mut n, "P", "p@tsig.example")?;
    k(&mut n, "Q", "q@tsig.example")?;
    k(&mut n, "CA2", "ca2@tsig.example")?;
    k(&mut n, "S", "s@tsig.example")?;
    k(&mut n, "T", "t@tsig.example")?;
    k(&mut n, "U", "u@tsig.example")?;
    k(&mut n, "CA4", "ca4@tsig.example")?;
    k(&mut n, "V", "v@tsig.example")?;
    k(&mut n, "CA5", "ca5@tsig.example")?;
    k(&mut n, "W", "w@tsig.example")?;
    let ts = |l, a| Opts {
        tsig: Some((l, a)),
        ..Default::default()
    };
    n.certify_with(
        "Root",
        "CA1",
        Opts {
            regex: Some(EXAMPLE_ORG_RE),
            ..ts(2, 120)
        },
    )?;
    n.certify("CA1", "Alice")?;
    n.certify("CA1", "Mallory")?;
    n.certify_with("CA1", "CA3", ts(1, 120))?;
    n.certify("CA3", "Bob")?;
    chain(&mut n, &["Root", "P", "Q"])?;
    n.certify_with("Root", "CA2", ts(1, 120))?;
    n.certify_with("CA2", "S", ts(1, 120))?;
    n.certify("S", "T")?;
    n.certify("CA2", "U")?;
    n.certify_with("Root", "CA4", ts(1, 120))?;
    n.certify_with(
        "Root",
        "CA4",
        Opts {
            day: Some(20),
            ..Default::default()
        },
    )?;
    n.certify("CA4", "V")?;
    n.certify_with("Root", "CA5", ts(1, 60))?;
    n.certify("CA5", "W")?;
    n.write(
        out,
        r"Root =tsig(2, <[^>]+[@.]example\.org>$)=> CA1 -> Alice <alice@example.org>
                                             |  -> Mallory <mallory@evil.example>
                                             +=tsig(1)=> CA3 <ca3@example.org> -> Bob <bob@example.org>
Root -> P -> Q                  (plain certifications only)
Root =tsig(1)=> CA2 =tsig(1)=> S -> T
                 |
                 +-> U
Root =tsig(1)=> CA4 (day 1), replaced day 20 by a plain certification;  CA4 -> V
Root =tsig(1, amount 60: partial)=> CA5 -> W",
    )
}

fn flooded(out: &Path) -> Result<()> {
    let mut n = Net::new("flooded");
    keys(&mut n, &["Root", "A", "B"])?;
    n.certify("Root", "A")?;
    n.certify("Root", "B")?;
    for i in 1..=12u64 {
        let k = format!("K{i}");
        n.key(&k)?;
        n.certify("Root", &k)?;
        n.certify_with(
            &k,
            "B",
            Opts {
                day: Some(1 + i),
                ..Default::default()
            },
        )?;
    }
    // 2,000 certifications of A by 20 keys that are NOT in the keyring.
    let target = n.certs["A"].clone();
    let uid = target.userids().next().expect("uid").userid().clone();
    let mut flood = Vec::new();
    for f in 0..20 {
        let (fk, _) = CertBuilder::new()
            .set_profile(openpgp::Profile::RFC4880)?
            .set_cipher_suite(CipherSuite::Cv25519)
            .set_creation_time(at(0))
            .add_userid(format!("Flooder {f}"))
            .generate()?;
        let mut signer = fk
            .primary_key()
            .key()
            .clone()
            .parts_into_secret()?
            .into_keypair()?;
        for s in 0..100u64 {
            flood.push(
                SignatureBuilder::new(SignatureType::GenericCertification)
                    .set_signature_creation_time(at(2) + std::time::Duration::from_secs(s))?
                    .sign_userid_binding(&mut signer, target.primary_key().key(), &uid)?,
            );
        }
    }
    n.add("A", flood)?;
    n.write(
        out,
        "Root -> A <== 2,000 certifications by 20 keys not in the keyring\nRoot -> B <- K1..K12 <- Root   (B: 13 certifications by known keys, Root's the oldest)",
    )
}
