//! `wotgate doctor` against real Postfix configurations (Debian's postconf):
//! a correct site passes; each broken line is named with its fix.

use std::path::Path;
use std::process::Command;

use integration_tests::{postfix::require_postfix, unique, wotgate_bin};

const ROOT: &str = "0123456789ABCDEF0123456789ABCDEF01234567";

struct Dir(std::path::PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A Postfix configuration directory holding `main` as main.cf, the
/// README's header_checks table, and an empty master.cf.
fn postfix_dir(dir: &Path, main: &str) -> String {
    let pf = dir.join(unique("pf"));
    std::fs::create_dir_all(&pf).unwrap();
    let table = pf.join("wotgate_header_checks");
    std::fs::write(
        &table,
        "/^X-Wotgate-AR-s3cr3t:(.*)$/ REPLACE Authentication-Results:$1\n/^X-Wotgate-AR-/ IGNORE\n/^Authentication-Results:\\s*mx\\.example([[:space:];(]|$)/ IGNORE\n",
    )
    .unwrap();
    std::fs::write(pf.join("master.cf"), "").unwrap();
    std::fs::write(
        pf.join("main.cf"),
        main.replace("TABLE", &table.display().to_string()),
    )
    .unwrap();
    pf.display().to_string()
}

const GOOD: &str = "compatibility_level = 3.6
inet_protocols = all
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_data_restrictions = check_policy_service { unix:private/wotgate, timeout=10s, { default_action = DEFER_IF_PERMIT 4.3.5 wotgate policy service unavailable } }
smtpd_tls_ask_ccert = yes
smtpd_tls_protocols = >=TLSv1.2
header_checks = regexp:TABLE
";

fn doctor(cfg: &Path, pf: &str) -> (i32, String) {
    let out = Command::new(wotgate_bin())
        .args([
            "doctor",
            "--config",
            cfg.to_str().unwrap(),
            "--postfix-config",
            pf,
        ])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn doctor_names_each_problem_with_the_line_to_change() {
    require_postfix();
    let dir = Dir(std::env::temp_dir().join(unique("wotgate-doctor")));
    std::fs::create_dir_all(&dir.0).unwrap();
    let cfg = dir.0.join("wotgate.toml");
    std::fs::write(
        &cfg,
        format!("[trust]\nkeyrings = [\"k.pgp\"]\nroots = [\"{ROOT}\"]\n[policy]\nauthserv_id = \"mx.example\"\nheader_name = \"X-Wotgate-AR-s3cr3t\"\n"),
    )
    .unwrap();

    let (code, out) = doctor(&cfg, &postfix_dir(&dir.0, GOOD));
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("FIX"), "{out}");
    // compatibility_level 3.6 makes postconf report the sha256 default.
    assert!(
        out.contains("tls-fingerprint-digest") && out.contains("sha256"),
        "{out}"
    );

    for (from, to, check, fix) in [
        ("smtpd_data_restrictions = check_policy_service", "smtpd_data_restrictions = reject_unauth_pipelining, check_policy_service unix:private/other, check_policy_service_x", "policy-at-data", "main.cf: smtpd_data_restrictions = check_policy_service { unix:private/wotgate"),
        ("DEFER_IF_PERMIT 4.3.5 wotgate policy service unavailable", "DUNNO", "policy-default-action", "default_action = DEFER_IF_PERMIT"),
        ("inet_protocols = all", "inet_protocols = ipv4", "ipv6", "main.cf: inet_protocols = all"),
        ("smtpd_tls_ask_ccert = yes", "smtpd_tls_ask_ccert = no", "tls-client-certificate", "main.cf: smtpd_tls_ask_ccert = yes"),
        ("compatibility_level = 3.6", "compatibility_level = 2", "tls-fingerprint-digest", "main.cf: smtpd_tls_fingerprint_digest = sha256"),
        ("smtpd_tls_protocols = >=TLSv1.2", "smtpd_tls_protocols = >=TLSv1", "tls-protocols", "main.cf: smtpd_tls_protocols = >=TLSv1.2"),
        ("header_checks = regexp:TABLE", "header_checks =", "forged-header-recipe", "header_checks = regexp:/etc/postfix/wotgate_header_checks"),
    ] {
        assert!(GOOD.contains(from), "{from}");
        let (code, out) = doctor(&cfg, &postfix_dir(&dir.0, &GOOD.replace(from, to)));
        assert_eq!(code, 3, "{check}: {out}");
        let fixes: Vec<&str> = out.lines().filter(|l| l.starts_with("FIX")).collect();
        assert_eq!(fixes.len(), 1, "{check}: exactly one problem\n{out}");
        assert!(fixes[0].contains(check), "{check}\n{out}");
        assert!(out.contains(fix), "{check}: the fix {fix:?}\n{out}");
    }

    // A missing Postfix directory is an error, not a verdict.
    let (code, out) = doctor(&cfg, "/nonexistent/postfix");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("postconf"), "{out}");
}
