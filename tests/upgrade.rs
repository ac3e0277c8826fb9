//! Restart-free upgrades: SIGUSR1 replaces the daemon's program image with the binary now
//! on disk while readers hammer the mount; not one read may fail or stall.

#[macro_use]
mod common;

use std::fs::File;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;

/// What the readers hammer: the busiest views, and a file of the cgroup tree (the
/// daemons run with --enable-cgroup).
fn hammered() -> Vec<String> {
    let (_, own) = own_cgroup("memory").expect("a memory cgroup");
    let mut files: Vec<String> = ["proc/meminfo", "proc/stat", "proc/uptime", "proc/cpuinfo"]
        .map(String::from)
        .to_vec();
    files.push(format!("cgroup/memory{own}/memory.usage_in_bytes").replace("//", "/"));
    files
}

/// Readers on the `hammered` files until `stop`: (reads, failures, slowest read).
fn hammer(
    d: &Daemon,
    stop: Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<(u64, Vec<String>, Duration)>> {
    hammered()
        .iter()
        .map(|f| {
            let path = d.path(f);
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut n, mut failures, mut slowest) = (0u64, Vec::new(), Duration::ZERO);
                let mut buf = Vec::with_capacity(1 << 16);
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    buf.clear();
                    match File::open(&path).and_then(|mut f| f.read_to_end(&mut buf)) {
                        Ok(_) if buf.is_empty() => {
                            failures.push(format!("{}: empty", path.display()))
                        }
                        Ok(_) => {}
                        Err(e) => failures.push(format!("{}: {e}", path.display())),
                    }
                    slowest = slowest.max(t.elapsed());
                    n += 1;
                }
                (n, failures, slowest)
            })
        })
        .collect()
}

/// The readers' totals: reads, failures, slowest read.
fn gather(
    readers: Vec<std::thread::JoinHandle<(u64, Vec<String>, Duration)>>,
) -> (u64, Vec<String>, Duration) {
    let (mut reads, mut failures, mut slowest) = (0, Vec::new(), Duration::ZERO);
    for r in readers {
        let (n, f, s) = r.join().unwrap();
        reads += n;
        failures.extend(f);
        slowest = slowest.max(s);
    }
    (reads, failures, slowest)
}

/// The readers ran, no read failed, none took a second.
fn assert_no_read_failed(reads: u64, failures: &[String], slowest: Duration, log: &str) {
    assert!(
        failures.is_empty(),
        "{} of {reads} reads failed: {:?}\n{log}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        slowest < Duration::from_secs(1),
        "slowest read {slowest:?}\n{log}"
    );
    assert!(reads > 100, "the readers ran: {reads}");
}

#[test]
fn sigusr1_upgrades_in_place_without_a_failed_read_classic() {
    if root_or_skip("sigusr1_upgrades_in_place_without_a_failed_read_classic") {
        sigusr1_upgrades("classic", OFF);
    }
}

#[test]
fn sigusr1_upgrades_in_place_without_a_failed_read_uring() {
    if root_or_skip("sigusr1_upgrades_in_place_without_a_failed_read_uring") {
        sigusr1_upgrades("uring", OFF);
    }
}

/// A copy of the binary in a directory of its own, removed when dropped (whatever the test
/// did): what a daemon runs from when the test replaces its binary, as an operator's
/// upgrade does.
struct BinaryCopy {
    dir: std::path::PathBuf,
    bin: std::path::PathBuf,
}

impl BinaryCopy {
    /// Put the freshly built binary in place (again).
    fn install(&self) {
        std::fs::copy(env!("CARGO_BIN_EXE_lxcfs-uring"), &self.bin).unwrap();
    }
}

impl Drop for BinaryCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A daemon on `transport` (with --enable-cgroup) running from a copy of the binary.
fn daemon_from_a_copy(name: &str, transport: &str, extra: &[&str]) -> (Daemon, BinaryCopy) {
    let dir = std::env::temp_dir().join(unique(&format!("{name}-bin-{transport}")));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = BinaryCopy {
        bin: dir.join("lxcfs-uring"),
        dir,
    };
    copy.install();
    let d = Daemon::start_binary(
        &format!("{name}-{transport}"),
        copy.bin.to_str().unwrap(),
        &[&["--transport", transport, "--enable-cgroup"], extra].concat(),
    );
    (d, copy)
}

