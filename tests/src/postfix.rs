//! A private Postfix instance inside a test network namespace (own config,
//! queue, data, spool and maillog in a temp dir), stopped and removed on drop.

// Facts this rests on are measured in `shared/postfix-notes.md`: Postfix
// 3.7 from Debian, `postfix -c DIR start` under `nsenter --net=...`, no
// syslog (so `maillog_file`), local delivery to a real Unix user.

pub mod mailbox;
pub mod swaks;
pub mod tls;

use std::{
    net::Ipv6Addr,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use crate::{netns::NetNs, TmpDir};
use mailbox::Message;

/// The policy socket's name under the queue directory, as an operator would
/// configure it: `check_policy_service unix:private/wotgate`.
pub const POLICY_SOCKET: &str = "private/wotgate";

/// A restriction calling the policy service on [`POLICY_SOCKET`], with a
/// short timeout so a hung test server costs 10 s, not Postfix's 100 s.
pub const CHECK_POLICY: &str = "check_policy_service { unix:private/wotgate, timeout=10s }";

/// The policy service as operators list it (README, "Postfix: main.cf and
/// master.cf"), at RCPT (early rejection) and at DATA (the verdict and
/// header, once per message). A value with blanks needs its own braces:
/// `default_action=DEFER_IF_PERMIT 4.3.5 ...` bare makes every smtpd die
/// with "malformed option: missing '='".
pub const POLICY_SERVICE: &str = "check_policy_service { unix:private/wotgate, timeout=10s, { default_action = DEFER_IF_PERMIT 4.3.5 wotgate policy service unavailable } }";

/// Fails loudly (never skips) when Postfix or swaks is missing.
pub fn require_postfix() {
    // SAFETY: trivial libc call.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the Postfix tests need root (namespaces, useradd, postfix start)"
    );
    for tool in ["/usr/sbin/postfix", "/usr/bin/swaks", "/usr/bin/openssl"] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: run `cargo xtask setup` (installs Debian's postfix, swaks, openssl)"
        );
    }
}

/// STARTTLS on the server. `None` leaves Postfix's default.
#[derive(Clone, Debug, Default)]
pub struct ServerTls {
    /// `smtpd_tls_protocols`, e.g. `>=TLSv1.2`.
    pub protocols: Option<String>,
    /// `smtpd_tls_ciphers` (a grade: `medium`, `high`).
    pub ciphers: Option<String>,
    /// `smtpd_tls_exclude_ciphers`, e.g. `SHA1, SHA256, SHA384` to refuse CBC.
    pub exclude_ciphers: Option<String>,
}

/// What the instance is made of. `Default` gives an IPv6-only server on
/// 2001:db8:ffff::1 (the server side of [`crate::netns::Pair`]) with no
/// policy service and no TLS.
#[derive(Clone, Debug)]
pub struct PostfixConfig {
    /// Where smtpd listens (port 25), inside the namespace.
    pub listen: Ipv6Addr,
    /// `myhostname`, also the only local domain.
    pub hostname: String,
    /// `smtpd_recipient_restrictions`, e.g. `reject_unauth_destination, ` + [`CHECK_POLICY`].
    pub recipient_restrictions: String,
    /// `smtpd_data_restrictions` (evaluated once per message).
    pub data_restrictions: String,
    /// STARTTLS with a fresh server certificate, asking for client certificates.
    pub tls: Option<ServerTls>,
    /// Lines of a `regexp:` table used as `header_checks` (empty: none).
    pub header_checks: Vec<String>,
    /// Any further `main.cf` parameters, written last (they win).
    pub extra: Vec<(String, String)>,
}

impl Default for PostfixConfig {
    fn default() -> PostfixConfig {
        PostfixConfig {
            listen: "2001:db8:ffff::1".parse().unwrap(),
            hostname: "mx.example".into(),
            recipient_restrictions: "reject_unauth_destination".into(),
            data_restrictions: String::new(),
            tls: None,
            header_checks: Vec::new(),
            extra: Vec::new(),
        }
    }
}

/// Debian's master.cf services that matter here (smtpd chrooted as on
/// Debian, so the policy socket must live under the queue directory).
const MASTER_CF: &str = "\
smtp      inet  n       -       y       -       -       smtpd
pickup    unix  n       -       y       60      1       pickup
cleanup   unix  n       -       y       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       y       1000?   1       tlsmgr
rewrite   unix  -       -       y       -       -       trivial-rewrite
bounce    unix  -       -       y       -       0       bounce
defer     unix  -       -       y       -       0       bounce
trace     unix  -       -       y       -       0       bounce
verify    unix  -       -       y       -       1       verify
flush     unix  n       -       y       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       y       -       -       smtp
relay     unix  -       -       y       -       -       smtp
showq     unix  n       -       y       -       -       showq
error     unix  -       -       y       -       -       error
retry     unix  -       -       y       -       -       error
discard   unix  -       -       y       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       y       -       -       lmtp
anvil     unix  -       -       y       -       1       anvil
scache    unix  -       -       y       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
";

