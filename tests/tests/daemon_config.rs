//! `wotgate config check`: the complete example is valid, and every error
//! names the key and the value (exit 1); nothing is touched.

use std::{path::Path, process::Command};

use integration_tests::{unique, wotgate_bin};

#[test]
fn config_check_names_the_key_of_an_error() {
    let bin = wotgate_bin();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/wotgate.toml");
    let check = |file: &Path| {
        Command::new(&bin)
            .args(["config", "check", file.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let out = check(&example);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("wotgate.toml: valid"));
    let dir = std::env::temp_dir().join(format!("wotgate-cfgcheck-{}", unique("c")));
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(&example).unwrap();
    for (from, to, expect) in [
        (
            "xdp_mode = \"native\"",
            "xdp_mode = \"fast\"",
            "gate.xdp_mode = \"fast\"",
        ),
        (
            "refresh_interval = \"15m\"",
            "refresh_interval = \"often\"",
            "daemon.refresh_interval = \"often\"",
        ),
        (
            "max_concurrent = 8",
            "max_concurrent = 0",
            "sources.fetch.max_concurrent = 0",
        ),
        (
            "listen = \"127.0.0.1:9725\"",
            "listen = \"loopback\"",
            "metrics.listen = \"loopback\"",
        ),
        (
            "detach_on_stop = false",
            "detach_on_exit = false",
            "unknown field `detach_on_exit`",
        ),
        (
            "socket_mode = \"0660\"",
            "socket_mode = \"rw\"",
            "policy.socket_mode = \"rw\"",
        ),
        (
            "tls_aead = \"auto\"",
            "tls_aead = \"strict\"",
            "policy.tls_aead = \"strict\"",
        ),
        (
            "tcp_listen = \"\"",
            "tcp_listen = \"[2001:db8::1]:10040\"",
            "policy.tcp_listen = \"[2001:db8::1]:10040\": only loopback",
        ),
    ] {
        assert!(text.contains(from), "{from}");
        let f = dir.join("bad.toml");
        std::fs::write(&f, text.replace(from, to)).unwrap();
        let out = check(&f);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{to}: {err}");
        assert!(err.contains(expect), "{to}: {err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
