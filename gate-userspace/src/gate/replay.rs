//! Running packets through the real loaded program with `BPF_PROG_TEST_RUN`:
//! per-packet verdicts for `check` and `replay`, and pcap reading.

use std::{net::Ipv6Addr, path::Path};

use aya::programs::{TestRun, TestRunOptions, Xdp};
use gate_common::{maps, Reason, REASON_COUNT};

use super::{read_err, Gate, GateError, Result};

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

/// Runs packets through the pinned program one at a time and tells, from
/// the test-run counter bank, which reason each got. Holds the gate (and so
/// its lock): no other wotgate process runs packets meanwhile.
pub struct Runner<'g> {
    gate: &'g Gate,
    prog: Xdp,
    last: Vec<u64>,
    _guard: std::fs::File,
}

impl Gate {
    pub fn runner(&self) -> Result<Runner<'_>> {
        let guard = self.lock()?;
        let prog = self.program()?;
        let last = self.test_bank()?;
        Ok(Runner {
            gate: self,
            prog,
            last,
            _guard: guard,
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

impl Runner<'_> {
    /// One packet through the program: its action and the reason counted.
    pub fn run(&mut self, packet: &[u8]) -> Result<Outcome> {
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(packet);
        let res = self.prog.test_run(opts)?;
        let now = self.gate.test_bank()?;
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
}

/// An Ethernet frame carrying a bare TCP SYN from `[src]:sport` to
/// `[dst]:dport`: the probe `check` runs through the program.
pub fn syn_frame(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + 40 + 20);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x25, 0x02, 0, 0, 0, 0, 0x01, 0x86, 0xDD]);
    // IPv6: version 6, 20 bytes of payload, next header TCP, hop limit 64.
    f.extend_from_slice(&[0x60, 0, 0, 0, 0, 20, IPPROTO_TCP, 64]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
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

const IPPROTO_TCP: u8 = 6;
const TCP_SYN: u8 = 0x02;

/// Frames of a capture, as Ethernet frames. Captures taken on `any`
/// (Linux cooked) or raw IP get a synthetic Ethernet header.
pub fn read_pcap(path: &Path) -> Result<Vec<Vec<u8>>> {
    use pcap_file::{pcap::PcapReader, DataLink};
    let err = |source| GateError::Pcap {
        path: path.to_path_buf(),
        source,
    };
    let f = std::fs::File::open(path).map_err(|source| GateError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut r = PcapReader::new(std::io::BufReader::new(f)).map_err(err)?;
    let link = r.header().datalink;
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        let p = p.map_err(err)?;
        let d = &p.data;
        let frame = match link {
            DataLink::ETHERNET => d.to_vec(),
            DataLink::LINUX_SLL if d.len() >= 16 => {
                ethernet(u16::from_be_bytes([d[14], d[15]]), &d[16..])
            }
            DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 if !d.is_empty() => {
                let ty = if d[0] >> 4 == 6 { 0x86DD } else { 0x0800 };
                ethernet(ty, d)
            }
            DataLink::LINUX_SLL | DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => Vec::new(),
            other => {
                return Err(GateError::PcapLinkType {
                    path: path.to_path_buf(),
                    link: format!("{other:?}"),
                })
            }
        };
        out.push(frame);
    }
    Ok(out)
}

fn ethernet(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2]);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}
