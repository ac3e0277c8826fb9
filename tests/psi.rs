//! PSI triggers through our /proc/pressure files (--enable-psi-poll), written and polled
//! by python3 in real containers (a pid namespace whose cgroup is a unified cgroup of its
//! own, which carries PSI on this hybrid host), as oomd-style programs do with the
//! kernel's files.

#[macro_use]
mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

both_transports!(
    a_crossed_trigger_wakes_its_poller_and_an_idle_one_sleeps,
    errors_limits_and_close_are_the_kernels,
    a_removed_cgroup_wakes_its_poller_with_an_error,
    without_the_flag_poll_is_answered_once_and_writes_fail,
    sigusr1_and_takeover_keep_a_trigger_firing,
    after_a_crash_the_successor_rearms_and_wakes_the_poller
);

/// Arms the trigger argv[2] on argv[1], signals argv[4] (a file) once armed and quiet,
/// polls for POLLPRI up to argv[3] seconds and prints the events (0: none) and the
/// seconds waited. Quiet: the kernel counts stalls aggregated after the trigger was made
/// but suffered before (python's own start on a loaded host): such an event is taken
/// first (at the kernel's first update of the trigger, 2 s after it was made, later on a
/// loaded host), until a 4 s poll passes without one.
const POLLER: &str = r#"
import os, select, sys, time
path, spec, timeout, marker = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
os.write(fd, spec.encode() + b"\0")
po = select.poll()
po.register(fd, select.POLLPRI)
for _ in range(5):
    if not po.poll(4000):
        break
open(marker, "w").close()
t0 = time.monotonic()
ev = po.poll(timeout * 1000)
print(ev[0][1] if ev else 0, round(time.monotonic() - t0, 2), flush=True)
"#;

/// Four busy loops on one CPU for `secs` seconds: the container's tasks wait for it, so its
/// cpu pressure grows.
fn busy(secs: u32) -> String {
    format!("for i in 1 2 3 4; do timeout {secs} taskset -c 0 sh -c 'while :; do :; done' & done")
}

fn psi_or_skip(test: &str) -> bool {
    let psi = Path::new("/proc/pressure/cpu").exists() && own_unified().is_some();
    host_has_or_skip(
        test,
        psi,
        "PSI (/proc/pressure) and a unified cgroup hierarchy",
    )
}

fn poller(d: &Daemon) -> PathBuf {
    let p = d.dir.join("poller.py");
    std::fs::write(&p, POLLER).unwrap();
    p
}

/// (events, seconds) the poller printed.
fn woke(out: &std::process::Output) -> (u32, f64) {
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or_default();
    let mut f = last.split(' ');
    let ev = f.next().and_then(|e| e.parse().ok());
    let secs = f.next().and_then(|s| s.parse().ok());
    match (ev, secs) {
        (Some(ev), Some(secs)) => (ev, secs),
        _ => panic!("poller output: {text}"),
    }
}

/// The daemon's read-write fds on kernel pressure files: its trigger fds.
fn trigger_fds(pid: i32) -> usize {
    let dir = format!("/proc/{pid}/fd");
    std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| {
            let is_pressure = std::fs::read_link(e.path())
                .is_ok_and(|l| l.to_string_lossy().contains("pressure"));
            let info = std::fs::read_to_string(format!(
                "/proc/{pid}/fdinfo/{}",
                e.file_name().to_string_lossy()
            ))
            .unwrap_or_default();
            let rw = info
                .lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
                .is_some_and(|f| f & 3 == 2);
            is_pressure && rw
        })
        .count()
}