fn sigusr1_upgrades(transport: &str, extra: &[&str]) {
    let (mut d, copy) = daemon_from_a_copy(&format!("upgrade{}", extra.concat()), transport, extra);
    let pid = d.pid();
    let stop = Arc::new(AtomicBool::new(false));
    let readers = hammer(&d, stop.clone());
    let held = held_open(&d, extra);
    let upgrades = 8;
    for _ in 0..upgrades {
        std::thread::sleep(Duration::from_millis(400));
        // rm the old file, copy the new one, signal: the seed's recipe.
        std::fs::remove_file(&copy.bin).unwrap();
        copy.install();
        d.signal(nix::sys::signal::Signal::SIGUSR1);
    }
    std::thread::sleep(Duration::from_millis(400));
    assert_passthrough_used(&d, extra);
    stop.store(true, Ordering::Relaxed);
    let (reads, failures, slowest) = gather(readers);
    drop(held);
    assert!(is_mounted(&d.mnt), "the mount went away");
    assert_eq!(d.pid(), pid);
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(
        !exe.to_string_lossy().contains("(deleted)"),
        "runs the new binary: {}",
        exe.display()
    );
    d.signal(nix::sys::signal::Signal::SIGTERM);
    let (_, log) = d.wait_exit(Duration::from_secs(10)).expect("exits");
    assert_no_read_failed(reads, &failures, slowest, &log);
    assert_eq!(
        log.matches("resumed on").count(),
        upgrades,
        "every SIGUSR1 upgraded:\n{log}"
    );
}

/// Handovers that fail once the daemon is frozen: SIGUSR1 with the binary gone, and a
/// successor that takes the connection's fds but disappears before confirming. The freeze
/// is called off, the workers holding requests back are woken and answer them, and a later
/// upgrade still works.
fn handovers_that_fail_thaw_and_serve_on_without_a_failed_read(transport: &str) {
    let (mut d, copy) = daemon_from_a_copy("failed-upgrade", transport, &[]);
    let pid = d.pid();
    let stop = Arc::new(AtomicBool::new(false));
    let readers = hammer(&d, stop.clone());
    std::fs::remove_file(&copy.bin).unwrap();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(200));
        d.signal(nix::sys::signal::Signal::SIGUSR1);
        std::thread::sleep(Duration::from_millis(200));
        // A would-be successor that asks, gets the state and fds, and vanishes: the daemon
        // stays frozen, holding what readers ask meanwhile, until it sees the socket close.
        let mut conn =
            std::os::unix::net::UnixStream::connect(d.runtime.join("lxcfs-uring.sock")).unwrap();
        std::io::Write::write_all(&mut conn, b"takeover 3\n").unwrap();
        let mut state = [0u8; 4096];
        assert!(conn.read(&mut state).unwrap() > 0, "the state was sent");
        std::thread::sleep(Duration::from_millis(300));
        drop(conn);
    }
    std::thread::sleep(Duration::from_millis(300));
    copy.install();
    d.signal(nix::sys::signal::Signal::SIGUSR1);
    std::thread::sleep(Duration::from_millis(500));
    let (reads, failures, slowest, log) = serving_on_then_stopped(&mut d, pid, &stop, readers);
    assert_no_read_failed(reads, &failures, slowest, &log);
    assert!(
        log.contains("SIGUSR1: the upgrade failed")
            && log.contains("--takeover: the new instance did not confirm; still serving")
            && !log.contains("handed the mount over")
            && log.matches("resumed on").count() == 1,
        "the handovers failed, then an upgrade succeeded:\n{log}"
    );
}

#[test]
fn takeover_by_a_new_process_without_a_failed_read_classic() {
    if root_or_skip("takeover_by_a_new_process_without_a_failed_read_classic") {
        takeovers("classic", OFF);
    }
}

#[test]
fn takeover_by_a_new_process_without_a_failed_read_uring() {
    if root_or_skip("takeover_by_a_new_process_without_a_failed_read_uring") {
        takeovers("uring", OFF);
    }
}

