//! /proc/vmstat: every line of the host's file, in its order and format, with the
//! container's own value where its memory cgroup counts the same thing (the page counts
//! of its memory.stat and its events: faults, reclaim scans and steals, refaults, THP
//! allocations, swap-ins and outs where the kernel keeps them per cgroup). Every other
//! line is the host's. Event counters are kept per container and never shown going
//! backwards.

use super::num;
use crate::kfile::{lines, parse_u64};

/// What a container was shown last, by the host file's line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VmstatHistory {
    shown: Vec<u64>,
}

impl VmstatHistory {
    /// One space-free word a successor process takes back with `from_word`: the values
    /// shown, by line, comma-separated.
    pub fn to_word(&self) -> String {
        let words: Vec<String> = self.shown.iter().map(u64::to_string).collect();
        words.join(",")
    }

    /// None for a malformed word.
    pub fn from_word(w: &str) -> Option<VmstatHistory> {
        let shown = match w {
            "" => Vec::new(),
            _ => w
                .split(',')
                .map(|v| v.parse().ok())
                .collect::<Option<_>>()?,
        };
        Some(VmstatHistory { shown })
    }
}

/// A line that is a level, not a count of events: it may go down. The kernel names its
/// page counts `nr_*`; `workingset_nodes` is the one level named otherwise.
fn is_level(name: &[u8]) -> bool {
    name.starts_with(b"nr_") || name == b"workingset_nodes"
}

