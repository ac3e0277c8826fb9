//! /proc/meminfo from the container's memory cgroup, on the host file's layout.

use super::num_width;
use super::swaps::SwapView;
use crate::cgroupfs::memory::MemoryInputs;
use crate::kfile::parse_u64;

/// The host's meminfo, walked line by line: (key, whole line).
fn lines(host: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    crate::kfile::lines(host).map(|line| {
        let key = memchr::memchr(b':', line).map_or(&line[..0], |c| &line[..c]);
        (key, line)
    })
}

/// The kB value of a meminfo line.
fn line_value(line: &[u8]) -> Option<u64> {
    let c = memchr::memchr(b':', line)?;
    let rest = line[c + 1..].trim_ascii();
    parse_u64(rest.strip_suffix(b"kB").unwrap_or(rest).trim_ascii())
}

/// A value of the host's meminfo, in kB.
pub fn host_value(host: &[u8], key: &[u8]) -> Option<u64> {
    lines(host)
        .find(|(k, _)| *k == key)
        .and_then(|(_, l)| line_value(l))
}

/// Render /proc/meminfo: every host line in order, with the container's values where
/// its cgroup has them. `swap` is the same view /proc/swaps shows; without `zswap`
/// (`-z`) the Zswap lines say 0, as lxcfs 7.0's do.
pub fn render(host: &[u8], m: &MemoryInputs, swap: &SwapView, zswap: bool, out: &mut Vec<u8>) {
    let host_total = host_value(host, b"MemTotal").unwrap_or(0);
    let total = match m.limit {
        Some(l) if l > 0 => (l / 1024).min(host_total),
        _ => host_total,
    };
    let kb = |b: u64| b / 1024;
    let s = &m.stat;
    let free = total.saturating_sub(kb(m.usage));
    let reclaimable = s.active_file + s.inactive_file + s.slab_reclaimable.unwrap_or(0);
    let available = (free + kb(reclaimable)).min(total);
    for (key, line) in lines(host) {
        let v = match key {
            b"MemTotal" => total,
            b"MemFree" => free,
            b"MemAvailable" => available,
            b"Buffers" | b"SwapCached" | b"ShmemHugePages" | b"ShmemPmdMapped" => 0,
            b"Cached" => kb(s.file),
            b"Active" => kb(s.active_anon + s.active_file),
            b"Inactive" => kb(s.inactive_anon + s.inactive_file),
            b"Active(anon)" => kb(s.active_anon),
            b"Inactive(anon)" => kb(s.inactive_anon),
            b"Active(file)" => kb(s.active_file),
            b"Inactive(file)" => kb(s.inactive_file),
            b"Unevictable" => kb(s.unevictable),
            b"Dirty" => kb(s.file_dirty),
            b"Writeback" => kb(s.file_writeback),
            b"AnonPages" => kb((s.active_anon + s.inactive_anon).saturating_sub(s.shmem)),
            b"Mapped" => kb(s.file_mapped),
            b"Shmem" => kb(s.shmem),
            b"AnonHugePages" => kb(s.anon_thp),
            b"Slab" => kb(s.slab.unwrap_or(0)),
            b"SReclaimable" => kb(s.slab_reclaimable.unwrap_or(0)),
            b"SUnreclaim" => kb(s.slab_unreclaimable.unwrap_or(0)),
            b"Zswap" | b"Zswapped" if !zswap => 0,
            b"Zswap" if s.zswap.is_some() => kb(s.zswap.unwrap_or(0)),
            b"Zswapped" if s.zswapped.is_some() => kb(s.zswapped.unwrap_or(0)),
            b"SwapTotal" => swap.total_kb,
            b"SwapFree" => swap.free_kb(),
            _ => {
                out.extend_from_slice(line);
                continue;
            }
        };
        kb_line(out, key, v);
    }
}