fn a_crossed_trigger_wakes_its_poller_and_an_idle_one_sleeps(transport: &str) {
    let test = "a_crossed_trigger_wakes_its_poller_and_an_idle_one_sleeps";
    if !psi_or_skip(test) {
        return;
    }
    let d = Daemon::start(
        &format!("psi-wake-{transport}"),
        &["--transport", transport, "--enable-psi-poll"],
    );
    let py = poller(&d);
    let file = d.path("proc/pressure/cpu");
    let marker = d.dir.join("armed");
    let cg = Cgroup::unified(&format!("psi-wake-{transport}"));
    // 100 ms of stall in a 2 s window (the shortest window an unprivileged trigger may
    // have): four loops on one CPU stall the container at once.
    let script = format!(
        "python3 {} {} 'some 100000 2000000' 12 {} & while [ ! -e {m} ]; do sleep 0.05; done; {}; wait",
        py.display(),
        file.display(),
        marker.display(),
        busy(10),
        m = marker.display()
    );
    let (ev, secs) = woke(&in_container(&[&cg], &script));
    assert_eq!(ev, libc::POLLPRI as u32, "woken by the trigger");
    // The kernel checks an unprivileged trigger at its 2 s averaging updates, which a
    // loaded host delays: within the window and two updates.
    assert!(
        secs < 6.0,
        "within the 2 s window and its updates: {secs} s"
    );
    // Idle: nothing stalls, the poller sleeps its whole timeout.
    let idle = Cgroup::unified(&format!("psi-idle-{transport}"));
    std::fs::remove_file(&marker).unwrap();
    let script = format!(
        "python3 {} {} 'some 100000 2000000' 3 {}",
        py.display(),
        file.display(),
        marker.display()
    );
    let (ev, secs) = woke(&in_container(&[&idle], &script));
    assert_eq!(ev, 0, "an idle container's trigger does not fire");
    assert!(secs >= 2.9, "slept its timeout: {secs} s");
}

/// The kernel's answers: EINVAL for what is no trigger or one it refuses, EBUSY for a
/// second trigger on one open file, EBADF on a read-only one; ours: ENOSPC past the
/// per-cgroup limit. Reads still show the pressure; closing gives the daemon's fds back.
fn errors_limits_and_close_are_the_kernels(transport: &str) {
    let test = "errors_limits_and_close_are_the_kernels";
    if !psi_or_skip(test) {
        return;
    }
    let d = Daemon::start(
        &format!("psi-errors-{transport}"),
        &["--transport", transport, "--enable-psi-poll"],
    );
    let file = d.path("proc/pressure/memory");
    let (full, counted) = (d.dir.join("full"), d.dir.join("counted"));
    let py = d.dir.join("errors.py");
    std::fs::write(
        &py,
        r#"
import os, sys, errno, time
p, full, counted = sys.argv[1], sys.argv[2], sys.argv[3]
def w(fd, b):
    try:
        os.write(fd, b)
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]
fd = os.open(p, os.O_RDWR)
print(w(fd, b"bogus 1 2\0"), w(fd, b"some 3000000 2000000\0"), w(fd, b"some 100000 2000000\0"),
      w(fd, b"full 100000 2000000\0"), os.pread(fd, 4096, 0).split()[0].decode())
ro = os.open(p, os.O_RDONLY)
print(w(ro, b"some 100000 2000000\0"))
fds = [os.open(p, os.O_RDWR) for _ in range(40)]
r = [w(f, b"full 200000 2000000\0") for f in fds]
print(r.count("ok"), r[-1])
open(full, "w").close()
while not os.path.exists(counted):
    time.sleep(0.05)
"#,
    )
    .unwrap();
    let cg = Cgroup::unified(&format!("psi-errors-{transport}"));
    let pid = d.pid();
    let script = format!(
        "python3 {} {} {} {}",
        py.display(),
        file.display(),
        full.display(),
        counted.display()
    );
    let container = std::thread::spawn(move || in_container(&[&cg], &script));
    wait_until(
        "the container arms its triggers",
        Duration::from_secs(20),
        || full.exists(),
    );
    let armed = trigger_fds(pid);
    std::fs::write(&counted, "").unwrap();
    let out = container.join().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        ["EINVAL EINVAL ok EBUSY some", "EBADF", "31 ENOSPC"],
        "{text}"
    );
    assert_eq!(armed, 32, "one daemon fd per trigger");
    // The container's files closed at its exit: every trigger fd is closed.
    wait_until(
        "the triggers' fds are closed",
        Duration::from_secs(5),
        || trigger_fds(pid) == 0,
    );
}