fn takeovers(transport: &str, extra: &[&str]) {
    let mut d = Daemon::start(
        &format!("takeover{}-{transport}", extra.concat()),
        &[&["--transport", transport, "--enable-cgroup"], extra].concat(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let readers = hammer(&d, stop.clone());
    let held = held_open(&d, extra);
    let mut current: Option<std::process::Child> = None;
    for round in 0..4 {
        std::thread::sleep(Duration::from_millis(300));
        let next = std::process::Command::new(env!("CARGO_BIN_EXE_lxcfs-uring"))
            .args(["--takeover", "--transport", transport, "--enable-cgroup"])
            .args(extra)
            .arg("--runtime-dir")
            .arg(&d.runtime)
            .arg(&d.mnt)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The predecessor hands over and exits 0, leaving the mount in place.
        match current.take() {
            None => {
                let (status, log) = d
                    .wait_exit(Duration::from_secs(10))
                    .expect("the first instance hands over and exits");
                assert!(
                    status.success() && log.contains("handed the mount over"),
                    "{status}: {log}"
                );
            }
            Some(mut prev) => {
                let deadline = Instant::now() + Duration::from_secs(10);
                let status = loop {
                    if let Some(st) = prev.try_wait().unwrap() {
                        break st;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "round {round}: the predecessor did not exit"
                    );
                    std::thread::sleep(Duration::from_millis(10));
                };
                assert!(status.success(), "round {round}: {status}");
            }
        }
        current = Some(next);
        assert!(is_mounted(&d.mnt), "round {round}: the mount went away");
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_passthrough_used(&d, extra);
    stop.store(true, Ordering::Relaxed);
    let (reads, failures, slowest) = gather(readers);
    drop(held);
    let mut last = current.unwrap();
    let pid = d.pidfile_pid().unwrap();
    assert_eq!(
        pid as u32,
        last.id(),
        "the pidfile names the process that serves"
    );
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    );
    let status = last.wait().unwrap();
    let mut log = String::new();
    let _ = last.stderr.take().unwrap().read_to_string(&mut log);
    assert!(status.success(), "{log}");
    assert_no_read_failed(reads, &failures, slowest, "");
}

#[test]
fn takeover_with_nothing_running_fails_and_disturbs_nothing() {
    let dir = std::env::temp_dir().join(unique("takeover-none"));
    std::fs::create_dir_all(&dir).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lxcfs-uring"))
        .args(["--takeover", "--runtime-dir"])
        .arg(&dir)
        .arg(&dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    if !nix::unistd::geteuid().is_root() {
        return; // refused earlier, for not being root
    }
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("nothing to take over"), "{err}");
    assert!(!is_mounted(&dir));
}

#[test]
fn sigkill_of_the_server_is_survived_without_a_failed_read_classic() {
    if root_or_skip("sigkill_of_the_server_is_survived_without_a_failed_read_classic") {
        sigkills("classic", OFF);
    }
}

#[test]
fn sigkill_of_the_server_is_survived_uring_losing_only_what_the_kernel_cancels() {
    if root_or_skip("sigkill_of_the_server_is_survived_uring_losing_only_what_the_kernel_cancels") {
        sigkills("uring", OFF);
    }
}

fn sigkills(transport: &str, extra: &[&str]) {
    let d = Daemon::start(
        &format!("crash{}-{transport}", extra.concat()),
        &[&["--transport", transport, "--enable-cgroup"], extra].concat(),
    );
    d.wait_for_keeper();
    let stop = Arc::new(AtomicBool::new(false));
    let readers = hammer(&d, stop.clone());
    let held = held_open(&d, extra);
    let kills = 5;
    for round in 0..kills {
        std::thread::sleep(Duration::from_millis(400));
        let victim = d.pidfile_pid().expect("a pidfile");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(victim),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        // A successor serves within a second, and the pidfile names it.
        wait_until(
            &format!("round {round}: a successor"),
            Duration::from_secs(1),
            || d.pidfile_pid().is_some_and(|p| p != victim && alive(p)),
        );
        assert!(is_mounted(&d.mnt), "round {round}: the mount went away");
    }
    std::thread::sleep(Duration::from_millis(400));
    assert_passthrough_used(&d, extra);
    stop.store(true, Ordering::Relaxed);
    let (reads, failures, slowest) = gather(readers);
    drop(held);
    // Stop the last successor cleanly: it unmounts, and the keeper leaves with it.
    stop_server(&d);
    assert_no_read_failed_but_cancelled(transport, kills, reads, &failures, slowest);
}

/// `assert_no_read_failed`, but for the one loss the kernel imposes on io_uring when a
/// server dies: a request it routes to an entry the dead server had armed, in the instant
/// before that entry is cancelled, is ended with ECANCELED (fuse_uring_send_in_task on a
/// terminating task). At most one per armed entry (one per CPU) per death; everything else
/// is answered by the successor.
fn assert_no_read_failed_but_cancelled(
    transport: &str,
    deaths: usize,
    reads: u64,
    failures: &[String],
    slowest: Duration,
) {
    if transport != "uring" {
        return assert_no_read_failed(reads, failures, slowest, "");
    }
    let armed = deaths * std::thread::available_parallelism().map_or(1, |n| n.get());
    let (cancelled, other): (Vec<String>, Vec<String>) = failures
        .iter()
        .cloned()
        .partition(|f| f.contains("Operation canceled"));
    eprintln!("{} ECANCELED reads in {deaths} deaths", cancelled.len());
    assert!(
        cancelled.len() <= armed,
        "{} ECANCELED reads in {deaths} deaths",
        cancelled.len()
    );
    assert_no_read_failed(reads, &other, slowest, "");
}

/// With passthrough on, the hammering threads re-open their files (read from backing
/// files) while `held_open` keeps one open: every successor must name the backing ids
/// the kernel holds, or opens fail.
const PASSTHROUGH: &[&str] = &["--passthrough", "auto"];
/// The same tests without it.
const OFF: &[&str] = &["--passthrough", "off"];

fn upgrades_with_passthrough(transport: &str) {
    sigusr1_upgrades(transport, PASSTHROUGH);
}

fn takeovers_with_passthrough(transport: &str) {
    takeovers(transport, PASSTHROUGH);
}

fn sigkills_with_passthrough(transport: &str) {
    sigkills(transport, PASSTHROUGH);
}

/// With passthrough on: meminfo and stat held open (as procps holds them) for the whole
/// test, so the kernel keeps their backing files across every handover.
fn held_open(d: &Daemon, extra: &[&str]) -> Vec<File> {
    if extra != PASSTHROUGH {
        return Vec::new();
    }
    ["proc/meminfo", "proc/stat"]
        .iter()
        .map(|f| File::open(d.path(f)).unwrap())
        .collect()
}

/// With passthrough on, the serving process read files from backing files.
fn assert_passthrough_used(d: &Daemon, extra: &[&str]) {
    if extra == PASSTHROUGH {
        let used = d.counter("passthrough_opens_fresh") + d.counter("passthrough_opens_shared");
        assert!(used > 0, "no open read from a backing file");
    }
}

both_transports!(
    upgrades_with_passthrough,
    takeovers_with_passthrough,
    sigkills_with_passthrough,
    a_freeze_called_off_by_a_stuck_reply_serves_on_without_a_failed_read,
    a_freeze_called_off_by_a_failed_description_serves_on_without_a_failed_read,
    handovers_that_fail_thaw_and_serve_on_without_a_failed_read,
    a_failed_worker_ends_the_process_and_a_successor_serves_its_queue,
    successors_killed_while_they_start_leave_no_hung_mount
);

/// A worker that stops while its process goes on (here through the fault the tests may
/// inject) ends the process, and the keeper's successor serves within a second: no request
/// hangs, the one that made the worker fail included, and no read fails.
fn a_failed_worker_ends_the_process_and_a_successor_serves_its_queue(transport: &str) {
    let trigger = ".lxcfs-uring-worker-fault";
    let mut d = Daemon::start_env(
        &format!("worker-fault-{transport}"),
        &["--transport", transport, "--enable-cgroup"],
        &[(
            "LXCFS_URING_TEST_WORKER_FAULT",
            std::path::Path::new(trigger),
        )],
    );
    d.wait_for_keeper();
    let stop = Arc::new(AtomicBool::new(false));
    let readers = hammer(&d, stop.clone());
    std::thread::sleep(Duration::from_millis(300));
    let failed = d.pid();
    let lookup = std::thread::spawn({
        let path = d.path(trigger);
        move || {
            let t = Instant::now();
            (std::fs::symlink_metadata(path).map(drop), t.elapsed())
        }
    });
    wait_until(
        "the process of the failed worker exits",
        Duration::from_secs(1),
        || !alive(failed),
    );
    wait_until("a successor", Duration::from_secs(1), || {
        d.pidfile_pid().is_some_and(|p| p != failed && alive(p))
    });
    let (looked, took) = lookup.join().unwrap();
    assert_eq!(
        looked.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::NotFound),
        "the lookup that failed its worker is answered"
    );
    assert!(took < Duration::from_secs(1), "the lookup took {took:?}");
    std::thread::sleep(Duration::from_millis(400));
    stop.store(true, Ordering::Relaxed);
    let (reads, failures, slowest) = gather(readers);
    assert!(d.serves(), "the successor serves");
    stop_server(&d);
    // Its keeper and successor gone, the failed process's log is complete.
    let (status, log) = d.wait_exit(Duration::from_secs(10)).expect("exited");
    assert_eq!(status.code(), Some(70), "{log}");
    assert!(
        log.contains("stopped outside shutdown (a fault injected through")
            && log.contains("resumed on"),
        "one line says which worker stopped and why, and a successor resumed:\n{log}"
    );
    // Before exiting, the process filled its armed ring entries as a planned handover
    // does: not even the io_uring transport loses a read.
    assert!(
        transport != "uring" || log.contains("every armed ring entry holds a request"),
        "the ring entries were filled before the exit:\n{log}"
    );
    assert_no_read_failed(reads, &failures, slowest, &log);
}

/// A reply still under way a second after an upgrade froze the workers (here one the
/// tests may make slow) calls the upgrade off: the workers are thawed, the requests held
/// meanwhile answered, the slow one too, and a later upgrade succeeds. The slow reply holds
/// its CPU's queue (io_uring) for its 1.5 s, so reads may take that long; none fails.
fn a_freeze_called_off_by_a_stuck_reply_serves_on_without_a_failed_read(transport: &str) {
    let trigger = ".lxcfs-uring-slow-reply";
    let mut d = Daemon::start_env(
        &format!("stuck-reply-{transport}"),
        &["--transport", transport, "--enable-cgroup"],
        &[("LXCFS_URING_TEST_SLOW_REPLY", std::path::Path::new(trigger))],
    );
    let pid = d.pid();
    let stop = Arc::new(AtomicBool::new(false));
    let readers = hammer(&d, stop.clone());
    std::thread::sleep(Duration::from_millis(300));
    let lookup = std::thread::spawn({
        let path = d.path(trigger);
        move || {
            let t = Instant::now();
            (std::fs::symlink_metadata(path).map(drop), t.elapsed())
        }
    });
    // The slow reply under way, an upgrade freezes the workers and waits for it in vain.
    std::thread::sleep(Duration::from_millis(200));
    d.signal(nix::sys::signal::Signal::SIGUSR1);
    let (looked, took) = lookup.join().unwrap();
    assert_eq!(
        looked.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::NotFound),
        "the slow lookup is answered"
    );
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(4),
        "the lookup took {took:?}"
    );
    std::thread::sleep(Duration::from_millis(300));
    // With no reply stuck, the next upgrade goes through.
    d.signal(nix::sys::signal::Signal::SIGUSR1);
    std::thread::sleep(Duration::from_millis(500));
    let (reads, failures, slowest, log) = serving_on_then_stopped(&mut d, pid, &stop, readers);
    assert!(
        failures.is_empty(),
        "{} of {reads} reads failed: {:?}\n{log}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(reads > 100, "the readers ran: {reads}");
    assert!(
        slowest < Duration::from_secs(3),
        "slowest read {slowest:?}\n{log}"
    );
    assert!(
        log.contains("SIGUSR1: the upgrade failed (a worker is still answering a request)")
            && log.matches("resumed on").count() == 1,
        "the first upgrade was called off, the second went through:\n{log}"
    );
}

