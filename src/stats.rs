//! Counters of the running instance, for `lxcfs-uring stats`: requests and errors per
//! operation and per file, latency percentiles, cache hit rates.
//!
//! Process-wide and lock-free: each worker thread counts into its own cache-line-aligned
//! shard with relaxed atomics, and a reader sums the shards.

use std::cell::Cell;
use std::fmt::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// What is counted. The names are the stats keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    OpLookup,
    OpGetattr,
    OpOpen,
    OpRead,
    OpReaddir,
    OpRelease,
    OpOther,
    ErrLookup,
    ErrGetattr,
    ErrOpen,
    ErrRead,
    ErrReaddir,
    ErrRelease,
    ErrOther,
    Panics,
    RenderCpuinfo,
    RenderDiskstats,
    RenderLoadavg,
    RenderMeminfo,
    RenderSlabinfo,
    RenderStat,
    RenderSwaps,
    RenderUptime,
    RenderCpuList,
    RenderSysfs,
    RenderCgroup,
    RenderErrors,
    CallerHit,
    CallerMiss,
    ContainerHit,
    ContainerMiss,
    MemStatHit,
    MemStatMiss,
    PageCacheReads,
    RenderPressure,
    RenderVmstat,
    BackingFresh,
    BackingShared,
    BackingDirect,
    BackingErrors,
}

const COUNTERS: usize = Counter::BackingErrors as usize + 1;

const NAMES: [&str; COUNTERS] = [
    "requests_lookup",
    "requests_getattr",
    "requests_open",
    "requests_read",
    "requests_readdir",
    "requests_release",
    "requests_other",
    "errors_lookup",
    "errors_getattr",
    "errors_open",
    "errors_read",
    "errors_readdir",
    "errors_release",
    "errors_other",
    "panics",
    "renders_cpuinfo",
    "renders_diskstats",
    "renders_loadavg",
    "renders_meminfo",
    "renders_slabinfo",
    "renders_stat",
    "renders_swaps",
    "renders_uptime",
    "renders_cpu_lists",
    "renders_sysfs",
    "renders_cgroup",
    "render_errors",
    "caller_cache_hits",
    "caller_cache_misses",
    "container_cache_hits",
    "container_cache_misses",
    "memory_stat_reuses",
    "memory_stat_reads",
    "page_cache_reads_refused",
    "renders_pressure",
    "renders_vmstat",
    "passthrough_opens_fresh",
    "passthrough_opens_shared",
    "passthrough_opens_direct",
    "passthrough_backing_errors",
];

/// Latency buckets: bucket i counts requests of [2^i, 2^(i+1)) ns.
const BUCKETS: usize = 40;
const SHARDS: usize = 16;

#[repr(align(128))]
struct Shard {
    counters: [AtomicU64; COUNTERS],
    latency: [AtomicU64; BUCKETS],
}

impl Shard {
    const fn new() -> Shard {
        Shard {
            counters: [const { AtomicU64::new(0) }; COUNTERS],
            latency: [const { AtomicU64::new(0) }; BUCKETS],
        }
    }
}

static SHARD_STORE: [Shard; SHARDS] = [const { Shard::new() }; SHARDS];
static TRANSPORT: OnceLock<String> = OnceLock::new();

thread_local! {
    static MY_SHARD: Cell<usize> = const { Cell::new(0) };
}

/// Count this thread's events in shard `worker` (mod the shard count).
pub fn set_worker(worker: usize) {
    MY_SHARD.with(|s| s.set(worker % SHARDS));
}

fn shard() -> &'static Shard {
    &SHARD_STORE[MY_SHARD.with(Cell::get)]
}

pub fn add(c: Counter) {
    shard().counters[c as usize].fetch_add(1, Ordering::Relaxed);
}

pub fn latency(ns: u64) {
    let b = (63 - ns.max(1).leading_zeros() as usize).min(BUCKETS - 1);
    shard().latency[b].fetch_add(1, Ordering::Relaxed);
}

pub fn set_transport(name: &str) {
    let _ = TRANSPORT.set(name.to_owned());
}

/// A consistent-enough sum of all shards.
pub struct Snapshot {
    pub counters: [u64; COUNTERS],
    latency: [u64; BUCKETS],
}