fn a_removed_cgroup_wakes_its_poller_with_an_error(transport: &str) {
    let test = "a_removed_cgroup_wakes_its_poller_with_an_error";
    if !psi_or_skip(test) {
        return;
    }
    let d = Daemon::start(
        &format!("psi-rmdir-{transport}"),
        &["--transport", transport, "--enable-psi-poll"],
    );
    let py = poller(&d);
    let marker = d.dir.join("armed");
    let parent = Cgroup::unified(&format!("psi-rmdir-{transport}"));
    let cg = parent.child("c");
    std::fs::create_dir(&cg.path).unwrap();
    // Armed in its cgroup, the container is then moved to the parent, so the test can
    // remove the cgroup under the waiting poller.
    let script = format!(
        "python3 {} {} 'some 100000 2000000' 10 {}",
        py.display(),
        d.path("proc/pressure/cpu").display(),
        marker.display(),
    );
    let pid = d.pid();
    let path = cg.path.clone();
    let container = std::thread::spawn(move || in_container(&[&cg], &script));
    wait_until("the poller is armed", Duration::from_secs(20), || {
        marker.exists()
    });
    for p in std::fs::read_to_string(path.join("cgroup.procs"))
        .unwrap()
        .lines()
    {
        parent.set("cgroup.procs", p);
    }
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    std::fs::remove_dir(&path).unwrap();
    let (ev, secs) = woke(&container.join().unwrap());
    assert_eq!(
        ev,
        (libc::POLLERR | libc::POLLPRI) as u32,
        "woken with an error ({:?})",
        start.elapsed()
    );
    assert!(secs < 9.0, "woken, not timed out: {secs}");
    assert_eq!(
        trigger_fds(pid),
        0,
        "the gone cgroup's trigger fd is closed"
    );
}

fn without_the_flag_poll_is_answered_once_and_writes_fail(transport: &str) {
    let test = "without_the_flag_poll_is_answered_once_and_writes_fail";
    if !psi_or_skip(test) {
        return;
    }
    let d = Daemon::start(&format!("psi-off-{transport}"), &["--transport", transport]);
    let cg = Cgroup::unified(&format!("psi-off-{transport}"));
    let py = format!(
        r#"
import os, select, errno, time
fd = os.open("{}", os.O_RDONLY)
po = select.poll()
po.register(fd, select.POLLIN | select.POLLPRI)
t0 = time.monotonic()
print(po.poll(5000)[0][1], po.poll(5000)[0][1], time.monotonic() - t0 < 1)
try:
    os.open("{}", os.O_RDWR)
    print("opened")
except OSError as e:
    print(errno.errorcode[e.errno])
"#,
        d.path("proc/pressure/cpu").display(),
        d.path("proc/pressure/cpu").display()
    );
    let out = in_container(&[&cg], &format!("python3 -c '{py}'"));
    let text = String::from_utf8_lossy(&out.stdout);
    // ENOSYS answers POLL once: the kernel reports the file ready (POLLIN) from then on.
    let pollin = libc::POLLIN;
    assert!(
        text.starts_with(&format!("{pollin} {pollin} True")),
        "{text}"
    );
    // The file is 0444 as before: a read-write open is refused by the permission check
    // for all but root (which writes and gets EIO).
    assert!(text.contains("opened") || text.contains("EACCES"), "{text}");
}

/// A container in unified cgroup `name` whose poller arms a cpu trigger through `d` and
/// waits on it; once the returned path exists the container stalls itself for 8 s.
/// Returns once the trigger is armed, with the thread that yields the container's output.
fn armed_poller(
    d: &Daemon,
    name: &str,
) -> (PathBuf, std::thread::JoinHandle<std::process::Output>) {
    let py = poller(d);
    let (marker, go) = (d.dir.join("armed"), d.dir.join("go"));
    let cg = Cgroup::unified(name);
    let script = format!(
        "python3 {} {} 'some 100000 2000000' 30 {} & while [ ! -e {g} ]; do sleep 0.05; done; {}; wait",
        py.display(),
        d.path("proc/pressure/cpu").display(),
        marker.display(),
        busy(8),
        g = go.display()
    );
    let container = std::thread::spawn(move || in_container(&[&cg], &script));
    wait_until("the poller is armed", Duration::from_secs(20), || {
        marker.exists()
    });
    std::thread::sleep(Duration::from_millis(500));
    (go, container)
}

