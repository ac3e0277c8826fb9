use super::abi::{self, init_flags, opcode};
use super::*;

/// A /dev/fuse message: header with the given opcode, then `args`.
fn msg(op: u32, args: &[u8]) -> Vec<u8> {
    let len = 40 + args.len();
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&(len as u32).to_ne_bytes());
    v.extend_from_slice(&op.to_ne_bytes());
    v.extend_from_slice(&0x1234u64.to_ne_bytes()); // unique
    v.extend_from_slice(&7u64.to_ne_bytes()); // nodeid
    v.extend_from_slice(&1000u32.to_ne_bytes()); // uid
    v.extend_from_slice(&1001u32.to_ne_bytes()); // gid
    v.extend_from_slice(&4242u32.to_ne_bytes()); // pid
    v.extend_from_slice(&[0u8; 4]);
    v.extend_from_slice(args);
    v
}

fn words(ws: &[u64]) -> Vec<u8> {
    ws.iter().flat_map(|w| w.to_ne_bytes()).collect()
}

fn ok(buf: &[u8]) -> Request<'_> {
    decode(buf).expect("decodes")
}

#[test]
fn header_fields() {
    let m = msg(opcode::STATFS, &[]);
    let r = ok(&m);
    assert_eq!(r.header.unique, 0x1234);
    assert_eq!(r.header.nodeid, 7);
    assert_eq!(r.header.uid, 1000);
    assert_eq!(r.header.gid, 1001);
    assert_eq!(r.header.pid, 4242);
    assert_eq!(r.op, Op::Statfs);
}

#[test]
fn init_plain_and_ext() {
    let mut a = Vec::new();
    for w in [7u32, 45, 131072, 0x4000_0001] {
        a.extend_from_slice(&w.to_ne_bytes());
    }
    a.extend_from_slice(&0x202u32.to_ne_bytes()); // flags2
    a.extend_from_slice(&[0u8; 44]);
    let m = msg(opcode::INIT, &a);
    match ok(&m).op {
        Op::Init(i) => {
            assert_eq!((i.major, i.minor, i.max_readahead), (7, 45, 131072));
            assert_eq!(i.flags, 0x4000_0001 | (0x202 << 32));
        }
        o => panic!("{o:?}"),
    }
    // An old kernel's 16-byte init_in: flags2 is ignored even if INIT_EXT were set.
    let m = msg(opcode::INIT, &a[..16]);
    match ok(&m).op {
        Op::Init(i) => assert_eq!(i.flags, 0x4000_0001),
        o => panic!("{o:?}"),
    }
}

#[test]
fn lookup_name() {
    let m = msg(opcode::LOOKUP, b"meminfo\0");
    assert_eq!(ok(&m).op, Op::Lookup { name: b"meminfo" });
    for bad in [&b"meminfo"[..], b"\0", b"a/b\0", b""] {
        let m = msg(opcode::LOOKUP, bad);
        assert_eq!(decode(&m).unwrap_err(), DecodeError::BadName, "{bad:?}");
    }
}

#[test]
fn forget_and_batch_forget() {
    let m = msg(opcode::FORGET, &words(&[3]));
    assert_eq!(ok(&m).op, Op::Forget { nlookup: 3 });
    let mut a = Vec::new();
    a.extend_from_slice(&2u32.to_ne_bytes());
    a.extend_from_slice(&0u32.to_ne_bytes());
    a.extend_from_slice(&words(&[5, 1, 6, 2]));
    let m = msg(opcode::BATCH_FORGET, &a);
    match ok(&m).op {
        Op::BatchForget { forgets } => {
            assert_eq!(forgets.collect::<Vec<_>>(), vec![(5, 1), (6, 2)])
        }
        o => panic!("{o:?}"),
    }
    // A count that promises more records than the message holds.
    a[0..4].copy_from_slice(&u32::MAX.to_ne_bytes());
    let m = msg(opcode::BATCH_FORGET, &a);
    assert_eq!(decode(&m).unwrap_err(), DecodeError::ShortArgs);
}