/// Render /proc/vmstat from the host's file and the container's counters (as
/// `cgroupfs::memory::vmstat_counters` gives them: vmstat's names and units, sorted by
/// name).
pub fn render(
    host: &[u8],
    container: &[(&[u8], u64)],
    history: &mut VmstatHistory,
    out: &mut Vec<u8>,
) {
    let mut count = 0;
    for (i, line) in lines(host).enumerate() {
        count = i + 1;
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        let Some(sp) = memchr::memchr(b' ', body) else {
            out.extend_from_slice(line);
            continue;
        };
        let (name, host_value) = (&body[..sp], parse_u64(&body[sp + 1..]));
        let Some(host_value) = host_value else {
            out.extend_from_slice(line);
            continue;
        };
        let own = container
            .binary_search_by(|(k, _)| k.cmp(&name))
            .ok()
            .map(|i| container[i].1);
        let mut v = own.unwrap_or(host_value);
        if !is_level(name) {
            if history.shown.len() <= i {
                history.shown.resize(i + 1, 0);
            }
            v = v.max(history.shown[i]);
            history.shown[i] = v;
        }
        out.extend_from_slice(name);
        out.push(b' ');
        num(out, v);
        out.push(b'\n');
    }
    // Another host layout (never within one boot): forget what no line is any more.
    history.shown.truncate(count);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroupfs::memory::vmstat_counters;

    const HOST: &[u8] = include_bytes!("../../tests/fixtures/vmstat-host");
    const V1: &[u8] = include_bytes!("../../tests/fixtures/memory.stat-v1");
    const V2: &[u8] = include_bytes!("../../tests/fixtures/memory.stat-v2");
    const PAGE: u64 = 4096;
    const THP: u64 = 2 << 20;

    fn value(text: &[u8], key: &str) -> u64 {
        let text = std::str::from_utf8(text).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {key}"))
            .parse()
            .unwrap()
    }

    fn show(stat: &[u8], unified: bool, h: &mut VmstatHistory) -> Vec<u8> {
        let c = vmstat_counters(stat, b"oom_kill 3\n", unified, PAGE, THP);
        let mut out = Vec::new();
        render(HOST, &c, h, &mut out);
        out
    }

    fn names(text: &[u8]) -> Vec<&[u8]> {
        lines(text)
            .map(|l| l.split(|&b| b == b' ').next().unwrap())
            .collect()
    }

    #[test]
    fn v1_total_keys_in_the_hosts_layout() {
        let out = show(V1, false, &mut VmstatHistory::default());
        assert_eq!(names(&out), names(HOST), "every host line, in order");
        assert!(out.ends_with(b"\n"));
        // total_* keys, not the cgroup's own
        assert_eq!(value(&out, "pgfault"), value(V1, "total_pgfault"));
        assert_eq!(value(&out, "pgmajfault"), value(V1, "total_pgmajfault"));
        assert_eq!(
            value(&out, "nr_file_pages"),
            value(V1, "total_cache") / PAGE
        );
        assert_eq!(value(&out, "nr_anon_pages"), value(V1, "total_rss") / PAGE);
        assert_eq!(
            value(&out, "nr_inactive_anon"),
            value(V1, "total_inactive_anon") / PAGE
        );
        assert_eq!(
            value(&out, "nr_zone_inactive_anon"),
            value(&out, "nr_inactive_anon")
        );
        assert_eq!(
            value(&out, "nr_zone_write_pending"),
            (value(V1, "total_dirty") + value(V1, "total_writeback")) / PAGE
        );
        assert_eq!(
            value(&out, "workingset_refault_file"),
            value(V1, "total_workingset_refault_file")
        );
        assert_eq!(value(&out, "oom_kill"), 3, "from memory.oom_control");
        // v1's pgpgin counts charged pages, not kB read: the host's stays
        assert_eq!(value(&out, "pgpgin"), value(HOST, "pgpgin"));
        assert_eq!(value(&out, "pgpgout"), value(HOST, "pgpgout"));
        // nothing in v1's memory.stat for these
        assert_eq!(value(&out, "pgscan_kswapd"), value(HOST, "pgscan_kswapd"));
        assert_eq!(value(&out, "nr_free_pages"), value(HOST, "nr_free_pages"));
        assert_eq!(
            value(&out, "nr_slab_reclaimable"),
            value(HOST, "nr_slab_reclaimable")
        );
    }

    #[test]
    fn v2_keys_and_units() {
        let out = show(V2, true, &mut VmstatHistory::default());
        assert_eq!(names(&out), names(HOST));
        for key in [
            "pgfault",
            "pgmajfault",
            "pgrefill",
            "pgactivate",
            "pgdeactivate",
            "pgscan_kswapd",
            "pgscan_direct",
            "pgsteal_kswapd",
            "pgsteal_direct",
            "workingset_refault_anon",
            "workingset_refault_file",
            "workingset_activate_file",
            "workingset_nodereclaim",
            "thp_fault_alloc",
            "thp_collapse_alloc",
            "pswpin",
            "pswpout",
            "zswpout",
            "swpout_zero",
        ] {
            assert_eq!(value(&out, key), value(V2, key), "{key}");
        }
        assert_eq!(value(&out, "nr_anon_pages"), value(V2, "anon") / PAGE);
        assert_eq!(value(&out, "nr_mapped"), value(V2, "file_mapped") / PAGE);
        assert_eq!(
            value(&out, "nr_kernel_stack"),
            value(V2, "kernel_stack") / 1024
        );
        assert_eq!(
            value(&out, "nr_page_table_pages"),
            value(V2, "pagetables") / PAGE
        );
        assert_eq!(
            value(&out, "nr_slab_unreclaimable"),
            value(V2, "slab_unreclaimable") / PAGE
        );
        assert_eq!(
            value(&out, "nr_anon_transparent_hugepages"),
            value(V2, "anon_thp") / THP
        );
        assert_eq!(value(&out, "nr_swapcached"), value(V2, "swapcached") / PAGE);
        assert_eq!(value(&out, "oom_kill"), 3, "from memory.events");
        // the host's: no per-cgroup source
        for key in ["pgpgin", "pgfree", "pgscan_anon", "nr_free_pages"] {
            assert_eq!(value(&out, key), value(HOST, key), "{key}");
        }
    }

    #[test]
    fn counters_never_go_backwards_but_levels_do() {
        let mut h = VmstatHistory::default();
        let first = show(V2, true, &mut h);
        // the container moved to a fresh cgroup: smaller counts
        let fresh = String::from_utf8(V2.to_vec())
            .unwrap()
            .replace("\npgfault 2298716\n", "\npgfault 5\n")
            .replace("anon 52195328\n", "anon 4096\n");
        let second = show(fresh.as_bytes(), true, &mut h);
        assert_eq!(value(&second, "pgfault"), value(&first, "pgfault"));
        assert_eq!(value(&second, "nr_anon_pages"), 1, "a level follows");
        let third = show(V2, true, &mut h);
        assert_eq!(third, first);
        // a restored history (a new layout) is cut to the host's lines
        h.shown.resize(10_000, u64::MAX);
        let fourth = show(V2, true, &mut h);
        assert_eq!(h.shown.len(), lines(HOST).count());
        assert_eq!(value(&fourth, "nr_anon_pages"), value(V2, "anon") / PAGE);
    }

    #[test]
    fn hostile_inputs() {
        let hostile: [&[u8]; 8] = [
            b"",
            b"\n\n",
            b"pgfault",
            b"pgfault x\n",
            b"pgfault -1\n",
            b"pgfault 99999999999999999999999\nanon 18446744073709551615\n",
            b"total_pgfault 7\ntotal_ 9\nnr_free_pages 1\n \n",
            b"pgfault 1\npgfault 2\nnr_dirty 3\nfile_dirty 4096\n",
        ];
        for stat in hostile {
            for unified in [false, true] {
                let c = vmstat_counters(stat, stat, unified, 0, 0);
                assert!(c.windows(2).all(|w| w[0].0 < w[1].0), "sorted, unique");
                assert!(c.iter().all(|(k, _)| !k.is_empty()));
                let mut out = Vec::new();
                render(HOST, &c, &mut VmstatHistory::default(), &mut out);
                assert_eq!(names(&out), names(HOST), "{stat:?}");
            }
        }
        // a page count named in memory.stat is never taken as the vmstat line
        let c = vmstat_counters(b"nr_free_pages 1\n", b"", true, PAGE, THP);
        assert_eq!(c, [(&b"oom_kill"[..], 0)]);
        let c = vmstat_counters(b"anon 18446744073709551615\n", b"oom_kill x\n", true, 0, 0);
        assert_eq!(
            c,
            [(&b"nr_anon_pages"[..], u64::MAX), (&b"oom_kill"[..], 0)]
        );
        // no oom_kill count at all: 0, not the host's
        let c = vmstat_counters(b"", b"", true, PAGE, THP);
        let mut out = Vec::new();
        render(HOST, &c, &mut VmstatHistory::default(), &mut out);
        assert_eq!(value(&out, "oom_kill"), 0);
        // a history survives its word; a malformed word is none
        let mut h = VmstatHistory::default();
        render(
            HOST,
            &vmstat_counters(b"", b"oom_kill 2\n", true, PAGE, THP),
            &mut h,
            &mut Vec::new(),
        );
        assert!(!h.shown.is_empty());
        assert_eq!(VmstatHistory::from_word(&h.to_word()), Some(h));
        assert_eq!(VmstatHistory::from_word(""), Some(VmstatHistory::default()));
        for bad in ["1,,2", "x", "1 2", "-1"] {
            assert_eq!(VmstatHistory::from_word(bad), None, "{bad}");
        }
        // a host file that is not name-value lines passes through unchanged
        let host = b"weird\nname notanumber\nlast 5";
        let mut out = Vec::new();
        let c = vmstat_counters(b"last 7\n", b"", true, PAGE, THP);
        render(host, &c, &mut VmstatHistory::default(), &mut out);
        assert_eq!(out, b"weird\nname notanumber\nlast 7\n");
    }
}