/// A handover whose description of the connection fails once the workers are frozen (a
/// fault the tests may inject) is called off at once: the workers are thawed, the requests
/// held meanwhile answered, and the daemon serves on as it was.
fn a_freeze_called_off_by_a_failed_description_serves_on_without_a_failed_read(transport: &str) {
    let mut d = Daemon::start_env(
        &format!("failed-describe-{transport}"),
        &["--transport", transport, "--enable-cgroup"],
        &[("LXCFS_URING_TEST_DESCRIBE_FAULT", std::path::Path::new("1"))],
    );
    let pid = d.pid();
    let stop = Arc::new(AtomicBool::new(false));
    let readers = hammer(&d, stop.clone());
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(200));
        d.signal(nix::sys::signal::Signal::SIGUSR1);
    }
    std::thread::sleep(Duration::from_millis(300));
    let (reads, failures, slowest, log) = serving_on_then_stopped(&mut d, pid, &stop, readers);
    assert_no_read_failed(reads, &failures, slowest, &log);
    assert!(
        log.contains(
            "SIGUSR1: the upgrade failed (a fault injected through LXCFS_URING_TEST_DESCRIBE_FAULT)"
        ) && !log.contains("resumed on"),
        "every upgrade was called off:\n{log}"
    );
}

/// Stop the readers, check that the daemon `pid` still serves, then stop it (SIGTERM): the
/// readers' totals and the daemon's log.
fn serving_on_then_stopped(
    d: &mut Daemon,
    pid: i32,
    stop: &AtomicBool,
    readers: Vec<std::thread::JoinHandle<(u64, Vec<String>, Duration)>>,
) -> (u64, Vec<String>, Duration, String) {
    stop.store(true, Ordering::Relaxed);
    let (reads, failures, slowest) = gather(readers);
    assert!(alive(pid) && d.serves(), "serving on");
    d.signal(nix::sys::signal::Signal::SIGTERM);
    let (_, log) = d.wait_exit(Duration::from_secs(10)).expect("exits");
    (reads, failures, slowest, log)
}

