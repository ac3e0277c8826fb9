//! Shared helpers for the integration tests: a daemon on a temporary mountpoint, test
//! cgroups, and "containers" (a new pid namespace whose init sits in given cgroups).
//! Every helper cleans up in Drop, so a failing test leaves no mount, cgroup or process.
#![allow(dead_code)] // each test binary uses its own subset

pub mod compare;
pub mod runc;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `both_transports!(a, b)`: tests `uring::a`, `classic::a`, ... that call `a("uring")`
/// and `a("classic")` as root (skipped loudly otherwise, never under CI=true).
#[allow(unused_macros)] // like the helpers: each test binary uses its own subset
macro_rules! both_transports {
    ($($name:ident),*) => {
        mod uring {
            $(#[test] fn $name() { if super::root_or_skip(stringify!($name)) { super::$name("uring") } })*
        }
        mod classic {
            $(#[test] fn $name() { if super::root_or_skip(stringify!($name)) { super::$name("classic") } })*
        }
    };
}

/// Debian's lxcfs 5.0.3, which scripts/test.sh installs.
pub const LXCFS: &str = "/usr/bin/lxcfs";

/// True when the tests can run. Without root they are skipped loudly, but never in CI.
pub fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: these tests need root, and CI must run them as root");
    }
    eprintln!("\n*** SKIPPED {test}: not root; mount and cgroup tests need root ***\n");
    false
}

/// True when the host has what `test` needs (`has`); otherwise a loud skip naming `need`,
/// and a failure under CI=true, whose machines have it.
pub fn host_has_or_skip(test: &str, has: bool, need: &str) -> bool {
    if has {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: this host lacks {need}, which CI machines have");
    }
    eprintln!("\n*** SKIPPED {test}: this host lacks {need} ***\n");
    false
}

pub fn unique(name: &str) -> String {
    format!("lxcfs-uring-test-{}-{name}", std::process::id())
}

/// A running daemon on a fresh mountpoint.
pub struct Daemon {
    pub child: Option<Child>,
    pub dir: PathBuf,
    pub mnt: PathBuf,
    pub runtime: PathBuf,
}

impl Daemon {
    /// lxcfs-uring with `args` on a fresh mountpoint.
    pub fn start(name: &str, args: &[&str]) -> Daemon {
        Daemon::start_env(name, args, &[])
    }

    /// lxcfs-uring with `args` and extra environment variables.
    pub fn start_env(name: &str, args: &[&str], env: &[(&str, &Path)]) -> Daemon {
        Daemon::spawn(name, env!("CARGO_BIN_EXE_lxcfs-uring"), args, env, |run| {
            vec!["--runtime-dir".into(), run.to_string_lossy().into_owned()]
        })
    }

    /// The lxcfs-uring binary at `binary` (a copy an upgrade test replaces) with `args`.
    pub fn start_binary(name: &str, binary: &str, args: &[&str]) -> Daemon {
        Daemon::spawn(name, binary, args, &[], |run| {
            vec!["--runtime-dir".into(), run.to_string_lossy().into_owned()]
        })
    }

    /// Debian's lxcfs (the reference implementation) with `args`.
    pub fn start_lxcfs(name: &str, args: &[&str]) -> Daemon {
        Daemon::spawn(name, LXCFS, args, &[], |run| {
            vec![
                "-f".into(),
                "-p".into(),
                run.join("lxcfs.pid").to_string_lossy().into_owned(),
            ]
        })
    }

    fn spawn(
        name: &str,
        binary: &str,
        args: &[&str],
        vars: &[(&str, &Path)],
        runtime_args: impl Fn(&Path) -> Vec<String>,
    ) -> Daemon {
        let dir = std::env::temp_dir().join(unique(name));
        let mnt = dir.join("mnt");
        let runtime = dir.join("run");
        std::fs::create_dir_all(&mnt).unwrap();
        std::fs::create_dir_all(&runtime).unwrap();
        let mut command = Command::new(binary);
        command
            .envs(vars.iter().copied())
            .args(args)
            .args(runtime_args(&runtime))
            .arg(&mnt)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // A binary a test has just copied can be held open for writing for a moment by
        // a process another test thread forks (until that one execs): ETXTBSY. Retry.
        let mut tries = 0;
        let child = loop {
            match command.spawn() {
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
                r => break r.expect("start lxcfs-uring"),
            }
        };
        let mut d = Daemon {
            child: Some(child),
            dir,
            mnt,
            runtime,
        };
        d.wait_mounted();
        d
    }

