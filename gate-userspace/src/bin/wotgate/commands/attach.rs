//! `wotgate attach`: load and pin the gate on first use, optionally load its
//! first trusted set, change the gate-wide settings named, attach.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use ipnet::Ipv6Net;
use wotgate::apply::LoadGuard;
use wotgate::gate::{
    attach::{check_iface, Attachment, XdpMode, SKB_WARNING},
    compile::Capacity,
    purge_if_unattached, Gate, GateError, Settings, SettingsUpdate,
};
use wotgate::model::{
    config::DEFAULT_MAX_SHRINK_PERCENT,
    prefixes::{parse_prefix, PrefixSet},
};

/// Attach the gate to an interface (loads and pins it on first use).
///
/// On a pinned gate whose program is not this build's (after installing a
/// new wotgate), attach first replaces the program in place, as `wotgate
/// upgrade` does: atomic link updates, maps and trusted set kept, no
/// detach; a build whose maps do not fit the pinned ones is refused and
/// the old program keeps running.
///
/// Settings are shared by every gated interface and kept across attaches:
/// only the flags given change them (a new gate starts with port 25, every
/// destination, enforce). Enforcing with a trusted set that trusts nobody
/// drops every SYN to the protected ports, so attach refuses it unless
/// --allow-empty-set is given: start a new gate with --prefixes FILE, or
/// roll out with --observe, load the plan (wotgate plan --load), then
/// attach again with --enforce.
#[derive(clap::Args)]
#[command(after_help = "Examples:
  wotgate attach --iface eth0 --observe                     # roll out: count, drop nothing
  wotgate plan --config /etc/wotgate/wotgate.toml --load    # load the trusted set
  wotgate attach --iface eth0 --enforce                     # then enforce
  wotgate attach --iface eth0 --prefixes trusted.prefixes   # a new gate, enforcing at once
  wotgate attach --iface eth0 --port 25 --port 587 --protect 2001:db8:25::/64
  wotgate attach --iface eth1                               # one more interface, same settings")]
