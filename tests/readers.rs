//! Every way a program reads a file, through a real mount, from real containers, on both
//! transports: read, 1-byte reads, readv, pread, preadv, sendfile, splice,
//! copy_file_range, io_uring and Linux AIO, and the programs that use them (busybox
//! cat/cp/tail, coreutils cat/tail/wc/head, Python's shutil.copyfile). Each must see its
//! own container's file, also while another container reads the same file at once.
//!
//! The kernel serves splice, sendfile and copy_file_range of a direct-I/O file from the
//! inode's page cache, which every container shares; the daemon refuses to fill it
//! (EINVAL), and every program falls back to read(2). On kernels that splice through
//! the read path (6.1) the calls succeed. Either way, no reader may ever get a short,
//! empty or foreign file.

#[macro_use]
mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::Path;

use common::*;

const MIB256: u64 = 256 << 20;
const MIB384: u64 = 384 << 20;

/// The ways of reading the reader child knows, in the order it runs them.
const METHODS: [&str; 10] = [
    "read",
    "read1",
    "readv",
    "pread",
    "preadv",
    "sendfile",
    "splice",
    "copy_file_range",
    "io_uring",
    "aio",
];

/// Runs inside a container (the test binary started again by `methods_in_a_container`):
/// reads $READER_FILE every way it knows and leaves each result in $READER_OUT/<method>,
/// with how it got there in <method>.how.
#[test]
#[ignore = "the child half of methods_in_a_container, started inside a container"]
fn reader_child() {
    let (Some(file), Some(out)) = (
        std::env::var_os("READER_FILE"),
        std::env::var_os("READER_OUT"),
    ) else {
        return;
    };
    let out = Path::new(&out);
    let reopen = std::env::var_os("READER_REOPEN").is_some();
    for method in METHODS {
        if reopen {
            // Open, read and close it first: the method's open is then a re-open, which
            // the passthrough fast path serves from a backing file.
            std::fs::read(&file).unwrap();
        }
        let f = File::open(&file).unwrap();
        let (bytes, how) = match read_by(method, &f, out) {
            Ok(r) => r,
            Err(e) => panic!("{method}: {e}"),
        };
        std::fs::write(out.join(method), bytes).unwrap();
        std::fs::write(out.join(format!("{method}.how")), how).unwrap();
    }
}

/// The whole file read by `method`, and "direct" or "fallback <errno>" when the call
/// refused and the file was read with read(2), as every program that uses it does.
fn read_by(method: &str, f: &File, scratch: &Path) -> std::io::Result<(Vec<u8>, String)> {
    let fd = f.as_raw_fd();
    let mut v = Vec::new();
    match method {
        "read" => {
            (&*f).read_to_end(&mut v)?;
        }
        "read1" => {
            let mut b = [0u8; 1];
            while (&*f).read(&mut b)? == 1 {
                v.push(b[0]);
            }
        }
        "readv" => loop {
            let (mut a, mut b, mut c) = ([0u8; 100], [0u8; 200], [0u8; 3000]);
            let mut iov = [
                std::io::IoSliceMut::new(&mut a),
                std::io::IoSliceMut::new(&mut b),
                std::io::IoSliceMut::new(&mut c),
            ];
            let n = (&*f).read_vectored(&mut iov)?;
            if n == 0 {
                break;
            }
            let all: Vec<u8> = [&a[..], &b[..], &c[..]].concat();
            v.extend_from_slice(&all[..n]);
        },
        "pread" => {
            // The read at 0 takes the snapshot; odd sizes at odd offsets come from it.
            let mut b = [0u8; 37];
            loop {
                let n = f.read_at(&mut b, v.len() as u64)?;
                if n == 0 {
                    break;
                }
                v.extend_from_slice(&b[..n]);
            }
        }
        "preadv" => loop {
            let (mut a, mut b) = ([0u8; 13], [0u8; 500]);
            let iov = [
                libc::iovec {
                    iov_base: a.as_mut_ptr().cast(),
                    iov_len: a.len(),
                },
                libc::iovec {
                    iov_base: b.as_mut_ptr().cast(),
                    iov_len: b.len(),
                },
            ];
            // SAFETY: the iovecs point at the two live local buffers.
            let n = unsafe { libc::preadv(fd, iov.as_ptr(), 2, v.len() as i64) };
            let n = usize::try_from(n).map_err(|_| std::io::Error::last_os_error())?;
            if n == 0 {
                break;
            }
            let all: Vec<u8> = [&a[..], &b[..]].concat();
            v.extend_from_slice(&all[..n]);
        },
        "sendfile" | "splice" | "copy_file_range" => {
            return copy_by(method, f, scratch);
        }
        "io_uring" => {
            let mut ring = io_uring::IoUring::new(4)?;
            let mut b = vec![0u8; 65536];
            loop {
                let e = io_uring::opcode::Read::new(
                    io_uring::types::Fd(fd),
                    b.as_mut_ptr(),
                    b.len() as u32,
                )
                .offset(v.len() as u64)
                .build();
                // SAFETY: the buffer outlives the request: we wait for its completion.
                unsafe { ring.submission().push(&e) }.expect("submission queue full");
                ring.submit_and_wait(1)?;
                let res = ring.completion().next().expect("a completion").result();
                let n =
                    usize::try_from(res).map_err(|_| std::io::Error::from_raw_os_error(-res))?;
                if n == 0 {
                    break;
                }
                v.extend_from_slice(&b[..n]);
            }
        }
        "aio" => v = aio_read(f)?,
        _ => unreachable!("{method}"),
    }
    Ok((v, "direct".into()))
}