/// `Key:` padded to 16 columns, the value in 8, then ` kB`: the kernel's layout.
pub(super) fn kb_line(out: &mut Vec<u8>, key: &[u8], v: u64) {
    out.extend_from_slice(key);
    out.push(b':');
    for _ in key.len() + 1..16 {
        out.push(b' ');
    }
    num_width(out, v, 8);
    out.extend_from_slice(b" kB\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroupfs::memory::{MemStat, SwapInputs};

    pub const HOST: &[u8] = include_bytes!("../../tests/fixtures/meminfo-host");

    fn get(text: &[u8], key: &str) -> u64 {
        host_value(text, key.as_bytes()).unwrap_or_else(|| panic!("no {key}"))
    }

    fn render_str(m: &MemoryInputs, swap: &SwapView) -> Vec<u8> {
        let mut out = Vec::new();
        render(HOST, m, swap, true, &mut out);
        out
    }

    fn container() -> MemoryInputs {
        MemoryInputs {
            unified: false,
            limit: Some(256 << 20),
            usage: 100 << 20,
            stat: MemStat {
                file: 40 << 20,
                active_anon: 30 << 20,
                inactive_anon: 20 << 20,
                active_file: 25 << 20,
                inactive_file: 15 << 20,
                shmem: 2 << 20,
                file_mapped: 3 << 20,
                anon_thp: 4 << 20,
                file_dirty: 1 << 20,
                ..Default::default()
            },
            swap: None,
        }
    }

    #[test]
    fn container_values() {
        let out = render_str(&container(), &SwapView::default());
        assert_eq!(get(&out, "MemTotal"), 262144);
        assert_eq!(get(&out, "MemFree"), 262144 - 102400);
        assert_eq!(get(&out, "MemAvailable"), 262144 - 102400 + 40960);
        assert_eq!(get(&out, "Cached"), 40960);
        assert_eq!(get(&out, "Buffers"), 0);
        assert_eq!(get(&out, "Active"), 55 << 10);
        assert_eq!(get(&out, "Inactive"), 35 << 10);
        assert_eq!(get(&out, "AnonPages"), 48 << 10);
        assert_eq!(get(&out, "Mapped"), 3 << 10);
        assert_eq!(get(&out, "AnonHugePages"), 4 << 10);
        assert_eq!(get(&out, "Dirty"), 1 << 10);
        assert_eq!(get(&out, "Shmem"), 2 << 10);
        assert_eq!(get(&out, "SwapTotal"), 0);
        // host lines kept byte for byte, in order, with the same keys
        assert_eq!(get(&out, "PageTables"), get(HOST, "PageTables"));
        let keys = |t: &[u8]| lines(t).map(|(k, _)| k.to_vec()).collect::<Vec<_>>();
        assert_eq!(keys(&out), keys(HOST));
        // every line keeps the kernel's column layout
        let text = String::from_utf8(out).unwrap();
        for l in text.lines().filter(|l| l.ends_with(" kB")) {
            assert!(l.len() >= 27, "{l:?}");
            assert_eq!(&l[l.len() - 3..], " kB");
        }
        assert!(text.contains("MemTotal:         262144 kB\n"), "{text}");
    }

    #[test]
    fn never_negative_or_above_total() {
        let mut m = container();
        m.usage = 10 << 30; // usage above the limit
        m.stat.active_file = 1 << 40;
        let out = render_str(&m, &SwapView::default());
        assert_eq!(get(&out, "MemFree"), 0);
        assert_eq!(get(&out, "MemAvailable"), 262144);
        m.stat.shmem = 1 << 50;
        assert_eq!(get(&render_str(&m, &SwapView::default()), "AnonPages"), 0);
    }

    #[test]
    fn unlimited_or_above_host_is_host() {
        let host_total = get(HOST, "MemTotal");
        for limit in [None, Some(0), Some(u64::MAX), Some(9223372036854771712)] {
            let mut m = container();
            m.limit = limit;
            assert_eq!(
                get(&render_str(&m, &SwapView::default()), "MemTotal"),
                host_total
            );
        }
    }

    #[test]
    fn v2_slab_and_zswap() {
        let mut m = container();
        m.unified = true;
        m.stat.slab = Some(8 << 20);
        m.stat.slab_reclaimable = Some(6 << 20);
        m.stat.slab_unreclaimable = Some(2 << 20);
        m.stat.zswap = Some(1 << 20);
        let out = render_str(&m, &SwapView::default());
        assert_eq!(get(&out, "Slab"), 8 << 10);
        assert_eq!(get(&out, "SReclaimable"), 6 << 10);
        assert_eq!(get(&out, "SUnreclaim"), 2 << 10);
        assert_eq!(get(&out, "MemAvailable"), 262144 - 102400 + 40960 + 6144);
        assert_eq!(get(&out, "Zswap"), 1 << 10);
        // no zswapped key in memory.stat: the host line stays
        assert_eq!(get(&out, "Zswapped"), get(HOST, "Zswapped"));
    }

    #[test]
    fn swap_lines() {
        let mut m = container();
        m.swap = Some(SwapInputs {
            limit: Some(512 << 20),
            usage: 50 << 20,
            swappiness: None,
        });
        let v = SwapView::new(&m, get(HOST, "SwapTotal"), true);
        let out = render_str(&m, &v);
        assert_eq!(get(&out, "SwapTotal"), 512 << 10);
        assert_eq!(get(&out, "SwapFree"), (512 - 50) << 10);
    }

    #[test]
    fn hostile_host_text() {
        let mut out = Vec::new();
        for host in [
            &b""[..],
            b"\n",
            b"MemTotal",
            b"MemTotal: x kB\n",
            b"\xff\xfe:\n",
        ] {
            out.clear();
            render(host, &container(), &SwapView::default(), true, &mut out);
        }
        out.clear();
        render(
            b"MemTotal: 1000 kB\nMemFree: 5 kB\n",
            &container(),
            &SwapView::default(),
            true,
            &mut out,
        );
        assert_eq!(
            out,
            b"MemTotal:           1000 kB\nMemFree:               0 kB\n"
        );
    }

    #[test]
    fn disable_zswap_zeroes_the_zswap_lines_only() {
        let mut m = container();
        (m.stat.zswap, m.stat.zswapped) = (Some(1 << 20), Some(2 << 20));
        let swap = SwapView::new(&m, 0, true);
        let (mut with, mut without) = (Vec::new(), Vec::new());
        render(HOST, &m, &swap, true, &mut with);
        render(HOST, &m, &swap, false, &mut without);
        let differ: Vec<Vec<u8>> = lines(&with)
            .zip(lines(&without))
            .filter(|(a, b)| a != b)
            .map(|(a, _)| a.0.to_vec())
            .collect();
        assert_eq!(differ, [b"Zswap".to_vec(), b"Zswapped".to_vec()]);
        assert_eq!((get(&without, "Zswap"), get(&without, "Zswapped")), (0, 0));
    }
}
