//! /proc/<pid>/status, /proc/<pid>/stat, /proc/<pid>/cgroup, /proc/<pid>/uid_map, and the
//! pid lists of cgroup.procs and tasks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lxcfs_uring::cgroupfs::{membership, tree};
use lxcfs_uring::container::{creds, pidns};

fuzz_target!(|data: &[u8]| {
    let _ = pidns::parse_status(data);
    let _ = pidns::parse_start_ticks(data);
    let _ = creds::parse_uids(data);
    let map = creds::IdMap::parse(data);
    for id in [0, 1, 1000, 100_000, u32::MAX] {
        let _ = map.inside(id);
    }
    let mut out = Vec::new();
    tree::translate_pids(data, &mut out, |p| p.checked_add(1));
    let _ = tree::parse_written_pid(data);
    if let Ok(text) = std::str::from_utf8(data) {
        for c in [None, Some("memory"), Some("cpu"), Some("name=systemd")] {
            if let Some(p) = membership::cgroup_path(text, c) {
                assert!(p.starts_with('/'));
                let _ = membership::relative_to_root(p, "/a");
            }
        }
        for hid in [0, 1, 4] {
            if let Some(p) = membership::path_by_hid(text, hid) {
                assert!(p.starts_with('/'));
            }
        }
        // Any two paths: what one cgroup sees of another.
        if let Some((own, path)) = text.split_once('\n') {
            let _ = tree::sight(own, path);
        }
    }
});
