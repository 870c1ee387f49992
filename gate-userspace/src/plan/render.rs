//! The plan for people (text with every provenance) and programs (JSON);
//! both deterministic: the same plan gives byte-identical output.

use std::fmt::Write as _;

use super::{Plan, PlanDiff, PlanEntry, Provenance};

fn prov_text(p: &Provenance) -> String {
    let depth = p
        .depth
        .map(|d| format!("depth={d}"))
        .unwrap_or_else(|| "refused".into());
    format!(
        "{} serial={} {depth} mode={} signer={} file={}",
        p.domain,
        p.serial,
        p.mode.as_str(),
        p.signer,
        p.file
    )
}

fn entry_text(out: &mut String, verdict: &str, e: &PlanEntry) {
    let folded = e
        .folded_into
        .map(|f| format!(" (folded into {f})"))
        .unwrap_or_default();
    let _ = writeln!(out, "{verdict} {}{folded}", e.prefix);
    for p in &e.provenance {
        let _ = writeln!(out, "    from {}", prov_text(p));
    }
    for p in &e.overridden {
        let _ = writeln!(out, "    overridden allow from {}", prov_text(p));
    }
}

impl Plan {
    /// The human-readable plan.
    pub fn to_text(&self) -> String {
        let kernel = self
            .entries
            .iter()
            .filter(|e| e.folded_into.is_none())
            .count();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# wotgate plan at {}: {} statements accepted, {} rejected; {} entries, {} for the kernel, {} testing prefixes only counted",
            self.at,
            self.accepted_statements,
            self.rejected.len(),
            self.entries.len(),
            kernel,
            self.counted.len()
        );
        for e in &self.entries {
            entry_text(&mut out, e.verdict.as_str(), e);
        }
        for e in &self.counted {
            entry_text(&mut out, "count", e);
        }
        for r in &self.rejected {
            let _ = writeln!(out, "# rejected {r}");
        }
        out
    }

    /// The plan as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }
}

impl PlanDiff {
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for e in &self.added {
            let _ = writeln!(out, "+ {} {} {}", e.verdict, e.prefix, e.label);
        }
        for e in &self.removed {
            let _ = writeln!(out, "- {} {} {}", e.verdict, e.prefix, e.label);
        }
        for (o, n) in &self.changed {
            let _ = writeln!(
                out,
                "~ {} {} {} -> {} {}",
                n.prefix, o.verdict, o.label, n.verdict, n.label
            );
        }
        if self.is_empty() {
            out.push_str("# no change\n");
        }
        out
    }
}
