//! Faults and hostile readers against a real mount: cgroups vanishing under a container,
//! callers dying mid-request, signals, thousands of open files, concurrent containers,
//! and memory over a soak. After each, the daemon still serves correct values.

#[macro_use]
mod common;

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn rss_kb(pid: i32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn assert_serves(d: &Daemon) {
    let text = std::fs::read_to_string(d.path("proc/meminfo")).expect("still serving");
    assert!(text.starts_with("MemTotal:"));
}

#[test]
fn cgroup_removed_while_its_container_reads() {
    if !root_or_skip("cgroup_removed_while_its_container_reads") {
        return;
    }
    let d = Daemon::start("vanish", &[]);
    let a = Cgroup::new("memory", "vanish-a");
    a.set("memory.limit_in_bytes", &(256u64 << 20).to_string());
    let b = Cgroup::new("memory", "vanish-b");
    b.set("memory.limit_in_bytes", &(128u64 << 20).to_string());
    let meminfo = d.path("proc/meminfo");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec unshare --pid --fork --mount-proc sh -c \
             'for i in $(seq 60); do grep MemTotal {} || echo READFAIL; sleep 0.05; done'",
            a.path.display(),
            meminfo.display()
        ))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    // Move every process of the container to B, then remove A under the cached entry.
    for _ in 0..20 {
        for p in a.get("cgroup.procs").split_whitespace() {
            let _ = std::fs::write(b.path.join("cgroup.procs"), p);
        }
        if std::fs::remove_dir(&a.path).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!a.path.exists(), "could not remove the first cgroup");
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert!(!out.contains("READFAIL"), "every read succeeded:\n{out}");
    let totals: Vec<u64> = out.lines().map(|l| meminfo_kb(l, "MemTotal")).collect();
    assert_eq!(totals.len(), 60);
    assert_eq!(totals[0], 262144);
    assert_eq!(
        *totals.last().unwrap(),
        131072,
        "the new cgroup's limit once moved:\n{out}"
    );
}

#[test]
fn callers_killed_mid_request_and_interrupted_by_signals() {
    if !root_or_skip("callers_killed_mid_request_and_interrupted_by_signals") {
        return;
    }
    let d = Daemon::start("killed", &[]);
    let mem = Cgroup::new("memory", "killed");
    let p = d.path("proc/meminfo");
    // Readers in a container, killed or interrupted at arbitrary points of their reads.
    in_container(
        &[&mem],
        &format!(
            "for i in $(seq 200); do timeout -s KILL 0.00$((i % 9 + 1)) cat {p} >/dev/null; \
             timeout -s INT 0.00$((i % 7 + 1)) cat {p} >/dev/null; done; true",
            p = p.display()
        ),
    );
    assert_serves(&d);
}

both_transports!(ten_thousand_open_files_and_their_memory_comes_back);

fn ten_thousand_open_files_and_their_memory_comes_back(transport: &str) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    // One transport at a time: both at once could exceed the hard limit on open files.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard.max(11_000), hard.max(11_000)).unwrap();
    let d = Daemon::start(
        &format!("manyfiles-{transport}"),
        &["--transport", transport],
    );
    // Resting: after ordinary use of every worker, caches and pools warm.
    let mut buf = Vec::new();
    for i in 0..2_000 {
        buf.clear();
        let f = if i % 2 == 0 {
            "proc/meminfo"
        } else {
            "proc/uptime"
        };
        File::open(d.path(f))
            .unwrap()
            .read_to_end(&mut buf)
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(500)); // RELEASE is asynchronous
    let resting = rss_kb(d.pid());
    let files: Vec<File> = (0..10_000)
        .map(|i| {
            File::open(d.path(if i % 2 == 0 {
                "proc/meminfo"
            } else {
                "proc/uptime"
            }))
            .unwrap()
        })
        .collect();
    let mut buf = vec![0u8; 64];
    for f in &files {
        assert!(f.read_at(&mut buf, 0).unwrap() > 0);
    }
    // every open file keeps its own snapshot: a later offset reads the same bytes again
    let mut again = vec![0u8; 64];
    assert_eq!(files[0].read_at(&mut again, 0).unwrap(), 64);
    let peak = rss_kb(d.pid());
    let closed = Instant::now();
    drop(files);
    // The memory comes back once the burst is over: within 1 MB of resting, in about a
    // quarter of a second here (printed; now and then the allocator keeps up to 1.6 MB on
    // classic). Asserted with margins a busy machine cannot break: 2 MB, and up to 5 s.
    let margin = 2048;
    assert!(
        peak > resting + 8 * 1024,
        "the burst took memory: {resting} -> {peak} kB"
    );
    let mut after = rss_kb(d.pid());
    while after > resting + margin && closed.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
        after = rss_kb(d.pid());
    }
    eprintln!(
        "RSS {resting} kB resting, {peak} kB with 10,000 files open, {after} kB {:?} after they closed",
        closed.elapsed()
    );
    assert!(
        after <= resting + margin,
        "RSS {resting} kB resting -> {peak} kB -> {after} kB with 10,000 files closed"
    );
    assert_serves(&d);
}

