//! A small web of trust served by the real daemon on a veth pair, for daemon-level tests:
//! the world, the pins, the SMTP listener and the config, with the checks those tests share.

use std::{
    net::SocketAddr,
    path::PathBuf,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    daemon::{
        kernel_set, loaded_count, refreshes, scrape, value, wait_scrape, Cleanup, DaemonProc,
        METRICS,
    },
    netns::{connect, Listener, Pair},
    require_kernel, unique,
    world::World,
    wotgate_bin,
};

/// The SMTP server the gate protects.
pub const SERVER: &str = "[2001:db8:ffff::1]:25";
/// alpha's client address: trusted at depth 1.
pub const ALPHA: &str = "2001:db8:a::10";
/// beta's client address: trusted at depth 2.
pub const BETA: &str = "2001:db8:b::10";
/// eve's client address: never trusted.
pub const EVE: &str = "2001:db8:e::10";

/// A world (keys, statements, config), a veth pair, the SMTP listener,
/// the pins; everything removed on drop (the daemon is dropped first: tests
/// declare it after this).
pub struct WorldDaemon {
    pub pair: Pair,
    pub config: PathBuf,
    pub log: PathBuf,
    pub pin: PathBuf,
    _smtp: Listener,
    _cleanup: Cleanup,
    pub world: World,
}

impl WorldDaemon {
    /// `gate_extra`: more `[gate]` lines (e.g. `static_prefixes`), `{dir}`
    /// standing for the world's directory.
    pub fn new(tag: &str, gate_extra: &str) -> WorldDaemon {
        require_kernel();
        let bin = wotgate_bin();
        let world = World::create(
            &std::env::temp_dir().join(format!("wotgate-dfault-{}", unique(tag))),
            &bin,
        );
        let clients: Vec<&str> = world.parties.iter().map(|p| p.client).collect();
        let pair = Pair::new(tag, &clients);
        let pin = PathBuf::from(format!("/sys/fs/bpf/wotgate-test-{}", unique(tag)));
        let cleanup = Cleanup {
            pin: pin.clone(),
            dir: None,
        };
        let smtp = Listener::start(&pair.server.name, 25);
        let config = world.dir.join("daemon.toml");
        std::fs::write(
            &config,
            format!(
                "{}\n[gate]\ninterfaces = [\"{}\"]\npin_directory = \"{}\"\n{gate_extra}\n[daemon]\nrefresh_interval = \"1h\"\nmax_plan_age = \"2h\"\n[metrics]\nlisten = \"{METRICS}\"\n",
                std::fs::read_to_string(&world.config).unwrap(),
                pair.server_if,
                pin.display(),
                gate_extra = gate_extra.replace("{dir}", &world.dir.display().to_string()),
            ),
        )
        .unwrap();
        std::fs::create_dir_all(world.dir.join("state")).unwrap();
        WorldDaemon {
            log: world.dir.join("daemon.log"),
            config,
            pin,
            pair,
            _smtp: smtp,
            _cleanup: cleanup,
            world,
        }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.world.dir.join("state")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn ns(&self) -> &str {
        &self.pair.server.name
    }

    pub fn admitted(&self, client: &str) -> bool {
        connect(
            &self.pair.client.name,
            client.parse().unwrap(),
            SERVER.parse::<SocketAddr>().unwrap(),
            Duration::from_millis(1000),
        )
        .is_ok()
    }

    /// Asserts who connects: alpha always; beta when `beta`; eve never.
    pub fn expect_peers(&self, when: &str, beta: bool) {
        for (client, name, want) in [
            (ALPHA, "alpha", true),
            (BETA, "beta", beta),
            (EVE, "eve", false),
        ] {
            assert_eq!(
                self.admitted(client),
                want,
                "{when}: {name} ({client}) should {}connect\ndaemon log:\n{}",
                if want { "" } else { "not " },
                self.log_text()
            );
        }
    }

    /// Polls `status` (through `d`'s namespaces) until `cond` holds (at most 90 s).
    pub fn wait_status(&self, d: &DaemonProc, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
        let end = Instant::now() + Duration::from_secs(90);
        loop {
            let v = d.status(&self.config);
            if cond(&v) {
                return v;
            }
            assert!(
                Instant::now() < end,
                "waiting for {what}; last status {v:#}\ndaemon log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the daemon and waits for its first plan.
    pub fn start(&self, mounts: Option<&str>) -> DaemonProc {
        let d = DaemonProc::start_with_mounts(&self.pair.server, &self.config, &self.log, mounts);
        let pid = d.pid();
        let v = self.wait_status(&d, "the first plan", |v| {
            v["status"]["pid"] == pid && loaded_count(v) >= 1 && v["kernel_equals_plan"] == true
        });
        assert_eq!(v["status"]["last_refresh"]["outcome"], "loaded", "{v:#}");
        wait_scrape(self.ns(), &self.log, "the metrics endpoint", |t| {
            value(t, "wotgate_kernel_matches_plan") == Some(1.0)
        });
        d
    }

    /// SIGHUP with a writable state directory again: the status file and
    /// the last good plan catch up (the file counts every loaded refresh the
    /// metrics count) and the kernel set is `v0`'s again.
    pub fn caught_up(&self, d: &DaemonProc, v0: &Value) {
        let text = self.sighup(d);
        let ok = counter(&text, "wotgate_refresh_total{result=\"ok\"}");
        let v = self.wait_status(d, "the status file catching up", |v| {
            loaded_count(v) as f64 == ok
        });
        assert_eq!(v["kernel_equals_plan"], true, "{v:#}");
        assert_eq!(v["plan"], v0["plan"], "{v:#}");
        assert_eq!(kernel_set(&v), kernel_set(v0), "{v:#}");
        assert_eq!(
            value(&scrape(self.ns(), &self.log), "wotgate_kernel_matches_plan"),
            Some(1.0)
        );
    }

    /// SIGHUP, then waits until the metrics count one more refresh; the scrape.
    pub fn sighup(&self, d: &DaemonProc) -> String {
        let before = refreshes(&scrape(self.ns(), &self.log));
        d.signal(libc::SIGHUP);
        wait_scrape(self.ns(), &self.log, "the SIGHUP refresh", |t| {
            refreshes(t) > before
        })
    }
}

/// A counter from a scrape, 0 when absent.
pub fn counter(text: &str, series: &str) -> f64 {
    value(text, series).unwrap_or(0.0)
}
