//! The memory controller: memory.stat parsing and gathering what meminfo and swaps need.

use std::io;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::dir::{CgroupDir, Knob};
use crate::kfile::parse_u64;
use crate::stats::{self, Counter};

/// The memory.stat counters the views use, in bytes, under v2 names. On v1 they come
/// from the hierarchical `total_*` keys. Keys are matched whole (upstream's prefix
/// matching lost `mapped_file` and `rss_huge`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemStat {
    pub file: u64,
    pub active_anon: u64,
    pub inactive_anon: u64,
    pub active_file: u64,
    pub inactive_file: u64,
    pub unevictable: u64,
    pub shmem: u64,
    pub file_mapped: u64,
    pub file_dirty: u64,
    pub file_writeback: u64,
    pub anon_thp: u64,
    /// v2 only: None on v1, where memory.stat has no slab counters.
    pub slab: Option<u64>,
    pub slab_reclaimable: Option<u64>,
    pub slab_unreclaimable: Option<u64>,
    /// v2 with zswap only.
    pub zswap: Option<u64>,
    pub zswapped: Option<u64>,
    /// v1: the limits in force over the cgroup and its ancestors, which the kernel
    /// computes for us (`hierarchical_*`); the memsw one only with swap accounting.
    pub hierarchical_limit: Option<u64>,
    pub hierarchical_memsw_limit: Option<u64>,
    /// v1: swap in use (`total_swap`).
    pub swap: u64,
}

impl MemStat {
    pub fn parse(text: &[u8], unified: bool) -> MemStat {
        let mut s = MemStat::default();
        for line in crate::kfile::lines(text) {
            let Some(sp) = memchr::memchr(b' ', line) else {
                continue;
            };
            let (key, val) = (&line[..sp], line[sp + 1..].trim_ascii_end());
            let Some(v) = parse_u64(val) else { continue };
            match (unified, key) {
                (false, b"hierarchical_memory_limit") => s.hierarchical_limit = Some(v),
                (false, b"hierarchical_memsw_limit") => s.hierarchical_memsw_limit = Some(v),
                _ => {}
            }
            let key = if unified {
                key
            } else {
                match key.strip_prefix(b"total_") {
                    Some(k) => k,
                    None => continue,
                }
            };
            let slot = match (unified, key) {
                (true, b"file") | (false, b"cache") => &mut s.file,
                (_, b"active_anon") => &mut s.active_anon,
                (_, b"inactive_anon") => &mut s.inactive_anon,
                (_, b"active_file") => &mut s.active_file,
                (_, b"inactive_file") => &mut s.inactive_file,
                (_, b"unevictable") => &mut s.unevictable,
                (_, b"shmem") => &mut s.shmem,
                (true, b"file_mapped") | (false, b"mapped_file") => &mut s.file_mapped,
                (true, b"file_dirty") | (false, b"dirty") => &mut s.file_dirty,
                (true, b"file_writeback") | (false, b"writeback") => &mut s.file_writeback,
                (true, b"anon_thp") | (false, b"rss_huge") => &mut s.anon_thp,
                (true, b"slab") => s.slab.insert(0),
                (true, b"slab_reclaimable") => s.slab_reclaimable.insert(0),
                (true, b"slab_unreclaimable") => s.slab_unreclaimable.insert(0),
                (true, b"zswap") => s.zswap.insert(0),
                (true, b"zswapped") => s.zswapped.insert(0),
                (false, b"swap") => &mut s.swap,
                _ => continue,
            };
            *slot = v;
        }
        s
    }
}

/// Swap accounting of a cgroup, when the kernel keeps it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SwapInputs {
    /// v2: min over ancestors of memory.swap.max (swap alone).
    /// v1: min over ancestors of memory.memsw.limit_in_bytes (RAM + swap), as lxcfs shows it.
    pub limit: Option<u64>,
    /// Swap in use: v2 memory.swap.current, v1 memory.stat's total_swap.
    pub usage: u64,
    /// v1 memory.swappiness (v2 has none).
    pub swappiness: Option<u64>,
}

/// Everything /proc/meminfo and /proc/swaps need from a memory cgroup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryInputs {
    pub unified: bool,
    /// Min over the cgroup and its ancestors; None = unlimited.
    pub limit: Option<u64>,
    pub usage: u64,
    pub stat: MemStat,
    /// None when swap accounting is off.
    pub swap: Option<SwapInputs>,
}

