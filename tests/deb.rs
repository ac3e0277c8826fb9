//! The Debian package (scripts/deb.sh), installed, upgraded and removed for real on this
//! machine: where its files land, the unit enabled, an upgrade in place under reading
//! load, and a removal that leaves a daemon containers still use running. Every test
//! purges the package and stops what it started, whatever happens; none touches
//! /var/lib/lxcfs or /run: the maintainer scripts are pointed at the test's own paths.
//! scripts/test.sh builds the package once and names it in LXCFS_URING_DEB.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::*;

const PKG: &str = "lxcfs-uring";
const BIN: &str = "/usr/bin/lxcfs-uring";
const UNIT: &str = "/lib/systemd/system/lxcfs-uring.service";
const WANTS: &str = "/etc/systemd/system/multi-user.target.wants/lxcfs-uring.service";
const HELPER_STATE: &str = "/var/lib/systemd/deb-systemd-helper-enabled";

/// What the package installs besides directories.
const FILES: [&str; 8] = [
    BIN,
    UNIT,
    "/usr/share/lxcfs-uring/lxc.mount.hook",
    "/usr/share/lxcfs-uring/lxc.reboot.hook",
    "/usr/share/lxc/config/common.conf.d/00-lxcfs-uring.conf",
    "/usr/share/man/man1/lxcfs-uring.1.gz",
    "/usr/share/doc/lxcfs-uring/copyright",
    "/usr/share/doc/lxcfs-uring/changelog.gz",
];

/// Files of Debian's lxcfs 5.0.3 (`dpkg -L lxcfs`), which ours must not share.
const DEBIAN_LXCFS_FILES: [&str; 10] = [
    "/etc/init.d/lxcfs",
    "/lib/systemd/system/lxcfs.service",
    "/usr/bin/lxcfs",
    "/usr/lib/x86_64-linux-gnu/lxcfs/liblxcfs.so",
    "/usr/share/doc/lxcfs/copyright",
    "/usr/share/lxc/config/common.conf.d/00-lxcfs.conf",
    "/usr/share/lxcfs/lxc.mount.hook",
    "/usr/share/lxcfs/lxc.reboot.hook",
    "/usr/share/man/man1/lxcfs.1.gz",
    "/usr/share/doc/lxcfs/changelog.Debian.gz",
];

/// The package is one per machine: these tests take turns.
static SERIAL: Mutex<()> = Mutex::new(());

/// Root, dpkg, and no lxcfs-uring package already installed (a real one is not ours to
/// upgrade or remove): else a loud skip, a failure under CI.
fn ready(test: &str) -> bool {
    root_or_skip(test)
        && host_has_or_skip(test, Path::new("/usr/bin/dpkg-deb").exists(), "dpkg-deb")
        && host_has_or_skip(
            test,
            installed_version().is_none(),
            "no lxcfs-uring package installed (the test installs and purges its own)",
        )
}

/// The package under test: LXCFS_URING_DEB, or one scripts/deb.sh builds now.
fn package() -> PathBuf {
    static DEB: OnceLock<PathBuf> = OnceLock::new();
    DEB.get_or_init(|| {
        if let Some(p) = std::env::var_os("LXCFS_URING_DEB") {
            return PathBuf::from(p);
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/deb.sh");
        let out = Command::new(&script)
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        assert!(out.status.success(), "scripts/deb.sh failed");
        let path = String::from_utf8(out.stdout).unwrap();
        Path::new(env!("CARGO_MANIFEST_DIR")).join(path.trim())
    })
    .clone()
}

/// The control field `field` of the .deb at `deb`.
fn deb_field(deb: &Path, field: &str) -> String {
    let out = Command::new("dpkg-deb")
        .args(["-f"])
        .arg(deb)
        .arg(field)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `deb` repacked as version `version` into `dir`: a newer package, as a release would be.
fn repack(deb: &Path, version: &str, dir: &Path) -> PathBuf {
    let tree = dir.join(format!("tree-{version}"));
    let run = |c: &mut Command| {
        let out = c.output().unwrap();
        assert!(out.status.success(), "{c:?}: {out:?}");
    };
    run(Command::new("dpkg-deb").arg("-R").arg(deb).arg(&tree));
    let control = tree.join("DEBIAN/control");
    let text = std::fs::read_to_string(&control).unwrap();
    let text: String = text
        .lines()
        .map(|l| match l.starts_with("Version:") {
            true => format!("Version: {version}\n"),
            false => format!("{l}\n"),
        })
        .collect();
    std::fs::write(&control, text).unwrap();
    let out = dir.join(format!("lxcfs-uring_{version}.deb"));
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zgzip", "-b"])
        .arg(&tree)
        .arg(&out));
    let _ = std::fs::remove_dir_all(&tree);
    out
}

/// `Some(version)` when the package is installed (configured or half so).
fn installed_version() -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${db:Status-Abbrev}${Version}", PKG])
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout).into_owned();
    // "ii 0.1.0-1", "rc 0.1.0-1" (removed, configuration kept), or nothing.
    (out.status.success() && s.starts_with('i')).then(|| s[3..].trim().to_owned())
}

