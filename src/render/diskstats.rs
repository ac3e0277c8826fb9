//! /proc/diskstats: the host's devices, with the container's own I/O, leaving out the
//! devices it never used.

use super::num;
use crate::cgroupfs::io::DevIo;
use crate::kfile::{lines, parse_u64};

/// `host` is the host's /proc/diskstats (for device names and order).
pub fn render(host: &[u8], devs: &[DevIo], out: &mut Vec<u8>) {
    for line in lines(host) {
        let mut f = line
            .split(|c| c.is_ascii_whitespace())
            .filter(|s| !s.is_empty());
        let (Some(major), Some(minor), Some(name)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let (Some(major), Some(minor)) = (parse_u64(major), parse_u64(minor)) else {
            continue;
        };
        let Some(d) = devs
            .iter()
            .find(|d| u64::from(d.major) == major && u64::from(d.minor) == minor && !d.is_idle())
        else {
            continue;
        };
        // The kernel's layout: "%4d %7d %s" then the counters. Only completed operations
        // and sectors are kept per cgroup; merges, times and queue depth are 0.
        super::num_width(out, major, 4);
        out.push(b' ');
        super::num_width(out, minor, 7);
        out.push(b' ');
        out.extend_from_slice(name);
        let sectors = |b: u64| b / 512;
        let fields = [
            d.rios,
            0,
            sectors(d.rbytes),
            0, // reads, merged, sectors, ms
            d.wios,
            0,
            sectors(d.wbytes),
            0, // writes, merged, sectors, ms
            0,
            0,
            0, // in flight, io ms, weighted ms
            d.dios,
            0,
            sectors(d.dbytes),
            0, // discards, merged, sectors, ms
            0,
            0, // flushes, flush ms
        ];
        for v in fields {
            out.push(b' ');
            num(out, v);
        }
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &[u8] = b"   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n\
 254       0 vda 21815 5890 2008430 10451 108040 77394 3933562 74410 0 73928 85961 0 0 0 0 3830 1099\n\
 254       1 vda1 21000 5890 2000000 10000 108000 77000 3933000 74000 0 73000 85000 0 0 0 0 0 0\n";

    #[test]
    fn only_used_devices_with_own_counts() {
        let devs = [
            DevIo {
                major: 254,
                minor: 0,
                rios: 2,
                wios: 25,
                rbytes: 8192,
                wbytes: 20971520,
                ..DevIo::default()
            },
            DevIo {
                major: 7,
                minor: 0,
                ..DevIo::default()
            },
        ];
        let mut out = Vec::new();
        render(HOST, &devs, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            " 254       0 vda 2 0 16 0 25 0 40960 0 0 0 0 0 0 0 0 0 0\n"
        );
    }

    #[test]
    fn nothing_used_is_empty() {
        let mut out = Vec::new();
        render(HOST, &[], &mut out);
        assert!(out.is_empty());
        render(
            b"garbage\n1 2\n",
            &[DevIo {
                major: 1,
                minor: 2,
                rios: 1,
                ..DevIo::default()
            }],
            &mut out,
        );
        assert!(out.is_empty());
    }
}
