//! The daemon mounted for real, read from real containers (cgroups + pid namespaces), on
//! both transports.

#[macro_use]
mod common;

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::FileExt;
use std::time::Duration;

use common::*;

const MIB256: u64 = 256 << 20;

fn meminfo_in_memory_limited_container(transport: &str) {
    let d = Daemon::start(&format!("meminfo-{transport}"), &["--transport", transport]);
    let mem = Cgroup::new("memory", &format!("mem-{transport}"));
    mem.set("memory.limit_in_bytes", &MIB256.to_string());
    let meminfo = d.path("proc/meminfo");
    let out = in_container(&[&mem], &format!("cat {}", meminfo.display()));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(meminfo_kb(&text, "MemTotal"), 262144, "{text}");
    let free = meminfo_kb(&text, "MemFree");
    assert!(free > 0 && free <= 262144, "{text}");
    assert!(meminfo_kb(&text, "MemAvailable") <= 262144, "{text}");
    // The host, reading the same file, sees its own memory (it is not in the test cgroup).
    let host = std::fs::read_to_string(&meminfo).unwrap();
    let host_total = meminfo_kb(
        &std::fs::read_to_string("/proc/meminfo").unwrap(),
        "MemTotal",
    );
    assert_eq!(meminfo_kb(&host, "MemTotal"), host_total);
}

fn uptime_is_the_containers_age(transport: &str) {
    let d = Daemon::start(&format!("uptime-{transport}"), &["--transport", transport]);
    let mem = Cgroup::new("memory", &format!("up-{transport}"));
    let uptime = d.path("proc/uptime");
    let out = in_container(&[&mem], &format!("sleep 2; cat {}", uptime.display()));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut f = text.split_whitespace().map(|v| v.parse::<f64>().unwrap());
    let (up, idle) = (f.next().unwrap(), f.next().unwrap());
    assert!(
        (1.9..4.0).contains(&up),
        "container uptime {up} should be about 2 s: {text}"
    );
    assert!(idle >= 0.0 && idle <= up, "{text}");
    let first_field = |p: &std::path::Path| -> f64 {
        let text = std::fs::read_to_string(p).unwrap();
        text.split_whitespace().next().unwrap().parse().unwrap()
    };
    let host_up = first_field(std::path::Path::new("/proc/uptime"));
    let seen_by_host = first_field(&uptime);
    assert!(
        (seen_by_host - host_up).abs() < 2.0,
        "host sees {seen_by_host}, /proc/uptime says {host_up}"
    );
}