/// Whether dpkg still knows the package in any state (installed, removed with its
/// configuration kept).
fn known_to_dpkg() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f", "${db:Status-Abbrev}", PKG])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.starts_with(b"un") && !o.stdout.is_empty())
}

/// dpkg, with the maintainer scripts pointed at a test's instance; retried while another
/// dpkg or apt holds the lock.
fn dpkg(args: &[&str], d: &Daemon) -> Output {
    dpkg_at(args, &d.runtime, &d.mnt)
}

fn dpkg_at(args: &[&str], runtime: &Path, mnt: &Path) -> Output {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = Command::new("dpkg")
            .args(args)
            .env("LXCFS_URING_RUNTIME_DIR", runtime)
            .env("LXCFS_URING_MOUNTPOINT", mnt)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || !err.contains("lock") || Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn assert_ok(what: &str, out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The installed package, purged on drop with the scripts pointed at the test's paths
/// (their prerm stops the test's daemon; the daemon's own guard, declared before, then
/// sweeps what is left).
struct Installed {
    runtime: PathBuf,
    mnt: PathBuf,
}

impl Installed {
    fn new(deb: &Path, d: &Daemon) -> Installed {
        let guard = Installed {
            runtime: d.runtime.clone(),
            mnt: d.mnt.clone(),
        };
        assert_ok("dpkg -i", &dpkg(&["-i", deb.to_str().unwrap()], d));
        guard
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        if known_to_dpkg() {
            let out = dpkg_at(&["--purge", PKG], &self.runtime, &self.mnt);
            if !out.status.success() {
                eprintln!("warning: dpkg --purge {PKG}: {out:?}");
            }
        }
    }
}

/// The test's paths, with a guard of its own that stops the daemon and unmounts.
fn paths(name: &str) -> Daemon {
    Daemon::paths_only(&format!("deb-{name}"))
}

/// The installed daemon started as the unit's ExecStart starts it, on the test's paths.
fn start_as_the_unit(d: &mut Daemon) -> i32 {
    let unit = std::fs::read_to_string(UNIT).unwrap();
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let script = line
        .strip_prefix("/bin/sh -c '")
        .and_then(|l| l.strip_suffix('\''))
        .expect("ExecStart is a sh -c line")
        .replace(
            "--runtime-dir /run",
            &format!("--runtime-dir {}", d.runtime.display()),
        )
        .replace("/var/lib/lxcfs", &d.mnt.display().to_string());
    assert!(script.contains(BIN), "the unit runs {BIN}: {script}");
    let child = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    d.child = Some(child);
    wait_until(
        "the installed daemon serves",
        Duration::from_secs(10),
        || d.serves() && d.pidfile_pid() == Some(pid),
    );
    std::thread::sleep(Duration::from_millis(300)); // its keeper starts once it serves
    pid
}

/// The mount id of the mount at `mnt` (the topmost).
fn mount_id(mnt: &Path) -> Option<u64> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = mnt.to_string_lossy();
    info.lines()
        .filter(|l| l.split(' ').nth(4) == Some(want.as_ref()))
        .filter_map(|l| l.split(' ').next()?.parse().ok())
        .next_back()
}

/// A "container": a process in a mount namespace of its own holding a bind mount of
/// `view` (LXC's hook binds each view so). Killed on drop, which ends the namespace.
struct Holder(Child);

impl Holder {
    fn bind(view: &Path, target: &Path) -> Holder {
        std::fs::write(target, "").unwrap();
        let mut child = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg("mount --bind \"$0\" \"$1\" && echo bound && exec sleep 600")
            .arg(view)
            .arg(target)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let holder = Holder(child);
        assert_eq!(
            line.trim(),
            "bound",
            "the container binds {}",
            view.display()
        );
        holder
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

type Reader = std::thread::JoinHandle<(u64, Vec<String>, Duration)>;

/// Readers on several views until `stop`: (reads, failures, slowest read).
fn readers(d: &Daemon, stop: &Arc<AtomicBool>) -> Vec<Reader> {
    [
        "proc/meminfo",
        "proc/stat",
        "proc/uptime",
        "proc/cpuinfo",
        "sys/devices/system/cpu/online",
    ]
    .iter()
    .map(|f| {
        let (path, stop) = (d.path(f), stop.clone());
        std::thread::spawn(move || {
            let (mut n, mut failures, mut slowest) = (0u64, Vec::new(), Duration::ZERO);
            let mut buf = Vec::with_capacity(1 << 16);
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                buf.clear();
                match std::fs::File::open(&path).and_then(|mut f| f.read_to_end(&mut buf)) {
                    Ok(_) if buf.is_empty() => failures.push(format!("{}: empty", path.display())),
                    Ok(_) => {}
                    Err(e) => failures.push(format!("{}: {e}", path.display())),
                }
                slowest = slowest.max(t.elapsed());
                n += 1;
                // Steady rather than flat out: dpkg needs the CPUs too (2 here, shared).
                std::thread::sleep(Duration::from_millis(1));
            }
            (n, failures, slowest)
        })
    })
    .collect()
}

fn gather(readers: Vec<Reader>) -> (u64, Vec<String>, Duration) {
    let (mut reads, mut failures, mut slowest) = (0, Vec::new(), Duration::ZERO);
    for r in readers {
        let (n, f, s) = r.join().unwrap();
        reads += n;
        failures.extend(f);
        slowest = slowest.max(s);
    }
    (reads, failures, slowest)
}

fn ino(path: &str) -> u64 {
    std::fs::metadata(path).unwrap().ino()
}

/// No file of the package, no unit symlink, no record of deb-systemd-helper's is left.
fn assert_nothing_left() {
    assert!(!known_to_dpkg(), "dpkg still knows {PKG}");
    for f in FILES {
        assert!(!Path::new(f).exists(), "{f} is left");
    }
    assert!(std::fs::symlink_metadata(WANTS).is_err(), "{WANTS} is left");
    let state = Command::new("grep")
        .args(["-rl", "lxcfs-uring", HELPER_STATE])
        .output()
        .unwrap();
    assert!(
        state.stdout.is_empty(),
        "deb-systemd-helper's state still names it: {}",
        String::from_utf8_lossy(&state.stdout)
    );
}

/// (1) Install: the files where Debian's layout has them, none of Debian's lxcfs's paths,
/// the unit enabled and valid; with no daemon running (and a stale pidfile naming
/// another program) install, reinstall, removal and purge succeed and signal nothing.
#[test]
fn install_puts_the_files_in_place_and_enables_the_unit() {
    let test = "install_puts_the_files_in_place_and_enables_the_unit";
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !ready(test) {
        return;
    }
    let deb = package();
    let mountpoint_dir_existed = Path::new("/var/lib/lxcfs").exists();
    let d = paths("install");
    // A pidfile left by something else: the scripts must not signal that process.
    let mut other = Command::new("sleep").arg("60").spawn().unwrap();
    std::fs::write(d.runtime.join("lxcfs.pid"), format!("{}\n", other.id())).unwrap();
    {
        let pkg = Installed::new(&deb, &d);
        assert_eq!(
            installed_version().as_deref(),
            Some(deb_field(&deb, "Version").as_str())
        );
        for f in FILES {
            assert!(Path::new(f).is_file(), "{f} installed");
        }
        let mode = |f: &str| std::fs::metadata(f).unwrap().mode() & 0o777;
        assert_eq!(mode(BIN), 0o755);
        assert_eq!(mode("/usr/share/lxcfs-uring/lxc.mount.hook"), 0o755);
        assert_eq!(mode(UNIT), 0o644);
        let out = Command::new(BIN).arg("-v").output().unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
        // The man page: generated at build time, gzipped, in the section it names.
        let man = Command::new("gzip")
            .args(["-dc", "/usr/share/man/man1/lxcfs-uring.1.gz"])
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&man.stdout).contains(".TH lxcfs-uring 1 "));
        let conf =
            std::fs::read_to_string("/usr/share/lxc/config/common.conf.d/00-lxcfs-uring.conf")
                .unwrap();
        assert!(conf.contains("lxc.hook.mount = /usr/share/lxcfs-uring/lxc.mount.hook"));
        let unit = std::fs::read_to_string(UNIT).unwrap();
        assert!(unit.contains("ExecStart=/bin/sh -c 'if /usr/bin/lxcfs-uring stats"));
        // None of Debian's lxcfs's files.
        let listed = Command::new("dpkg").args(["-L", PKG]).output().unwrap();
        let listed = String::from_utf8_lossy(&listed.stdout);
        for f in listed.lines().filter(|f| Path::new(f).is_file()) {
            assert!(!DEBIAN_LXCFS_FILES.contains(&f), "{f} is Debian lxcfs's");
        }
        let copyright = std::fs::read_to_string("/usr/share/doc/lxcfs-uring/copyright").unwrap();
        assert!(copyright.contains("Upstream-Name: lxcfs-uring") && copyright.contains(" clap v"));
        // Enabled, as deb-systemd-helper enables units with or without systemd running.
        assert_eq!(
            std::fs::read_link(WANTS).unwrap(),
            Path::new(UNIT),
            "the unit is enabled"
        );
        assert!(
            Path::new(HELPER_STATE)
                .join("lxcfs-uring.service.dsh-also")
                .exists(),
            "deb-systemd-helper recorded it"
        );
        if Path::new("/usr/bin/systemd-analyze").exists() {
            let out = Command::new("systemd-analyze")
                .args(["verify", "--man=no", UNIT])
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && !err.lines().any(|l| l.contains("lxcfs-uring.service")),
                "systemd-analyze verify: {err}"
            );
        } else {
            eprintln!("*** {test}: no systemd-analyze here: the unit is not verified ***");
        }
        // Nothing was started (no systemd here, or not the unit's paths), nothing signalled.
        assert!(!is_mounted(&d.mnt));
        assert!(
            other.try_wait().unwrap().is_none(),
            "the other program lives"
        );
        // Installing again is harmless.
        assert_ok("dpkg -i again", &dpkg(&["-i", deb.to_str().unwrap()], &d));
        assert!(
            other.try_wait().unwrap().is_none(),
            "the other program lives"
        );
        assert_ok("dpkg -r", &dpkg(&["-r", PKG], &d));
        assert!(!Path::new(BIN).exists());
        assert!(
            other.try_wait().unwrap().is_none(),
            "the other program lives"
        );
        assert_ok("dpkg --purge", &dpkg(&["--purge", PKG], &d));
        drop(pkg);
    }
    let _ = other.kill();
    let _ = other.wait();
    assert_nothing_left();
    assert_eq!(
        Path::new("/var/lib/lxcfs").exists(),
        mountpoint_dir_existed,
        "the mountpoint directory is as it was"
    );
}

