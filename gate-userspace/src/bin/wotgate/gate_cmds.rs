//! The gate's operator commands: attach, detach, prefixes load, inspect,
//! check and replay. Each works from the pins alone; no daemon needed.

use std::{net::Ipv6Addr, path::Path, path::PathBuf, process::ExitCode};

use anyhow::{bail, Context, Result};
use ipnet::Ipv6Net;
use wotgate::gate::{
    attach::{Mode, SKB_WARNING},
    prefixes::{parse_prefix, PrefixSet},
    replay::{action_str, read_pcap},
    Gate, Settings,
};

/// Attach the gate to an interface (loads and pins it on first use).
#[derive(clap::Args)]
pub struct Attach {
    /// Interface to gate.
    #[arg(long)]
    iface: String,
    /// native (driver) XDP, or generic skb mode (slow; explicit choice only).
    #[arg(long, value_enum, default_value = "native")]
    mode: Mode,
    /// Count what would be dropped, drop nothing (safe roll-out).
    #[arg(long)]
    observe: bool,
    /// Protected TCP port (repeatable, at most 8; default 25).
    #[arg(long = "port")]
    ports: Vec<u16>,
    /// Only gate SYNs to these IPv6 destination prefixes (repeatable);
    /// IPv4 SYNs then pass. Default: every destination on the interface.
    #[arg(long = "protect", value_parser = parse_prefix_arg)]
    protect: Vec<Ipv6Net>,
}

fn parse_prefix_arg(s: &str) -> Result<Ipv6Net, String> {
    parse_prefix(s)
}