/// The file copied into a scratch file (through a pipe for splice) by `method`.
fn copy_by(method: &str, f: &File, scratch: &Path) -> std::io::Result<(Vec<u8>, String)> {
    let fd = f.as_raw_fd();
    let target = scratch.join(format!("{method}.copy"));
    let out = File::create(&target)?;
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-element array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 just returned these two fds, owned here alone.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let mut total = 0usize;
    loop {
        // SAFETY: plain syscalls on fds this function owns or borrows.
        let n = unsafe {
            match method {
                "sendfile" => libc::sendfile(out.as_raw_fd(), fd, std::ptr::null_mut(), 1 << 20),
                "splice" => libc::splice(
                    fd,
                    std::ptr::null_mut(),
                    wr.as_raw_fd(),
                    std::ptr::null_mut(),
                    65536,
                    0,
                ),
                _ => libc::copy_file_range(
                    fd,
                    std::ptr::null_mut(),
                    out.as_raw_fd(),
                    std::ptr::null_mut(),
                    1 << 20,
                    0,
                ),
            }
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            let errno = e.raw_os_error().unwrap_or(0);
            // What every caller does (busybox, Python, Go, Rust's std, coreutils): a
            // refusal before the first byte means "read it instead".
            let refusal = matches!(errno, libc::EINVAL | libc::EXDEV | libc::EOPNOTSUPP);
            if total == 0 && refusal {
                let mut v = Vec::new();
                (&*f).read_to_end(&mut v)?;
                return Ok((v, format!("fallback {errno}")));
            }
            return Err(e);
        }
        if n == 0 {
            break;
        }
        total += n as usize;
        if method == "splice" {
            let mut b = vec![0u8; n as usize];
            File::from(rd.try_clone()?).read_exact(&mut b)?;
            (&out).write_all(&b)?;
        }
    }
    Ok((std::fs::read(&target)?, "direct".into()))
}

