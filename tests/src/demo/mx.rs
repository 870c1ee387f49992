//! The MX of the demo: a private Postfix (STARTTLS, the policy service at
//! RCPT and DATA) and `wotgate run` from a generated configuration.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::net::{Net, MX_V4, MX_V6};
use crate::{
    daemon::{self, loaded_count, DaemonProc, METRICS},
    postfix::{PostfixConfig, PostfixInstance, ServerTls},
};

/// Postfix's `myhostname`, our authserv-id and our root's domain.
pub const MX_NAME: &str = "mx.example";

/// The policy service at RCPT (each recipient in its own web) and at DATA
/// (one verdict and header per message), as docs/recipients.md asks.
use crate::postfix::POLICY_SERVICE;

/// Starts Postfix in the MX namespace, listening on both MX addresses (so
/// an IPv4 SYN has somewhere to go: if it times out, the gate dropped it).
pub fn start_postfix(net: &Net) -> PostfixInstance {
    PostfixInstance::start(
        &net.mx,
        PostfixConfig {
            hostname: MX_NAME.into(),
            recipient_restrictions: format!("reject_unauth_destination, {POLICY_SERVICE}"),
            data_restrictions: POLICY_SERVICE.into(),
            tls: Some(ServerTls::default()),
            extra: vec![
                ("inet_protocols".into(), "all".into()),
                ("inet_interfaces".into(), format!("{MX_V6}, {MX_V4}")),
            ],
            ..Default::default()
        },
    )
}

/// The daemon's configuration, as an operator would write it for this MX.
pub struct ConfigInput<'a> {
    pub root: &'a str,
    pub refuse: &'a str,
    pub uplink: &'a str,
    pub pin: &'a Path,
    pub policy_socket: &'a Path,
}

/// The configuration text (relative paths are the world directory's).
pub fn config_text(c: &ConfigInput) -> String {
    format!(
        "# wotgate.toml for the demo's MX (written by the demo)\n\
         state_directory = \"state\"\n\n\
         [trust]\n\
         keyrings = [\"keyring.pgp\"]          # our own key only: the rest is fetched\n\
         roots = [\"{root}\"]\n\
         depth = 2\n\
         refuse = [\"{refuse}\"]   # mallory\n\
         recipients_directory = \"recipients.d\"\n\n\
         [statements]\n\
         directory = \"statements\"\n\
         allow_documentation_prefixes = true   # the demo uses 2001:db8::/32\n\n\
         [sources]\n\
         # Domains looked up by WKD; trust still comes only from certifications.\n\
         participants = [\"gamma.example\", \"delta.example\"]\n\
         extra_ca_file = \"demo-ca.pem\"\n\n\
         [sources.fetch]\n\
         timeout = \"3s\"\n\
         connect_timeout = \"2s\"\n\n\
         [gate]\n\
         interfaces = [\"{uplink}\"]\n\
         pin_directory = \"{pin}\"\n\
         mode = \"enforce\"\n\n\
         [daemon]\n\
         refresh_interval = \"1h\"\n\n\
         [metrics]\n\
         listen = \"{METRICS}\"\n\n\
         [policy]\n\
         enabled = true\n\
         socket = \"{socket}\"\n\
         authserv_id = \"{MX_NAME}\"\n\
         sender_alignment = true\n\
         policy_url = \"https://{MX_NAME}/wotgate\"\n",
        root = c.root,
        refuse = c.refuse,
        uplink = c.uplink,
        pin = c.pin.display(),
        socket = c.policy_socket.display(),
    )
}

/// The running daemon and where its files are.
pub struct Daemon {
    pub proc: DaemonProc,
    pub config: PathBuf,
    pub log: PathBuf,
    pub ns: String,
}

impl Daemon {
    /// Starts `wotgate run --config CONFIG` in the MX namespace, with the
    /// world's `hosts` and `resolv.conf` over /etc's in a mount namespace of
    /// its own (the host's files are never touched).
    pub fn start(net: &Net, dir: &Path, config: &Path) -> Daemon {
        let log = dir.join("daemon.log");
        let setup = format!(
            "mount --bind '{}' /etc/hosts; mount --bind '{}' /etc/resolv.conf",
            dir.join("hosts").display(),
            dir.join("resolv.conf").display()
        );
        let proc = DaemonProc::start_with_mounts(&net.mx, config, &log, Some(&setup));
        Daemon {
            proc,
            config: config.to_path_buf(),
            log,
            ns: net.mx.name.clone(),
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `wotgate status --json`.
    pub fn status(&self) -> Value {
        self.proc.status(&self.config)
    }

    /// `wotgate ARGS` where the daemon runs: exit code and output.
    pub fn wotgate(&self, args: &[&str]) -> (Option<i32>, String) {
        let out = self.proc.wotgate(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    }

    /// Waits (polling, so Ctrl-C is noticed) until `cond` holds on the status.
    pub fn wait_status(&self, what: &str, cond: impl Fn(&Value) -> bool) -> Result<Value> {
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            super::check_interrupt()?;
            let v = self.status();
            if cond(&v) {
                return Ok(v);
            }
            if Instant::now() > end {
                bail!(
                    "waiting for {what}; last status {v:#}\ndaemon log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for the first plan in the kernel and the policy socket.
    pub fn wait_ready(&self, socket: &Path) -> Result<Value> {
        let pid = self.proc.pid();
        let v = self.wait_status("the first plan", |v| {
            v["status"]["pid"] == pid && loaded_count(v) >= 1 && v["kernel_equals_plan"] == true
        })?;
        let end = Instant::now() + Duration::from_secs(30);
        while !socket.exists() {
            super::check_interrupt()?;
            if Instant::now() > end {
                bail!("no policy socket at {}", socket.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(v)
    }

    /// `wotgate reload`, then waits for the status to count one more loaded refresh.
    pub fn reload(&self) -> Result<Value> {
        let before = loaded_count(&self.status());
        let config = self.config.to_str().context("config path")?;
        let (code, text) = self.wotgate(&["reload", "--config", config]);
        if code != Some(0) {
            bail!("wotgate reload: {text}\ndaemon log:\n{}", self.log_text());
        }
        self.wait_status("the reload's refresh", |v| loaded_count(v) > before)
    }

    /// One scrape of the metrics endpoint.
    pub fn metrics(&self) -> Result<String> {
        match daemon::get(&self.ns, "/metrics") {
            Ok((200, text)) => Ok(text),
            other => bail!("GET http://{METRICS}/metrics: {other:?}"),
        }
    }
}

/// The value of one series in a scrape, 0 when absent.
pub fn series(text: &str, name: &str) -> f64 {
    daemon::value(text, name).unwrap_or(0.0)
}

/// The gate's packet counter for `reason` in a scrape.
pub fn gate_packets(text: &str, reason: &str) -> f64 {
    series(
        text,
        &format!("wotgate_gate_packets_total{{reason=\"{reason}\"}}"),
    )
}
