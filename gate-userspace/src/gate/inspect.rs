//! Everything an operator needs to see about the gate, read from the pins
//! alone: attachments, settings, the active set with labels, counters.

use std::{
    fmt::Write,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use gate_common::lookup::{HDR_SHORT, HDR_VALID};

use super::{
    attach::Attachment,
    compile::Capacity,
    replay::{syn_frame, Outcome, XDP_DROP},
    Gate, Result, Settings,
};
use crate::model::prefixes::{PrefixEntry, Verdict};

/// The compiled lookup of the active half: in use, or the LPM trie answers
/// because the set did not fit the arrays sized when the gate was created.
#[derive(Debug, serde::Serialize)]
pub struct LookupStatus {
    /// `compiled`, `trie`, or `none` (nothing loaded since the gate was
    /// created: every gated SYN is untrusted).
    pub kind: &'static str,
    /// Prefixes shorter than /32 are present (a miss also asks the trie).
    pub short_prefixes: bool,
    /// In use in the active copy.
    pub groups: u32,
    pub lists: u32,
    pub nodes: u32,
    pub leaf_words: u32,
    /// Elements of each array of one copy, and its kernel memory.
    pub capacity: Capacity,
    pub bytes_per_copy: u64,
    /// Where the active half keeps its set: `records` (the tries then hold
    /// only its prefixes shorter than /32) or `tries`.
    pub kept_in: &'static str,
    /// Kernel memory of one half's record.
    pub bytes_per_record: u64,
}

#[derive(Debug, serde::Serialize)]
pub struct Status {
    pub pin_dir: String,
    pub program_id: Option<u64>,
    /// Whether this program was JIT-compiled (from the kernel).
    pub jited: Option<bool>,
    /// The `net.core.bpf_jit_enable` sysctl.
    pub jit_enabled: Option<bool>,
    pub mode: &'static str,
    pub settings: Settings,
    pub attachments: Vec<Attachment>,
    pub active_trie: usize,
    pub generation: u64,
    /// Entries in trie 0 and trie 1 (between updates both hold the same set).
    pub trie_entries: [u64; 2],
    /// The update the pinned journal says is under way (or was, when its
    /// writer died: the next load repairs the pair), if any.
    pub update_under_way: Option<String>,
    pub loaded_at: u64,
    /// What the datapath looks the active set up in.
    pub lookup: LookupStatus,
    pub entries: Vec<PrefixEntry>,
    pub counters: Vec<(String, u64)>,
}

impl Gate {
    pub fn status(&self) -> Result<Status> {
        let (program_id, jited) = self.program_info()?;
        let settings = self.settings()?;
        // While an update is enforced ahead of its trie, the datapath reads
        // the new set's copy (`active_trie`, `lookup`) and the set shown is
        // the previous one, intact in the other half (`update_under_way`).
        let set = self.settled(|g, trie, _| g.read_set(trie))?;
        let (active, meta) = (set.selector, set.meta);
        Ok(Status {
            pin_dir: self.pin_dir.display().to_string(),
            program_id,
            jited,
            jit_enabled: super::sys::jit_enabled(),
            mode: settings.mode_str(),
            settings,
            attachments: self.attachments()?,
            active_trie: active,
            generation: meta.generation[set.trie],
            trie_entries: meta.entries,
            update_under_way: (meta.journal.state != gate_common::JOURNAL_IDLE)
                .then(|| super::swap::journal_text(&meta.journal)),
            loaded_at: meta.loaded_at[set.trie],
            lookup: self.lookup_status(active, meta.generation[set.trie])?,
            entries: set.value.iter().cloned().collect(),
            counters: self
                .counters()?
                .into_iter()
                .map(|(r, n)| (r.name().to_string(), n))
                .collect(),
        })
    }
}

impl Gate {
    fn lookup_status(&self, active: usize, generation: u64) -> Result<LookupStatus> {
        let h = self.lookup_header(active)?;
        let capacity = self.lookup_capacity()?;
        Ok(LookupStatus {
            kind: if h.flags & HDR_VALID != 0 {
                "compiled"
            } else if generation == 0 {
                "none"
            } else {
                "trie"
            },
            short_prefixes: h.flags & HDR_SHORT != 0,
            groups: h.groups,
            lists: h.lists,
            nodes: h.nodes,
            leaf_words: h.leaf_words,
            bytes_per_copy: capacity.bytes(),
            kept_in: if self.set_in_record(active)? {
                "records"
            } else {
                "tries"
            },
            bytes_per_record: capacity.record_bytes(),
            capacity,
        })
    }
}

impl Status {
    /// The human-readable report `inspect` prints.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        self.write_program(&mut s);
        self.write_settings(&mut s);
        self.write_attachments(&mut s);
        self.write_set(&mut s);
        let _ = writeln!(s, "counters");
        for (name, n) in &self.counters {
            let _ = writeln!(s, "  {name:20} {n}");
        }
        s
    }

    fn write_program(&self, s: &mut String) {
        let yn = |b: Option<bool>| match b {
            Some(true) => "yes",
            Some(false) => "no",
            None => "unknown",
        };
        let _ = writeln!(s, "pin dir      {}", self.pin_dir);
        let _ = writeln!(
            s,
            "program      id {} jited {}{}",
            self.program_id.map_or("?".into(), |i| i.to_string()),
            yn(self.jited),
            match self.jit_enabled {
                Some(on) => format!(" (net.core.bpf_jit_enable: {})", yn(Some(on))),
                None => String::new(),
            }
        );
    }

    fn write_settings(&self, s: &mut String) {
        let _ = writeln!(s, "mode         {}", self.mode);
        let ports: Vec<String> = self.settings.ports.iter().map(|p| p.to_string()).collect();
        let _ = writeln!(s, "ports        {}", ports.join(", "));
        if self.settings.protect.is_empty() {
            let _ = writeln!(
                s,
                "protects     every destination on the attached interfaces"
            );
        } else {
            let p: Vec<String> = self
                .settings
                .protect
                .iter()
                .map(|p| p.to_string())
                .collect();
            let _ = writeln!(s, "protects     {} (IPv4 passes)", p.join(", "));
        }
    }

    fn write_attachments(&self, s: &mut String) {
        if self.attachments.is_empty() {
            let _ = writeln!(s, "attached     nowhere");
        }
        for a in &self.attachments {
            let _ = writeln!(
                s,
                "attached     {} mode {} link {} program {}{}",
                a.iface,
                a.mode.as_str(),
                a.link_id.map_or("?".into(), |i| i.to_string()),
                a.program_id.map_or("?".into(), |i| i.to_string()),
                match (a.live, a.attached()) {
                    (true, _) => "",
                    (false, true) => " (on an interface of another network namespace)",
                    (false, false) => " (interface gone: link defunct)",
                }
            );
        }
    }

    fn write_set(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "trusted set  generation {} in trie {} ({} entries; other trie {})",
            self.generation,
            self.active_trie,
            self.trie_entries[self.active_trie],
            self.trie_entries[1 - self.active_trie]
        );
        let l = &self.lookup;
        if l.kind == "compiled" {
            let _ = writeln!(
                s,
                "lookup       compiled: {} /32 groups, {}/{} list entries, {}/{} trie nodes, {}/{} leaf words{}; {:.1} MB a copy, 2 copies",
                l.groups,
                l.lists,
                l.capacity.lists,
                l.nodes,
                l.capacity.nodes,
                l.leaf_words,
                l.capacity.leaf_words,
                if l.short_prefixes { "; prefixes shorter than /32: misses also ask the LPM trie" } else { "" },
                l.bytes_per_copy as f64 / 1e6
            );
        } else if l.kind == "none" {
            let _ = writeln!(
                s,
                "lookup       nothing loaded yet ({:.1} MB a copy, 2 copies)",
                l.bytes_per_copy as f64 / 1e6
            );
        } else {
            let _ = writeln!(
                s,
                "lookup       LPM trie (slower): the set does not fit the compiled lookup sized when the gate was created ({:.1} MB a copy); `wotgate detach --purge` and a new attach or daemon start size it for the set",
                l.bytes_per_copy as f64 / 1e6
            );
        }
        let _ = writeln!(
            s,
            "record       the set is kept in the {} ({:.1} MB a record, 2 records{})",
            l.kept_in,
            l.bytes_per_record as f64 / 1e6,
            if l.kept_in == "records" {
                "; the LPM tries hold only prefixes shorter than /32"
            } else {
                ": the LPM tries hold it whole"
            }
        );
        if let Some(u) = &self.update_under_way {
            let _ = writeln!(
                s,
                "update under way (or interrupted; the next load repairs it): {u}"
            );
        }
        for e in &self.entries {
            let _ = writeln!(
                s,
                "  {:5} {:43} {}",
                e.verdict.as_str(),
                e.prefix.to_string(),
                e.label
            );
        }
    }
}

