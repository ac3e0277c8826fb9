//! Many containers at once, side by side with Debian's lxcfs 5.0.3 (both with -l):
//! the first read from a container the daemon has never seen, steady-state reads across
//! all of them, each daemon's RSS with them all alive, and each daemon's CPU time while
//! idle (its loadavg sampling of every container).
//!
//!     SCALE_CONTAINERS=1000 cargo bench --bench scale     # as root, lxcfs installed
//!
//! `SCALE_HALT_POLL_NS=200000` lets idle vCPUs poll that long before halting, as the e2e
//! bench's `E2E_HALT_POLL_NS` does (each container's init reads alone, from a cpu cgroup
//! of its own, so the scheduler moves it to the idle CPU on its wakeups).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/mod.rs"]
mod support;

use support::{HaltPoll, cpu_ticks, start, status_kb};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--init") => init(&args[2..]),
        _ if args.iter().any(|a| a == "--bench") => orchestrate(),
        _ => {}
    }
}

fn read_once(path: &Path) -> Duration {
    let mut buf = Vec::with_capacity(8192);
    let t = Instant::now();
    File::open(path).unwrap().read_to_end(&mut buf).unwrap();
    t.elapsed()
}

/// A container's init: first reads, then steady reads, of each mount's meminfo (and
/// loadavg once, so -l samples it), a result line, then alive until stdin closes.
fn init(mounts: &[String]) {
    let mut line = String::new();
    for m in mounts {
        let p = PathBuf::from(m).join("proc/meminfo");
        let first = read_once(&p);
        let mut steady: Vec<Duration> = (0..21).map(|_| read_once(&p)).collect();
        steady.sort();
        let _ = read_once(&PathBuf::from(m).join("proc/loadavg"));
        line.push_str(&format!("{} {} ", first.as_nanos(), steady[10].as_nanos()));
    }
    println!("{}", line.trim());
    let _ = std::io::stdout().flush();
    let mut rest = String::new();
    let _ = std::io::stdin().read_to_string(&mut rest);
}

/// The kernel's part of a first render: what the daemon asks of the kernel for a new
/// container's meminfo (its own calls, in its order), done on a container nobody has read
/// from. Nanoseconds per step of KERNEL_STEPS.
struct KernelPart([u64; 5]);

const KERNEL_STEPS: [&str; 5] = [
    "pidfd and its pid namespace",
    "/proc/<init>/cgroup",
    "open the memory cgroup",
    "usage, memory.stat, swappiness",
    "host /proc/meminfo",
];

fn kernel_part(init: u32, cgroup: &Path) -> KernelPart {
    use lxcfs_uring::container::pidns;
    use lxcfs_uring::kfile;
    use std::os::fd::AsFd;
    let mut buf = Vec::with_capacity(8192);
    let mut t = Instant::now();
    let mut lap = || {
        let ns = t.elapsed().as_nanos() as u64;
        t = Instant::now();
        ns
    };
    let pidfd = pidns::pidfd_open_thread(init).unwrap();
    pidns::pidns_of(Some(&pidfd), init).unwrap();
    let ns = lap();
    let path = std::ffi::CString::new(format!("/proc/{init}/cgroup")).unwrap();
    kfile::read_path(&path, &mut buf).unwrap();
    let cg = lap();
    let dir = std::ffi::CString::new(cgroup.as_os_str().as_encoded_bytes()).unwrap();
    let dir = kfile::open_dir(None, &dir).unwrap();
    let open = lap();
    for f in [
        c"memory.usage_in_bytes",
        c"memory.stat",
        c"memory.swappiness",
    ] {
        kfile::read_at(dir.as_fd(), f, &mut buf).unwrap();
    }
    let files = lap();
    kfile::read_path(c"/proc/meminfo", &mut buf).unwrap();
    KernelPart([ns, cg, open, files, lap()])
}

/// A container (a memory cgroup and a pid namespace) whose init only sleeps: its host pid.
fn idle_container(cg: &Path) -> (std::process::Child, u32) {
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec unshare --pid --fork sleep 600",
            cg.display()
        ))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let children = format!("/proc/{0}/task/{0}/children", child.id());
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut init = None;
    while init.is_none() && Instant::now() < deadline {
        let text = std::fs::read_to_string(&children).unwrap_or_default();
        init = text.split_whitespace().next().and_then(|p| p.parse().ok());
        std::thread::sleep(Duration::from_millis(1));
    }
    (
        child,
        init.unwrap_or_else(|| panic!("no init in {}", cg.display())),
    )
}

