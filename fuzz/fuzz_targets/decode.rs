//! Whole /dev/fuse messages and FUSE-over-io_uring entries (header area, op_in area,
//! payload) through the request decoder: it must return a request or an error for any
//! bytes, never panic or read out of bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lxcfs_uring::proto;

fuzz_target!(|data: &[u8]| {
    let _ = proto::decode(data);
    let _ = proto::decode_header(data);
    if data.len() >= 2 {
        let a = data[0] as usize % data.len();
        let b = a + (data[1] as usize % (data.len() - a + 1));
        let _ = proto::decode_ring(&data[..a], &data[a..b], &data[b..]);
    }
});
