//! Requests fed straight to the filesystem code (no mount): a counting global allocator
//! proves the steady state allocates nothing, and handles a predecessor opened are served.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use lxcfs_uring::cgroupfs::mounts::Hierarchies;
use lxcfs_uring::container::Containers;
use lxcfs_uring::fs::{Fs, Reply, ViewOptions, Worker};
use lxcfs_uring::proto::{self, abi::opcode};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr came from System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(Cell::get)
}

fn msg(op: u32, nodeid: u64, pid: u32, args: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&((40 + args.len()) as u32).to_ne_bytes());
    v.extend_from_slice(&op.to_ne_bytes());
    v.extend_from_slice(&1u64.to_ne_bytes());
    v.extend_from_slice(&nodeid.to_ne_bytes());
    v.extend_from_slice(&[0u8; 8]);
    v.extend_from_slice(&pid.to_ne_bytes());
    v.extend_from_slice(&[0u8; 4]);
    v.extend_from_slice(args);
    v
}

fn read_args(fh: u64, offset: u64) -> Vec<u8> {
    let mut a = vec![0u8; 40];
    a[0..8].copy_from_slice(&fh.to_ne_bytes());
    a[8..16].copy_from_slice(&offset.to_ne_bytes());
    a[16..20].copy_from_slice(&(128u32 << 10).to_ne_bytes());
    // A program's read, as the kernel sends it: with its lock owner.
    a[20..24].copy_from_slice(&2u32.to_ne_bytes());
    a
}

/// The filesystem, a worker, a reply buffer, and this thread's id as the caller.
fn setup() -> (Fs, Worker, Vec<u8>, u32) {
    let fs = Fs::new(
        ViewOptions::default(),
        Containers::new(Hierarchies::discover().unwrap()).unwrap(),
    );
    let tid = nix::unistd::gettid().as_raw() as u32;
    (fs, Worker::new(0), vec![0u8; 256 << 10], tid)
}

#[test]
fn steady_state_requests_do_not_allocate() {
    let (fs, mut w, mut out, tid) = setup();
    // (node id, file): the files whose steady state must not allocate.
    for (node, name) in [
        (6u64, "meminfo"),
        (9, "swaps"),
        (10, "uptime"),
        (5, "loadavg"),
    ] {
        // Messages are built once and patched in place (fh, offset): building them is
        // the test's allocation, not the server's.
        let open = msg(opcode::OPEN, node, tid, &[0u8; 8]);
        let mut read0 = msg(opcode::READ, node, tid, &read_args(0, 0));
        let mut eof = msg(opcode::READ, node, tid, &read_args(0, 0));
        let mut release = msg(opcode::RELEASE, node, tid, &[0u8; 24]);
        let mut cycle = |w: &mut Worker, out: &mut Vec<u8>| {
            let Reply::Data(_) = fs.handle(w, &proto::decode(&open).unwrap(), out) else {
                panic!("open {name}")
            };
            let fh: [u8; 8] = out[0..8].try_into().unwrap();
            for m in [&mut read0, &mut eof, &mut release] {
                m[40..48].copy_from_slice(&fh);
            }
            let Reply::Data(n) = fs.handle(w, &proto::decode(&read0).unwrap(), out) else {
                panic!("read {name}")
            };
            assert!(n > 0 || name == "diskstats", "{name} is empty"); // diskstats: empty without I/O
            eof[48..56].copy_from_slice(&(n as u64).to_ne_bytes());
            assert_eq!(
                fs.handle(w, &proto::decode(&eof).unwrap(), out),
                Reply::Data(0)
            );
            assert_eq!(
                fs.handle(w, &proto::decode(&release).unwrap(), out),
                Reply::Data(0)
            );
        };
        for _ in 0..200 {
            cycle(&mut w, &mut out); // warm up: caches, pools, buffers grow to size
        }
        let before = allocs();
        for _ in 0..500 {
            cycle(&mut w, &mut out);
        }
        assert_eq!(
            allocs() - before,
            0,
            "{name}: allocations in 500 steady-state cycles"
        );
    }
}

#[test]
fn a_handle_opened_by_a_predecessor_is_served() {
    // After a takeover or a crash, the kernel still holds handles this process never
    // issued; reads on them must work, from the node the request names.
    let (fs, mut w, mut out, tid) = setup();
    let read = msg(opcode::READ, 6, tid, &read_args(0xdead_beef_0000_0001, 0));
    let Reply::Data(n) = fs.handle(&mut w, &proto::decode(&read).unwrap(), &mut out) else {
        panic!("unknown fh not served")
    };
    assert!(out[..n].starts_with(b"MemTotal:"));
    let past = msg(
        opcode::READ,
        6,
        tid,
        &read_args(0xdead_beef_0000_0001, 1 << 30),
    );
    assert_eq!(
        fs.handle(&mut w, &proto::decode(&past).unwrap(), &mut out),
        Reply::Data(0)
    );
    let mut rel = [0u8; 24];
    rel[0..8].copy_from_slice(&0xdead_beef_0000_0001u64.to_ne_bytes());
    let release = msg(opcode::RELEASE, 6, tid, &rel);
    assert_eq!(
        fs.handle(&mut w, &proto::decode(&release).unwrap(), &mut out),
        Reply::Data(0)
    );
}

#[test]
fn page_cache_reads_are_refused_and_program_reads_served() {
    // A READ without a lock owner is the kernel filling the inode's page cache (splice,
    // sendfile, a private mmap), which every container shares: EINVAL, so the program
    // reads instead. The same READ with a lock owner is a program's, and is served.
    let (fs, mut w, mut out, tid) = setup();
    let Reply::Data(_) = fs.handle(
        &mut w,
        &proto::decode(&msg(opcode::OPEN, 6, tid, &[0u8; 8])).unwrap(),
        &mut out,
    ) else {
        panic!("open")
    };
    let fh = u64::from_ne_bytes(out[0..8].try_into().unwrap());
    let mut args = read_args(fh, 0);
    args[20..24].copy_from_slice(&0u32.to_ne_bytes());
    let page_cache = msg(opcode::READ, 6, tid, &args);
    assert_eq!(
        fs.handle(&mut w, &proto::decode(&page_cache).unwrap(), &mut out),
        Reply::Error(libc::EINVAL)
    );
    let program = msg(opcode::READ, 6, tid, &read_args(fh, 0));
    let Reply::Data(n) = fs.handle(&mut w, &proto::decode(&program).unwrap(), &mut out) else {
        panic!("a program's read was refused")
    };
    assert!(out[..n].starts_with(b"MemTotal:"));
}
