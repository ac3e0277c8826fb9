//! memory.numa_stat: how much of a memory cgroup's memory lies on each NUMA node.
//!
//! v2 gives one line per counter, in bytes: `anon N0=4096 N1=0`. v1 gives LRU page counts,
//! the cgroup's own (`total=3 N0=3`) and its subtree's (`hierarchical_total=...`): the
//! subtree's are read, as the container's memory includes its children's.

use crate::kfile::{self, parse_u64};

/// The counters read, by their v2 names; v1's hierarchical_{total,file,anon,unevictable}
/// give `total`, `file`, `anon` and `unevictable` (v2 has no `total`).
pub const KEYS: [&str; 21] = [
    "total",
    "anon",
    "file",
    "kernel_stack",
    "pagetables",
    "sec_pagetables",
    "shmem",
    "file_mapped",
    "file_dirty",
    "file_writeback",
    "swapcached",
    "anon_thp",
    "file_thp",
    "shmem_thp",
    "inactive_anon",
    "active_anon",
    "inactive_file",
    "active_file",
    "unevictable",
    "slab_reclaimable",
    "slab_unreclaimable",
];

/// One node's counters, in bytes; None where the file has no such line for the node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NumaStat {
    values: [Option<u64>; KEYS.len()],
}

impl NumaStat {
    pub fn get(&self, key: &str) -> Option<u64> {
        KEYS.iter()
            .position(|k| *k == key)
            .and_then(|i| self.values[i])
    }

    /// Parse node `node`'s counters from memory.numa_stat `text`; v1 counts in pages of
    /// `page_size` bytes.
    pub fn parse(text: &[u8], node: u32, page_size: u64) -> NumaStat {
        let mut s = NumaStat::default();
        let mut field = Vec::with_capacity(12);
        field.push(b'N');
        crate::render::num(&mut field, u64::from(node));
        field.push(b'=');
        for line in kfile::lines(text) {
            let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
            let Some(first) = words.next() else { continue };
            // v1: `hierarchical_total=3 N0=3`; v2: `anon N0=4096`.
            let (key, unit) = match memchr::memchr(b'=', first) {
                Some(eq) => match first[..eq].strip_prefix(b"hierarchical_") {
                    Some(k) => (k, page_size),
                    None => continue,
                },
                None => (first, 1),
            };
            let Some(i) = KEYS.iter().position(|k| k.as_bytes() == key) else {
                continue;
            };
            if let Some(v) = words
                .find_map(|w| w.strip_prefix(field.as_slice()))
                .and_then(parse_u64)
            {
                s.values[i] = Some(v.saturating_mul(unit));
            }
        }
        s
    }

    /// The memory the cgroup uses on the node: v1's LRU total, or v2's counters that
    /// memory.current also charges (pages on the LRUs, kernel stacks, page tables, slab).
    pub fn used(&self) -> Option<u64> {
        if let Some(t) = self.get("total") {
            return Some(t);
        }
        let parts = [
            "anon",
            "file",
            "kernel_stack",
            "pagetables",
            "sec_pagetables",
            "slab_reclaimable",
            "slab_unreclaimable",
        ];
        let mut any = false;
        let sum = parts.iter().fold(0u64, |acc, k| match self.get(k) {
            Some(v) => {
                any = true;
                acc.saturating_add(v)
            }
            None => acc,
        });
        any.then_some(sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &[u8] = b"total=3509 N0=3509 N1=7\nfile=117 N0=117 N1=0\nanon=0 N0=0 N1=0\n\
unevictable=3392 N0=3392 N1=0\nhierarchical_total=594938 N0=594930 N1=8\n\
hierarchical_file=580619 N0=580619 N1=0\nhierarchical_anon=10927 N0=10919 N1=8\n\
hierarchical_unevictable=3392 N0=3392 N1=0\n";

    const V2: &[u8] = b"anon 1048576 N0=1048576 N1=0\nfile 8192 N0=4096 N1=4096\n\
kernel_stack 16384 N0=16384 N1=0\npagetables 4096 N0=4096 N1=0\nshmem 0 N0=0 N1=0\n\
active_anon 0 N0=0 N1=0\ninactive_anon 1048576 N0=1048576 N1=0\n\
slab_reclaimable 100 N0=100 N1=0\nslab_unreclaimable 200 N0=200 N1=0\n\
workingset_refault_anon 5 N0=5 N1=0\n";

    #[test]
    fn v1_reads_the_subtree_in_pages() {
        let n1 = NumaStat::parse(V1, 1, 4096);
        assert_eq!(n1.get("total"), Some(8 * 4096));
        assert_eq!(n1.get("anon"), Some(8 * 4096));
        assert_eq!(n1.get("file"), Some(0));
        assert_eq!(n1.used(), Some(8 * 4096));
        assert_eq!(n1.get("shmem"), None);
        let n0 = NumaStat::parse(V1, 0, 4096);
        assert_eq!(n0.get("unevictable"), Some(3392 * 4096));
        assert_eq!(NumaStat::parse(V1, 2, 4096), NumaStat::default());
    }

    #[test]
    fn v2_reads_bytes() {
        let n0 = NumaStat::parse(V2, 0, 4096);
        assert_eq!(n0.get("anon"), Some(1 << 20));
        assert_eq!(n0.get("file"), Some(4096));
        assert_eq!(n0.get("total"), None);
        assert_eq!(n0.used(), Some((1 << 20) + 4096 + 16384 + 4096 + 100 + 200));
        let n1 = NumaStat::parse(V2, 1, 4096);
        assert_eq!(n1.used(), Some(4096));
    }

    #[test]
    fn hostile() {
        assert_eq!(NumaStat::parse(b"", 0, 4096).used(), None);
        let s = NumaStat::parse(
            b"hierarchical_total=1 N0=99999999999999999999\nanon N0=-1 N0=5\n\
file N0=18446744073709551615\n=\n N0=1\nfile_dirty\xff N0=1\n",
            0,
            4096,
        );
        assert_eq!(s.get("total"), None, "an overflowing count is no count");
        assert_eq!(s.get("anon"), None, "the first N0 field is the node's");
        assert_eq!(s.get("file"), Some(u64::MAX));
        let big = NumaStat::parse(b"hierarchical_total=1 N0=18446744073709551615\n", 0, 4096);
        assert_eq!(big.used(), Some(u64::MAX), "pages saturate");
        // N10 is not N1
        assert_eq!(
            NumaStat::parse(b"anon 1 N10=7\n", 1, 4096).get("anon"),
            None
        );
    }
}