    /// Counter `name` of `lxcfs-uring stats` (0 when the daemon does not list it).
    pub fn counter(&self, name: &str) -> u64 {
        let stats = Command::new(env!("CARGO_BIN_EXE_lxcfs-uring"))
            .args(["stats", "--runtime-dir"])
            .arg(&self.runtime)
            .output()
            .unwrap();
        assert!(stats.status.success(), "stats: {stats:?}");
        String::from_utf8_lossy(&stats.stdout)
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0)
    }

    /// A mountpoint and runtime directory for a daemon a test starts its own way (a
    /// manifest's or unit's command); cleaned up on drop like any other.
    pub fn paths_only(name: &str) -> Daemon {
        let dir = std::env::temp_dir().join(unique(name));
        let d = Daemon {
            child: None,
            mnt: dir.join("mnt"),
            runtime: dir.join("run"),
            dir,
        };
        std::fs::create_dir_all(&d.mnt).unwrap();
        std::fs::create_dir_all(&d.runtime).unwrap();
        d
    }

    /// The pid the pidfile names.
    pub fn pidfile_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.runtime.join("lxcfs.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Whether proc/meminfo reads as a meminfo.
    pub fn serves(&self) -> bool {
        std::fs::read_to_string(self.path("proc/meminfo")).is_ok_and(|t| t.starts_with("MemTotal:"))
    }

    fn wait_mounted(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if is_mounted(&self.mnt) && self.path("proc/meminfo").exists() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                let log = self.take_stderr();
                panic!("daemon exited early ({status}): {log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("daemon did not mount {} in 10 s", self.mnt.display());
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Wait until the daemon has started its keeper (a child of its, run with --keep), which
    /// it does once the mount serves.
    pub fn wait_for_keeper(&self) {
        let mark = self.mnt.to_string_lossy().into_owned();
        wait_until(
            "the daemon starts its keeper",
            Duration::from_secs(5),
            || {
                processes_naming(&mark).iter().any(|(pid, args)| {
                    args.get(1).is_some_and(|a| a == "--keep") && parent_of(*pid) == self.pid()
                })
            },
        );
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig);
    }

    /// Wait for the daemon to exit; its status and stderr.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<(std::process::ExitStatus, String)> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(st) = self.child.as_mut()?.try_wait().ok().flatten() {
                let log = self.take_stderr();
                self.child = None;
                return Some((st, log));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn take_stderr(&mut self) -> String {
        let mut s = String::new();
        if let Some(e) = self.child.as_mut().and_then(|c| c.stderr.as_mut()) {
            let _ = e.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && c.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        // Keepers, successors and takeover processes name our mountpoint on their command
        // lines: none may outlive the test, whatever it did. A keeper killed in one sweep
        // may have started a successor just before: sweep until a sweep finds none.
        let mark = self.mnt.to_string_lossy().into_owned();
        let connection = fuse_connection(&self.mnt);
        let sweep = || {
            for _ in 0..100 {
                if kill_all_naming(&mark) == 0 {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            false
        };
        // A process that outlives SIGKILL waits on the mount it was to serve: abort the
        // connection, or it (and this test's readers) would wait forever.
        if !sweep()
            && let Some(c) = connection
        {
            eprintln!("a daemon process of {mark} cannot die: aborting FUSE connection {c}");
            abort_fuse_connection(c);
            sweep();
        }
        if is_mounted(&self.mnt) {
            let _ = nix::mount::umount2(&self.mnt, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The FUSE connection (fusectl's number: the minor of the mount's device) mounted at `p`,
/// read from mountinfo so that nothing waits on the mount.
fn fuse_connection(p: &Path) -> Option<u32> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = p.to_string_lossy();
    info.lines().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        (f.get(4) == Some(&want.as_ref()) && l.contains(" - fuse."))
            .then(|| f.get(2)?.split_once(':')?.1.parse().ok())
            .flatten()
    })
}

/// Abort FUSE connection `c` through a private mount of fusectl.
fn abort_fuse_connection(c: u32) {
    let dir = std::env::temp_dir().join(unique(&format!("fusectl-{c}")));
    let _ = std::fs::create_dir_all(&dir);
    let mounted = nix::mount::mount(
        Some("fusectl"),
        &dir,
        Some("fusectl"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    );
    if mounted.is_ok() {
        let _ = std::fs::write(dir.join(c.to_string()).join("abort"), "1");
        let _ = nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH);
    }
    let _ = std::fs::remove_dir(&dir);
}

/// SIGKILL every process but this one whose command line contains `mark`; how many.
fn kill_all_naming(mark: &str) -> usize {
    let pids = processes_naming(mark);
    for &(pid, _) in &pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    pids.len()
}

/// The live processes but this one whose command line contains `mark`: pid and arguments.
pub fn processes_naming(mark: &str) -> Vec<(i32, Vec<String>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        if pid != std::process::id() as i32 && alive(pid) && cmdline.contains(mark) {
            found.push((pid, cmdline.split('\0').map(str::to_owned).collect()));
        }
    }
    found
}

/// The parent of `pid` (0 when it cannot be read).
fn parent_of(pid: i32) -> i32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command in parentheses (which may hold anything): state, then ppid.
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.split(' ').nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Whether `pid` runs (not gone, not a zombie).
pub fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// Poll `ok` until it holds; fail the test with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "{what} (within {timeout:?})");
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn is_mounted(p: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let want = p.to_string_lossy();
    info.lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_ref()))
}

/// A test cgroup, removed (with any process left in it killed) on drop.
pub struct Cgroup {
    pub path: PathBuf,
}

impl Cgroup {
    /// A child of this process's own cgroup in the hierarchy carrying `controller`
    /// (on v1 hosts the process's memory cgroup may be delegated, the others are the root).
    pub fn new(controller: &str, name: &str) -> Cgroup {
        let (mount, own) =
            own_cgroup(controller).unwrap_or_else(|| panic!("no {controller} cgroup"));
        Cgroup::make(mount.join(own.trim_start_matches('/')).join(unique(name)))
    }

    /// A child of this process's own cgroup in the unified (v2) hierarchy.
    pub fn unified(name: &str) -> Cgroup {
        let (mount, own) = own_unified().expect("no cgroup2 mount");
        Cgroup::make(mount.join(own.trim_start_matches('/')).join(unique(name)))
    }

    /// `name` below this cgroup, removed first on drop when declared after it.
    pub fn child(&self, name: &str) -> Cgroup {
        Cgroup {
            path: self.path.join(name),
        }
    }

    fn make(path: PathBuf) -> Cgroup {
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        Cgroup { path }
    }

    pub fn set(&self, file: &str, value: &str) {
        std::fs::write(self.path.join(file), value)
            .unwrap_or_else(|e| panic!("write {value} to {file}: {e}"));
    }

    pub fn get(&self, file: &str) -> String {
        std::fs::read_to_string(self.path.join(file)).unwrap_or_default()
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        for _ in 0..100 {
            let procs = std::fs::read_to_string(self.path.join("cgroup.procs")).unwrap_or_default();
            for p in procs
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            if !self.path.exists() || std::fs::remove_dir(&self.path).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("warning: could not remove {}", self.path.display());
    }
}

/// (mountpoint, our cgroup path) of the hierarchy with `controller` (v1) or, failing
/// that, the unified one.
pub fn own_cgroup(controller: &str) -> Option<(PathBuf, String)> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    for line in info.lines() {
        let (left, right) = line.split_once(" - ")?;
        let mnt = left.split(' ').nth(4)?;
        let mut r = right.split(' ');
        let (fstype, opts) = (r.next()?, r.nth(1)?);
        if fstype == "cgroup" && opts.split(',').any(|o| o == controller) {
            let path = own.lines().find_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, list, path) = (f.next()?, f.next()?, f.next()?);
                list.split(',')
                    .any(|c| c == controller)
                    .then(|| path.to_owned())
            })?;
            return Some((PathBuf::from(mnt), path));
        }
    }
    own_unified()
}