#[test]
fn two_containers_never_see_each_others_values() {
    if !root_or_skip("two_containers_never_see_each_others_values") {
        return;
    }
    let d = Daemon::start("twocont", &[]);
    let p = d.path("proc/meminfo");
    let run = |mib: u64| {
        let cg = Cgroup::new("memory", &format!("two-{mib}"));
        cg.set("memory.limit_in_bytes", &(mib << 20).to_string());
        let p = p.clone();
        std::thread::spawn(move || {
            let out = in_container(
                &[&cg],
                &format!(
                    "for i in $(seq 300); do grep MemTotal {}; done",
                    p.display()
                ),
            );
            (mib, String::from_utf8(out.stdout).unwrap())
        })
    };
    let (a, b) = (run(96), run(160));
    for h in [a, b] {
        let (mib, out) = h.join().unwrap();
        let totals: Vec<u64> = out.lines().map(|l| meminfo_kb(l, "MemTotal")).collect();
        assert_eq!(totals.len(), 300);
        assert!(
            totals.iter().all(|&t| t == mib * 1024),
            "container of {mib} MiB saw {:?}",
            totals.iter().find(|&&t| t != mib * 1024)
        );
    }
}

#[test]
fn memory_stays_flat_over_a_soak() {
    if !root_or_skip("memory_stays_flat_over_a_soak") {
        return;
    }
    let d = Daemon::start("soak", &[]);
    let files = [
        "proc/meminfo",
        "proc/stat",
        "proc/uptime",
        "proc/cpuinfo",
        "proc/swaps",
        "proc/diskstats",
        "sys/devices/system/cpu/online",
    ];
    let read_all = |n: usize| {
        let mut buf = Vec::new();
        for i in 0..n {
            buf.clear();
            File::open(d.path(files[i % files.len()]))
                .unwrap()
                .read_to_end(&mut buf)
                .unwrap();
        }
    };
    read_all(5_000); // warm up: caches, pools
    let before = rss_kb(d.pid());
    let start = Instant::now();
    read_all(50_000);
    let after = rss_kb(d.pid());
    assert!(
        after <= before + 1024,
        "RSS grew {before} kB -> {after} kB over 50,000 reads ({:?})",
        start.elapsed()
    );
}

/// A file bind-mounted over a cgroup file for as long as it lives.
struct Overlay(std::path::PathBuf);

