//! Reading captures one record at a time (pcap and pcapng), as Ethernet
//! frames; a record that cannot be run is reported with its number and why,
//! never the whole capture.

use std::{
    fs::File,
    io::{BufReader, Read},
    path::{Path, PathBuf},
};

use pcap_file::{pcap::PcapHeader, pcapng::Block, DataLink, Endianness, PcapError};

use super::{Causes, GateError, Result};

/// The largest record libpcap writes (its maximum snapshot length); a
/// header claiming more means the file is damaged there.
pub const MAX_RECORD: u32 = 262_144;

/// Why a record was not run through the program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skip {
    /// Too short to hold the header its link type needs.
    Short { need: usize, what: &'static str },
    /// The file ends inside the record: `have` of `want` bytes are there.
    Cut { have: usize, want: usize },
    /// The record header claims an impossible length; nothing after it can
    /// be trusted, so reading stops.
    Damaged { claimed: u32 },
    /// A pcapng block that could not be parsed; reading stops.
    Unreadable(String),
    /// A pcapng interface with a link type the gate does not read.
    LinkType(String),
    /// The kernel refused the test run (errno), e.g. a frame longer than
    /// a test run takes.
    Refused { errno: i32 },
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::Short { need, what } => {
                write!(f, "shorter than {what} ({need} bytes)")
            }
            Skip::Cut { have, want } => write!(
                f,
                "cut short: the file ends {have} bytes into its {want} bytes"
            ),
            Skip::Damaged { claimed } => write!(
                f,
                "its header claims {claimed} bytes (a record holds at most {MAX_RECORD}): the file is damaged here, nothing after it is read"
            ),
            Skip::Unreadable(why) => {
                write!(f, "unreadable block ({why}): nothing after it is read")
            }
            Skip::LinkType(l) => write!(
                f,
                "link type {l} is not supported (Ethernet, Linux cooked or raw IP)"
            ),
            Skip::Refused { errno } => write!(
                f,
                "the kernel refused to run it ({}); test runs take frames of 14 bytes up to about 73 KB",
                std::io::Error::from_raw_os_error(*errno)
            ),
        }
    }
}

/// One record of a capture: its number (from 1, in file order), the bytes
/// it holds, and the Ethernet frame to run or why there is none.
#[derive(Clone, Debug)]
pub struct Record {
    pub number: u64,
    pub len: usize,
    pub frame: std::result::Result<Vec<u8>, Skip>,
}

enum Format {
    Pcap {
        r: BufReader<File>,
        big_endian: bool,
        link: DataLink,
    },
    Pcapng(Box<pcap_file::pcapng::PcapNgReader<BufReader<File>>>),
}

/// A capture being read; an iterator over its records. Memory stays
/// bounded whatever the file's size.
pub struct Capture {
    path: PathBuf,
    format: Format,
    number: u64,
    ended: bool,
}

const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

impl Capture {
    /// Opens a pcap or pcapng file and reads its header.
    pub fn open(path: &Path) -> Result<Capture> {
        let io = |cause| GateError::Io {
            path: path.to_path_buf(),
            cause,
        };
        let mut r = BufReader::new(File::open(path).map_err(io)?);
        let mut head = [0u8; 24];
        let n = read_full(&mut r, &mut head).map_err(io)?;
        let format = if n >= 4 && head[..4] == PCAPNG_MAGIC {
            let f = BufReader::new(File::open(path).map_err(io)?);
            let r = pcap_file::pcapng::PcapNgReader::new(f).map_err(|cause| GateError::Pcap {
                path: path.to_path_buf(),
                cause,
            })?;
            Format::Pcapng(Box::new(r))
        } else {
            let header = match PcapHeader::from_slice(&head[..n]) {
                Ok((_, h)) => h,
                Err(PcapError::IncompleteBuffer) if n >= 4 && is_pcap_magic(&head) => {
                    return Err(GateError::CaptureHeaderCut(path.to_path_buf()))
                }
                Err(_) => {
                    return Err(GateError::NotACapture {
                        path: path.to_path_buf(),
                        magic: head[..n.min(4)].to_vec(),
                    })
                }
            };
            if !supported(header.datalink) {
                return Err(GateError::PcapLinkType {
                    path: path.to_path_buf(),
                    link: format!("{:?}", header.datalink),
                });
            }
            Format::Pcap {
                r,
                big_endian: header.endianness == Endianness::Big,
                link: header.datalink,
            }
        };
        Ok(Capture {
            path: path.to_path_buf(),
            format,
            number: 0,
            ended: false,
        })
    }

