//! io.stat and the v1 blkio files, then the diskstats renderer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lxcfs_uring::cgroupfs::io;
use lxcfs_uring::render::diskstats;

fuzz_target!(|data: &[u8]| {
    let mid = data.len() / 2;
    let mut devs = io::parse_io_stat(data);
    io::merge_blkio(&mut devs, &data[..mid], &data[mid..]);
    let mut out = Vec::new();
    diskstats::render(data, &devs, &mut out);
});
