//! INIT through decode, negotiation and encoding: any kernel offer gives a well-formed
//! reply of exactly the size the kernel expects.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lxcfs_uring::proto::{self, InitOut, Op, OutBuf, abi};

fuzz_target!(|data: &[u8]| {
    let mut msg = Vec::with_capacity(40 + data.len());
    msg.extend_from_slice(&((40 + data.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&abi::opcode::INIT.to_ne_bytes());
    msg.extend_from_slice(&[0u8; 32]);
    msg.extend_from_slice(data);
    if let Ok(proto::Request { op: Op::Init(k), .. }) = proto::decode(&msg) {
        let want = u64::from_ne_bytes(data.get(..8).and_then(|b| b.try_into().ok()).unwrap_or([0xff; 8]));
        let out = InitOut::negotiate(&k, want, 4096, 32);
        assert!(out.minor <= abi::KERNEL_MINOR_VERSION);
        assert_eq!(out.flags & !k.flags, 0, "never a flag the kernel did not offer");
        let mut buf = [0u8; 128];
        let mut o = OutBuf::new(&mut buf);
        out.encode(&mut o).unwrap();
        assert_eq!(o.len(), abi::out_size::INIT);
    }
});
