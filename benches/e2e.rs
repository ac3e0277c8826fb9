//! End-to-end, side by side: open + read to EOF + close loops on the files of
//! lxcfs-uring (each transport), Debian's lxcfs 5.0.3 and the host's own /proc, with the
//! readers inside a container (a memory cgroup and a new pid namespace).
//!
//!     cargo bench --bench e2e            # as root; lxcfs must be installed (apt-get install lxcfs)
//!     E2E_SECS=2 E2E_FILES=meminfo,uptime E2E_READERS=1,2,4 cargo bench --bench e2e
//!     E2E_OURS=/path/to/an/older/lxcfs-uring cargo bench --bench e2e   # A/B another build
//!     E2E_PASSTHROUGH=both cargo bench --bench e2e   # ours without and with --passthrough=auto
//!
//! Prints a Markdown table: files/s, p50 and p99 latency per cell, the ratio to lxcfs and
//! to the host's procfs, the daemon's CPU time per file, how often the scheduler moved a
//! reader to another CPU (each move is a wakeup of an idle vCPU) and how often a reader was
//! switched out per file (once per request it waits for, more when a server's wakeup
//! preempts it). `E2E_PIN=1` pins every reader, of every server alike, to CPU 0;
//! `E2E_CPU_CGROUP=1` gives the readers' container a cpu cgroup of its own too;
//! `E2E_HALT_POLL_NS=200000` lets an idle vCPU of a KVM guest poll that long before it
//! halts (the haltpoll cpuidle driver's `guest_halt_poll_ns`), restored when the bench ends
//! (not if it is killed): how much of a reader's move to an idle CPU is the wakeup of a
//! halted vCPU. `E2E_READ=sendfile` reads as busybox `cat` does: sendfile to /dev/null,
//! and read(2) where the file refuses sendfile before its first byte.
//! `E2E_NOISY=1` measures a noisy neighbour instead: per server and file, one reader's
//! latency alone in its container, then again while a second container reads the same
//! file with 8 threads in a tight loop (each container in a memory and a cpu cgroup of
//! its own).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "support/mod.rs"]
mod support;

use support::{HaltPoll, cpu_ticks, start};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--reader") => reader(&args[2..]),
        // `cargo test --all-targets` runs benches without --bench: nothing to measure then.
        _ if args.iter().any(|a| a == "--bench") => orchestrate(),
        _ => {}
    }
}

/// The scheduler's counts for the calling thread: (moves between CPUs, times switched out).
fn sched_counts() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/thread-self/sched").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(':').next())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (field("se.nr_migrations"), field("nr_switches"))
}

/// Inside the container: `--reader THREADS PATH SECS`; prints
/// `count p50_ns p99_ns migrations switches`.
fn reader(args: &[String]) {
    let threads: usize = args[0].parse().unwrap();
    let path = PathBuf::from(&args[1]);
    let secs: f64 = args[2].parse().unwrap();
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || {
                let sendfile = std::env::var("E2E_READ").as_deref() == Ok("sendfile");
                let null = File::create("/dev/null").expect("/dev/null");
                let mut buf = vec![0u8; 256 * 1024];
                let mut lat = Vec::with_capacity(1 << 20);
                let before = sched_counts();
                while Instant::now() < end {
                    let t = Instant::now();
                    let mut f = File::open(&path).expect("open");
                    if !(sendfile && send_to(&f, &null)) {
                        while f.read(&mut buf).expect("read") > 0 {}
                    }
                    drop(f);
                    lat.push(t.elapsed().as_nanos() as u64);
                }
                let after = sched_counts();
                (lat, after.0 - before.0, after.1 - before.1)
            })
        })
        .collect();
    let (mut moves, mut switches) = (0, 0);
    let mut all: Vec<u64> = Vec::new();
    for h in handles {
        let (lat, moved, switched) = h.join().unwrap();
        all.extend(lat);
        moves += moved;
        switches += switched;
    }
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "{} {} {} {moves} {switches}",
        all.len(),
        pct(0.5),
        pct(0.99)
    );
}

/// Send `f` to `out` with sendfile(2) to its end; false when it refused before the first
/// byte (EINVAL), as a direct-I/O file whose page cache must stay empty does.
fn send_to(f: &File, out: &File) -> bool {
    use std::os::fd::AsRawFd;
    let mut sent = 0;
    loop {
        // SAFETY: a plain syscall on two open files; no memory is passed.
        let n = unsafe {
            libc::sendfile(
                out.as_raw_fd(),
                f.as_raw_fd(),
                std::ptr::null_mut(),
                1 << 20,
            )
        };
        match n {
            0 => return true,
            n if n > 0 => sent += n,
            _ if sent == 0
                && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) =>
            {
                return false;
            }
            _ => panic!("sendfile: {}", std::io::Error::last_os_error()),
        }
    }
}