/// A Unix user to deliver to (`useradd -M`), removed on drop.
pub struct MailUser {
    pub name: String,
}

impl MailUser {
    pub fn create(name: &str) -> MailUser {
        retry_passwd(&["useradd", "-M", "-s", "/usr/sbin/nologin", name]);
        MailUser { name: name.into() }
    }
}

impl Drop for MailUser {
    fn drop(&mut self) {
        if !try_passwd(&["userdel", &self.name], 50) {
            eprintln!("cleanup: userdel {} failed", self.name);
        }
    }
}

/// useradd/userdel fail at once when another test holds /etc/passwd's lock:
/// retry for a while.
fn try_passwd(args: &[&str], tries: u32) -> bool {
    for _ in 0..tries {
        match Command::new(args[0]).args(&args[1..]).output() {
            Ok(o) if o.status.success() => return true,
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    false
}

/// Like `try_passwd`, and a last try that panics with the command's output.
fn retry_passwd(args: &[&str]) {
    if !try_passwd(args, 50) {
        crate::netns::sh(args);
    }
}

/// A running private Postfix. Drop stops it (see [`PostfixInstance::stop`]),
/// then removes the mail user and the directory.
pub struct PostfixInstance {
    pub config: PostfixConfig,
    /// The namespace it listens in (owned by the caller; drop this first).
    pub ns: String,
    pub user: MailUser,
    stopped: bool,
    // Last: removed after the processes are gone.
    dir: TmpDir,
}

impl PostfixInstance {
    /// Builds the instance's files and starts it inside `ns`, which must
    /// have `config.listen` on an interface. Panics with Postfix's own error
    /// when it does not start.
    pub fn start(ns: &NetNs, config: PostfixConfig) -> PostfixInstance {
        require_postfix();
        let dir = TmpDir::new("pf");
        let user = MailUser::create(&crate::unique("wgpf"));
        let pf = PostfixInstance {
            config,
            ns: ns.name.clone(),
            user,
            stopped: false,
            dir,
        };
        pf.write_files();
        let started = Instant::now();
        let out = ns
            .cmd(&["postfix", "-c", pf.etc().to_str().unwrap(), "start"])
            .output()
            .expect("run postfix start");
        if !out.status.success() {
            panic!(
                "postfix start failed ({}, dir= {} user= {}): {}{}\n{}",
                out.status,
                pf.dir().display(),
                pf.user.name,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                pf.diagnose()
            );
        }
        pf.wait_listening(Duration::from_secs(20));
        eprintln!(
            "postfix {} up in {:?} (ns {}, user {})",
            pf.dir.0.display(),
            started.elapsed(),
            pf.ns,
            pf.user.name
        );
        pf
    }

    /// The temporary directory holding etc/, queue/, data/, spool/, maillog.
    pub fn dir(&self) -> &Path {
        &self.dir.0
    }

    /// The configuration directory (`postfix -c` argument).
    pub fn etc(&self) -> PathBuf {
        self.dir().join("etc")
    }

    pub fn queue(&self) -> PathBuf {
        self.dir().join("queue")
    }

    /// `user+tag@hostname`: distinct recipients that all land in the test
    /// user's mailbox (`recipient_delimiter = +`).
    pub fn address(&self, tag: &str) -> String {
        format!("{}+{tag}@{}", self.user.name, self.config.hostname)
    }

    /// Where a policy server must listen: `QUEUE/private/NAME`.
    pub fn policy_socket(&self) -> PathBuf {
        self.queue().join(POLICY_SOCKET)
    }

    /// Binds the policy socket (replacing a stale one) and hands it to user
    /// `postfix`, which the chrooted smtpd connects as.
    pub fn bind_policy_socket(&self) -> std::os::unix::net::UnixListener {
        let path = self.policy_socket();
        let _ = std::fs::remove_file(&path);
        let l = std::os::unix::net::UnixListener::bind(&path)
            .unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
        crate::netns::sh(&["chown", "postfix:postfix", path.to_str().unwrap()]);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        l
    }

    /// Everything Postfix logged so far.
    pub fn maillog(&self) -> String {
        std::fs::read_to_string(self.dir().join("maillog")).unwrap_or_default()
    }

    /// Whether `needle` shows up in the maillog within `timeout`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if self.maillog().contains(needle) {
                return true;
            }
            if Instant::now() > end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The messages in the test user's mailbox now (none when it does not exist).
    pub fn messages(&self) -> Vec<Message> {
        let path = self.dir().join("spool").join(&self.user.name);
        match std::fs::read_to_string(&path) {
            Ok(text) => mailbox::parse_mbox(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("read {}: {e}", path.display()),
        }
    }

    /// Waits until at least `n` deliveries are complete (logged as
    /// `status=sent`, which local(8) does after writing the mailbox, so no
    /// message is read half-written) and returns the mailbox; panics with
    /// the maillog after `timeout`.
    pub fn wait_messages(&self, n: usize, timeout: Duration) -> Vec<Message> {
        let end = Instant::now() + timeout;
        while self.delivery_count() < n {
            assert!(
                Instant::now() < end,
                "{} of {n} messages delivered within {timeout:?}; maillog:\n{}",
                self.delivery_count(),
                self.maillog()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let m = self.messages();
        assert!(
            m.len() >= n,
            "{} messages in the mailbox, {n} logged as sent",
            m.len()
        );
        m
    }

    /// How many deliveries (`status=sent`) the maillog reports.
    pub fn delivery_count(&self) -> usize {
        self.maillog()
            .lines()
            .filter(|l| l.contains("status=sent"))
            .count()
    }

    fn write_files(&self) {
        let d = self.dir();
        for sub in ["etc", "queue", "data", "spool"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        crate::netns::sh(&["chown", "postfix:postfix", d.join("data").to_str().unwrap()]);
        std::fs::set_permissions(d.join("spool"), std::fs::Permissions::from_mode(0o1777)).unwrap();
        let etc = self.etc();
        std::fs::write(etc.join("master.cf"), MASTER_CF).unwrap();
        let c = &self.config;
        let mut main = vec![
            ("compatibility_level", "3.6".to_string()),
            ("queue_directory", path(&d.join("queue"))),
            ("data_directory", path(&d.join("data"))),
            ("mail_spool_directory", path(&d.join("spool"))),
            ("maillog_file", path(&d.join("maillog"))),
            ("maillog_file_prefixes", path(d)),
            ("inet_protocols", "ipv6".into()),
            ("inet_interfaces", c.listen.to_string()),
            ("myhostname", c.hostname.clone()),
            ("mydomain", c.hostname.clone()),
            ("myorigin", c.hostname.clone()),
            ("mydestination", c.hostname.clone()),
            // No relaying anywhere, no DNS, nothing leaves the machine.
            ("mynetworks", String::new()),
            ("relay_domains", String::new()),
            ("relayhost", String::new()),
            (
                "default_transport",
                "error:no relaying from a test instance".into(),
            ),
            (
                "relay_transport",
                "error:no relaying from a test instance".into(),
            ),
            (
                "smtpd_relay_restrictions",
                "reject_unauth_destination".into(),
            ),
            ("smtpd_peername_lookup", "no".into()),
            ("disable_dns_lookups", "yes".into()),
            ("smtp_dns_support_level", "disabled".into()),
            ("alias_maps", String::new()),
            ("alias_database", String::new()),
            ("local_recipient_maps", "proxy:unix:passwd.byname".into()),
            ("recipient_delimiter", "+".into()),
            ("biff", "no".into()),
            ("smtpd_banner", "$myhostname ESMTP wotgate test".into()),
            (
                "smtpd_recipient_restrictions",
                c.recipient_restrictions.clone(),
            ),
            ("smtpd_data_restrictions", c.data_restrictions.clone()),
        ];
        if !c.header_checks.is_empty() {
            let table = etc.join("header_checks");
            std::fs::write(&table, c.header_checks.join("\n") + "\n").unwrap();
            main.push(("header_checks", format!("regexp:{}", path(&table))));
        }
        if let Some(tls) = &c.tls {
            let cert = tls::TestCert::self_signed(&etc, "server", &c.hostname);
            main.extend([
                ("smtpd_tls_cert_file", path(&cert.cert)),
                ("smtpd_tls_key_file", path(&cert.key)),
                ("smtpd_tls_security_level", "may".into()),
                ("smtpd_tls_ask_ccert", "yes".into()),
                ("smtpd_tls_fingerprint_digest", "sha256".into()),
                ("smtpd_tls_loglevel", "1".into()),
                ("smtpd_tls_received_header", "yes".into()),
            ]);
            for (k, v) in [
                ("smtpd_tls_protocols", &tls.protocols),
                ("smtpd_tls_ciphers", &tls.ciphers),
                ("smtpd_tls_exclude_ciphers", &tls.exclude_ciphers),
            ] {
                if let Some(v) = v {
                    main.push((k, v.clone()));
                }
            }
        }
        let mut text =
            String::from("# Written by the wotgate test harness (tests/src/postfix.rs).\n");
        for (k, v) in main
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .chain(c.extra.iter().cloned())
        {
            text.push_str(&format!("{k} = {v}\n"));
        }
        std::fs::write(etc.join("main.cf"), text).unwrap();
    }

    fn master_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.queue().join("pid/master.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Waits until the master process (it binds the SMTP socket itself)
    /// listens on port 25, read from its own namespace's /proc/PID/net/tcp6.
    fn wait_listening(&self, timeout: Duration) {
        let end = Instant::now() + timeout;
        loop {
            if let Some(pid) = self.master_pid() {
                let tcp6 =
                    std::fs::read_to_string(format!("/proc/{pid}/net/tcp6")).unwrap_or_default();
                // local_address:port ... st 0A = LISTEN
                if tcp6.lines().skip(1).any(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    f.len() > 3 && f[1].ends_with(":0019") && f[3] == "0A"
                }) {
                    return;
                }
            }
            assert!(
                Instant::now() < end,
                "postfix does not listen on port 25 after {timeout:?}\n{}",
                self.diagnose()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Rewrites main.cf (and header_checks, and a new server certificate)
    /// from `config` and runs `postfix reload`; new SMTP sessions get the
    /// new settings. `listen` and `hostname` must stay.
    pub fn reconfigure(&mut self, config: PostfixConfig) {
        assert_eq!(
            config.listen, self.config.listen,
            "listen address cannot change"
        );
        assert_eq!(
            config.hostname, self.config.hostname,
            "hostname cannot change"
        );
        self.config = config;
        self.write_files();
        let reloads = self.maillog().matches("reload -- version").count();
        let out = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.ns))
            .args(["postfix", "-c", &path(&self.etc()), "reload"])
            .output()
            .expect("run postfix reload");
        assert!(
            out.status.success(),
            "postfix reload failed\n{}",
            self.diagnose()
        );
        let end = Instant::now() + Duration::from_secs(10);
        while self.maillog().matches("reload -- version").count() == reloads {
            assert!(
                Instant::now() < end,
                "no reload in the maillog\n{}",
                self.diagnose()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Postfix's own account of what is wrong: `postfix check` on a
    /// terminal (without one, and without syslog, its errors vanish) and
    /// the maillog.
    pub fn diagnose(&self) -> String {
        let check = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.ns))
            .args([
                "script",
                "-qec",
                &format!("postfix -c {} check", path(&self.etc())),
                "/dev/null",
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_else(|e| format!("cannot run script: {e}"));
        format!(
            "postfix check says:\n{check}\nmaillog:\n{}\nmain.cf:\n{}",
            self.maillog(),
            std::fs::read_to_string(self.etc().join("main.cf")).unwrap_or_default()
        )
    }

    /// Stops the instance (also done on drop): SIGTERM to the master, as
    /// `postfix stop` does (the master ends its children; `postfix stop`
    /// itself would sleep a second and check inet_interfaces), then SIGKILL
    /// for every process still running with this configuration.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let etc = self.etc();
        let mine = processes_of(&etc);
        if let Some(pid) = self.master_pid().filter(|p| mine.contains(p)) {
            // SAFETY: kill(2) on this instance's master.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let end = Instant::now() + Duration::from_secs(5);
        while !processes_of(&etc).is_empty() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        let leftovers = processes_of(&etc);
        for pid in &leftovers {
            // SAFETY: kill(2) on processes of this instance only.
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
        if !leftovers.is_empty() {
            eprintln!("postfix {}: killed leftovers {leftovers:?}", etc.display());
        }
    }
}

impl Drop for PostfixInstance {
    fn drop(&mut self) {
        self.stop();
    }
}

fn path(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_string()
}

/// Whether `pid` exists and is not a zombie.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Live processes of the instance with configuration directory `etc`
/// (Postfix passes `MAIL_CONFIG` to every process it starts).
pub fn processes_of(etc: &Path) -> Vec<i32> {
    processes_with_env(&format!("MAIL_CONFIG={}", path(etc)))
}

/// Live processes whose environment holds exactly `entry`.
fn processes_with_env(entry: &str) -> Vec<i32> {
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) {
            if env.split(|b| *b == 0).any(|v| v == entry.as_bytes()) && alive(pid) {
                found.push(pid);
            }
        }
    }
    found
}