/// A trigger armed before an upgrade in place (SIGUSR1) and a takeover by a new process
/// still wakes its poller, which has been waiting all along.
fn sigusr1_and_takeover_keep_a_trigger_firing(transport: &str) {
    let test = "sigusr1_and_takeover_keep_a_trigger_firing";
    if !psi_or_skip(test) {
        return;
    }
    let args = ["--transport", transport, "--enable-psi-poll"];
    let mut d = Daemon::start(&format!("psi-handover-{transport}"), &args);
    let (go, container) = armed_poller(&d, &format!("psi-handover-{transport}"));
    d.signal(nix::sys::signal::Signal::SIGUSR1);
    let registry = d.runtime.join("psi-triggers");
    let before = std::fs::metadata(&registry).unwrap().modified().unwrap();
    let socket = d.runtime.join("lxcfs-uring.sock");
    wait_until(
        "the new image continues the trigger and serves",
        Duration::from_secs(10),
        || {
            std::fs::metadata(&registry).is_ok_and(|m| m.modified().unwrap() > before)
                && std::os::unix::net::UnixStream::connect(&socket).is_ok()
        },
    );
    let next = std::process::Command::new(env!("CARGO_BIN_EXE_lxcfs-uring"))
        .args(["--takeover"])
        .args(args)
        .arg("--runtime-dir")
        .arg(&d.runtime)
        .arg(&d.mnt)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(d.dir.join("successor.log")).unwrap())
        .spawn()
        .unwrap();
    let (status, log) = d.wait_exit(Duration::from_secs(10)).unwrap_or_else(|| {
        let log = std::fs::read_to_string(d.dir.join("successor.log")).unwrap_or_default();
        panic!("the first instance did not hand over; the successor says: {log}")
    });
    assert!(status.success(), "{status}: {log}");
    // Its own fd kept across execve: the kernel's window ran on.
    assert!(
        log.contains("PSI triggers: continued 1 of the predecessor's, re-created 0, 0 gone"),
        "{log}"
    );
    // The successor is the daemon now: stopped and waited for on drop.
    let pid = next.id() as i32;
    d.child = Some(next);
    wait_until("the successor serves", Duration::from_secs(10), || {
        d.pidfile_pid() == Some(pid)
    });
    // The successor owns the trigger now (its own fd), and the poller still waits.
    wait_until(
        "the successor holds the trigger",
        Duration::from_secs(5),
        || trigger_fds(pid) == 1,
    );
    std::fs::write(&go, "").unwrap();
    let (ev, secs) = woke(&container.join().unwrap());
    let successor_log = std::fs::read_to_string(d.dir.join("successor.log")).unwrap_or_default();
    assert!(
        successor_log.contains("PSI triggers: continued 1 of the predecessor's, re-created 0"),
        "the successor took the predecessor's trigger fd: {successor_log}"
    );
    assert_eq!(
        ev,
        libc::POLLPRI as u32,
        "woken after the handovers ({secs} s); before the takeover: {log}\nthe successor: {successor_log}"
    );
}

/// The server killed while a poller waits: the successor the keeper starts writes the
/// trigger anew from the registry and wakes the poller, which asks it, sleeps on, and is
/// woken when the container stalls: never left hanging on a dead process.
fn after_a_crash_the_successor_rearms_and_wakes_the_poller(transport: &str) {
    let test = "after_a_crash_the_successor_rearms_and_wakes_the_poller";
    if !psi_or_skip(test) {
        return;
    }
    let d = Daemon::start(
        &format!("psi-crash-{transport}"),
        &["--transport", transport, "--enable-psi-poll"],
    );
    d.wait_for_keeper();
    let (go, container) = armed_poller(&d, &format!("psi-crash-{transport}"));
    let victim = d.pidfile_pid().expect("a pidfile");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let successor = || d.pidfile_pid().filter(|&p| p != victim && alive(p));
    wait_until("a successor", Duration::from_secs(5), || {
        successor().is_some()
    });
    let pid = successor().unwrap();
    wait_until(
        "the successor re-arms the trigger",
        Duration::from_secs(5),
        || trigger_fds(pid) == 1,
    );
    let registry = std::fs::read_to_string(d.runtime.join("psi-triggers")).unwrap();
    assert!(
        registry.split(' ').nth(7) == Some(&pid.to_string()),
        "the registry names the successor: {registry}"
    );
    std::fs::write(&go, "").unwrap();
    let (ev, secs) = woke(&container.join().unwrap());
    assert_eq!(ev, libc::POLLPRI as u32, "woken ({secs} s)");
}