/// The pid of a successor the keeper started for `d` (its command line names the mount and
/// carries the handed-over state), other than those in `gone`.
fn successor(d: &Daemon, gone: &[i32]) -> Option<i32> {
    processes_naming(&d.mnt.to_string_lossy())
        .into_iter()
        .find(|(pid, args)| args.iter().any(|a| a == "--resume") && !gone.contains(pid))
        .map(|(pid, _)| pid)
}

/// Successors killed at staggered points of their own start, from the moment the keeper
/// starts them to just after their recovery (when they send their own requests through
/// the queues), under hammering readers: each dies for good, the keeper starts the next,
/// and the one left alone serves. No reader hangs, and none fails but for what the kernel
/// cancels on io_uring.
fn successors_killed_while_they_start_leave_no_hung_mount(transport: &str) {
    let mut d = Daemon::start(
        &format!("rekill-{transport}"),
        &["--transport", transport, "--enable-cgroup"],
    );
    // The log, line by line, as the keeper and its successors write it.
    let (lines, log) = std::sync::mpsc::channel::<String>();
    let stderr = d.child.as_mut().unwrap().stderr.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines.send(line);
        }
    });
    d.wait_for_keeper();
    let stop = Arc::new(AtomicBool::new(false));
    let readers = hammer(&d, stop.clone());
    std::thread::sleep(Duration::from_millis(200));
    let mut gone = vec![d.pid()];
    d.signal(nix::sys::signal::Signal::SIGKILL);
    // Killed once started, then once it has recovered (and sends its lookups through the
    // queues), a few hundred microseconds later each round.
    let points: Vec<(bool, u64)> = [0, 5, 20]
        .map(|ms| (false, ms * 1000))
        .into_iter()
        .chain((0..8).map(|i| (true, i * 150)))
        .collect();
    for (round, &(recovered, micros)) in points.iter().enumerate() {
        let next = std::cell::Cell::new(None);
        wait_until(
            &format!("round {round}: the keeper starts a successor"),
            Duration::from_secs(2),
            || {
                next.set(successor(&d, &gone));
                next.get().is_some()
            },
        );
        let next = next.get().unwrap();
        if recovered {
            let resumed = format!("pid {next})");
            let deadline = Instant::now() + Duration::from_secs(2);
            while !log
                .recv_timeout(Duration::from_millis(100))
                .is_ok_and(|l| l.contains("resumed on") && l.ends_with(&resumed))
            {
                assert!(Instant::now() < deadline, "round {round}: no recovery");
            }
        }
        std::thread::sleep(Duration::from_micros(micros));
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(next),
            nix::sys::signal::Signal::SIGKILL,
        );
        gone.push(next);
        wait_until(
            &format!("round {round}: the successor killed {micros} us after its start dies"),
            Duration::from_secs(2),
            || !alive(next),
        );
    }
    wait_until("the last successor serves", Duration::from_secs(5), || {
        d.pidfile_pid()
            .is_some_and(|p| !gone.contains(&p) && alive(p))
            && d.serves()
    });
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    wait_until("every reader returns", Duration::from_secs(5), || {
        readers.iter().all(|r| r.is_finished())
    });
    let (reads, failures, _) = gather(readers);
    let (cancelled, other): (Vec<String>, Vec<String>) = failures
        .into_iter()
        .partition(|f| transport == "uring" && f.contains("Operation canceled"));
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(
        cancelled.len() <= gone.len() * cpus,
        "{} ECANCELED reads",
        cancelled.len()
    );
    assert!(other.is_empty() && reads > 100, "{reads} reads: {other:?}");
    stop_server(&d);
}