/// memory.stat parsed at most `ttl` ago, shared by the workers serving one container.
///
/// The kernel itself folds memcg statistics lazily (per-CPU batches, a periodic flush),
/// so a read a few milliseconds old shows nothing a fresh one would not; memory.stat is
/// the costliest file a meminfo read needs.
#[derive(Debug, Default)]
pub struct StatCache {
    slot: Mutex<Option<(Instant, MemStat)>>,
}

impl StatCache {
    fn get(&self, ttl: Duration) -> Option<MemStat> {
        let slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        slot.filter(|(at, _)| at.elapsed() < ttl).map(|(_, s)| s)
    }

    fn put(&self, s: MemStat) {
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), s));
    }
}

impl MemoryInputs {
    /// Read them from the container's memory cgroup: usage and limits afresh, memory.stat
    /// through `cache`. `buf` is scratch.
    pub fn gather(
        dir: &CgroupDir,
        cache: &StatCache,
        ttl: Duration,
        buf: &mut Vec<u8>,
    ) -> io::Result<MemoryInputs> {
        let unified = dir.unified;
        let usage = dir.read_limit(Knob::MemoryUsage, buf)?.unwrap_or(0);
        let (stat, cached) = match cache.get(ttl) {
            Some(s) => {
                stats::add(Counter::MemStatHit);
                (s, true)
            }
            None => {
                stats::add(Counter::MemStatMiss);
                dir.read(Knob::MemoryStat, buf)?;
                let s = MemStat::parse(buf, unified);
                cache.put(s);
                (s, false)
            }
        };
        let (limit, swap) = if unified {
            let swap = match dir.read_limit(Knob::SwapUsage, buf) {
                Ok(used) => Some(SwapInputs {
                    limit: dir.min_limit(Knob::SwapLimit, buf)?,
                    usage: used.unwrap_or(0),
                    swappiness: None,
                }),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => None,
                Err(e) => return Err(e),
            };
            (dir.min_limit(Knob::MemoryLimit, buf)?, swap)
        } else {
            let mut limit = match stat.hierarchical_limit {
                Some(l) => Some(l),
                None => dir.min_limit(Knob::MemoryLimit, buf)?,
            };
            // A cached memory.stat can predate a limit just set: runtimes set it a moment
            // before the container's first program starts, which reads meminfo at once
            // (a JVM as pid 1). The cgroup's own limit is read afresh.
            if cached && let Some(own) = dir.read_limit(Knob::MemoryLimit, buf)? {
                limit = Some(limit.map_or(own, |l| l.min(own)));
            }
            let swap = stat.hierarchical_memsw_limit.map(|memsw| SwapInputs {
                limit: Some(memsw),
                usage: stat.swap,
                swappiness: dir.read_limit(Knob::Swappiness, buf).ok().flatten(),
            });
            (limit, swap)
        };
        Ok(MemoryInputs {
            unified,
            limit,
            usage,
            stat,
            swap,
        })
    }
}

/// How the kernel's /proc/vmstat counts a quantity that memory.stat gives in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum VmUnit {
    Pages,
    /// `nr_kernel_stack` is in kB.
    Kb,
    /// The `*_hugepages` lines count PMD-sized huge pages.
    Thp,
}

/// A memory.stat byte count that /proc/vmstat shows in its own unit.
struct VmBytes {
    v2: &'static [u8],
    /// The v1 key without `total_`; empty where v1 has none.
    v1: &'static [u8],
    lines: &'static [&'static [u8]],
    unit: VmUnit,
}

const fn vm(
    v2: &'static [u8],
    v1: &'static [u8],
    lines: &'static [&'static [u8]],
    unit: VmUnit,
) -> VmBytes {
    VmBytes {
        v2,
        v1,
        lines,
        unit,
    }
}