/// Remove the cgroup `cg` once its killed members are gone (a few ms), or say it stayed.
fn wait_removed(cg: &Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::remove_dir(cg).is_err() {
        if Instant::now() > deadline {
            eprintln!("*** could not remove {} ***", cg.display());
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

fn orchestrate() {
    let n: usize = std::env::var("SCALE_CONTAINERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let _halt_poll = HaltPoll::from_env("SCALE_HALT_POLL_NS");
    let dir = std::env::temp_dir().join(format!("lxcfs-uring-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ours = start(
        "ours",
        &dir,
        Command::new(env!("CARGO_BIN_EXE_lxcfs-uring"))
            .args(["-l", "--runtime-dir"])
            .arg(&dir),
    );
    let lx = start(
        "lxcfs",
        &dir,
        Command::new("/usr/bin/lxcfs")
            .args(["-f", "-l", "-p"])
            .arg(dir.join("lx.pid")),
    );
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let mem = own
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|x| x.1.to_owned()))
        .expect("a v1 memory cgroup");
    let base = PathBuf::from("/sys/fs/cgroup/memory")
        .join(mem.trim_start_matches('/'))
        .join(format!("scale-{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    // Each container also gets a cpu cgroup of its own, so -l samples each one.
    let cpu_base =
        PathBuf::from("/sys/fs/cgroup/cpu").join(format!("scale-{}", std::process::id()));
    std::fs::create_dir_all(&cpu_base).unwrap();
    let rss0 = (
        status_kb(ours.pid(), "VmRSS:"),
        status_kb(lx.pid(), "VmRSS:"),
    );
    let exe = std::env::current_exe().unwrap();
    let mut inits = Vec::with_capacity(n);
    let (mut first_ours, mut first_lx, mut steady_ours, mut steady_lx) =
        (vec![], vec![], vec![], vec![]);
    let start_all = Instant::now();
    for i in 0..n {
        let cg = base.join(format!("c{i}"));
        std::fs::create_dir_all(&cg).unwrap();
        let cpu_cg = cpu_base.join(format!("c{i}"));
        std::fs::create_dir_all(&cpu_cg).unwrap();
        std::fs::write(
            cg.join("memory.limit_in_bytes"),
            format!("{}", (64 + i % 512) << 20),
        )
        .unwrap();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "echo $$ > {}/cgroup.procs && echo $$ > {}/cgroup.procs && exec unshare --pid --fork --mount-proc {} --init {} {}",
                cg.display(),
                cpu_cg.display(),
                exe.display(),
                ours.mnt.display(),
                lx.mnt.display()
            ))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let v: Vec<u64> = line
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        first_ours.push(v[0]);
        steady_ours.push(v[1]);
        first_lx.push(v[2]);
        steady_lx.push(v[3]);
        inits.push(child);
    }
    let spawn_time = start_all.elapsed();
    // Fresh containers no daemon has seen, for the kernel's part of a first read.
    let probes = (n / 10).max(1);
    let mut kernel: Vec<KernelPart> = Vec::with_capacity(probes);
    for i in 0..probes {
        let cg = base.join(format!("probe{i}"));
        std::fs::create_dir_all(&cg).unwrap();
        let (mut child, init) = idle_container(&cg);
        kernel.push(kernel_part(init, &cg));
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(init as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = child.wait();
        wait_removed(&cg);
    }
    std::thread::sleep(Duration::from_secs(1));
    let rss = (
        status_kb(ours.pid(), "VmRSS:"),
        status_kb(lx.pid(), "VmRSS:"),
    );
    // Idle with every container alive: what loadavg sampling costs each daemon.
    let idle = Duration::from_secs(20);
    let before = (cpu_ticks(ours.pid()), cpu_ticks(lx.pid()));
    std::thread::sleep(idle);
    let after = (cpu_ticks(ours.pid()), cpu_ticks(lx.pid()));
    let ticks_per_5s = |a: u64, b: u64| (b - a) as f64 * 10.0 / (idle.as_secs_f64() / 5.0);
    println!("containers: {n} (spawned and first-read in {spawn_time:?})");
    println!("| measure | lxcfs-uring | lxcfs 5.0.3 | ratio |");
    println!("|---|---|---|---|");
    let us = |ns: u64| ns as f64 / 1000.0;
    let (fo, fl) = (median(first_ours.clone()), median(first_lx.clone()));
    println!(
        "| first read in a new container, median | {:.1} us | {:.1} us | {:.1}x |",
        us(fo),
        us(fl),
        fl as f64 / fo.max(1) as f64
    );
    println!(
        "| first read in a new container, p99 | {:.1} us | {:.1} us | |",
        us({
            first_ours.sort_unstable();
            first_ours[n * 99 / 100]
        }),
        us({
            first_lx.sort_unstable();
            first_lx[n * 99 / 100]
        })
    );
    let steps: Vec<u64> = (0..KERNEL_STEPS.len())
        .map(|i| median(kernel.iter().map(|k| k.0[i]).collect()))
        .collect();
    println!(
        "| of which the kernel's work alone (the same calls on {probes} fresh containers), median | {:.1} us | | |",
        us(median(kernel.iter().map(|k| k.0.iter().sum()).collect()))
    );
    for (step, ns) in KERNEL_STEPS.iter().zip(&steps) {
        println!("| - {step} | {:.1} us | | |", us(*ns));
    }
    let (so, sl) = (median(steady_ours), median(steady_lx));
    println!(
        "| steady read (median of per-container medians) | {:.1} us | {:.1} us | {:.1}x |",
        us(so),
        us(sl),
        sl as f64 / so.max(1) as f64
    );
    println!(
        "| RSS before containers | {} kB | {} kB | |",
        rss0.0, rss0.1
    );
    println!(
        "| RSS with {n} containers alive | {} kB | {} kB | {:.2} |",
        rss.0,
        rss.1,
        rss.0 as f64 / rss.1.max(1) as f64
    );
    println!(
        "| daemon CPU per 5 s idle (loadavg sampling) | {:.1} ms | {:.1} ms | |",
        ticks_per_5s(before.0, after.0),
        ticks_per_5s(before.1, after.1)
    );
    drop(inits); // closes their stdin: the inits exit
    std::thread::sleep(Duration::from_secs(1));
    for i in 0..n {
        let _ = std::fs::remove_dir(base.join(format!("c{i}")));
        let _ = std::fs::remove_dir(cpu_base.join(format!("c{i}")));
    }
    let _ = std::fs::remove_dir(&base);
    let _ = std::fs::remove_dir(&cpu_base);
    drop(ours);
    drop(lx);
    let _ = std::fs::remove_dir_all(&dir);
}