/// An upgrade changes nothing a container sees: its load averages (-l) continue instead of
/// restarting at zero, and its /proc/stat counters go on from where they were.
#[test]
fn sigusr1_keeps_every_containers_load_and_counters() {
    if !root_or_skip("sigusr1_keeps_every_containers_load_and_counters") {
        return;
    }
    let mut d = Daemon::start("upgrade-load", &["-l"]);
    let cpu = Cgroup::new("cpu", "load");
    let (loadavg, stat) = (d.path("proc/loadavg"), d.path("proc/stat"));
    // Two busy threads for two samples (5 s apart), reading loadavg first so it is tracked,
    // then again after the upgrade the test process sends meanwhile.
    let script = format!(
        "cat {l} >/dev/null; (timeout 13 sh -c 'while :; do :; done' &); \
         (timeout 13 sh -c 'while :; do :; done' &); sleep 11; cat {l} {s}; sleep 2; cat {l} {s}",
        l = loadavg.display(),
        s = stat.display()
    );
    let upgrade = {
        let pid = d.pid();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(12_000));
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGUSR1,
            )
            .unwrap();
        })
    };
    let out = in_container(&[&cpu], &script);
    upgrade.join().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let loads: Vec<f64> = text
        .lines()
        .filter(|l| !l.starts_with("cpu") && l.split(' ').count() == 5)
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(loads[0] > 0.2, "the load rose before the upgrade: {text}");
    assert!(
        loads[1] >= loads[0] * 0.8,
        "the upgraded image continued the load instead of restarting at zero: {text}"
    );
    // Every per-CPU counter shown after the upgrade is at least what was shown before.
    let cpu_lines: Vec<Vec<u64>> = text
        .lines()
        .filter(|l| l.starts_with("cpu"))
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .map(|v| v.parse().unwrap())
                .collect()
        })
        .collect();
    let (before, after) = cpu_lines.split_at(cpu_lines.len() / 2);
    for (b, a) in before.iter().zip(after) {
        assert!(b.iter().zip(a).all(|(x, y)| y >= x), "{b:?} then {a:?}");
    }
    d.signal(nix::sys::signal::Signal::SIGTERM);
    let (_, log) = d.wait_exit(Duration::from_secs(10)).expect("exits");
    assert!(
        log.contains(
            "continuing the /proc/stat counters of 1 containers and the loads of 1 cgroups"
        ),
        "{log}"
    );
}

/// SIGTERM the process serving `d`'s mount (the pidfile's): it unmounts, its keeper leaves
/// with it, and it is gone within 10 s.
fn stop_server(d: &Daemon) {
    let last = d.pidfile_pid().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(last),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    wait_until("the serving process stops", Duration::from_secs(10), || {
        !alive(last)
    });
}