/// The file read with Linux AIO (io_submit of IOCB_CMD_PREAD), 64 KiB at a time.
fn aio_read(f: &File) -> std::io::Result<Vec<u8>> {
    /// struct iocb of linux/aio_abi.h (little-endian layout).
    #[repr(C)]
    #[derive(Default)]
    struct Iocb {
        data: u64,
        key: u32,
        rw_flags: i32,
        opcode: u16,
        reqprio: i16,
        fildes: u32,
        buf: u64,
        nbytes: u64,
        offset: i64,
        reserved2: u64,
        flags: u32,
        resfd: u32,
    }
    #[repr(C)]
    #[derive(Default)]
    struct Event {
        data: u64,
        obj: u64,
        res: i64,
        res2: i64,
    }
    let mut ctx: u64 = 0;
    // SAFETY: io_setup writes the context id into `ctx`.
    if unsafe { libc::syscall(libc::SYS_io_setup, 1, &mut ctx) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut v = Vec::new();
    let mut b = vec![0u8; 65536];
    let result = loop {
        let mut cb = Iocb {
            opcode: 0, // IOCB_CMD_PREAD
            fildes: f.as_raw_fd() as u32,
            buf: b.as_mut_ptr() as u64,
            nbytes: b.len() as u64,
            offset: v.len() as i64,
            ..Default::default()
        };
        let mut list = [&mut cb as *mut Iocb];
        let mut ev = Event::default();
        // SAFETY: the iocb and its buffer outlive the request (we wait for its event),
        // and the event is written into `ev`.
        let done = unsafe {
            libc::syscall(libc::SYS_io_submit, ctx, 1, list.as_mut_ptr()) == 1
                && libc::syscall(
                    libc::SYS_io_getevents,
                    ctx,
                    1,
                    1,
                    &mut ev,
                    std::ptr::null_mut::<libc::timespec>(),
                ) == 1
        };
        if !done {
            break Err(std::io::Error::last_os_error());
        }
        match usize::try_from(ev.res) {
            Ok(0) => break Ok(v),
            Ok(n) => v.extend_from_slice(&b[..n]),
            Err(_) => break Err(std::io::Error::from_raw_os_error(-ev.res as i32)),
        }
    };
    // SAFETY: the context was set up above and has no request in flight.
    unsafe { libc::syscall(libc::SYS_io_destroy, ctx) };
    result
}

/// The keys of meminfo-formatted text, in order: what every complete render shares.
fn keys(text: &str) -> Vec<&str> {
    text.lines().filter_map(|l| l.split(':').next()).collect()
}

/// `bytes` is a complete meminfo of a container limited to `limit`.
fn assert_own_meminfo(what: &str, bytes: &[u8], reference: &str, limit: u64) {
    let text = std::str::from_utf8(bytes).unwrap_or_else(|_| panic!("{what}: not text"));
    assert!(
        text.ends_with('\n') && keys(text) == keys(reference),
        "{what}: not a whole meminfo:\n{text}"
    );
    assert_eq!(
        meminfo_kb(text, "MemTotal"),
        limit / 1024,
        "{what}:\n{text}"
    );
}

fn methods_in_a_container(transport: &str) {
    let d = Daemon::start(
        &format!("readers-{transport}"),
        &["--transport", transport, "--passthrough", "off"],
    );
    methods_in(&d, &format!("readers-{transport}"), "");
    assert_eq!(
        d.counter("passthrough_opens_shared"),
        0,
        "passthrough is off"
    );
}

/// Every method again, each through a re-open: the kernel serves them from the
/// container's backing file.
fn methods_through_reopens(transport: &str) {
    let d = Daemon::start(
        &format!("readers-pt-{transport}"),
        &["--transport", transport, "--passthrough", "auto"],
    );
    methods_in(&d, &format!("readers-pt-{transport}"), "READER_REOPEN=1");
    let passed = d.counter("passthrough_opens_fresh") + d.counter("passthrough_opens_shared");
    assert!(
        passed >= METHODS.len() as u64,
        "{passed} opens read from a backing file, for {} methods",
        METHODS.len()
    );
}

/// Every method and program reading meminfo from a container of `d` (the child with
/// the environment `env` set), each seeing the container's own file.
fn methods_in(d: &Daemon, name: &str, env: &str) {
    let mem = Cgroup::new("memory", name);
    mem.set("memory.limit_in_bytes", &MIB256.to_string());
    let out = std::env::temp_dir().join(unique(&format!("{name}-out")));
    std::fs::create_dir_all(&out).unwrap();
    let _cleanup = RemoveDir(out.clone());
    let meminfo = d.path("proc/meminfo");
    let exe = std::env::current_exe().unwrap();
    let script = format!(
        "{env} READER_FILE={m} READER_OUT={o} {exe} --exact reader_child --ignored --nocapture --test-threads=1 >{o}/child.log 2>&1 || {{ cat {o}/child.log; exit 1; }}
         busybox cat {m} > {o}/busybox_cat
         busybox cp {m} {o}/busybox_cp
         cat {m} > {o}/coreutils_cat
         python3 -c 'import shutil, sys; shutil.copyfile(sys.argv[1], sys.argv[2])' {m} {o}/python_copyfile
         busybox tail -n 3 {m} > {o}/busybox_tail
         tail -n 3 {m} > {o}/coreutils_tail
         head -c 64 {m} > {o}/head
         wc -c < {m} > {o}/wc
         stat -c %s {m} > {o}/size",
        m = meminfo.display(),
        o = out.display(),
        exe = exe.display(),
    );
    in_container(&[&mem], &script);
    let get = |name: &str| std::fs::read(out.join(name)).unwrap();
    let reference = String::from_utf8(get("read")).unwrap();
    assert_own_meminfo("read", reference.as_bytes(), &reference, MIB256);
    for method in METHODS {
        let how = String::from_utf8(get(&format!("{method}.how"))).unwrap();
        assert_own_meminfo(
            &format!("{method} ({how})"),
            &get(method),
            &reference,
            MIB256,
        );
    }
    for program in [
        "busybox_cat",
        "busybox_cp",
        "coreutils_cat",
        "python_copyfile",
    ] {
        assert_own_meminfo(program, &get(program), &reference, MIB256);
    }
    let last3: Vec<&str> = reference.lines().rev().take(3).collect();
    for tail in ["busybox_tail", "coreutils_tail"] {
        let text = String::from_utf8(get(tail)).unwrap();
        let got: Vec<&str> = text.lines().rev().collect();
        assert_eq!(
            keys(&got.join("\n")),
            keys(&last3.join("\n")),
            "{tail}:\n{text}"
        );
    }
    let head = String::from_utf8(get("head")).unwrap();
    assert_eq!(head.len(), 64);
    assert_eq!(
        head.lines().next(),
        reference.lines().next(),
        "head:\n{head}"
    );
    // wc -c counts what it reads (meminfo's length does not change between reads); the
    // size is a page multiple that covers every container's file.
    let len = reference.len() as u64;
    let number = |name: &str| -> u64 {
        String::from_utf8(get(name))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    assert_eq!(number("wc"), len, "wc -c");
    let size = number("size");
    assert!(
        size >= len && size.is_multiple_of(4096),
        "st_size {size} for {len} bytes"
    );
}

/// Without passthrough, a shared mapping is refused as procfs and direct-I/O files refuse
/// it (ENODEV); a reader that maps files (ripgrep, say) then reads them instead.
fn mmap_is_refused(transport: &str) {
    let d = Daemon::start(
        &format!("readers-mmap-{transport}"),
        &["--transport", transport, "--passthrough", "off"],
    );
    let f = File::open(d.path("proc/meminfo")).unwrap();
    // SAFETY: a fresh mapping request of a file this function holds open; it is unmapped
    // below if it was made.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        )
    };
    let err = std::io::Error::last_os_error();
    if p != libc::MAP_FAILED {
        // SAFETY: the mapping just made, of that length.
        unsafe { libc::munmap(p, 4096) };
        panic!("a shared mapping of a view was made");
    }
    assert_eq!(err.raw_os_error(), Some(libc::ENODEV), "{err}");
}

/// Two containers with different limits read the same file at once, every way, for a few
/// seconds: each only ever sees its own.
fn two_containers_at_once(transport: &str) {
    let name = format!("readers2-{transport}");
    let d = Daemon::start(&name, &["--transport", transport, "--passthrough", "off"]);
    two_containers(&d, &name);
}

/// The same with passthrough on: each container's loop re-opens the file, so one
/// container's opens overlap the other's backing file all the time.
fn two_containers_reopening(transport: &str) {
    let name = format!("readers2-pt-{transport}");
    let d = Daemon::start(&name, &["--transport", transport, "--passthrough", "auto"]);
    two_containers(&d, &name);
    let (own, named) = (
        d.counter("passthrough_opens_fresh") + d.counter("passthrough_opens_shared"),
        d.counter("passthrough_opens_direct"),
    );
    assert!(
        own > 100 && named > 0,
        "{own} opens read from a backing file, {named} named another's"
    );
}

/// Two containers of `d` with different memory limits (cgroups named after `name`)
/// loop over reading its meminfo every way at once.
fn two_containers(d: &Daemon, name: &str) {
    let (a, b) = (
        Cgroup::new("memory", &format!("{name}-a")),
        Cgroup::new("memory", &format!("{name}-b")),
    );
    a.set("memory.limit_in_bytes", &MIB256.to_string());
    b.set("memory.limit_in_bytes", &MIB384.to_string());
    let meminfo = d.path("proc/meminfo");
    let script = |limit: u64| {
        format!(
            r#"python3 - {m} {kb} {tmp} <<'EOF'
import os, shutil, sys, time
path, want = sys.argv[1], sys.argv[2]
def total(text):
    line = [l for l in text.splitlines() if l.startswith("MemTotal:")][0]
    return line.split()[1]
tmp = sys.argv[3]  # a scratch file of this container's own
def via(f, how):
    try:
        if how == "splice":
            r, w = os.pipe()
            try:
                n = os.splice(f.fileno(), w, 65536)
                return os.read(r, n).decode() if n else ""
            finally:
                os.close(r)
                os.close(w)
        with open(tmp, "wb") as out:
            os.sendfile(out.fileno(), f.fileno(), None, 1 << 20)
        with open(tmp) as copy:
            return copy.read()
    except OSError as e:
        if e.errno != 22:  # EINVAL: what every caller takes as "read it instead"
            raise
        return f.read().decode()
end, n = time.time() + 3, 0
while time.time() < end:
    with open(path, "rb", buffering=0) as f:
        seen = [f.read().decode()]
    for how in ("splice", "sendfile"):
        with open(path, "rb", buffering=0) as f:
            seen.append(via(f, how))
    shutil.copyfile(path, tmp)
    with open(tmp) as f:
        seen.append(f.read())
    for s in seen:
        if total(s) != want:
            print("foreign or torn: want", want, "saw", total(s))
            sys.exit(1)
    n += 1
os.unlink(tmp)
print("ok", n)
EOF"#,
            m = meminfo.display(),
            kb = limit / 1024,
            tmp = d.dir.join(format!("copy-{limit}")).display(),
        )
    };
    let (sa, sb) = (script(MIB256), script(MIB384));
    let other = std::thread::scope(|s| {
        let t = s.spawn(|| in_container(&[&b], &sb));
        let mine = in_container(&[&a], &sa);
        (mine, t.join().unwrap())
    });
    for out in [other.0, other.1] {
        let text = String::from_utf8_lossy(&out.stdout);
        let rounds: u32 = text
            .trim()
            .strip_prefix("ok ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{text}"));
        assert!(rounds > 50, "too few rounds to mean anything: {text}");
    }
}

