//! memory.stat (v1 and v2), then the meminfo and swaps renderers over what it gave.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lxcfs_uring::cgroupfs::memory::{MemStat, MemoryInputs};
use lxcfs_uring::render::{meminfo, swaps};

const HOST: &[u8] = include_bytes!("../../tests/fixtures/meminfo-host");

fuzz_target!(|data: &[u8]| {
    let unified = data.first().is_some_and(|b| b & 1 == 1);
    let stat = MemStat::parse(data, unified);
    let m = MemoryInputs { unified, limit: stat.hierarchical_limit, usage: stat.file, stat, swap: None };
    let v = swaps::SwapView::new(&m, 1 << 20, true);
    let mut out = Vec::new();
    meminfo::render(HOST, &m, &v, data.first().is_some_and(|b| b & 2 == 0), &mut out);
    assert!(out.starts_with(b"MemTotal:"));
    out.clear();
    swaps::render(&v, &mut out);
});