/// The byte counts and the vmstat lines that show them. The LRU sizes also fill the
/// `nr_zone_*` lines, which the kernel sums per zone from the same pages.
const VM_BYTES: [VmBytes; 20] = [
    vm(b"anon", b"rss", &[b"nr_anon_pages"], VmUnit::Pages),
    vm(b"file", b"cache", &[b"nr_file_pages"], VmUnit::Pages),
    vm(b"kernel_stack", b"", &[b"nr_kernel_stack"], VmUnit::Kb),
    vm(b"pagetables", b"", &[b"nr_page_table_pages"], VmUnit::Pages),
    vm(
        b"sec_pagetables",
        b"",
        &[b"nr_sec_page_table_pages"],
        VmUnit::Pages,
    ),
    vm(b"shmem", b"shmem", &[b"nr_shmem"], VmUnit::Pages),
    vm(
        b"file_mapped",
        b"mapped_file",
        &[b"nr_mapped"],
        VmUnit::Pages,
    ),
    vm(b"file_dirty", b"dirty", &[b"nr_dirty"], VmUnit::Pages),
    vm(
        b"file_writeback",
        b"writeback",
        &[b"nr_writeback"],
        VmUnit::Pages,
    ),
    vm(
        b"swapcached",
        b"swapcached",
        &[b"nr_swapcached"],
        VmUnit::Pages,
    ),
    vm(
        b"anon_thp",
        b"rss_huge",
        &[b"nr_anon_transparent_hugepages"],
        VmUnit::Thp,
    ),
    vm(b"file_thp", b"", &[b"nr_file_hugepages"], VmUnit::Thp),
    vm(b"shmem_thp", b"", &[b"nr_shmem_hugepages"], VmUnit::Thp),
    vm(
        b"inactive_anon",
        b"inactive_anon",
        &[b"nr_inactive_anon", b"nr_zone_inactive_anon"],
        VmUnit::Pages,
    ),
    vm(
        b"active_anon",
        b"active_anon",
        &[b"nr_active_anon", b"nr_zone_active_anon"],
        VmUnit::Pages,
    ),
    vm(
        b"inactive_file",
        b"inactive_file",
        &[b"nr_inactive_file", b"nr_zone_inactive_file"],
        VmUnit::Pages,
    ),
    vm(
        b"active_file",
        b"active_file",
        &[b"nr_active_file", b"nr_zone_active_file"],
        VmUnit::Pages,
    ),
    vm(
        b"unevictable",
        b"unevictable",
        &[b"nr_unevictable", b"nr_zone_unevictable"],
        VmUnit::Pages,
    ),
    vm(
        b"slab_reclaimable",
        b"",
        &[b"nr_slab_reclaimable"],
        VmUnit::Pages,
    ),
    vm(
        b"slab_unreclaimable",
        b"",
        &[b"nr_slab_unreclaimable"],
        VmUnit::Pages,
    ),
];

/// memory.stat keys whose /proc/vmstat namesake counts something else: v1's pgpgin and
/// pgpgout count pages charged to and uncharged from the cgroup, vmstat's count kB read
/// from and written to block devices.
const VM_NOT_THE_SAME: [&[u8]; 2] = [b"pgpgin", b"pgpgout"];