pub fn snapshot() -> Snapshot {
    let mut s = Snapshot {
        counters: [0; COUNTERS],
        latency: [0; BUCKETS],
    };
    for sh in &SHARD_STORE {
        for (t, c) in s.counters.iter_mut().zip(&sh.counters) {
            *t += c.load(Ordering::Relaxed);
        }
        for (t, c) in s.latency.iter_mut().zip(&sh.latency) {
            *t += c.load(Ordering::Relaxed);
        }
    }
    s
}

impl Snapshot {
    pub fn get(&self, c: Counter) -> u64 {
        self.counters[c as usize]
    }

    /// The latency under which a fraction `p` of requests completed, in ns (the upper
    /// bound of its power-of-two bucket).
    pub fn percentile(&self, p: f64) -> u64 {
        let total: u64 = self.latency.iter().sum();
        if total == 0 {
            return 0;
        }
        let want = ((total as f64) * p).ceil() as u64;
        let mut seen = 0;
        for (i, n) in self.latency.iter().enumerate() {
            seen += n;
            if seen >= want {
                return 1u64 << (i + 1);
            }
        }
        1u64 << BUCKETS
    }

    fn rate(hit: u64, miss: u64) -> f64 {
        if hit + miss == 0 {
            0.0
        } else {
            hit as f64 / (hit + miss) as f64
        }
    }

    /// Human-readable: one `key value` per line.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "transport {}",
            TRANSPORT.get().map_or("starting", String::as_str)
        );
        for (name, v) in NAMES.iter().zip(self.counters) {
            let _ = writeln!(out, "{name} {v}");
        }
        for (label, p) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)] {
            let _ = writeln!(
                out,
                "latency_{label}_us_max {:.1}",
                self.percentile(p) as f64 / 1000.0
            );
        }
        let c = |x| self.get(x);
        let _ = writeln!(
            out,
            "caller_cache_hit_rate {:.3}",
            Self::rate(c(Counter::CallerHit), c(Counter::CallerMiss))
        );
        let _ = writeln!(
            out,
            "container_cache_hit_rate {:.3}",
            Self::rate(c(Counter::ContainerHit), c(Counter::ContainerMiss))
        );
        let _ = writeln!(
            out,
            "memory_stat_reuse_rate {:.3}",
            Self::rate(c(Counter::MemStatHit), c(Counter::MemStatMiss))
        );
        out
    }

    /// Prometheus text exposition format.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let transport = TRANSPORT.get().map_or("starting", String::as_str);
        let _ = writeln!(
            out,
            "# TYPE lxcfs_uring_info gauge\nlxcfs_uring_info{{transport=\"{transport}\"}} 1"
        );
        for (name, v) in NAMES.iter().zip(self.counters) {
            let _ = writeln!(
                out,
                "# TYPE lxcfs_uring_{name}_total counter\nlxcfs_uring_{name}_total {v}"
            );
        }
        let _ = writeln!(out, "# TYPE lxcfs_uring_request_seconds histogram");
        let mut cumulative = 0;
        for (i, n) in self.latency.iter().enumerate() {
            cumulative += n;
            let le = (1u64 << (i + 1)) as f64 / 1e9;
            let _ = writeln!(
                out,
                "lxcfs_uring_request_seconds_bucket{{le=\"{le:e}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "lxcfs_uring_request_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        );
        let _ = writeln!(out, "lxcfs_uring_request_seconds_count {cumulative}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_counters() {
        assert_eq!(NAMES.len(), COUNTERS);
        assert_eq!(NAMES[Counter::MemStatMiss as usize], "memory_stat_reads");
    }

    #[test]
    fn percentiles_from_buckets() {
        let mut s = Snapshot {
            counters: [0; COUNTERS],
            latency: [0; BUCKETS],
        };
        assert_eq!(s.percentile(0.5), 0);
        s.latency[10] = 90; // ~1-2 us
        s.latency[20] = 10; // ~1-2 ms
        assert_eq!(s.percentile(0.5), 2048);
        assert_eq!(s.percentile(0.99), 1 << 21);
        assert!(s.text().contains("latency_p99_us_max"));
        assert!(
            s.prometheus()
                .contains("lxcfs_uring_request_seconds_count 100")
        );
    }
}
