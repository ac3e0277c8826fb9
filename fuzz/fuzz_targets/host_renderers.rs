//! The host's cpuinfo and stat, as the cpuinfo and stat renderers take them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lxcfs_uring::cgroupfs::cpu::CpuTime;
use lxcfs_uring::render::stat::{Procs, StatHistory, StatInputs, StatScratch, Usage};
use lxcfs_uring::render::{cpuinfo, stat};

fuzz_target!(|data: &[u8]| {
    let mut out = Vec::new();
    cpuinfo::render(data, &[0, 1, 3], &mut out);
    let mut h = StatHistory::default();
    let mut scratch = StatScratch::default();
    for usage in [Usage::Unknown, Usage::Total(CpuTime { user: 1 << 40, system: 7 }), Usage::PerCpu(&vec![CpuTime::default(); 4])] {
        out.clear();
        let i = StatInputs { host: data, cpuset: &[0, 1, 3], shown: 2, renumber: true, usage, quota_cpus: Some(1.5), ticks_per_sec: 100, procs: Some(Procs { running: 3, blocked: u64::MAX }) };
        stat::render(&i, &mut h, &mut scratch, &mut out);
        assert!(out.starts_with(b"cpu "));
    }
});