    fn next_pcap(&mut self) -> Result<Option<Record>> {
        let Format::Pcap {
            r,
            big_endian,
            link,
        } = &mut self.format
        else {
            unreachable!("called for pcap only")
        };
        let io = |cause| GateError::Io {
            path: self.path.clone(),
            cause,
        };
        let mut h = [0u8; 16];
        let n = read_full(r, &mut h).map_err(io)?;
        if n == 0 {
            return Ok(None);
        }
        self.number += 1;
        if n < h.len() {
            self.ended = true;
            return Ok(Some(self.skipped(n, Skip::Cut { have: n, want: 16 })));
        }
        let field: [u8; 4] = h[8..12].try_into().expect("4 bytes");
        let incl = if *big_endian {
            u32::from_be_bytes(field)
        } else {
            u32::from_le_bytes(field)
        };
        if incl > MAX_RECORD {
            self.ended = true;
            return Ok(Some(self.skipped(0, Skip::Damaged { claimed: incl })));
        }
        let mut data = vec![0u8; incl as usize];
        let got = read_full(r, &mut data).map_err(io)?;
        if got < data.len() {
            self.ended = true;
            let want = data.len();
            return Ok(Some(self.skipped(got, Skip::Cut { have: got, want })));
        }
        let link = *link;
        Ok(Some(Record {
            number: self.number,
            len: data.len(),
            frame: to_ethernet(link, &data),
        }))
    }

    fn next_pcapng(&mut self) -> Result<Option<Record>> {
        let Format::Pcapng(r) = &mut self.format else {
            unreachable!("called for pcapng only")
        };
        loop {
            let (iface, data) = match r.next_block() {
                None => return Ok(None),
                Some(Err(e)) => {
                    self.number += 1;
                    self.ended = true;
                    let why = Causes(&e).to_string();
                    return Ok(Some(self.skipped(0, Skip::Unreadable(why))));
                }
                Some(Ok(Block::EnhancedPacket(p))) => (p.interface_id, p.data.to_vec()),
                Some(Ok(Block::SimplePacket(p))) => (0, p.data.to_vec()),
                Some(Ok(Block::Packet(p))) => (u32::from(p.interface_id), p.data.to_vec()),
                Some(Ok(_)) => continue,
            };
            self.number += 1;
            let frame = match r.interfaces().get(iface as usize).map(|i| i.linktype) {
                Some(link) if supported(link) => to_ethernet(link, &data),
                Some(link) => Err(Skip::LinkType(format!("{link:?}"))),
                None => Err(Skip::Unreadable(format!(
                    "no interface {iface} described before the packet"
                ))),
            };
            return Ok(Some(Record {
                number: self.number,
                len: data.len(),
                frame,
            }));
        }
    }

    fn skipped(&self, len: usize, why: Skip) -> Record {
        Record {
            number: self.number,
            len,
            frame: Err(why),
        }
    }
}

impl Iterator for Capture {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        if self.ended {
            return None;
        }
        let next = match self.format {
            Format::Pcap { .. } => self.next_pcap(),
            Format::Pcapng(_) => self.next_pcapng(),
        };
        if next.is_err() {
            self.ended = true;
        }
        next.transpose()
    }
}