/// (mountpoint, our cgroup path) of the unified hierarchy.
pub fn own_unified() -> Option<(PathBuf, String)> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    for line in info.lines() {
        let (left, right) = line.split_once(" - ")?;
        if right.starts_with("cgroup2 ") {
            let mnt = left.split(' ').nth(4)?;
            let path = own.lines().find_map(|l| l.strip_prefix("0::"))?.to_owned();
            return Some((PathBuf::from(mnt), path));
        }
    }
    None
}

/// Run `script` with sh as the init of a new pid namespace whose cgroups are `cgroups`
/// (it is moved into them before the namespace is created, so its init starts there).
pub fn in_container(cgroups: &[&Cgroup], script: &str) -> Output {
    let paths: Vec<&Path> = cgroups.iter().map(|c| c.path.as_path()).collect();
    in_container_at(&paths, script)
}

/// `in_container` in cgroups named by path (a hierarchy's root, which no test may own).
pub fn in_container_at(cgroups: &[&Path], script: &str) -> Output {
    let mut setup = String::new();
    for cg in cgroups {
        setup.push_str(&format!(
            "echo $$ > '{}/cgroup.procs' || exit 97; ",
            cg.display()
        ));
    }
    setup.push_str("exec unshare --pid --fork --mount-proc sh -c \"$0\"");
    let out = Command::new("sh")
        .arg("-c")
        .arg(setup)
        .arg(script)
        .stdin(Stdio::null())
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "container script failed ({}): {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The numbers of a kernel CPU or node list file (`0-3,8`), ascending.
pub fn read_list(path: &str) -> Vec<u32> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut v = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => v.extend(a.parse::<u32>().unwrap()..=b.parse::<u32>().unwrap()),
            None => v.push(part.parse().unwrap()),
        }
    }
    v
}

/// The value in kB of `key` in meminfo-formatted text.
pub fn meminfo_kb(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in:\n{text}"))
}
