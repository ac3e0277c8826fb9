//! Which way to move bytes through /dev/fuse for the classic transport: blocking
//! read(2)/write(2), or io_uring READ/WRITE on the /dev/fuse file. Both loops below serve
//! the real filesystem with the same code; only the two syscalls differ. A client thread
//! stats a file (one GETATTR round trip each, attributes not cached by the kernel because
//! the client uses statx with AT_STATX_FORCE_SYNC), with client and server on the same
//! CPU and on different CPUs.
//!
//!     cargo bench --bench devfuse_io        # as root

use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::time::Instant;

use io_uring::{IoUring, opcode, types};
use lxcfs_uring::cgroupfs::mounts::Hierarchies;
use lxcfs_uring::container::Containers;
use lxcfs_uring::fs::{Fs, ViewOptions, Worker};
use lxcfs_uring::proto::{self, abi};
use lxcfs_uring::ring::{MAX_PAYLOAD, Session, TransportKind, reply_header};

const ROUNDS: usize = 20_000;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    println!("| server I/O | client/server CPUs | GETATTR p50 us | p99 us | round trips/s |");
    println!("|---|---|---|---|---|");
    for uring in [false, true] {
        for same_cpu in [true, false] {
            let (p50, p99, rate) = run(uring, same_cpu);
            let io = if uring {
                "io_uring READ/WRITE"
            } else {
                "read(2)/write(2)"
            };
            let cpus = if same_cpu { "same" } else { "different" };
            println!("| {io} | {cpus} | {p50:.1} | {p99:.1} | {rate:.0} |");
        }
    }
}

fn pin(cpu: usize) {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu).unwrap();
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).unwrap();
}

fn run(uring: bool, same_cpu: bool) -> (f64, f64, f64) {
    let dir = std::env::temp_dir().join(format!(
        "lxcfs-uring-devfuse-{}-{uring}-{same_cpu}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let containers = Containers::new(Hierarchies::discover().unwrap()).unwrap();
    let dev = lxcfs_uring::mount::open_dev().unwrap();
    let s = Arc::new(Session::new(
        Fs::new(ViewOptions::default(), containers),
        dev,
        TransportKind::Classic,
        1,
    ));
    lxcfs_uring::mount::mount(s.dev.as_fd(), &dir).unwrap();
    let server = {
        let s = s.clone();
        std::thread::spawn(move || {
            pin(0);
            if uring {
                serve_uring(&s)
            } else {
                serve_blocking(&s)
            }
        })
    };
    pin(if same_cpu { 0 } else { 1 });
    let target = std::ffi::CString::new(
        dir.join("proc/meminfo")
            .into_os_string()
            .into_encoded_bytes(),
    )
    .unwrap();
    let mut lat = Vec::with_capacity(ROUNDS);
    let start = Instant::now();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        // SAFETY (bench): a valid path and a zeroed statx buffer.
        let mut stx: libc::statx = unsafe { std::mem::zeroed() };
        let r = unsafe {
            libc::statx(
                libc::AT_FDCWD,
                target.as_ptr(),
                libc::AT_STATX_FORCE_SYNC,
                libc::STATX_BASIC_STATS,
                &mut stx,
            )
        };
        assert_eq!(r, 0);
        lat.push(t.elapsed().as_nanos() as f64 / 1000.0);
    }
    let rate = ROUNDS as f64 / start.elapsed().as_secs_f64();
    let _ = nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH);
    drop(server); // ends with the connection (ENODEV) once unmounted
    let _ = std::fs::remove_dir(&dir);
    lat.sort_by(f64::total_cmp);
    (lat[lat.len() / 2], lat[lat.len() * 99 / 100], rate)
}

fn serve_blocking(s: &Session) {
    let mut w = Worker::new(0);
    let mut input = vec![0u8; 16384];
    let mut out = vec![0u8; abi::OUT_HEADER_LEN + MAX_PAYLOAD];
    loop {
        let n = match nix::unistd::read(s.dev.as_fd(), &mut input) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::ENOENT) => continue,
            Err(_) => return,
        };
        if let Some(len) = answer(s, &mut w, &input[..n], &mut out) {
            let _ = nix::unistd::write(s.dev.as_fd(), &out[..len]);
        }
    }
}

fn serve_uring(s: &Session) {
    let mut w = Worker::new(0);
    let mut input = vec![0u8; 16384];
    let mut out = vec![0u8; abi::OUT_HEADER_LEN + MAX_PAYLOAD];
    let mut ring: IoUring = IoUring::new(8).unwrap();
    let fd = types::Fd(s.dev.as_raw_fd());
    loop {
        let read = opcode::Read::new(fd, input.as_mut_ptr(), input.len() as u32).build();
        // SAFETY (bench): the buffer outlives the submission, which completes below.
        unsafe { ring.submission().push(&read).unwrap() };
        ring.submit_and_wait(1).unwrap();
        let res = ring.completion().next().unwrap().result();
        if res == -libc::EINTR || res == -libc::ENOENT {
            continue;
        }
        if res < 0 {
            return;
        }
        if let Some(len) = answer(s, &mut w, &input[..res as usize], &mut out) {
            let write = opcode::Write::new(fd, out.as_ptr(), len as u32).build();
            // SAFETY (bench): as above.
            unsafe { ring.submission().push(&write).unwrap() };
            ring.submit_and_wait(1).unwrap();
            ring.completion().for_each(drop);
        }
    }
}

fn answer(s: &Session, w: &mut Worker, input: &[u8], out: &mut [u8]) -> Option<usize> {
    let req = proto::decode(input).ok()?;
    let (hdr, payload) = out.split_at_mut(abi::OUT_HEADER_LEN);
    let reply = s.handle(w, &req, payload);
    reply_header(hdr, req.header.unique, reply)
}
