//! `wotgate attach`: load and pin the gate on first use, attach it to an
//! interface, set the gate-wide settings.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use ipnet::Ipv6Net;
use wotgate::gate::{
    attach::{XdpMode, SKB_WARNING},
    Gate, Settings,
};
use wotgate::model::prefixes::parse_prefix;

/// Attach the gate to an interface (loads and pins it on first use).
#[derive(clap::Args)]
pub struct Attach {
    /// Interface to gate.
    #[arg(long)]
    iface: String,
    /// How the program hooks into the interface: native (in the driver) or
    /// skb (generic XDP: slow, for drivers without native XDP).
    #[arg(long, default_value = "native", value_parser = xdp_mode_parser())]
    xdp_mode: XdpMode,
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

/// `--xdp-mode`: the library's modes, listed in the help.
fn xdp_mode_parser() -> impl clap::builder::TypedValueParser<Value = XdpMode> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(XdpMode::ALL.map(XdpMode::as_str))
        .map(|s| s.parse::<XdpMode>().expect("a listed mode parses"))
}

fn parse_prefix_arg(s: &str) -> Result<Ipv6Net, String> {
    parse_prefix(s)
}

impl Attach {
    pub fn run(self, pin_dir: &Path) -> Result<ExitCode> {
        if self.xdp_mode == XdpMode::Skb {
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
        let a = gate.attach(&self.iface, self.xdp_mode)?;
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
