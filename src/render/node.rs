//! /sys/devices/system/node's files as a container sees them: its memory nodes, each
//! node's CPUs limited to the container's (named as its cpu directory names them), and
//! each node's meminfo from its memory cgroup's memory.numa_stat.

use crate::cgroupfs::numa::NumaStat;

/// Write the nodes of `nodes` (ascending) that are also in the host's list `host`.
pub fn list(nodes: &[u32], host: &[u32], out: &mut Vec<u8>) {
    let both: Vec<u32> = nodes
        .iter()
        .copied()
        .filter(|n| host.binary_search(n).is_ok())
        .collect();
    crate::cpulist::format(&both, out);
}

/// The container's CPUs on a node whose host CPUs are `node_cpus`, as the container's cpu
/// directory names them: host ids, or positions in `shown` when renumbered. Ascending.
fn names(node_cpus: &[u32], shown: &[u32], renumber: bool) -> Vec<u32> {
    shown
        .iter()
        .enumerate()
        .filter(|(_, c)| node_cpus.binary_search(c).is_ok())
        .map(|(i, &c)| if renumber { i as u32 } else { c })
        .collect()
}

/// nodeN/cpulist: the container's CPUs on the node, in the kernel's list format.
pub fn cpulist(node_cpus: &[u32], shown: &[u32], renumber: bool, out: &mut Vec<u8>) {
    crate::cpulist::format(&names(node_cpus, shown, renumber), out);
}

/// Linux's largest CPU mask (NR_CPUS 8192), in hex digits.
const MAX_DIGITS: usize = 8192 / 4;

/// How many hex digits the host's cpumap `text` has: the width the kernel prints every
/// mask in (nr_cpu_ids bits), commas and newline aside.
pub fn mask_digits(text: &[u8]) -> usize {
    text.iter()
        .filter(|b| b.is_ascii_hexdigit())
        .count()
        .min(MAX_DIGITS)
}

/// nodeN/cpumap: the container's CPUs on the node as the kernel prints a mask: `digits`
/// hex digits (more if a CPU needs them), in groups of eight from the right, separated by
/// commas.
pub fn cpumap(node_cpus: &[u32], shown: &[u32], renumber: bool, digits: usize, out: &mut Vec<u8>) {
    let cpus = names(node_cpus, shown, renumber);
    let needed = cpus.last().map_or(1, |&c| c as usize / 4 + 1);
    let digits = digits.max(needed).clamp(1, MAX_DIGITS);
    let mut nibbles = vec![0u8; digits];
    for c in cpus {
        let c = c as usize;
        if c / 4 < digits {
            nibbles[c / 4] |= 1 << (c % 4);
        }
    }
    for i in (0..digits).rev() {
        out.push(b"0123456789abcdef"[nibbles[i] as usize]);
        if i > 0 && i % 8 == 0 {
            out.push(b',');
        }
    }
    out.push(b'\n');
}

/// nodeN/meminfo: the host node's lines in order, with the container's values where
/// memory.numa_stat has them for the node. MemTotal is the node's, at most `total_kb`
/// (the container's MemTotal); MemUsed is what the container uses on the node, MemFree the
/// rest. Every other line (Mlocked, Bounce, HugePages_*, ... and, on v1, all but
/// FilePages, AnonPages and Unevictable) is the host node's.
pub fn meminfo(host: &[u8], stat: &NumaStat, total_kb: u64, out: &mut Vec<u8>) {
    let kb = |key: &str| stat.get(key).map(|b| b / 1024);
    let sum = |a: &str, b: &str| Some(kb(a)? + kb(b)?);
    let host_total = host_kb(host, b"MemTotal").unwrap_or(0);
    let total = host_total.min(total_kb);
    // No line for the node at all (not a file the kernel writes): nothing of the
    // container's is known there, and the host node's use is not the container's.
    let used = stat.used().map_or(0, |b| b / 1024).min(total);
    for line in crate::kfile::lines(host) {
        let Some((prefix, key)) = split_line(line) else {
            out.extend_from_slice(line);
            continue;
        };
        let v = match key {
            b"MemTotal" => Some(total),
            b"MemUsed" => Some(used),
            b"MemFree" => Some(total - used),
            b"Active" => sum("active_anon", "active_file"),
            b"Inactive" => sum("inactive_anon", "inactive_file"),
            b"Active(anon)" => kb("active_anon"),
            b"Inactive(anon)" => kb("inactive_anon"),
            b"Active(file)" => kb("active_file"),
            b"Inactive(file)" => kb("inactive_file"),
            b"Unevictable" => kb("unevictable"),
            b"Dirty" => kb("file_dirty"),
            b"Writeback" => kb("file_writeback"),
            b"FilePages" => kb("file"),
            b"Mapped" => kb("file_mapped"),
            b"AnonPages" => kb("anon"),
            b"Shmem" => kb("shmem"),
            b"KernelStack" => kb("kernel_stack"),
            b"PageTables" => kb("pagetables"),
            b"SecPageTables" => kb("sec_pagetables"),
            b"SwapCached" => kb("swapcached"),
            b"KReclaimable" | b"SReclaimable" => kb("slab_reclaimable"),
            b"SUnreclaim" => kb("slab_unreclaimable"),
            b"Slab" => sum("slab_reclaimable", "slab_unreclaimable"),
            b"AnonHugePages" => kb("anon_thp"),
            b"ShmemHugePages" => kb("shmem_thp"),
            b"FileHugePages" => kb("file_thp"),
            _ => None,
        };
        match v {
            Some(v) => {
                out.extend_from_slice(prefix);
                super::meminfo::kb_line(out, key, v);
            }
            None => out.extend_from_slice(line),
        }
    }
}