/// The memory.stat values (and the OOM kills of `events`: v1 memory.oom_control counts the
/// cgroup's own tasks only, as the kernel walks no parents on v1; v2 memory.events also its
/// descendants', unless cgroup2 is mounted with memory_localevents) that a /proc/vmstat line can show, named and counted as
/// /proc/vmstat names and counts them: byte counts converted to pages (kB, huge pages)
/// by `VM_BYTES`; every other key (the event counters: pgfault, pgscan_kswapd,
/// workingset_refault_file, thp_fault_alloc, ...) as it is, to be matched by name with a
/// vmstat event line. v1 counts come from the hierarchical `total_*` keys. Malformed lines
/// and values are skipped.
pub fn vmstat_counters<'a>(
    text: &'a [u8],
    events: &[u8],
    unified: bool,
    page_size: u64,
    thp_size: u64,
) -> Vec<(&'a [u8], u64)> {
    let mut out: Vec<(&[u8], u64)> = Vec::with_capacity(96);
    let (mut dirty, mut writeback) = (None, None);
    for line in crate::kfile::lines(text) {
        let Some(sp) = memchr::memchr(b' ', line) else {
            continue;
        };
        let (key, val) = (&line[..sp], line[sp + 1..].trim_ascii_end());
        let Some(v) = parse_u64(val) else { continue };
        let key = match (unified, key.strip_prefix(b"total_")) {
            (true, _) => key,
            (false, Some(k)) => k,
            (false, None) => continue,
        };
        if key.is_empty() || (!unified && VM_NOT_THE_SAME.contains(&key)) {
            continue;
        }
        let bytes = VM_BYTES
            .iter()
            .find(|b| key == if unified { b.v2 } else { b.v1 });
        match bytes {
            Some(b) => {
                let n = match b.unit {
                    VmUnit::Pages => v / page_size.max(1),
                    VmUnit::Kb => v / 1024,
                    VmUnit::Thp => v / thp_size.max(1),
                };
                match b.lines[0] {
                    b"nr_dirty" => dirty = Some(n),
                    b"nr_writeback" => writeback = Some(n),
                    _ => {}
                }
                out.extend(b.lines.iter().map(|&name| (name, n)));
            }
            // A vmstat page count is never taken from a memory.stat key of that name.
            None if key.starts_with(b"nr_") => {}
            None => out.push((key, v)),
        }
    }
    let oom_kills =
        crate::kfile::lines(events).find_map(|l| parse_u64(l.strip_prefix(b"oom_kill ")?));
    // None counted (no such line before 4.13): 0, never the host's count.
    out.push((b"oom_kill", oom_kills.unwrap_or(0)));
    if let (Some(d), Some(w)) = (dirty, writeback) {
        out.push((b"nr_zone_write_pending", d.saturating_add(w)));
    }
    out.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out.dedup_by(|a, b| a.0 == b.0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &[u8] = b"cache 100\nrss 5\nmapped_file 1\ntotal_cache 4096\ntotal_rss 8192\n\
total_rss_huge 2097152\ntotal_shmem 1024\ntotal_mapped_file 3072\ntotal_dirty 512\n\
total_writeback 256\ntotal_active_anon 6000\ntotal_inactive_anon 2192\n\
total_active_file 3000\ntotal_inactive_file 1096\ntotal_unevictable 7\n\
hierarchical_memory_limit 268435456\nhierarchical_memsw_limit 536870912\ntotal_swap 4096\n";

    const V2: &[u8] = b"anon 8192\nfile 4096\nkernel_stack 16384\nshmem 1024\nfile_mapped 3072\n\
file_dirty 512\nfile_writeback 256\nanon_thp 2097152\nactive_anon 6000\ninactive_anon 2192\n\
active_file 3000\ninactive_file 1096\nunevictable 7\nslab_reclaimable 100\n\
slab_unreclaimable 200\nslab 300\nzswap 11\nzswapped 22\n";

    #[test]
    fn v1_uses_total_keys_whole() {
        let s = MemStat::parse(V1, false);
        assert_eq!(s.file, 4096);
        assert_eq!(s.file_mapped, 3072, "mapped_file must not be lost");
        assert_eq!(s.anon_thp, 2097152, "rss_huge must not be lost");
        assert_eq!(s.file_dirty, 512);
        assert_eq!(s.file_writeback, 256);
        assert_eq!((s.active_anon, s.inactive_anon), (6000, 2192));
        assert_eq!((s.active_file, s.inactive_file), (3000, 1096));
        assert_eq!(s.unevictable, 7);
        assert_eq!(s.shmem, 1024);
        assert_eq!(s.slab, None);
        assert_eq!(s.hierarchical_limit, Some(268435456));
        assert_eq!(s.hierarchical_memsw_limit, Some(536870912));
        assert_eq!(s.swap, 4096);
    }

    #[test]
    fn v2_keys() {
        let s = MemStat::parse(V2, true);
        assert_eq!(s.file, 4096);
        assert_eq!(s.file_mapped, 3072);
        assert_eq!(s.anon_thp, 2097152);
        assert_eq!(s.slab, Some(300));
        assert_eq!(s.slab_reclaimable, Some(100));
        assert_eq!(s.slab_unreclaimable, Some(200));
        assert_eq!((s.zswap, s.zswapped), (Some(11), Some(22)));
        // v1 text read as v2 finds only the untotalled keys it knows
        assert_eq!(MemStat::parse(V1, true).file, 0);
    }

    #[test]
    fn hostile_stat() {
        for t in [
            &b""[..],
            b"\n",
            b"file",
            b"file x\n",
            b"file -1\n",
            b"file 99999999999999999999999\n",
        ] {
            assert_eq!(MemStat::parse(t, true), MemStat::default(), "{t:?}");
        }
    }
}
