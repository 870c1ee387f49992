//! Running packets through the real loaded program with `BPF_PROG_TEST_RUN`:
//! per-packet verdicts for `check` and `replay`, streamed from the capture.

use std::{net::IpAddr, path::Path};

use aya::programs::{TestRun, TestRunOptions, Xdp};
use gate_common::{maps, Reason, REASON_COUNT};

use super::{
    capture::{Capture, Skip},
    read_err, Gate, GateError, Result,
};

/// XDP_DROP and XDP_PASS as the kernel returns them.
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;

/// What the real program did with one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Outcome {
    /// `pass` or `drop`.
    #[serde(serialize_with = "action_name")]
    pub action: u32,
    #[serde(serialize_with = "reason_name")]
    pub reason: Reason,
}

fn action_name<S: serde::Serializer>(a: &u32, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(action_str(*a))
}

fn reason_name<S: serde::Serializer>(r: &Reason, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(r.name())
}

pub fn action_str(a: u32) -> &'static str {
    match a {
        XDP_DROP => "drop",
        XDP_PASS => "pass",
        _ => "other",
    }
}

/// Runs packets through the pinned program and tells, from the test-run
/// counter bank, which reason each got. Packets run in batches, each under
/// the pin directory's lock (no other wotgate runs packets meanwhile), so
/// the lock is never held while a caller writes output.
pub struct Runner<'g> {
    gate: &'g Gate,
    prog: Xdp,
}

/// Packets run under one hold of the lock; dropping it releases the lock.
pub struct Batch<'r, 'g> {
    runner: &'r Runner<'g>,
    last: Vec<u64>,
    _guard: Option<std::fs::File>,
}

impl Gate {
    pub fn runner(&self) -> Result<Runner<'_>> {
        Ok(Runner {
            gate: self,
            prog: self.program()?,
        })
    }

    fn test_bank(&self) -> Result<Vec<u64>> {
        (0..REASON_COUNT)
            .map(|i| {
                self.counters
                    .get(&(REASON_COUNT + i), 0)
                    .map(|v| v.iter().sum())
                    .map_err(read_err(maps::COUNTERS))
            })
            .collect()
    }
}

impl<'g> Runner<'g> {
    /// Takes the lock for a batch of packets.
    pub fn batch(&self) -> Result<Batch<'_, 'g>> {
        let guard = self.gate.hold()?;
        let last = self.gate.test_bank()?;
        Ok(Batch {
            runner: self,
            last,
            _guard: guard,
        })
    }

    /// One packet in a batch of its own.
    pub fn run(&mut self, packet: &[u8]) -> Result<Outcome> {
        self.batch()?.run(packet)
    }
}

impl Batch<'_, '_> {
    /// One packet through the program: its action and the reason counted.
    pub fn run(&mut self, packet: &[u8]) -> Result<Outcome> {
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(packet);
        let res = self.runner.prog.test_run(opts)?;
        let now = self.runner.gate.test_bank()?;
        let mut reason = None;
        for (i, (n, l)) in now.iter().zip(&self.last).enumerate() {
            if n > l {
                let r = Reason::from_u32(i as u32).expect("bank index is a reason");
                // In observe mode the total and the breakdown both move; the
                // breakdown says more.
                if r != Reason::ObserveWouldDrop || reason.is_none() {
                    reason = Some(r);
                }
            }
        }
        self.last = now;
        let reason = reason.ok_or(GateError::NoReason)?;
        Ok(Outcome {
            action: res.return_value,
            reason,
        })
    }

    /// As [`Batch::run`], but a packet the kernel refuses to run (too long,
    /// too short) is a [`Skip`], not an error.
    pub fn try_run(&mut self, packet: &[u8]) -> Result<std::result::Result<Outcome, Skip>> {
        match self.run(packet) {
            Err(GateError::Program(e)) => match super::attach::os_error(&e) {
                Some(
                    errno @ (libc::EINVAL
                    | libc::E2BIG
                    | libc::ENOSPC
                    | libc::EMSGSIZE
                    | libc::ENOMEM),
                ) => Ok(Err(Skip::Refused { errno })),
                _ => Err(GateError::Program(e)),
            },
            other => other.map(Ok),
        }
    }
}

