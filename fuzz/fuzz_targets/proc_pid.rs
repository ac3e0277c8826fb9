//! /proc/<pid>/status, /proc/<pid>/stat and /proc/<pid>/cgroup.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lxcfs_uring::cgroupfs::membership;
use lxcfs_uring::container::pidns;

fuzz_target!(|data: &[u8]| {
    let _ = pidns::parse_status(data);
    let _ = pidns::parse_start_ticks(data);
    if let Ok(text) = std::str::from_utf8(data) {
        for c in [None, Some("memory"), Some("cpu"), Some("name=systemd")] {
            if let Some(p) = membership::cgroup_path(text, c) {
                assert!(p.starts_with('/'));
                let _ = membership::relative_to_root(p, "/a");
            }
        }
    }
});