struct Cell {
    files_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_us_per_file: Option<f64>,
    migrations_per_kfile: f64,
    switches_per_file: f64,
}

/// The command that runs `readers` reader threads on `path` for `secs` in a container of
/// `cgroups` and a new pid namespace.
fn reader_command(cgroups: &[PathBuf], path: &Path, readers: usize, secs: f64) -> Command {
    let exe = std::env::current_exe().unwrap();
    let pin = if std::env::var_os("E2E_PIN").is_some() {
        "taskset -c 0 "
    } else {
        ""
    };
    let join: String = cgroups
        .iter()
        .map(|c| format!("echo $$ > {}/cgroup.procs && ", c.display()))
        .collect();
    let script = format!(
        "{join}exec unshare --pid --fork --mount-proc {pin}{} --reader {readers} {} {secs}",
        exe.display(),
        path.display()
    );
    let mut c = Command::new("sh");
    c.arg("-c").arg(script);
    c
}

fn run_cell(
    cgroups: &[PathBuf],
    path: &Path,
    readers: usize,
    secs: f64,
    server_pid: Option<u32>,
) -> Cell {
    let before = server_pid.map(cpu_ticks);
    let out = reader_command(cgroups, path, readers, secs)
        .output()
        .expect("reader");
    assert!(
        out.status.success(),
        "reader failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let v: Vec<f64> = text
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    let cpu = match (server_pid, before) {
        (Some(p), Some(b)) => Some((cpu_ticks(p) - b) as f64 * 10_000.0 / v[0].max(1.0)),
        _ => None,
    };
    Cell {
        files_per_s: v[0] / secs,
        p50_us: v[1] / 1000.0,
        p99_us: v[2] / 1000.0,
        cpu_us_per_file: cpu,
        migrations_per_kfile: v[3] * 1000.0 / v[0].max(1.0),
        switches_per_file: v[4] / v[0].max(1.0),
    }
}

fn orchestrate() {
    let secs: f64 = std::env::var("E2E_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let files: Vec<String> = std::env::var("E2E_FILES")
        .unwrap_or_else(|_| "meminfo,uptime".into())
        .split(',')
        .map(str::to_owned)
        .collect();
    let readers: Vec<usize> = std::env::var("E2E_READERS")
        .unwrap_or_else(|_| "1,2,4".into())
        .split(',')
        .map(|s| s.parse().unwrap())
        .collect();
    let dir = std::env::temp_dir().join(format!("lxcfs-uring-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let mem = own
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|x| x.1.to_owned()))
        .expect("a v1 memory cgroup (run on the hybrid dev host)");
    let cgroup = PathBuf::from("/sys/fs/cgroup/memory")
        .join(mem.trim_start_matches('/'))
        .join(format!("e2e-{}", std::process::id()));
    std::fs::create_dir_all(&cgroup).unwrap();
    std::fs::write(cgroup.join("memory.limit_in_bytes"), "268435456").unwrap();
    let mut cgroups = vec![cgroup.clone()];
    // E2E_CPU_CGROUP=1: the container also gets a cpu cgroup of its own, as runtimes give
    // every container (the scheduler then places a lone reader's wakeups differently).
    let cpu_cgroup = std::env::var_os("E2E_CPU_CGROUP").map(|_| {
        let c = PathBuf::from("/sys/fs/cgroup/cpu").join(format!("e2e-{}", std::process::id()));
        std::fs::create_dir_all(&c).unwrap();
        c
    });
    cgroups.extend(cpu_cgroup.clone());
    let _halt_poll = HaltPoll::from_env("E2E_HALT_POLL_NS");

    // E2E_OURS=<binary> measures another build (an older commit, say) in the same harness.
    let ours =
        std::env::var("E2E_OURS").unwrap_or_else(|_| env!("CARGO_BIN_EXE_lxcfs-uring").into());
    // E2E_PASSTHROUGH=on measures our servers with --passthrough=auto, =both each without
    // and with it, side by side (default: without).
    let modes: &[(&str, bool)] = match std::env::var("E2E_PASSTHROUGH").as_deref() {
        Ok("on") => &[("+pt", true)],
        Ok("both") => &[("", false), ("+pt", true)],
        _ => &[("", false)],
    };
    let mut servers = Vec::new();
    for &(suffix, passthrough) in modes {
        for (transport, pidfile) in [("uring", "u"), ("classic", "c")] {
            let name: &'static str = format!("{transport}{suffix}").leak();
            servers.push(start(
                name,
                &dir,
                Command::new(&ours)
                    .args(["--transport", transport])
                    .args(passthrough.then_some("--passthrough=auto"))
                    .arg("--runtime-dir")
                    .arg(&dir)
                    .arg("-p")
                    .arg(dir.join(format!("{pidfile}{suffix}.pid"))),
            ));
        }
    }
    if Path::new("/usr/bin/lxcfs").exists() {
        servers.push(start(
            "lxcfs",
            &dir,
            Command::new("/usr/bin/lxcfs")
                .arg("-p")
                .arg(dir.join("l.pid")),
        ));
    } else {
        eprintln!("*** /usr/bin/lxcfs missing: no lxcfs column (apt-get install lxcfs) ***");
    }
    if std::env::var_os("E2E_NOISY").is_some() {
        noisy_neighbour(&servers, &files, &cgroups, &cgroup, secs);
        drop(servers);
        let _ = std::fs::remove_dir(&cgroup);
        if let Some(c) = cpu_cgroup {
            let _ = std::fs::remove_dir(c);
        }
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    println!(
        "| file | readers | server | files/s | p50 us | p99 us | x lxcfs | x host | daemon CPU us/file | reader moves /1000 files | reader switches /file |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for file in &files {
        for &r in &readers {
            let host = run_cell(&cgroups, &Path::new("/proc").join(file), r, secs, None);
            let cells: Vec<(&str, Cell)> = servers
                .iter()
                .map(|s| {
                    (
                        s.name,
                        run_cell(
                            &cgroups,
                            &s.mnt.join("proc").join(file),
                            r,
                            secs,
                            Some(s.pid()),
                        ),
                    )
                })
                .collect();
            let lx = cells
                .iter()
                .find(|c| c.0 == "lxcfs")
                .map(|c| c.1.files_per_s);
            for (name, c) in cells
                .iter()
                .map(|(n, c)| (*n, c))
                .chain([("host /proc", &host)])
            {
                let vs_lx = lx.map_or("-".into(), |l| format!("{:.1}", c.files_per_s / l));
                let cpu = c.cpu_us_per_file.map_or("-".into(), |v| format!("{v:.1}"));
                println!(
                    "| {file} | {r} | {name} | {:.0} | {:.1} | {:.1} | {vs_lx} | {:.2} | {cpu} | {:.0} | {:.2} |",
                    c.files_per_s,
                    c.p50_us,
                    c.p99_us,
                    c.files_per_s / host.files_per_s,
                    c.migrations_per_kfile,
                    c.switches_per_file
                );
            }
        }
    }
    drop(servers);
    let _ = std::fs::remove_dir(&cgroup);
    if let Some(c) = cpu_cgroup {
        let _ = std::fs::remove_dir(c);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// E2E_NOISY: per server and file, one reader alone in its container (`quiet`), then the
/// same while a neighbour container, in a memory cgroup of its own beside `memory` and a
/// cpu cgroup of its own, reads the file with 8 threads in a tight loop from just before
/// until just after.
fn noisy_neighbour(
    servers: &[support::Server],
    files: &[String],
    quiet: &[PathBuf],
    memory: &Path,
    secs: f64,
) {
    const NOISY_THREADS: usize = 8;
    let neighbour = memory.with_file_name(format!(
        "{}-neighbour",
        memory.file_name().unwrap().to_string_lossy()
    ));
    std::fs::create_dir_all(&neighbour).unwrap();
    std::fs::write(neighbour.join("memory.limit_in_bytes"), "268435456").unwrap();
    // Each container in a cpu cgroup of its own too, as runtimes make them: the scheduler
    // then shares the CPUs between the containers, not between their 9 threads.
    let cpu_cgroup = |name: &str| {
        let c =
            PathBuf::from("/sys/fs/cgroup/cpu").join(format!("e2e-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&c).unwrap();
        c
    };
    let mut quiet = quiet.to_vec();
    let quiet_cpu =
        (!quiet.iter().any(|c| c.starts_with("/sys/fs/cgroup/cpu/"))).then(|| cpu_cgroup("quiet"));
    quiet.extend(quiet_cpu.clone());
    let loud_cgroups = [neighbour.clone(), cpu_cgroup("neighbour")];
    println!(
        "| file | server | alone p50 us | alone p99 us | with neighbour p50 us | with neighbour p99 us | p99 x alone | neighbour files/s |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for file in files {
        for s in servers {
            let path = s.mnt.join("proc").join(file);
            let alone = run_cell(&quiet, &path, 1, secs, None);
            let mut cmd = reader_command(&loud_cgroups, &path, NOISY_THREADS, secs + 1.0);
            let noisy = cmd
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("the neighbour");
            std::thread::sleep(Duration::from_millis(300));
            let with = run_cell(&quiet, &path, 1, secs, None);
            let out = noisy.wait_with_output().expect("the neighbour");
            let loud: f64 = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0.0);
            println!(
                "| {file} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} |",
                s.name,
                alone.p50_us,
                alone.p99_us,
                with.p50_us,
                with.p99_us,
                with.p99_us / alone.p99_us,
                loud / (secs + 1.0)
            );
        }
    }
    for c in loud_cgroups.iter().chain(&quiet_cpu) {
        let _ = std::fs::remove_dir(c);
    }
}