#[test]
fn getattr_with_and_without_fh() {
    let mut a = Vec::new();
    a.extend_from_slice(&1u32.to_ne_bytes());
    a.extend_from_slice(&0u32.to_ne_bytes());
    a.extend_from_slice(&99u64.to_ne_bytes());
    assert_eq!(
        ok(&msg(opcode::GETATTR, &a)).op,
        Op::Getattr { fh: Some(99) }
    );
    a[0] = 0;
    assert_eq!(ok(&msg(opcode::GETATTR, &a)).op, Op::Getattr { fh: None });
    assert_eq!(ok(&msg(opcode::GETATTR, &[])).op, Op::Getattr { fh: None });
}

#[test]
fn open_read_release_flush() {
    let m = msg(opcode::OPEN, &[2, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(ok(&m).op, Op::Open { flags: 2 });
    let mut read = words(&[11, 4096]);
    read.extend_from_slice(&8192u32.to_ne_bytes());
    read.extend_from_slice(&2u32.to_ne_bytes()); // read_flags: FUSE_READ_LOCKOWNER
    read.extend_from_slice(&[0u8; 16]);
    assert_eq!(
        ok(&msg(opcode::READ, &read)).op,
        Op::Read {
            fh: 11,
            offset: 4096,
            size: 8192,
            read_flags: 2,
        }
    );
    assert_eq!(
        ok(&msg(opcode::READDIRPLUS, &read)).op,
        Op::Readdir {
            fh: 11,
            offset: 4096,
            size: 8192,
            plus: true
        }
    );
    let rel = words(&[11, 0, 0]);
    assert_eq!(ok(&msg(opcode::RELEASE, &rel)).op, Op::Release { fh: 11 });
    assert_eq!(ok(&msg(opcode::FLUSH, &rel)).op, Op::Flush { fh: 11 });
    assert_eq!(
        ok(&msg(opcode::RELEASEDIR, &rel)).op,
        Op::Releasedir { fh: 11 }
    );
}

#[test]
fn mutations_are_recognised() {
    let mut mk = words(&[0o755 | (0o022 << 32)]);
    mk.extend_from_slice(b"newdir\0");
    assert_eq!(
        ok(&msg(opcode::MKDIR, &mk)).op,
        Op::Mkdir {
            name: b"newdir",
            mode: 0o755
        }
    );
    assert_eq!(
        ok(&msg(opcode::RMDIR, b"old\0")).op,
        Op::Rmdir { name: b"old" }
    );
    let mut cr = vec![0u8; 16];
    cr.extend_from_slice(b"f\0");
    assert_eq!(ok(&msg(opcode::CREATE, &cr)).op, Op::Create { name: b"f" });
    assert_eq!(ok(&msg(opcode::UNLINK, b"meminfo\0")).op, Op::Remove);
    let mut rn = words(&[1]);
    rn.extend_from_slice(b"a\0b\0");
    assert_eq!(ok(&msg(opcode::RENAME, &rn)).op, Op::Remove);
    // fuse_write_in: fh 7, offset 0, size 3; then the data (one byte more than size).
    let mut w = words(&[7, 0, 3, 0, 0]);
    w.extend_from_slice(b"42\nX");
    assert_eq!(
        ok(&msg(opcode::WRITE, &w)).op,
        Op::Write {
            fh: 7,
            offset: 0,
            data: b"42\n"
        }
    );
    // A size beyond the data is refused.
    w.truncate(41);
    assert_eq!(decode(&msg(opcode::WRITE, &w)), Err(DecodeError::ShortArgs));
    let mut sa = vec![0u8; 88];
    sa[0..4].copy_from_slice(&(SetattrIn::MODE | SetattrIn::UID).to_ne_bytes());
    sa[16..24].copy_from_slice(&5u64.to_ne_bytes());
    sa[68..72].copy_from_slice(&0o640u32.to_ne_bytes());
    sa[76..80].copy_from_slice(&1000u32.to_ne_bytes());
    sa[80..84].copy_from_slice(&100u32.to_ne_bytes());
    assert_eq!(
        ok(&msg(opcode::SETATTR, &sa)).op,
        Op::Setattr(SetattrIn {
            valid: SetattrIn::MODE | SetattrIn::UID,
            mode: 0o640,
            uid: 1000,
            gid: 100,
            size: 5
        })
    );
    assert_eq!(ok(&msg(opcode::GETXATTR, &[0u8; 8])).op, Op::Unsupported);
    assert_eq!(ok(&msg(9999, &[])).op, Op::Unsupported);
}

#[test]
fn every_opcode_truncated_is_an_error_not_a_panic() {
    for op in 0..64u32 {
        let full = msg(op, &[0xffu8; 128]);
        for cut in 0..full.len() {
            // Whole-message decode with the header's len kept: always BadLength or an error.
            let _ = decode(&full[..cut]);
            // With a consistent len: ShortArgs or a typed op.
            let mut m = full[..cut].to_vec();
            if m.len() >= 4 {
                let len = m.len() as u32;
                m[0..4].copy_from_slice(&len.to_ne_bytes());
            }
            let _ = decode(&m);
            let _ = decode_ring(&m, &full[cut..], &m);
        }
    }
}

#[test]
fn bad_lengths() {
    assert_eq!(decode(&[0u8; 39]).unwrap_err(), DecodeError::ShortHeader);
    let mut m = msg(opcode::STATFS, &[]);
    m[0..4].copy_from_slice(&1000u32.to_ne_bytes());
    assert_eq!(decode(&m).unwrap_err(), DecodeError::BadLength);
    m[0..4].copy_from_slice(&8u32.to_ne_bytes());
    assert_eq!(decode(&m).unwrap_err(), DecodeError::BadLength);
    // Oversized: more bytes than len claims.
    let mut m = msg(opcode::STATFS, &[0u8; 64]);
    m[0..4].copy_from_slice(&40u32.to_ne_bytes());
    assert_eq!(decode(&m).unwrap_err(), DecodeError::BadLength);
}

#[test]
fn garbage_never_panics() {
    // A tiny deterministic generator: enough to walk many shapes without a dependency.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..20_000 {
        let n = (next() % 300) as usize;
        let mut b: Vec<u8> = (0..n).map(|_| next() as u8).collect();
        if b.len() >= 8 {
            let len = b.len() as u32;
            b[0..4].copy_from_slice(&len.to_ne_bytes());
            b[4..8].copy_from_slice(&((next() % 60) as u32).to_ne_bytes());
        }
        let _ = decode(&b);
        let split = b.len() / 2;
        let _ = decode_ring(&b, &b[split..], &b[..split]);
    }
}

#[test]
fn ring_split_args() {
    // LOOKUP over the ring: op_in empty, the name in the payload.
    let hdr = msg(opcode::LOOKUP, &[]);
    let r = decode_ring(&hdr, &[0u8; 128], b"stat\0").unwrap();
    assert_eq!(r.op, Op::Lookup { name: b"stat" });
    // READ: fuse_read_in in op_in.
    let mut op_in = [0u8; 128];
    op_in[0..8].copy_from_slice(&5u64.to_ne_bytes());
    op_in[16..20].copy_from_slice(&100u32.to_ne_bytes());
    let hdr = msg(opcode::READ, &[]);
    let r = decode_ring(&hdr, &op_in, &[]).unwrap();
    assert_eq!(
        r.op,
        Op::Read {
            fh: 5,
            offset: 0,
            size: 100,
            read_flags: 0,
        }
    );
}

#[test]
fn encode_sizes_are_exact() {
    let mut b = [0u8; 512];
    let attr = Attr {
        ino: 6,
        mode: 0o100444,
        nlink: 1,
        ..Attr::default()
    };
    let v = Validity { secs: 1, nsecs: 0 };
    let mut o = OutBuf::new(&mut b);
    encode::entry(&mut o, &attr, v, v).unwrap();
    assert_eq!(o.len(), abi::out_size::ENTRY);
    let mut o = OutBuf::new(&mut b);
    encode::attr_out(&mut o, &attr, v).unwrap();
    assert_eq!(o.len(), abi::out_size::ATTR_OUT);
    let mut o = OutBuf::new(&mut b);
    encode::open_out(&mut o, 1, abi::FOPEN_DIRECT_IO).unwrap();
    assert_eq!(o.len(), abi::out_size::OPEN);
    let mut o = OutBuf::new(&mut b);
    encode::statfs(&mut o, 255).unwrap();
    assert_eq!(o.len(), abi::out_size::STATFS);
    let init = InitIn {
        major: 7,
        minor: 99,
        max_readahead: 4096,
        flags: init_flags::ASYNC_READ | init_flags::MAX_PAGES | init_flags::INIT_EXT,
    };
    let out = InitOut::negotiate(
        &init,
        init_flags::MAX_PAGES | init_flags::OVER_IO_URING,
        4096,
        32,
    );
    assert_eq!(out.minor, abi::KERNEL_MINOR_VERSION);
    assert_eq!(out.flags, init_flags::MAX_PAGES);
    assert_eq!(out.max_pages, 32);
    let mut o = OutBuf::new(&mut b);
    out.encode(&mut o).unwrap();
    assert_eq!(o.len(), abi::out_size::INIT);
}

#[test]
fn dirents_pad_and_stop_when_full() {
    let mut b = [0u8; 64];
    let mut o = OutBuf::new(&mut b);
    encode::dirent(&mut o, 6, 1, 8, b"meminfo").unwrap(); // 24 + 7 -> 32
    assert_eq!(o.len(), 32);
    encode::dirent(&mut o, 7, 2, 8, b"slabinfo").unwrap(); // 24 + 8 -> 32
    assert_eq!(o.len(), 64);
    assert_eq!(encode::dirent(&mut o, 8, 3, 8, b"x"), Err(Overflow));
    assert_eq!(o.len(), 64);
    let mut small = [0u8; 100];
    let mut o = OutBuf::new(&mut small);
    let v = Validity { secs: 0, nsecs: 0 };
    assert_eq!(
        encode::direntplus(&mut o, &Attr::default(), v, 1, 4, b"x"),
        Err(Overflow)
    );
    assert_eq!(o.len(), 0);
}

#[test]
fn out_header_layout() {
    let mut b = [0u8; 16];
    encode::out_header(&mut b, 16, -2, 77).unwrap();
    assert_eq!(&b[0..4], &16u32.to_ne_bytes());
    assert_eq!(&b[4..8], &(-2i32).to_ne_bytes());
    assert_eq!(&b[8..16], &77u64.to_ne_bytes());
    assert_eq!(encode::out_header(&mut b[..8], 16, 0, 1), Err(Overflow));
}

#[test]
fn poll_in_and_poll_replies() {
    let mut a = words(&[11, 42]);
    a.extend_from_slice(&1u32.to_ne_bytes()); // FUSE_POLL_SCHEDULE_NOTIFY
    a.extend_from_slice(&(libc::POLLPRI as u32).to_ne_bytes());
    assert_eq!(
        ok(&msg(opcode::POLL, &a)).op,
        Op::Poll {
            fh: 11,
            kh: 42,
            flags: 1,
            events: libc::POLLPRI as u32,
        }
    );
    assert!(decode(&msg(opcode::POLL, &a[..20])).is_err(), "cut short");
    let mut b = [0u8; 8];
    let mut o = OutBuf::new(&mut b);
    encode::poll_out(&mut o, 0xa).unwrap();
    assert_eq!(o.len(), abi::out_size::POLL);
    assert_eq!(&b[0..4], &10u32.to_ne_bytes());
    let n = encode::notify_poll(77);
    assert_eq!(&n[0..4], &24u32.to_ne_bytes());
    assert_eq!(&n[4..8], &1i32.to_ne_bytes(), "FUSE_NOTIFY_POLL");
    assert_eq!(&n[8..16], &0u64.to_ne_bytes(), "unique 0: a notification");
    assert_eq!(&n[16..24], &77u64.to_ne_bytes());
}