/// A file a program opens once and reads again from offset 0 (procps's top, vmstat,
/// free -s) shows fresh values with passthrough on, also while another thread of its
/// container keeps re-opening it (so the file has a live backing file of that container).
fn held_fd_stays_fresh(transport: &str) {
    let name = format!("readers-held-{transport}");
    let d = Daemon::start(&name, &["--transport", transport, "--passthrough", "auto"]);
    let mem = Cgroup::new("memory", &name);
    let script = format!(
        r#"python3 - {u} <<'EOF'
import os, sys, threading, time
path = sys.argv[1]
stop = False
def poll():
    while not stop:
        with open(path, "rb") as f:
            f.read()
t = threading.Thread(target=poll)
t.start()
time.sleep(0.2)
fd = os.open(path, os.O_RDONLY)
first = float(os.read(fd, 4096).split()[0])
time.sleep(0.5)
os.lseek(fd, 0, os.SEEK_SET)
second = float(os.read(fd, 4096).split()[0])
stop = True
t.join()
print(first, second)
EOF"#,
        u = d.path("proc/uptime").display()
    );
    let out = in_container(&[&mem], &script);
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<f64> = text
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(v.len(), 2, "{text}");
    assert!(
        v[1] - v[0] >= 0.4,
        "the held fd's uptime went from {} to {}",
        v[0],
        v[1]
    );
    assert!(
        d.counter("passthrough_opens_shared") + d.counter("passthrough_opens_fresh") > 0,
        "the poller's re-opens read from a backing file"
    );
}