/// A node meminfo line `Node 0 MemTotal:  24683784 kB\n` as (`Node 0 `, `MemTotal`), for
/// lines in kB only.
fn split_line(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = memchr::memchr(b':', line)?;
    let head = &line[..colon];
    let start = memchr::memrchr(b' ', head)? + 1;
    line.trim_ascii_end()
        .ends_with(b" kB")
        .then(|| (&line[..start], &head[start..]))
}

/// The kB value of `key` in a node meminfo.
fn host_kb(host: &[u8], key: &[u8]) -> Option<u64> {
    crate::kfile::lines(host).find_map(|line| {
        split_line(line).filter(|(_, k)| *k == key)?;
        let rest = line[memchr::memchr(b':', line)? + 1..].trim_ascii();
        crate::kfile::parse_u64(rest.strip_suffix(b"kB")?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &[u8] = include_bytes!("../../tests/fixtures/node-meminfo-host");

    fn s(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn lists_are_the_container_nodes_the_host_has() {
        assert_eq!(s(|o| list(&[1, 2], &[0, 1, 2, 3], o)), "1-2\n");
        assert_eq!(s(|o| list(&[0, 3], &[0], o)), "0\n");
        assert_eq!(s(|o| list(&[], &[0], o)), "\n");
        assert_eq!(s(|o| list(&[5], &[], o)), "\n");
    }

    #[test]
    fn a_node_cpus_limited_to_the_container() {
        // node1 has CPUs 2-3, 8-9; the container has 3, 8 and 10.
        let node = [2, 3, 8, 9];
        let shown = [3, 8, 10];
        assert_eq!(s(|o| cpulist(&node, &shown, false, o)), "3,8\n");
        // --enable-cfs renumbers: 3 is cpu0, 8 is cpu1.
        assert_eq!(s(|o| cpulist(&node, &shown, true, o)), "0-1\n");
        assert_eq!(s(|o| cpulist(&node, &[0, 1], false, o)), "\n");
        // one CPU of two: "1" in the list, mask 2
        assert_eq!(s(|o| cpulist(&[0, 1], &[1], false, o)), "1\n");
        assert_eq!(s(|o| cpumap(&[0, 1], &[1], false, 1, o)), "2\n");
    }

    #[test]
    fn masks_as_the_kernel_prints_them() {
        assert_eq!(mask_digits(b"3\n"), 1);
        assert_eq!(mask_digits(b"00000000,00000003\n"), 16);
        assert_eq!(
            s(|o| cpumap(&[2, 3, 8, 9], &[3, 8], false, 16, o)),
            "00000000,00000108\n"
        );
        assert_eq!(s(|o| cpumap(&[35], &[35], false, 9, o)), "8,00000000\n");
        assert_eq!(s(|o| cpumap(&[], &[], false, 4, o)), "0000\n");
    }

    #[test]
    fn hostile_masks() {
        // a host mask narrower than its CPUs widens; a garbage one has no digits
        assert_eq!(s(|o| cpumap(&[40], &[40], false, 1, o)), "100,00000000\n");
        assert_eq!(mask_digits(b"zz,\n"), 0);
        assert_eq!(s(|o| cpumap(&[0], &[0], false, 0, o)), "1\n");
        // an absurdly wide one is capped at NR_CPUS bits
        assert_eq!(mask_digits(&[b'f'; 100_000]), MAX_DIGITS);
        let wide = s(|o| cpumap(&[8191], &[8191], false, usize::MAX, o));
        assert!(wide.starts_with('8'));
        assert_eq!(
            wide.bytes().filter(u8::is_ascii_hexdigit).count(),
            MAX_DIGITS
        );
    }

    fn value(text: &str, key: &str) -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("Node 1 {key}:")))
            .unwrap_or_else(|| panic!("no {key} in {text}"))
            .trim()
            .trim_end_matches(" kB")
            .parse()
            .unwrap()
    }

    #[test]
    fn meminfo_v2_is_the_containers_on_the_hosts_layout() {
        let stat = NumaStat::parse(
            b"anon 1048576 N0=0 N1=1048576\nfile 2097152 N0=0 N1=2097152\n\
active_anon 0 N1=0\ninactive_anon 1048576 N1=1048576\nactive_file 1048576 N1=1048576\n\
inactive_file 1048576 N1=1048576\nkernel_stack 16384 N1=16384\nslab_reclaimable 4096 N1=4096\n\
slab_unreclaimable 8192 N1=8192\nfile_dirty 0 N1=0\nshmem 0 N1=0\n",
            1,
            4096,
        );
        let out = s(|o| meminfo(HOST, &stat, 512 * 1024, o));
        let host = std::str::from_utf8(HOST).unwrap();
        assert_eq!(out.lines().count(), host.lines().count());
        for (a, b) in out.lines().zip(host.lines()) {
            assert_eq!(
                a.split(':').next(),
                b.split(':').next(),
                "the host's keys in order"
            );
            assert_eq!(a.len(), b.len(), "the kernel's columns: {a}");
        }
        assert_eq!(value(&out, "MemTotal"), 512 * 1024, "the container's limit");
        assert_eq!(value(&out, "MemUsed"), 1024 + 2048 + 16 + 4 + 8);
        assert_eq!(value(&out, "MemFree"), 512 * 1024 - 3100);
        assert_eq!(value(&out, "AnonPages"), 1024);
        assert_eq!(value(&out, "FilePages"), 2048);
        assert_eq!(value(&out, "Active"), 1024);
        assert_eq!(value(&out, "Inactive"), 2048);
        assert_eq!(value(&out, "Slab"), 12);
        assert_eq!(value(&out, "KReclaimable"), 4);
        // no per-node source: the host node's
        assert_eq!(value(&out, "Mlocked"), value(host, "Mlocked"));
        assert_eq!(value(&out, "Writeback"), value(host, "Writeback"));
        assert!(out.contains("Node 1 HugePages_Total:     0\n"));
    }

    #[test]
    fn meminfo_v1_and_an_unlimited_container() {
        let stat = NumaStat::parse(
            b"hierarchical_total=512 N0=0 N1=512\nhierarchical_file=256 N0=0 N1=256\n\
hierarchical_anon=256 N0=0 N1=256\nhierarchical_unevictable=0 N0=0 N1=0\n",
            1,
            4096,
        );
        let out = s(|o| meminfo(HOST, &stat, u64::MAX, o));
        let host = std::str::from_utf8(HOST).unwrap();
        assert_eq!(value(&out, "MemTotal"), value(host, "MemTotal"));
        assert_eq!(value(&out, "MemUsed"), 2048);
        assert_eq!(value(&out, "MemFree"), value(host, "MemTotal") - 2048);
        assert_eq!(value(&out, "FilePages"), 1024);
        assert_eq!(value(&out, "Unevictable"), 0);
        assert_eq!(
            value(&out, "Active"),
            value(host, "Active"),
            "v1 has no per-node LRUs"
        );
    }

    #[test]
    fn meminfo_hostile() {
        // usage beyond the limit: all used, nothing free
        let stat = NumaStat::parse(b"hierarchical_total=1 N1=18446744073709551615\n", 1, 4096);
        let out = s(|o| meminfo(HOST, &stat, 1024, o));
        assert_eq!(value(&out, "MemUsed"), 1024);
        assert_eq!(value(&out, "MemFree"), 0);
        // garbage host text passes through; a missing MemTotal counts as 0
        let junk = b"Node 1 MemUsed: x kB\n\xff:\nno colon\nNode 1 Active:\n";
        let mut out = Vec::new();
        meminfo(junk, &stat, 1024, &mut out);
        assert_eq!(
            out,
            b"Node 1 MemUsed:               0 kB\n\xff:\nno colon\nNode 1 Active:\n"
        );
        // nothing for the node: none used, not the host node's use
        let out = s(|o| meminfo(HOST, &NumaStat::default(), 1024, o));
        assert_eq!(value(&out, "MemTotal"), 1024);
        assert_eq!(value(&out, "MemUsed"), 0);
        assert_eq!(value(&out, "MemFree"), 1024);
    }
}
