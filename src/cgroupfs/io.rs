//! Per-device I/O counters of a cgroup: v2 io.stat, v1 blkio files.
//!
//! On blk-mq kernels the v1 CFQ files (blkio.io_serviced_recursive, ...) are gone. The
//! counts live in blkio.throttle.*_recursive (kept for devices that have a throttle rule in
//! the cgroup's hierarchy) and blkio.bfq.*_recursive (devices scheduled by BFQ).

use crate::kfile::{lines, parse_u64};

/// What a cgroup did to one device. Bytes and operation counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DevIo {
    pub major: u32,
    pub minor: u32,
    pub rbytes: u64,
    pub wbytes: u64,
    pub rios: u64,
    pub wios: u64,
    pub dbytes: u64,
    pub dios: u64,
}

impl DevIo {
    pub fn is_idle(&self) -> bool {
        self.rbytes | self.wbytes | self.rios | self.wios | self.dbytes | self.dios == 0
    }

    fn merge_max(&mut self, o: &DevIo) {
        self.rbytes = self.rbytes.max(o.rbytes);
        self.wbytes = self.wbytes.max(o.wbytes);
        self.rios = self.rios.max(o.rios);
        self.wios = self.wios.max(o.wios);
        self.dbytes = self.dbytes.max(o.dbytes);
        self.dios = self.dios.max(o.dios);
    }
}

fn device(field: &[u8]) -> Option<(u32, u32)> {
    let colon = memchr::memchr(b':', field)?;
    let major = u32::try_from(parse_u64(&field[..colon])?).ok()?;
    let minor = u32::try_from(parse_u64(&field[colon + 1..])?).ok()?;
    Some((major, minor))
}

fn entry(devs: &mut Vec<DevIo>, major: u32, minor: u32) -> &mut DevIo {
    match devs
        .iter()
        .position(|d| d.major == major && d.minor == minor)
    {
        Some(i) => &mut devs[i],
        None => {
            devs.push(DevIo {
                major,
                minor,
                ..DevIo::default()
            });
            let last = devs.len() - 1;
            &mut devs[last]
        }
    }
}

/// v2 io.stat: `8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=5 dios=6`.
pub fn parse_io_stat(text: &[u8]) -> Vec<DevIo> {
    let mut devs = Vec::new();
    for line in lines(text) {
        let mut f = line
            .split(|c| c.is_ascii_whitespace())
            .filter(|s| !s.is_empty());
        let Some((major, minor)) = f.next().and_then(device) else {
            continue;
        };
        let d = entry(&mut devs, major, minor);
        for kv in f {
            let Some(eq) = memchr::memchr(b'=', kv) else {
                continue;
            };
            let Some(v) = parse_u64(&kv[eq + 1..]) else {
                continue;
            };
            match &kv[..eq] {
                b"rbytes" => d.rbytes = v,
                b"wbytes" => d.wbytes = v,
                b"rios" => d.rios = v,
                b"wios" => d.wios = v,
                b"dbytes" => d.dbytes = v,
                b"dios" => d.dios = v,
                _ => {}
            }
        }
    }
    devs
}

/// v1 blkio rwstat files, as (operation counts, bytes), merged into `devs` (a device's
/// counts from two sources are the same I/O: the larger figure is kept).
pub fn merge_blkio(devs: &mut Vec<DevIo>, serviced: &[u8], bytes: &[u8]) {
    let mut parsed: Vec<DevIo> = Vec::new();
    for (text, is_bytes) in [(serviced, false), (bytes, true)] {
        for line in lines(text) {
            let mut f = line
                .split(|c| c.is_ascii_whitespace())
                .filter(|s| !s.is_empty());
            let (Some(dev), Some(op), Some(v)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let (Some((major, minor)), Some(v)) = (device(dev), parse_u64(v)) else {
                continue;
            };
            let d = entry(&mut parsed, major, minor);
            let slot = match (op, is_bytes) {
                (b"Read", false) => &mut d.rios,
                (b"Write", false) => &mut d.wios,
                (b"Discard", false) => &mut d.dios,
                (b"Read", true) => &mut d.rbytes,
                (b"Write", true) => &mut d.wbytes,
                (b"Discard", true) => &mut d.dbytes,
                _ => continue,
            };
            *slot = v;
        }
    }
    for p in &parsed {
        entry(devs, p.major, p.minor).merge_max(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_stat_v2() {
        let t = b"254:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n253:0 rbytes=0 wbytes=0 rios=0 wios=0 dbytes=0 dios=0\n";
        let d = parse_io_stat(t);
        assert_eq!(d.len(), 2);
        assert_eq!(
            (d[0].major, d[0].minor, d[0].rbytes, d[0].wios),
            (254, 0, 4096, 2)
        );
        assert!(d[1].is_idle());
        assert!(parse_io_stat(b"garbage\n8:x rbytes=1\n").is_empty());
    }

    #[test]
    fn blkio_v1_merges_sources() {
        let serviced = b"254:0 Read 2\n254:0 Write 25\n254:0 Sync 27\n254:0 Total 27\nTotal 27\n";
        let bytes = b"254:0 Read 8192\n254:0 Write 20971520\nTotal 20979712\n";
        let mut devs = Vec::new();
        merge_blkio(&mut devs, serviced, bytes);
        assert_eq!(devs.len(), 1);
        assert_eq!(
            (devs[0].rios, devs[0].wios, devs[0].rbytes, devs[0].wbytes),
            (2, 25, 8192, 20971520)
        );
        // a second source with other figures for the same device: the larger is kept
        merge_blkio(&mut devs, b"254:0 Read 5\n", b"");
        assert_eq!((devs[0].rios, devs[0].wios), (5, 25));
        merge_blkio(&mut devs, b"Total 0\n", b"Total 0\n");
        assert_eq!(devs.len(), 1);
    }
}
