//! What fits lxcfs-uring into hosts: the systemd unit, readiness, the stats view, signals,
//! the lxcfs-compatible flags, the manual page and the install script (LXC's hooks run in
//! real containers in tests/lxc.rs).

mod common;

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::Duration;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_lxcfs-uring");

fn contrib(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib")
        .join(rel)
}

#[test]
fn systemd_unit_verifies() {
    if !root_or_skip("systemd_unit_verifies") {
        return;
    }
    let dir = std::env::temp_dir().join(unique("unit-verify"));
    std::fs::create_dir_all(&dir).unwrap();
    // systemd-analyze checks that ExecStart exists: point it at the binary under test.
    let unit = std::fs::read_to_string(contrib("systemd/lxcfs-uring.service"))
        .unwrap()
        .replace("/usr/bin/lxcfs-uring", BIN);
    assert!(
        unit.contains("Type=notify")
            && unit.contains("KillMode=process")
            && unit.contains("OOMScoreAdjust=-1000")
    );
    let path = dir.join("lxcfs-uring.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze (package systemd)");
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    let complaints: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("lxcfs-uring.service"))
        .collect();
    assert!(
        out.status.success() && complaints.is_empty(),
        "systemd-analyze verify: {err}"
    );
}

#[test]
fn readiness_is_notified_once_the_mount_serves() {
    if !root_or_skip("readiness_is_notified_once_the_mount_serves") {
        return;
    }
    let sock_dir = std::env::temp_dir().join(unique("notify"));
    std::fs::create_dir_all(&sock_dir).unwrap();
    let sock_path = sock_dir.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let d = Daemon::start_env("notify", &[], &[("NOTIFY_SOCKET", &sock_path)]);
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).expect("READY=1 within 10 s");
    let msg = String::from_utf8_lossy(&buf[..n]);
    assert!(
        msg.contains("READY=1") && msg.contains(&format!("MAINPID={}", d.pid())),
        "{msg}"
    );
    let _ = std::fs::remove_dir_all(&sock_dir);
}

#[test]
fn stats_view_counts_requests() {
    if !root_or_skip("stats_view_counts_requests") {
        return;
    }
    let d = Daemon::start("stats", &[]);
    for _ in 0..20 {
        std::fs::read_to_string(d.path("proc/meminfo")).unwrap();
    }
    let out = Command::new(BIN)
        .args(["stats", "--runtime-dir"])
        .arg(&d.runtime)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let get = |k: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {k}: {text}"))
    };
    assert!(
        text.starts_with("transport uring") || text.starts_with("transport classic"),
        "{text}"
    );
    // Every open reaches the daemon; each file's reads reach it too, unless passthrough
    // let the kernel read a re-open from a backing file.
    assert!(get("requests_open") >= 20, "{text}");
    let by_kernel = get("passthrough_opens_fresh") + get("passthrough_opens_shared");
    assert!(get("requests_read") + by_kernel >= 20, "{text}");
    assert!(get("renders_meminfo") >= 1, "{text}");
    assert!(text.contains("latency_p99_us_max"));
    let prom = Command::new(BIN)
        .args(["stats", "--prometheus", "--runtime-dir"])
        .arg(&d.runtime)
        .output()
        .unwrap();
    let prom = String::from_utf8_lossy(&prom.stdout);
    assert!(
        prom.contains("lxcfs_uring_renders_meminfo_total")
            && prom.contains("lxcfs_uring_request_seconds_bucket"),
        "{prom}"
    );
    // no instance: one sentence, non-zero
    let out = Command::new(BIN)
        .args(["stats", "--runtime-dir", "/nonexistent-run"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no lxcfs-uring is running"));
}

#[test]
fn sigusr2_toggles_the_hosts_files_and_sigusr1_does_not_kill() {
    if !root_or_skip("sigusr2_toggles_the_hosts_files_and_sigusr1_does_not_kill") {
        return;
    }
    let d = Daemon::start("usr2", &[]);
    let mem = Cgroup::new("memory", "usr2");
    mem.set("memory.limit_in_bytes", &(256u64 << 20).to_string());
    let total = || {
        let out = in_container(
            &[&mem],
            &format!("cat {}", d.path("proc/meminfo").display()),
        );
        meminfo_kb(&String::from_utf8(out.stdout).unwrap(), "MemTotal")
    };
    let host = meminfo_kb(
        &std::fs::read_to_string("/proc/meminfo").unwrap(),
        "MemTotal",
    );
    assert_eq!(total(), 262144);
    d.signal(nix::sys::signal::Signal::SIGUSR2);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(total(), host, "pass-through shows the host's file");
    d.signal(nix::sys::signal::Signal::SIGUSR2);
    d.signal(nix::sys::signal::Signal::SIGUSR1);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        total(),
        262144,
        "back to the container's view, and SIGUSR1 did not kill us"
    );
}

#[test]
fn lxcfs_flags_version_and_man_page() {
    let out = Command::new(BIN).arg("-v").output().unwrap();
    assert!(
        out.status.success()
            && String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION"))
    );
    let out = Command::new(BIN)
        .args(["-o", "allow_other,bogus", "/tmp"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown mount option \"bogus\""));
    let man = Command::new(BIN).arg("man").output().unwrap();
    let page = String::from_utf8_lossy(&man.stdout);
    assert!(
        man.status.success() && page.contains(".TH") && page.contains("transport"),
        "{page}"
    );
}