pub struct Attach {
    /// Interface to gate (in this network namespace; not loopback).
    #[arg(long)]
    iface: String,
    /// How the program hooks into the interface: native (in the driver) or
    /// skb (generic XDP: slow, for drivers without native XDP).
    #[arg(long, default_value = "native", value_parser = xdp_mode_parser())]
    xdp_mode: XdpMode,
    /// Count what would be dropped, drop nothing (safe roll-out). Kept until --enforce.
    #[arg(long, conflicts_with = "enforce")]
    observe: bool,
    /// Drop what the trusted set does not admit (undoes --observe).
    #[arg(long)]
    enforce: bool,
    /// Protected TCP port (repeatable, at most 8); replaces the current
    /// ports [default on a new gate: 25].
    #[arg(long = "port", value_name = "PORT")]
    ports: Vec<u16>,
    /// Only gate SYNs to these IPv6 destination prefixes (repeatable);
    /// IPv4 SYNs then pass. Replaces the current list [default on a new
    /// gate: every destination on the interface].
    #[arg(long = "protect", value_name = "PREFIX", value_parser = parse_prefix_arg, conflicts_with = "protect_all")]
    protect: Vec<Ipv6Net>,
    /// Gate SYNs to every destination on the interface again (undoes --protect).
    #[arg(long)]
    protect_all: bool,
    /// Load this prefix file (`allow|deny PREFIX [label]` lines, as for
    /// `prefixes load`) as the trusted set before attaching: how a new gate
    /// enforces from its first packet.
    #[arg(long, value_name = "FILE")]
    prefixes: Option<PathBuf>,
    /// Enforce even when the trusted set trusts nobody (empty, or deny
    /// entries only): every SYN to a protected port is then dropped.
    #[arg(long)]
    allow_empty_set: bool,
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
    /// The settings the flags name; the rest keep their current values.
    fn update(&self) -> SettingsUpdate {
        SettingsUpdate {
            ports: (!self.ports.is_empty()).then(|| self.ports.clone()),
            observe: match (self.observe, self.enforce) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            },
            protect: if self.protect_all {
                Some(Vec::new())
            } else {
                (!self.protect.is_empty()).then(|| self.protect.clone())
            },
        }
    }

    pub fn run(self, pin_dir: &Path) -> Result<ExitCode> {
        if self.xdp_mode == XdpMode::Skb {
            errln!("warning: {SKB_WARNING}");
        }
        // Everything that can refuse does so before anything is pinned or changed.
        check_iface(&self.iface)?;
        let new_set = match &self.prefixes {
            Some(f) => Some(PrefixSet::load(f)?),
            None => None,
        };
        let (mut gate, created) = match Gate::open(pin_dir) {
            Ok(gate) => {
                // The running program becomes this build's before anything
                // else changes (nothing at all when it is already).
                let u = gate.upgrade(true)?;
                if !u.unchanged {
                    outln!("{}", super::upgrade::describe(&u));
                }
                (gate, false)
            }
            Err(GateError::NotPinned(_)) => {
                // A new gate: judge against the defaults before pinning anything.
                self.decide(&Settings::default(), &PrefixSet::new(), new_set.as_ref())?;
                // The compiled lookup sized for the first set with room to
                // double (never below the default); a larger set later is
                // looked up in the LPM trie (see docs/datapath.md).
                let capacity = match &new_set {
                    Some(set) => Capacity::for_set(set, 1.0).at_least(&Capacity::default()),
                    None => Capacity::default(),
                };
                (Gate::create_with(pin_dir, &capacity)?, true)
            }
            Err(e) => return Err(e.into()),
        };
        let done = self.change(&mut gate, new_set.as_ref());
        drop(gate);
        let (settings, cut_off, said, a, shared_with) = match done {
            Ok(done) => done,
            Err(e) if created => {
                // A gate made for this attach and not attached: not left behind.
                if let Err(p) = purge_if_unattached(pin_dir) {
                    errln!("wotgate: could not remove the gate made for this attach: {p}");
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        if let Some(others) = shared_with {
            errln!(
                "warning: settings are shared by every gated interface; this also changes them on {others}"
            );
        }
        for line in said {
            outln!("{line}");
        }
        outln!(
            "gate attached to {} ({} mode, link {}, program {}), {} mode, ports {:?}",
            a.iface,
            a.mode,
            a.link_id.map_or("?".into(), |i| i.to_string()),
            a.program_id.map_or("?".into(), |i| i.to_string()),
            settings.mode_str(),
            settings.ports
        );
        if cut_off {
            errln!(
                "warning: the trusted set trusts nobody: every SYN to port {} is dropped until you load one (wotgate prefixes load FILE)",
                ports_text(&settings.ports)
            );
        }
        Ok(ExitCode::SUCCESS)
    }

    /// The kernel work, under the lock: load the set, change the settings,
    /// attach. Returns what to say, said after the lock is released.
    fn change(&self, gate: &mut Gate, new_set: Option<&PrefixSet>) -> Result<Changed> {
        let mut said = Vec::new();
        let mut gate = gate.lock()?;
        let current = gate.settings()?;
        let before = gate.active_set()?;
        let (settings, cut_off) = self.decide(&current, &before, new_set)?;
        if let (Some(set), Some(file)) = (new_set, &self.prefixes) {
            let r = gate
                .load_set(set)
                .with_context(|| format!("loading {}", file.display()))?;
            said.push(format!(
                "loaded {} entries ({} labels) from {} as generation {}",
                r.entries,
                r.labels,
                file.display(),
                r.generation
            ));
        }
        let changes = current.changes_to(&settings);
        let mut shared_with = None;
        if !changes.is_empty() {
            let others: Vec<String> = gate
                .attachments()?
                .into_iter()
                .filter(|a| a.iface != self.iface && a.live)
                .map(|a| a.iface)
                .collect();
            if !others.is_empty() {
                shared_with = Some(others.join(", "));
            }
            gate.set_settings(&settings)?;
            said.push(format!("settings changed: {}", changes.join("; ")));
        }
        let a = gate.attach(&self.iface, self.xdp_mode)?;
        Ok((settings, cut_off, said, a, shared_with))
    }

    /// The settings to apply and whether they cut everyone off, given the
    /// current settings and set; refuses what must not happen (invalid
    /// settings, a set the load guard refuses, enforcing a set that trusts
    /// nobody without --allow-empty-set).
    fn decide(
        &self,
        current: &Settings,
        before: &PrefixSet,
        new_set: Option<&PrefixSet>,
    ) -> Result<(Settings, bool)> {
        let settings = self.update().apply_to(current);
        settings.validate()?;
        if let Some(set) = new_set {
            let guard = LoadGuard {
                max_shrink_percent: DEFAULT_MAX_SHRINK_PERCENT,
                force: false,
            };
            guard.check(before, set).with_context(|| {
                format!(
                    "--prefixes {} (to load it anyway: `wotgate prefixes load --force FILE`)",
                    self.prefixes.as_deref().unwrap_or(Path::new("")).display()
                )
            })?;
        }
        let cut_off = settings.cuts_off_everyone(new_set.unwrap_or(before));
        if cut_off && !self.allow_empty_set {
            bail!(
                "refusing to enforce with a trusted set that trusts nobody: every SYN to port {} would be dropped. \
                 Load a set first: `wotgate attach --iface {} --prefixes FILE`, or on a pinned gate \
                 `wotgate prefixes load FILE` or `wotgate plan --config FILE --load`; or attach with --observe; \
                 or pass --allow-empty-set to cut that mail off on purpose. Nothing was changed.",
                ports_text(&settings.ports),
                self.iface
            );
        }
        Ok((settings, cut_off))
    }
}

/// What [`Attach::change`] did: the settings, whether they cut everyone
/// off, lines to print, the attachment, other interfaces sharing the settings.
type Changed = (Settings, bool, Vec<String>, Attachment, Option<String>);

fn ports_text(ports: &[u16]) -> String {
    let p: Vec<String> = ports.iter().map(u16::to_string).collect();
    p.join(", ")
}
