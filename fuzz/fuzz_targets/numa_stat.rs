//! memory.numa_stat (v1 and v2) for a node, and nodeN/meminfo rendered over it, with the
//! input also taken as the host node's meminfo (split at the first NUL); the node files'
//! CPU lists and masks from the input's bytes as CPU numbers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lxcfs_uring::cgroupfs::numa::NumaStat;
use lxcfs_uring::kfile::lines;
use lxcfs_uring::render::node;

const HOST: &[u8] = include_bytes!("../../tests/fixtures/node-meminfo-host");

fuzz_target!(|data: &[u8]| {
    let (stat, host) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, HOST),
    };
    for (n, page) in [(0, 4096), (1, 0), (u32::MAX, u64::MAX)] {
        let s = NumaStat::parse(stat, n, page);
        let mut out = Vec::new();
        node::meminfo(host, &s, data.len() as u64, &mut out);
        // one line out for each line of the host's
        assert_eq!(lines(&out).count(), lines(host).count());
    }
    let mut cpus: Vec<u32> = data.iter().map(|&b| u32::from(b) * 32).collect();
    cpus.sort_unstable();
    cpus.dedup();
    let mut out = Vec::new();
    node::cpulist(
        &cpus,
        &cpus[cpus.len() / 2..],
        data.len() % 2 == 0,
        &mut out,
    );
    assert!(out.ends_with(b"\n"));
    out.clear();
    node::cpumap(&cpus, &cpus, false, node::mask_digits(host), &mut out);
    assert!(out.ends_with(b"\n") && out.len() > 1);
});