/// (2) Upgrades in place under reading load: dpkg -i of newer packages over the running
/// daemon re-executes it from the new file (same pid, same mount), no read fails.
#[test]
fn upgrade_reexecs_the_running_daemon_without_a_failed_read() {
    let test = "upgrade_reexecs_the_running_daemon_without_a_failed_read";
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !ready(test) {
        return;
    }
    let deb = package();
    let version = deb_field(&deb, "Version");
    let mut d = paths("upgrade");
    let _pkg = Installed::new(&deb, &d);
    let pid = start_as_the_unit(&mut d);
    let mount = mount_id(&d.mnt).expect("mounted");
    let stop = Arc::new(AtomicBool::new(false));
    let readers = readers(&d, &stop);
    for round in 1..=2 {
        std::thread::sleep(Duration::from_millis(400));
        let newer = repack(&deb, &format!("{version}+test{round}"), &d.dir);
        let old_ino = ino(BIN);
        let out = dpkg(&["-i", newer.to_str().unwrap()], &d);
        let said = assert_ok("dpkg -i of the newer package", &out);
        assert!(
            said.contains(&format!("lxcfs-uring (pid {pid}) now runs the new {BIN}")),
            "round {round}: {said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(installed_version(), Some(format!("{version}+test{round}")));
        // The same process, now running the file dpkg installed.
        assert_eq!(
            d.pidfile_pid(),
            Some(pid),
            "round {round}: the same pid serves"
        );
        assert!(alive(pid));
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
        assert_eq!(
            exe,
            Path::new(BIN),
            "round {round}: runs the installed file"
        );
        assert_ne!(ino(BIN), old_ino, "dpkg installed a new file");
        assert_eq!(ino(&format!("/proc/{pid}/exe")), ino(BIN));
        assert_eq!(
            mount_id(&d.mnt),
            Some(mount),
            "round {round}: the same mount"
        );
    }
    std::thread::sleep(Duration::from_millis(400));
    stop.store(true, Ordering::Relaxed);
    let (reads, failures, slowest) = gather(readers);
    eprintln!(
        "{test}: {reads} reads, {} failed, slowest {slowest:?}",
        failures.len()
    );
    assert!(reads > 100, "the readers ran: {reads}");
    assert!(
        failures.is_empty(),
        "{} of {reads} reads failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(slowest < Duration::from_secs(1), "slowest read {slowest:?}");
    assert!(d.serves() && is_mounted(&d.mnt));
}

/// (3) Removal: while a container binds a view, the daemon keeps serving (one sentence
/// says so and how to stop it); installed again, the daemon re-executes from the new
/// file; removed with no container left, it stops and unmounts; purge leaves nothing.
#[test]
fn removal_stops_the_daemon_only_when_no_container_uses_it() {
    let test = "removal_stops_the_daemon_only_when_no_container_uses_it";
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !ready(test) {
        return;
    }
    let deb = package();
    let mut d = paths("remove");
    let pkg = Installed::new(&deb, &d);
    let pid = start_as_the_unit(&mut d);
    let holder = Holder::bind(&d.path("proc/meminfo"), &d.dir.join("container-meminfo"));

    let out = dpkg(&["-r", PKG], &d);
    let said = assert_ok("dpkg -r", &out);
    let sentence = format!(
        "lxcfs-uring (pid {pid}) keeps serving {} because containers still use its files; \
         once they have stopped, stop it with: kill {pid}",
        d.mnt.display()
    );
    assert!(said.contains(&sentence), "{said}");
    assert!(!Path::new(BIN).exists(), "dpkg removed the binary");
    assert!(alive(pid) && d.serves(), "the daemon serves on");
    // The container's view still reads.
    let inside = Command::new("nsenter")
        .arg(format!("--mount=/proc/{}/ns/mnt", holder.0.id()))
        .args(["head", "-c", "9"])
        .arg(d.dir.join("container-meminfo"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&inside.stdout), "MemTotal:");

    // Installed again: the daemon running the removed file moves to the new one.
    assert_ok(
        "dpkg -i after removal",
        &dpkg(&["-i", deb.to_str().unwrap()], &d),
    );
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/exe")).unwrap(),
        Path::new(BIN)
    );
    assert!(d.serves());

    // The container stops; removal now stops the daemon, which unmounts.
    drop(holder);
    let said = assert_ok("dpkg -r with no container", &dpkg(&["-r", PKG], &d));
    assert!(!said.contains("keeps serving"), "{said}");
    wait_until("the daemon stops", Duration::from_secs(10), || !alive(pid));
    assert!(!is_mounted(&d.mnt), "unmounted");
    assert!(d.pidfile_pid().is_none(), "the pidfile went with it");
    let status = d.child.as_mut().unwrap().wait().unwrap();
    assert!(status.success(), "a clean stop: {status}");
    let mnt = d.mnt.to_string_lossy().into_owned();
    wait_until("the keeper leaves", Duration::from_secs(5), || {
        !std::fs::read_dir("/proc").unwrap().flatten().any(|p| {
            std::fs::read(p.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&mnt))
        })
    });
    assert_ok("dpkg --purge", &dpkg(&["--purge", PKG], &d));
    drop(pkg);
    assert_nothing_left();
}