impl Attach {
    pub fn run(self, pin_dir: &Path) -> Result<ExitCode> {
        if self.mode == Mode::Skb {
            eprintln!("warning: {SKB_WARNING}");
        }
        // Refuse a wrong interface before pinning anything.
        wotgate::gate::attach::check_iface(&self.iface)?;
        let mut gate = Gate::create(pin_dir)?;
        let settings = Settings {
            ports: if self.ports.is_empty() {
                vec![gate_common::DEFAULT_PORT]
            } else {
                self.ports
            },
            observe: self.observe,
            protect: self.protect,
        };
        let others: Vec<String> = gate
            .attachments()?
            .into_iter()
            .filter(|a| a.iface != self.iface && a.live)
            .map(|a| a.iface)
            .collect();
        let old = gate.settings()?;
        if !others.is_empty() && old != settings {
            eprintln!(
                "warning: settings are shared by every gated interface; this also changes them on {}",
                others.join(", ")
            );
        }
        gate.set_settings(&settings)?;
        let a = gate.attach(&self.iface, self.mode)?;
        println!(
            "gate attached to {} ({} mode, link {}, program {}), {} mode, ports {:?}",
            a.iface,
            a.mode.as_str(),
            a.link_id.map_or("?".into(), |i| i.to_string()),
            a.program_id.map_or("?".into(), |i| i.to_string()),
            if settings.observe {
                "observe"
            } else {
                "enforce"
            },
            settings.ports
        );
        if gate.active_set()?.is_empty() && !settings.observe {
            eprintln!("note: the trusted set is empty: every SYN to a protected port is dropped until you load one (wotgate prefixes load FILE)");
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Detach the gate from an interface (the pinned set stays).
#[derive(clap::Args)]
pub struct Detach {
    #[arg(long)]
    iface: String,
    /// Also remove the program and maps when no interface is left.
    #[arg(long)]
    purge: bool,
}

impl Detach {
    pub fn run(self, pin_dir: &Path) -> Result<ExitCode> {
        let gate = Gate::open(pin_dir)?;
        let found = gate.detach(&self.iface)?;
        let left = gate.attachments()?;
        drop(gate);
        if !found {
            bail!(
                "the gate is not attached to {} (see wotgate inspect)",
                self.iface
            );
        }
        println!("detached from {}", self.iface);
        if self.purge && left.is_empty() {
            wotgate::gate::purge(pin_dir)?;
            println!("removed {}", pin_dir.display());
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Manage the trusted set.
#[derive(clap::Subcommand)]
pub enum Prefixes {
    /// Replace the trusted set from a file of `allow|deny PREFIX [label]`
    /// lines. An invalid file changes nothing.
    Load {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Print the active set in prefix-file format.
    Show,
}

impl Prefixes {
    pub fn run(self, pin_dir: &Path) -> Result<ExitCode> {
        match self {
            Prefixes::Load { file, json } => {
                let set = PrefixSet::load(&file)?;
                let mut gate = Gate::open(pin_dir)?;
                let r = gate
                    .load_set(&set)
                    .with_context(|| format!("loading {}", file.display()))?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&r)?);
                } else {
                    println!(
                        "loaded {} entries ({} labels) as generation {} in trie {}: cleared {} old entries in {:.3}s, filled in {:.3}s, checked in {:.3}s",
                        r.entries, r.labels, r.generation, r.trie, r.cleared,
                        r.clear_time.as_secs_f64(), r.fill_time.as_secs_f64(), r.check_time.as_secs_f64()
                    );
                }
            }
            Prefixes::Show => print!("{}", Gate::open(pin_dir)?.active_set()?.to_file_text()),
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Show what is loaded and what the gate has done.
#[derive(clap::Args)]
pub struct Inspect {
    #[arg(long)]
    json: bool,
}

impl Inspect {
    pub fn run(self, pin_dir: &Path) -> Result<ExitCode> {
        let st = Gate::open(pin_dir)?.status()?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&st)?);
        } else {
            print!("{}", st.to_text());
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Which entry matches an address and what a SYN from it would get.
#[derive(clap::Args)]
pub struct Check {
    addr: Ipv6Addr,
    #[arg(long)]
    json: bool,
}

impl Check {
    pub fn run(self, pin_dir: &Path) -> Result<ExitCode> {
        let r = Gate::open(pin_dir)?.check(self.addr)?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&r)?);
            return Ok(ExitCode::SUCCESS);
        }
        match &r.entry {
            Some(e) => println!(
                "{}: matches {} {} {}",
                r.address, e.verdict, e.prefix, e.label
            ),
            None => println!("{}: no entry matches (untrusted)", r.address),
        }
        for p in &r.ports {
            println!(
                "  SYN to [{}]:{} -> {} ({})",
                p.destination,
                p.port,
                action_str(p.outcome.action),
                p.outcome.reason.name()
            );
        }
        println!("verdict: {}", r.verdict);
        Ok(ExitCode::SUCCESS)
    }
}

/// Run a capture through the loaded program and show each verdict.
#[derive(clap::Args)]
pub struct Replay {
    file: PathBuf,
    #[arg(long)]
    json: bool,
}

impl Replay {
    pub fn run(self, pin_dir: &Path) -> Result<ExitCode> {
        let frames = read_pcap(&self.file)?;
        let gate = Gate::open(pin_dir)?;
        let mut runner = gate.runner()?;
        let mut totals: std::collections::BTreeMap<&'static str, u64> = Default::default();
        let mut rows = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let o = runner.run(f).with_context(|| format!("packet {}", i + 1))?;
            *totals.entry(o.reason.name()).or_default() += 1;
            *totals.entry(action_str(o.action)).or_default() += 1;
            if self.json {
                rows.push(serde_json::json!({"packet": i + 1, "len": f.len(), "action": action_str(o.action), "reason": o.reason.name()}));
            } else {
                println!(
                    "{:6} {:4} {:5} {}",
                    i + 1,
                    f.len(),
                    action_str(o.action),
                    o.reason.name()
                );
            }
        }
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({"packets": rows, "totals": totals})
                )?
            );
        } else {
            println!("total {} packets", frames.len());
            for (k, v) in &totals {
                println!("  {k:20} {v}");
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
