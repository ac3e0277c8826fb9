//! cpu.max, cpuacct.usage_all, cpu.stat and CPU lists.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lxcfs_uring::cgroupfs::cpu;
use lxcfs_uring::cpulist;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(q)) = cpu::parse_cpu_max(data) {
        assert!(q.cpus() >= 1);
    }
    let mut per = Vec::new();
    cpu::parse_usage_all(data, &mut per);
    assert!(per.len() <= 8192);
    let _ = cpu::parse_cpu_stat(data);
    if let Some(cpus) = cpulist::parse(data) {
        assert!(cpus.windows(2).all(|w| w[0] < w[1]));
        let mut out = Vec::new();
        cpulist::format(&cpus, &mut out);
        assert_eq!(cpulist::parse(&out), Some(cpus));
    }
});