/// What `check ADDR` reports.
#[derive(Debug, serde::Serialize)]
pub struct CheckResult {
    pub address: IpAddr,
    pub entry: Option<PrefixEntry>,
    pub verdict: &'static str,
    /// Whether the gate trusts the address: an allow entry matches and the
    /// program passes its SYNs. IPv4 never is.
    pub trusted: bool,
    /// Why, when the address alone says it (IPv4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'static str>,
    /// The real program's verdict on a SYN from the address to each port.
    pub ports: Vec<PortVerdict>,
}

#[derive(Debug, serde::Serialize)]
pub struct PortVerdict {
    pub port: u16,
    pub destination: IpAddr,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// What `check` says about an IPv4 address.
pub const IPV4_NOTE: &str = "the gate never trusts IPv4 sources: SYNs from IPv4 to protected ports are dropped, unless --protect limits the gate to IPv6 destinations";

impl Gate {
    /// Which entry matches `addr` (one lookup in the active trie, never the
    /// whole set), and what the loaded program does with a SYN from it to
    /// each protected port (run through the real program). IPv4 addresses
    /// match nothing: the gate never trusts them.
    pub fn check(&self, addr: IpAddr) -> Result<CheckResult> {
        let settings = self.settings()?;
        let (entry, dst, note): (_, IpAddr, _) = match addr {
            IpAddr::V6(a) => {
                let dst = settings
                    .protect
                    .first()
                    .map(|n| n.network())
                    .unwrap_or(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x25));
                (self.lookup(a)?, dst.into(), None)
            }
            IpAddr::V4(_) => (None, Ipv4Addr::new(192, 0, 2, 25).into(), Some(IPV4_NOTE)),
        };
        let mut ports = Vec::new();
        {
            let runner = self.runner()?;
            let mut batch = runner.batch()?;
            for &port in &settings.ports {
                let pkt = syn_frame(addr, dst, 40000, port);
                ports.push(PortVerdict {
                    port,
                    destination: dst,
                    outcome: batch.run(&pkt)?,
                });
            }
        }
        let dropped = ports.iter().any(|p| p.outcome.action == XDP_DROP);
        // Observe mode counts a would-be drop under its observe reason.
        let would_drop = ports.iter().any(|p| {
            use gate_common::Reason::*;
            matches!(
                p.outcome.reason,
                ObserveWouldDrop
                    | ObserveUntrusted
                    | ObserveDenied
                    | ObserveNonIpv6
                    | ObserveMalformed
            )
        });
        let allowed = matches!(&entry, Some(e) if e.verdict == Verdict::Allow);
        let verdict = match (dropped, allowed) {
            (true, _) => "dropped",
            (false, true) => "trusted",
            (false, false) if would_drop => "would be dropped (observe mode)",
            _ => "passes",
        };
        Ok(CheckResult {
            address: addr,
            trusted: allowed && !dropped,
            entry,
            verdict,
            note,
            ports,
        })
    }
}
