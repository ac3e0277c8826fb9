//! /sys/devices/system/node's files as a container sees them: its memory nodes, and each
//! node's CPUs limited to the container's (named as its cpu directory names them).

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