/// One snapshot per open: small reads, odd offsets and reads past the end all agree.
fn read_semantics(transport: &str) {
    let d = Daemon::start(&format!("reads-{transport}"), &["--transport", transport]);
    let p = d.path("proc/meminfo");
    let mut f = File::open(&p).unwrap();
    let mut whole = Vec::new();
    f.read_to_end(&mut whole).unwrap();
    assert!(whole.starts_with(b"MemTotal:"));
    // byte by byte
    let mut f = File::open(&p).unwrap();
    let mut bytes = Vec::new();
    let mut one = [0u8; 1];
    while f.read(&mut one).unwrap() == 1 {
        bytes.push(one[0]);
    }
    assert_eq!(bytes.len(), whole.len(), "same length byte by byte");
    assert!(bytes.starts_with(b"MemTotal:") && bytes.ends_with(b"\n"));
    // offsets: the open renders, later offsets are served from that snapshot
    let f = File::open(&p).unwrap();
    let mut a = vec![0u8; 64];
    let n = f.read_at(&mut a, 0).unwrap();
    assert_eq!(n, 64);
    let mut b = vec![0u8; 64];
    assert_eq!(f.read_at(&mut b, 10).unwrap(), 64);
    assert_eq!(&a[10..], &b[..54]);
    let mut tail = vec![0u8; 16];
    assert_eq!(f.read_at(&mut tail, 1 << 40).unwrap(), 0, "past the end");
    // every file reads
    for rel in [
        "cpuinfo",
        "diskstats",
        "loadavg",
        "meminfo",
        "slabinfo",
        "stat",
        "swaps",
        "uptime",
        "vmstat",
    ] {
        let s = std::fs::read(d.path(&format!("proc/{rel}"))).unwrap();
        assert!(!s.is_empty() || rel == "slabinfo", "{rel} is empty");
    }
    assert!(
        !std::fs::read(d.path("sys/devices/system/cpu/online"))
            .unwrap()
            .is_empty()
    );
    // The node directory, where the host has one (CONFIG_NUMA).
    let numa = std::path::Path::new("/sys/devices/system/node").exists();
    let system: Vec<String> = std::fs::read_dir(d.path("sys/devices/system"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(system.contains(&"node".to_owned()), numa, "{system:?}");
    if numa {
        for rel in [
            "online",
            "has_cpu",
            "node0/cpulist",
            "node0/cpumap",
            "node0/meminfo",
        ] {
            let s = std::fs::read(d.path(&format!("sys/devices/system/node/{rel}"))).unwrap();
            assert!(s.ends_with(b"\n"), "node/{rel}");
        }
    }
}

fn nothing_is_writable(transport: &str) {
    let d = Daemon::start(&format!("ro-{transport}"), &["--transport", transport]);
    let mut f = OpenOptions::new()
        .write(true)
        .open(d.path("proc/meminfo"))
        .unwrap();
    assert_eq!(f.write(b"x").unwrap_err().raw_os_error(), Some(libc::EIO));
    let e = OpenOptions::new()
        .write(true)
        .open(d.path("sys/devices/system/cpu/online"))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    if std::path::Path::new("/sys/devices/system/node").exists() {
        for rel in [
            "node/has_memory",
            "node/node0/cpulist",
            "node/node0/distance",
        ] {
            let e = OpenOptions::new()
                .write(true)
                .open(d.path(&format!("sys/devices/system/{rel}")))
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{rel}");
        }
    }
    assert!(std::fs::create_dir(d.path("proc/x")).is_err());
    assert!(File::create(d.path("proc/new")).is_err());
    assert!(std::fs::remove_file(d.path("proc/meminfo")).is_err());
    assert!(std::fs::rename(d.path("proc/meminfo"), d.path("proc/m2")).is_err());
    // As procfs: truncating is a no-op and the write fails (a shell's `echo 1 >`); mode
    // and owner cannot change.
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(d.path("proc/uptime"))
        .unwrap();
    assert_eq!(f.write(b"1").unwrap_err().raw_os_error(), Some(libc::EIO));
    assert!(
        std::fs::read_to_string(d.path("proc/uptime"))
            .unwrap()
            .ends_with('\n')
    );
    use std::os::unix::fs::PermissionsExt;
    let e = std::fs::set_permissions(
        d.path("proc/uptime"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EPERM));
    let e = std::fs::metadata(d.path("proc/nope")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let mode = |rel: &str| std::fs::metadata(d.path(rel)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode("proc/slabinfo"), 0o400);
    assert_eq!(mode("proc/meminfo"), 0o444);
    assert_eq!(mode("proc"), 0o555);
    let names: Vec<String> = std::fs::read_dir(d.path("proc"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    // The nine views, and pressure/ where the host has PSI.
    let psi = std::path::Path::new("/proc/pressure").exists();
    assert_eq!(names.len(), 9 + usize::from(psi), "{names:?}");
}

fn sigterm_unmounts(transport: &str) {
    let mut d = Daemon::start(&format!("term-{transport}"), &["--transport", transport]);
    let pidfile = d.runtime.join("lxcfs.pid");
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, d.pid());
    d.signal(nix::sys::signal::Signal::SIGTERM);
    let (status, log) = d
        .wait_exit(Duration::from_secs(10))
        .expect("exits on SIGTERM");
    assert!(status.success(), "{status}: {log}");
    let expect = if transport == "uring" {
        "serving with FUSE-over-io_uring"
    } else {
        "serving with the classic transport"
    };
    assert!(log.contains(expect), "transport not in use: {log}");
    assert!(!is_mounted(&d.mnt), "still mounted after SIGTERM");
    assert!(!pidfile.exists(), "pidfile left behind");
}

both_transports!(
    meminfo_in_memory_limited_container,
    uptime_is_the_containers_age,
    read_semantics,
    nothing_is_writable,
    modes_are_enforced,
    sigterm_unmounts
);

/// Modes are enforced for unprivileged readers, as for the host's own files.
fn modes_are_enforced(transport: &str) {
    let d = Daemon::start(&format!("modes-{transport}"), &["--transport", transport]);
    let as_nobody = |rel: &str| {
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
            .arg(d.path(rel))
            .output()
            .unwrap()
    };
    let slab = as_nobody("proc/slabinfo");
    assert!(
        !slab.status.success(),
        "slabinfo (0400) must not be readable by nobody"
    );
    assert!(String::from_utf8_lossy(&slab.stderr).contains("Permission denied"));
    let mem = as_nobody("proc/meminfo");
    assert!(mem.status.success() && mem.stdout.starts_with(b"MemTotal:"));
}