#[test]
fn install_script_puts_everything_in_place() {
    if !root_or_skip("install_script_puts_everything_in_place") {
        return;
    }
    let dest = std::env::temp_dir().join(unique("install"));
    let out =
        Command::new(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install.sh"))
            .env("DESTDIR", &dest)
            .output()
            .unwrap();
    let files = [
        "usr/bin/lxcfs-uring",
        "lib/systemd/system/lxcfs-uring.service",
        "usr/share/lxcfs-uring/lxc.mount.hook",
        "usr/share/lxcfs-uring/lxc.reboot.hook",
        "usr/share/lxc/config/common.conf.d/00-lxcfs-uring.conf",
        "usr/share/man/man1/lxcfs-uring.1",
    ];
    let missing: Vec<&str> = files
        .iter()
        .copied()
        .filter(|f| !dest.join(f).exists())
        .collect();
    let _ = std::fs::remove_dir_all(&dest);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(missing.is_empty(), "not installed: {missing:?}");
}

/// The DaemonSet's upgrade: a new pod's command, started beside the old pod's, takes the
/// mount over; the old daemon exits 0 and its container idles; reads never stop.
#[test]
fn kubernetes_pod_command_takes_the_mount_over() {
    if !root_or_skip("kubernetes_pod_command_takes_the_mount_over") {
        return;
    }
    let d = Daemon::paths_only("k8s");
    // The container's script from the manifest, pointed at this test's paths.
    let yaml = std::fs::read_to_string(contrib("kubernetes/lxcfs-uring.yaml")).unwrap();
    let script: String = yaml
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("R=/run/lxcfs-uring"))
        .take_while(|l| !l.trim().is_empty() && !l.trim_start().starts_with("securityContext"))
        .map(|l| format!("{}\n", l.trim()))
        .collect();
    assert!(script.contains("--takeover") && script.ends_with("exec sleep infinity\n"));
    let script = script
        .replace("/run/lxcfs-uring", &d.runtime.display().to_string())
        .replace("/var/lib/lxcfs", &d.mnt.display().to_string())
        .replace("/usr/bin/lxcfs-uring", BIN);
    let pod = || {
        Command::new("sh")
            .args(["-c", &script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let wait = |what: &str, ok: &dyn Fn() -> bool| wait_until(what, Duration::from_secs(10), ok);
    let mut old_pod = pod();
    wait("the first pod mounts", &|| {
        d.serves() && d.pidfile_pid().is_some()
    });
    let old_daemon = d.pidfile_pid().unwrap();
    let mut new_pod = pod();
    wait("the new pod's daemon takes over", &|| {
        d.pidfile_pid().is_some_and(|p| p != old_daemon)
    });
    assert!(d.serves(), "the mount stayed");
    // The old daemon is gone; its pod's container idles instead of restarting it.
    wait("the old daemon exits", &|| !alive(old_daemon));
    assert!(
        old_pod.try_wait().unwrap().is_none(),
        "the old pod's container still runs"
    );
    assert!(new_pod.try_wait().unwrap().is_none());
    assert!(is_mounted(&d.mnt));
    let _ = old_pod.kill();
    let _ = new_pod.kill();
    let _ = old_pod.wait();
    let _ = new_pod.wait();
}

/// The unit under a crash: the keeper's successor serves, ExecStopPost leaves its mount
/// alone, and the restart systemd then makes takes the mount over from it.
#[test]
fn systemd_restart_after_a_crash_takes_the_mount_back() {
    if !root_or_skip("systemd_restart_after_a_crash_takes_the_mount_back") {
        return;
    }
    let d = Daemon::paths_only("unit");
    let unit = std::fs::read_to_string(contrib("systemd/lxcfs-uring.service")).unwrap();
    let script = |key: &str| -> String {
        let line = unit
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key}"));
        line.trim_start_matches('-')
            .strip_prefix("/bin/sh -c '")
            .and_then(|l| l.strip_suffix('\''))
            .unwrap_or_else(|| panic!("{key} is not a sh -c line"))
            .replace("/usr/bin/lxcfs-uring", BIN)
            .replace(
                "--runtime-dir /run",
                &format!("--runtime-dir {}", d.runtime.display()),
            )
            .replace("/var/lib/lxcfs", &d.mnt.display().to_string())
    };
    let (start, stop_post) = (script("ExecStart="), script("ExecStopPost="));
    let sh = |s: &str| {
        let mut c = Command::new("sh");
        c.args(["-c", s]).stdin(std::process::Stdio::null());
        c
    };
    let wait = |what: &str, ok: &dyn Fn() -> bool| wait_until(what, Duration::from_secs(10), ok);
    let mut first = sh(&start).spawn().unwrap();
    wait("the unit's first start mounts", &|| {
        d.serves() && d.pidfile_pid() == Some(first.id() as i32)
    });
    std::thread::sleep(Duration::from_millis(300)); // its keeper starts once it serves
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = first.wait();
    wait("the keeper's successor serves", &|| {
        d.serves() && d.pidfile_pid().is_some_and(|p| p != first.id() as i32)
    });
    // systemd runs ExecStopPost after the main process died: the served mount stays.
    assert!(sh(&stop_post).status().unwrap().success());
    assert!(
        is_mounted(&d.mnt) && d.serves(),
        "ExecStopPost left the served mount alone"
    );
    // ... and then restarts the unit: the new main process takes the mount over.
    let mut restarted = sh(&start).spawn().unwrap();
    wait("the restarted unit takes over", &|| {
        d.pidfile_pid() == Some(restarted.id() as i32)
    });
    assert!(d.serves() && restarted.try_wait().unwrap().is_none());
    // A successor sends one lookup of its own through each CPU's queue once it serves;
    // a SIGKILL while one is unanswered leaves a process that cannot finish dying (its
    // thread waits on a request only it could answer) and a mount nobody serves. Let
    // them be answered before the cleanup kill.
    std::thread::sleep(Duration::from_millis(300));
    let _ = restarted.kill();
    let _ = restarted.wait();
}