impl Overlay {
    fn new(fake: &std::path::Path, target: &std::path::Path) -> Overlay {
        nix::mount::mount(
            Some(fake),
            target,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .unwrap();
        Overlay(target.to_owned())
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn hostile_cgroup_file_contents() {
    if !root_or_skip("hostile_cgroup_file_contents") {
        return;
    }
    let d = Daemon::start("hostile", &[]);
    let mem = Cgroup::new("memory", "hostile");
    mem.set("memory.limit_in_bytes", &(256u64 << 20).to_string());
    let fake = d.dir.join("fake");
    let huge = "total_cache 4096\n".repeat((20 << 20) / 17);
    let cases: [(&str, &[u8]); 6] = [
        ("memory.stat", b""),
        (
            "memory.stat",
            b"\xff\xfe garbage \x00 total_cache -1\ntotal_rss 99999999999999999999999\n",
        ),
        ("memory.stat", huge.as_bytes()),
        ("memory.usage_in_bytes", b""),
        ("memory.usage_in_bytes", b"-5\n"),
        ("memory.limit_in_bytes", b"max\n"),
    ];
    let meminfo = d.path("proc/meminfo");
    for (file, contents) in cases {
        std::fs::write(&fake, contents).unwrap();
        let _overlay = Overlay::new(&fake, &mem.path.join(file));
        // A new container each time: nothing cached from the previous case.
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "echo $$ > {}/cgroup.procs && exec unshare --pid --fork --mount-proc cat {}",
                mem.path.display(),
                meminfo.display()
            ))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let err = String::from_utf8_lossy(&out.stderr);
        let what = format!(
            "{file} = {:?}",
            String::from_utf8_lossy(&contents[..contents.len().min(40)])
        );
        // Either a well-formed file or a plain I/O error: never a hang, a crash, a torn file.
        if out.status.success() {
            assert!(
                text.starts_with("MemTotal:") && text.ends_with(" kB\n"),
                "{what}: {text}"
            );
            let total = meminfo_kb(&text, "MemTotal");
            assert!(
                total
                    <= meminfo_kb(
                        &std::fs::read_to_string("/proc/meminfo").unwrap(),
                        "MemTotal"
                    ),
                "{what}"
            );
        } else {
            assert!(err.contains("Input/output error"), "{what}: {err}");
        }
        assert_serves(&d);
    }
    // With the real files back, a new container sees its real limit.
    let out = in_container(&[&mem], &format!("cat {}", meminfo.display()));
    assert_eq!(
        meminfo_kb(&String::from_utf8(out.stdout).unwrap(), "MemTotal"),
        262144
    );
}

/// A container whose memory cgroup file is garbage fails every read of its meminfo, each a
/// warning from one place of the daemon: the log gets one line per interval, and the lines
/// count what they suppressed, so that every failure is accounted for.
#[test]
fn a_container_flooding_failures_cannot_flood_the_log() {
    if !root_or_skip("a_container_flooding_failures_cannot_flood_the_log") {
        return;
    }
    let mut d = Daemon::start("logflood", &[]);
    let mem = Cgroup::new("memory", "logflood");
    let fake = d.dir.join("fake");
    std::fs::write(&fake, "-5\n").unwrap();
    let _overlay = Overlay::new(&fake, &mem.path.join("memory.usage_in_bytes"));
    let meminfo = d.path("proc/meminfo");
    let start = Instant::now();
    let out = in_container(
        &[&mem],
        &format!(
            "for i in $(seq 2000); do cat {} >/dev/null 2>&1 && echo READ; done; true",
            meminfo.display()
        ),
    );
    let flood = start.elapsed();
    assert!(out.stdout.is_empty(), "every read failed");
    let render_errors = || -> u64 {
        let stats = Command::new(env!("CARGO_BIN_EXE_lxcfs-uring"))
            .args(["stats", "--runtime-dir"])
            .arg(&d.runtime)
            .output()
            .unwrap();
        String::from_utf8_lossy(&stats.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("render_errors "))
            .and_then(|v| v.parse().ok())
            .expect("render_errors in the stats")
    };
    let flooded = render_errors();
    // Once the interval has passed, the next failure is written with the count of the rest;
    // the last read's other failures stay counted for a line to come.
    std::thread::sleep(Duration::from_millis(5_100));
    in_container(
        &[&mem],
        &format!("cat {} >/dev/null 2>&1; true", meminfo.display()),
    );
    let failures = render_errors();
    let pending = failures - flooded - 1;
    d.signal(nix::sys::signal::Signal::SIGTERM);
    let (_, log) = d.wait_exit(Duration::from_secs(10)).expect("exits");
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("warning: rendering Meminfo"))
        .collect();
    let counted: u64 = lines
        .iter()
        .filter_map(|l| {
            l.rsplit_once(" (")?
                .1
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert!(flooded >= 2000, "the flood failed {flooded} renders");
    assert!(
        lines.len() as u64 <= 2 + flood.as_secs() / 5,
        "{} lines in {flood:?}:\n{log}",
        lines.len()
    );
    assert_eq!(
        lines.len() as u64 + counted + pending,
        failures,
        "each failure written or counted:\n{log}"
    );
    assert!(
        lines.last().unwrap().contains("suppressed since the last"),
        "{log}"
    );
}
