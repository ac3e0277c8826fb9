//! memory.stat (v1 and v2) as /proc/vmstat counts, and the vmstat renderer over them,
//! with the input also taken as the host's file (split at the first NUL), and as a
//! carried vmstat history word.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lxcfs_uring::cgroupfs::memory::vmstat_counters;
use lxcfs_uring::kfile::lines;
use lxcfs_uring::render::vmstat::{self, VmstatHistory};

const HOST: &[u8] = include_bytes!("../../tests/fixtures/vmstat-host");

fuzz_target!(|data: &[u8]| {
    let (stat, host) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, HOST),
    };
    let mut h = VmstatHistory::default();
    for (unified, page, thp) in [(true, 4096, 2 << 20), (false, 0, 0)] {
        let counts = vmstat_counters(stat, stat, unified, page, thp);
        assert!(counts.windows(2).all(|w| w[0].0 < w[1].0));
        let mut out = Vec::new();
        vmstat::render(host, &counts, &mut h, &mut out);
        // one line out for each line of the host's
        assert_eq!(lines(&out).count(), lines(host).count());
    }
    // the history as a successor takes it back: a word it accepts survives a round trip
    if let Some(h) = std::str::from_utf8(data)
        .ok()
        .and_then(VmstatHistory::from_word)
    {
        assert_eq!(VmstatHistory::from_word(&h.to_word()), Some(h));
    }
});
