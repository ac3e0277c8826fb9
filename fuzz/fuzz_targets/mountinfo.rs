//! /proc/self/mountinfo.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lxcfs_uring::cgroupfs::mounts;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let h = mounts::parse_mountinfo(text);
        let _ = h.for_controller("memory");
    }
});
