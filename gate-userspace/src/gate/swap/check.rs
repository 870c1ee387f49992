//! Reading back what an update wrote into one half: a sample of its entries,
//! in its record and, where the datapath may read them, in its trie.

use std::os::fd::AsFd;

use aya::maps::IterableMap;
use gate_common::Entry;

use super::{
    batch::sys_err,
    entries::{key_bytes, key_of, Labels, KEY_BYTES},
    records::in_trie,
};
use crate::{
    gate::{Gate, GateError, Result},
    model::prefixes::PrefixEntry,
};

impl Gate {
    /// Half `h` holds exactly the prefix of `sample` evenly spread entries
    /// of `entries` (`n` of them), with their verdicts and label ids: in
    /// its record (`record`) and, where the datapath may read it, its trie.
    pub(super) fn check_sample<'e>(
        &self,
        h: usize,
        entries: impl Iterator<Item = &'e PrefixEntry>,
        n: usize,
        sample: usize,
        labels: &Labels,
        record: bool,
    ) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let fd = self.trust[h].map().fd().as_fd();
        let mut first = [0u8; KEY_BYTES];
        let any = crate::gate::sys::map_next_key(fd, None, &mut first)
            .map_err(|err| sys_err(h, "reading back", err))?;
        for e in entries.step_by((n / sample).max(1)) {
            if record {
                self.record_check(h, e, labels)?;
            }
            if in_trie(record, &e.prefix) {
                self.check_entry(h, e, labels, any.then_some(&first))?;
            }
        }
        Ok(())
    }

    /// Trie `h` holds exactly `e.prefix`, with `e`'s verdict and label id;
    /// `first`: the trie's first key (`None` when it is empty).
    fn check_entry(
        &self,
        h: usize,
        e: &PrefixEntry,
        labels: &Labels,
        first: Option<&[u8; KEY_BYTES]>,
    ) -> Result<()> {
        let fd = self.trust[h].map().fd().as_fd();
        let io = |err| sys_err(h, "reading back", err);
        let key = key_bytes(&e.prefix);
        let exact = match first {
            Some(first) => crate::gate::sys::lpm_has_exact(fd, &key, first).map_err(io)?,
            None => false,
        };
        let want = Entry {
            verdict: e.verdict.to_raw(),
            source: labels.id(&e.label),
        };
        let got = if exact {
            self.trust[h].get(&key_of(&e.prefix), 0).ok()
        } else {
            None
        };
        if got != Some(want) {
            return Err(GateError::Verify {
                trie: h,
                problem: format!(
                    "{} {} {} reads back as {got:?}",
                    e.verdict, e.prefix, e.label
                ),
            });
        }
        Ok(())
    }
}