/// One record of a replayed capture: what the program did with it, or why
/// it was not run.
#[derive(Clone, Debug)]
pub struct Replayed {
    pub record: u64,
    pub len: usize,
    pub result: std::result::Result<Outcome, Skip>,
}

/// Records run under one hold of the lock.
const REPLAY_BATCH: usize = 256;

/// A capture run through the program record by record, as an iterator:
/// memory stays bounded, and the lock is held only while a batch runs,
/// never while the caller handles what it yields.
pub struct Replayer<'g> {
    runner: Runner<'g>,
    capture: Capture,
    ready: std::collections::VecDeque<Replayed>,
    error: Option<GateError>,
}

impl Gate {
    /// Starts replaying the capture at `path` (pcap or pcapng).
    pub fn replay(&self, path: &Path) -> Result<Replayer<'_>> {
        Ok(Replayer {
            capture: Capture::open(path)?,
            runner: self.runner()?,
            ready: Default::default(),
            error: None,
        })
    }
}

impl Replayer<'_> {
    fn fill(&mut self) -> Result<()> {
        let mut records = Vec::with_capacity(REPLAY_BATCH);
        for r in self.capture.by_ref() {
            match r {
                Ok(r) => records.push(r),
                Err(e) => {
                    self.error = Some(e);
                    break;
                }
            }
            if records.len() == REPLAY_BATCH {
                break;
            }
        }
        if records.iter().any(|r| r.frame.is_ok()) {
            let mut batch = self.runner.batch()?;
            for r in records {
                let result = match &r.frame {
                    Ok(frame) => batch.try_run(frame)?,
                    Err(skip) => Err(skip.clone()),
                };
                self.ready.push_back(Replayed {
                    record: r.number,
                    len: r.len,
                    result,
                });
            }
        } else {
            self.ready.extend(records.into_iter().map(|r| Replayed {
                record: r.number,
                len: r.len,
                result: Err(r.frame.expect_err("no frame to run")),
            }));
        }
        Ok(())
    }
}

impl Iterator for Replayer<'_> {
    type Item = Result<Replayed>;

    fn next(&mut self) -> Option<Result<Replayed>> {
        if self.ready.is_empty() && self.error.is_none() {
            if let Err(e) = self.fill() {
                self.error = Some(e);
            }
        }
        match self.ready.pop_front() {
            Some(r) => Some(Ok(r)),
            None => self.error.take().map(Err),
        }
    }
}

/// An Ethernet frame carrying a bare TCP SYN from `[src]:sport` to
/// `[dst]:dport` (both IPv6 or both IPv4): the probe `check` runs through
/// the program.
pub fn syn_frame(src: IpAddr, dst: IpAddr, sport: u16, dport: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + 40 + 20);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x25, 0x02, 0, 0, 0, 0, 0x01]);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f.extend_from_slice(&[0x08, 0x00]);
            // IPv4: version 4, 5-word header, 40 bytes in all, TTL 64, TCP.
            let mut ip = [0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, IPPROTO_TCP, 0, 0];
            let sum = ipv4_checksum(&ip, &s.octets(), &d.octets());
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
            f.extend_from_slice(&ip);
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&d.octets());
        }
        (s, d) => {
            let v6 = |a: IpAddr| match a {
                IpAddr::V6(a) => a,
                IpAddr::V4(a) => a.to_ipv6_mapped(),
            };
            f.extend_from_slice(&[0x86, 0xDD]);
            // IPv6: version 6, 20 bytes of payload, next header TCP, hop limit 64.
            f.extend_from_slice(&[0x60, 0, 0, 0, 0, 20, IPPROTO_TCP, 64]);
            f.extend_from_slice(&v6(s).octets());
            f.extend_from_slice(&v6(d).octets());
        }
    }
    // TCP: ports, sequence 1, no ack, 5-word header, SYN, window 65535.
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&[
        0,
        0,
        0,
        1,
        0,
        0,
        0,
        0,
        5 << 4,
        TCP_SYN,
        0xff,
        0xff,
        0,
        0,
        0,
        0,
    ]);
    f
}

fn ipv4_checksum(head: &[u8; 12], src: &[u8; 4], dst: &[u8; 4]) -> u16 {
    let mut sum = 0u32;
    for pair in head.chunks(2).chain(src.chunks(2)).chain(dst.chunks(2)) {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

const IPPROTO_TCP: u8 = 6;
const TCP_SYN: u8 = 0x02;