/// With passthrough on, a re-opened file is mapped from its backing file: a shared
/// mapping is made (the real /proc files refuse it) and shows the container's own file.
fn mmap_of_a_reopen(transport: &str) {
    let name = format!("readers-mmap-pt-{transport}");
    let d = Daemon::start(&name, &["--transport", transport, "--passthrough", "auto"]);
    let mem = Cgroup::new("memory", &name);
    mem.set("memory.limit_in_bytes", &MIB256.to_string());
    let script = format!(
        r#"python3 - {m} <<'EOF'
import mmap, sys
path = sys.argv[1]
open(path, "rb").read()
with open(path, "rb") as f:
    m = mmap.mmap(f.fileno(), 0, mmap.MAP_SHARED, mmap.PROT_READ)
    sys.stdout.write(m[:].decode())
EOF"#,
        m = d.path("proc/meminfo").display()
    );
    let out = in_container(&[&mem], &script);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(meminfo_kb(&text, "MemTotal"), MIB256 / 1024, "{text}");
}

/// The residual of passthrough, pinned down: while container A holds a re-open of
/// meminfo (its backing file), container B's open names A's backing file with
/// FOPEN_DIRECT_IO. B's read(2) shows B's own file, but a mapping of B's open maps the
/// backing file, A's snapshot. (The real /proc files cannot be mapped at all.)
fn mmap_of_an_open_naming_another_containers_backing_file(transport: &str) {
    let name = format!("readers-mmap-other-{transport}");
    let d = Daemon::start(&name, &["--transport", transport, "--passthrough", "auto"]);
    let (a, b) = (
        Cgroup::new("memory", &format!("{name}-a")),
        Cgroup::new("memory", &format!("{name}-b")),
    );
    a.set("memory.limit_in_bytes", &MIB256.to_string());
    b.set("memory.limit_in_bytes", &MIB384.to_string());
    let (ready, done) = (d.dir.join("a-holds"), d.dir.join("b-done"));
    let holder = format!(
        r#"python3 - {m} {r} {d} <<'EOF'
import os, sys, time
path, ready, done = sys.argv[1:]
open(path, "rb").read()
f = open(path, "rb")  # a re-open: read from A's backing file, held
open(ready, "w").close()
end = time.time() + 20
while not os.path.exists(done) and time.time() < end:
    time.sleep(0.01)
EOF"#,
        m = d.path("proc/meminfo").display(),
        r = ready.display(),
        d = done.display()
    );
    let mapper = format!(
        r#"python3 - {m} {r} {d} <<'EOF'
import mmap, os, sys, time
path, ready, done = sys.argv[1:]
end = time.time() + 20
while not os.path.exists(ready) and time.time() < end:
    time.sleep(0.01)
try:
    with open(path, "rb") as f:
        m = mmap.mmap(f.fileno(), 0, mmap.MAP_SHARED, mmap.PROT_READ)
        print(m[:].split(b"\0")[0].decode(), end="")
        print("--- read")
        print(f.read().decode(), end="")
finally:
    open(done, "w").close()
EOF"#,
        m = d.path("proc/meminfo").display(),
        r = ready.display(),
        d = done.display()
    );
    let out = std::thread::scope(|s| {
        let held = s.spawn(|| in_container(&[&a], &holder));
        let out = in_container(&[&b], &mapper);
        held.join().unwrap();
        out
    });
    let text = String::from_utf8_lossy(&out.stdout);
    let (mapped, read) = text
        .split_once("--- read\n")
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(
        meminfo_kb(read, "MemTotal"),
        MIB384 / 1024,
        "B's read:\n{read}"
    );
    assert_eq!(
        meminfo_kb(mapped, "MemTotal"),
        MIB256 / 1024,
        "B's mapping maps A's backing file:\n{mapped}"
    );
}