fn is_pcap_magic(head: &[u8]) -> bool {
    let m = [0xA1B2C3D4u32, 0xA1B23C4D];
    m.iter()
        .any(|m| head[..4] == m.to_be_bytes() || head[..4] == m.to_le_bytes())
}

fn supported(link: DataLink) -> bool {
    matches!(
        link,
        DataLink::ETHERNET
            | DataLink::LINUX_SLL
            | DataLink::LINUX_SLL2
            | DataLink::RAW
            | DataLink::IPV4
            | DataLink::IPV6
    )
}

/// Reads until `buf` is full or the file ends; how many bytes it read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A record's bytes as an Ethernet frame: captures taken on `any` (Linux
/// cooked) or raw IP get a synthetic Ethernet header.
pub fn to_ethernet(link: DataLink, d: &[u8]) -> std::result::Result<Vec<u8>, Skip> {
    const ETH: usize = 14;
    let short = |need, what| Err(Skip::Short { need, what });
    match link {
        DataLink::ETHERNET if d.len() < ETH => short(ETH, "an Ethernet header"),
        DataLink::ETHERNET => Ok(d.to_vec()),
        DataLink::LINUX_SLL if d.len() < 16 => short(16, "a Linux cooked header"),
        DataLink::LINUX_SLL => Ok(ethernet(u16::from_be_bytes([d[14], d[15]]), &d[16..])),
        DataLink::LINUX_SLL2 if d.len() < 20 => short(20, "a Linux cooked (v2) header"),
        DataLink::LINUX_SLL2 => Ok(ethernet(u16::from_be_bytes([d[0], d[1]]), &d[20..])),
        _ if d.is_empty() => short(1, "an IP header"),
        _ => {
            let ty = if d[0] >> 4 == 6 { 0x86DD } else { 0x0800 };
            Ok(ethernet(ty, d))
        }
    }
}

fn ethernet(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2]);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcap_bytes(records: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&0xA1B2C3D4u32.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&65535u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        for r in records {
            out.extend_from_slice(&[0; 8]);
            out.extend_from_slice(&(r.len() as u32).to_le_bytes());
            out.extend_from_slice(&(r.len() as u32).to_le_bytes());
            out.extend_from_slice(r);
        }
        out
    }

    fn records(bytes: &[u8]) -> Vec<(u64, std::result::Result<usize, Skip>)> {
        let p = std::env::temp_dir().join(format!(
            "wotgate-capture-{}-{}.pcap",
            std::process::id(),
            bytes.len()
        ));
        std::fs::write(&p, bytes).unwrap();
        let out = Capture::open(&p)
            .unwrap()
            .map(|r| r.unwrap())
            .map(|r| (r.number, r.frame.map(|f| f.len())))
            .collect();
        std::fs::remove_file(&p).unwrap();
        out
    }

    #[test]
    fn bad_records_are_skipped_with_their_number_and_the_rest_read() {
        let frame = [0u8; 60];
        let mut bytes = pcap_bytes(&[&[], &frame, &[0u8; 13], &frame, &frame]);
        bytes.truncate(bytes.len() - 7);
        let got = records(&bytes);
        let short = Skip::Short {
            need: 14,
            what: "an Ethernet header",
        };
        assert_eq!(
            got,
            [
                (1, Err(short.clone())),
                (2, Ok(60)),
                (3, Err(short)),
                (4, Ok(60)),
                (5, Err(Skip::Cut { have: 53, want: 60 })),
            ]
        );
    }

    #[test]
    fn a_damaged_length_stops_reading_there() {
        let mut bytes = pcap_bytes(&[&[0u8; 20]]);
        bytes.extend_from_slice(&[0; 8]);
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(&[0; 100]);
        assert_eq!(
            records(&bytes),
            [(1, Ok(20)), (2, Err(Skip::Damaged { claimed: u32::MAX }))]
        );
    }
}
