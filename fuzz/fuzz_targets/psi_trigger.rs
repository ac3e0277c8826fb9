//! The PSI trigger string a container writes to /proc/pressure/*, and the registry line a
//! successor reads back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lxcfs_uring::fs::psi::{Record, Spec};

fuzz_target!(|data: &[u8]| {
    // a trigger we accept is written to the kernel in a form that parses back the same
    if let Some(spec) = Spec::parse(data) {
        assert!(spec.text().len() <= 32, "fits psi_write's buffer");
        assert_eq!(Spec::parse(spec.text().as_bytes()), Some(spec));
    }
    if let Ok(line) = std::str::from_utf8(data) {
        let _ = Record::parse(line);
    }
});