/// The /cgroup tree's files too: busybox cat (sendfile) and Python's copyfile read the
/// container's own limit, and stat says how long it is.
fn cgroup_tree_files(transport: &str) {
    let d = Daemon::start(
        &format!("readers-cg-{transport}"),
        &["--transport", transport, "--enable-cgroup"],
    );
    let (mount, _) = own_cgroup("memory").unwrap();
    let mem = Cgroup::new("memory", &format!("readers-cg-{transport}"));
    mem.set("memory.limit_in_bytes", &MIB256.to_string());
    let rel = mem.path.strip_prefix(&mount).unwrap();
    let f = d
        .path("cgroup/memory")
        .join(rel)
        .join("memory.limit_in_bytes");
    let copy = d.dir.join("limit-copy");
    let out = in_container(
        &[&mem],
        &format!(
            "busybox cat {f}; python3 -c 'import shutil, sys; shutil.copyfile(sys.argv[1], sys.argv[2])' {f} {c}; cat {c}; stat -c %s {f}",
            f = f.display(),
            c = copy.display()
        ),
    );
    // The size: a page multiple covering the 10 bytes every reader of it reads.
    let want = format!("{MIB256}\n{MIB256}\n4096\n");
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
}

/// Removes a directory tree on drop.
struct RemoveDir(std::path::PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

both_transports!(
    methods_in_a_container,
    methods_through_reopens,
    two_containers_at_once,
    two_containers_reopening,
    held_fd_stays_fresh,
    mmap_of_a_reopen,
    mmap_of_an_open_naming_another_containers_backing_file,
    cgroup_tree_files,
    mmap_is_refused
);
