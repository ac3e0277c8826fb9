//! LXC for real: `lxc-create -t busybox` makes a container in a private lxcpath, its
//! config includes our LXC configuration (contrib/lxc/00-lxcfs.conf, as scripts/install.sh
//! installs it, with its hooks pointed at this tree's), its memory limit and cpuset come
//! from lxc.cgroup.* keys, and `lxc-start` runs it. Busybox programs run by `lxc-attach`
//! must see the container's limits and uptime through the views the mount hook bound.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::runc::labelled;
use common::*;

const MIB256: u64 = 256 << 20;

/// An LXC container in a private lxcpath; stopped, destroyed and its cgroups removed on
/// drop, whatever the test did.
struct Lxc {
    lxcpath: PathBuf,
    name: String,
    /// lxc-start's log (its monitor's, hooks' output included), at DEBUG.
    log: PathBuf,
    /// Held until the container and its cgroups are gone (fields drop after `drop`).
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
}

/// One container at a time: LXC's shared lxc.pivot cgroups, which the cleanup removes,
/// must not go while another container's monitor uses them.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Lxc {
    /// `lxc-create -t busybox` of `name` in `lxcpath`, then `extra` appended to its config.
    fn create(lxcpath: &Path, name: &str, extra: &str) -> Lxc {
        std::fs::create_dir_all(lxcpath).unwrap();
        let c = Lxc {
            lxcpath: lxcpath.to_path_buf(),
            log: lxcpath.join(format!("{name}.log")),
            name: name.to_owned(),
            _one_at_a_time: ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner()),
        };
        let out = c.lxc("lxc-create", &["-t", "busybox"]);
        assert!(out.status.success(), "lxc-create: {}", text(&out));
        let config = lxcpath.join(name).join("config");
        // The template's network (a bridge this host lacks) and AppArmor profile go: the
        // test is about the views, not about LXC's networking or confinement.
        let kept: Vec<String> = std::fs::read_to_string(&config)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("lxc.net.") && !l.starts_with("lxc.apparmor."))
            .map(str::to_owned)
            .collect();
        std::fs::write(&config, format!("{}\n{extra}", kept.join("\n"))).unwrap();
        c
    }

    /// An LXC command on this container with `args`, under a timeout.
    fn lxc(&self, tool: &str, args: &[&str]) -> Output {
        Command::new("timeout")
            .args(["--kill-after=5", "30", tool, "-P"])
            .arg(&self.lxcpath)
            .args(["-n", &self.name])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{tool}: {e}"))
    }

    /// Run `script` with busybox sh in the running container; its standard output.
    fn attach(&self, script: &str) -> String {
        let out = self.lxc(
            "lxc-attach",
            &[
                "--clear-env",
                "--set-var",
                "PATH=/bin:/sbin:/usr/bin:/usr/sbin",
                "--",
                "sh",
                "-c",
                script,
            ],
        );
        assert!(out.status.success(), "lxc-attach: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Lxc {
    /// The pid of the container's init, if it runs.
    fn init_pid(&self) -> Option<i32> {
        let out = self.lxc("lxc-info", &["--pid", "--no-humanize"]);
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    }

    /// Reboot the container (`lxc-stop --reboot`) and wait until its new init runs.
    fn reboot(&self) {
        let before = self.init_pid();
        let out = self.lxc("lxc-stop", &["--reboot"]);
        assert!(out.status.success(), "lxc-stop --reboot: {}", text(&out));
        wait_until(
            "the container running again",
            Duration::from_secs(20),
            || self.init_pid().is_some_and(|p| Some(p) != before),
        );
    }

    /// How often lxc-start's log holds `what`.
    fn logged(&self, what: &str) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches(what)
            .count()
    }
}

impl Drop for Lxc {
    fn drop(&mut self) {
        let _ = self.lxc("lxc-stop", &["--kill"]);
        let _ = self.lxc("lxc-destroy", &["--force"]);
        // LXC leaves its monitor's and payload's cgroups when a stop fails, and its shared
        // lxc.pivot ones always: remove what is empty.
        let (memory, own) = own_cgroup("memory").expect("a memory cgroup");
        let mut parents = vec![memory.join(own.trim_start_matches('/'))];
        let others = [
            "cpu",
            "cpuacct",
            "cpuset",
            "blkio",
            "devices",
            "freezer",
            "pids",
            "name=systemd",
        ];
        let others = others.iter().filter_map(|c| own_cgroup(c));
        for (mount, own) in others.chain(own_unified()) {
            parents.push(mount.join(own.trim_start_matches('/')));
        }
        // Once stopped, the monitor moves itself to lxc.pivot, removes its own and the
        // payload's cgroups, and exits; only then can lxc.pivot go. No panic here: this
        // may run while a failed test unwinds.
        for leaf in [
            format!("lxc.payload.{}", self.name),
            format!("lxc.monitor.{}", self.name),
            "lxc.pivot".to_owned(),
        ] {
            let dirs: Vec<PathBuf> = parents.iter().map(|p| p.join(&leaf)).collect();
            let deadline = Instant::now() + Duration::from_secs(5);
            while !dirs.iter().all(|d| !d.exists() || remove_cgroup_tree(d)) {
                if Instant::now() > deadline {
                    eprintln!("warning: LXC's {leaf} cgroups are left");
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Remove the cgroup `dir` and its descendants, deepest first (a monitor that rebooted its
/// container pivots again from inside lxc.pivot); whether it is gone.
fn remove_cgroup_tree(dir: &Path) -> bool {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup_tree(&entry.path());
        }
    }
    std::fs::remove_dir(dir).is_ok()
}

fn text(out: &Output) -> String {
    format!(
        "({}) {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// True when LXC's tools are installed; a loud skip otherwise, never under CI=true.
fn lxc_or_skip(test: &str) -> bool {
    let has = Command::new("lxc-start")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    host_has_or_skip(test, has, "LXC (package lxc; scripts/test.sh installs it)")
}

/// Our LXC configuration as scripts/install.sh installs it, with the hooks this tree's.
fn our_lxc_conf(dir: &Path) -> PathBuf {
    let contrib = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/lxc");
    let conf = std::fs::read_to_string(contrib.join("00-lxcfs.conf"))
        .unwrap()
        .replace("/usr/share/lxcfs-uring", &contrib.to_string_lossy());
    let path = dir.join("00-lxcfs-uring.conf");
    std::fs::write(&path, conf).unwrap();
    path
}

/// A busybox container limited to 256 MiB and one CPU by lxc.cgroup.* keys, started by
/// lxc-start with our configuration: what busybox reads in it through lxc-attach.
fn lxc_container_sees_its_limits(transport: &str) {
    if !lxc_or_skip("lxc_container_sees_its_limits") {
        return;
    }
    let d = Daemon::start(&format!("lxc-{transport}"), &["--transport", transport]);
    let cpu = if transport == "uring" { "0" } else { "1" };
    let c = started(&d.dir, &format!("lxc-{transport}"), cpu, &d.mnt);
    let out = c.attach(
        r#"
echo "meminfo=$(awk '/^MemTotal:/{print $2}' /proc/meminfo)"
echo "cpuinfo=$(grep -c ^processor /proc/cpuinfo)"
echo "online=$(cat /sys/devices/system/cpu/online)"
echo "uptime=$(cut -d. -f1 /proc/uptime)"
# mount point and file system type of every fuse mount
awk '{for (i = 7; $i != "-"; i++); if ($(i+1) ~ /^fuse/) print "mount=" $5 " " $(i+1)}' /proc/self/mountinfo
"#,
    );
    let get = labelled(&out);
    assert_eq!(get("meminfo"), (MIB256 / 1024).to_string(), "{out}");
    assert_eq!(get("cpuinfo"), "1", "{out}");
    assert_eq!(get("online"), cpu, "{out}");
    let up: u64 = get("uptime").parse().unwrap();
    assert!(up < 30, "the container's uptime, not the host's:\n{out}");
    // Every view the hook binds (each proc file the container's procfs has, but
    // pressure/, and the cpu and node directories where sysfs has them) is our file
    // system in the container.
    let mut want: Vec<String> = std::fs::read_dir(d.path("proc"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|f| f != "pressure" && Path::new("/proc").join(f).exists())
        .map(|f| format!("/proc/{f} fuse.lxcfs"))
        .collect();
    for dir in ["cpu", "node"] {
        let view = format!("sys/devices/system/{dir}");
        if d.path(&view).exists() && Path::new("/").join(&view).exists() {
            want.push(format!("/{view} fuse.lxcfs"));
        }
    }
    want.sort();
    let mut mounts: Vec<String> = out
        .lines()
        .filter_map(|l| l.strip_prefix("mount="))
        .map(str::to_owned)
        .collect();
    mounts.sort();
    assert_eq!(mounts, want, "the container's fuse mounts:\n{out}");
    let stop = c.lxc("lxc-stop", &["--kill"]);
    assert!(stop.status.success(), "lxc-stop: {}", text(&stop));
}

/// With no lxcfs-uring serving where the hooks look, the container starts all the same
/// with its own files: the host's memory, no fuse mount.
#[test]
fn lxc_container_starts_without_the_daemon() {
    let test = "lxc_container_starts_without_the_daemon";
    if !root_or_skip(test) || !lxc_or_skip(test) {
        return;
    }
    let d = Daemon::paths_only("lxc-nodaemon");
    let c = started(&d.dir, "lxc-nodaemon", "0", &d.mnt);
    let out = c.attach(
        r#"
echo "meminfo=$(awk '/^MemTotal:/{print $2}' /proc/meminfo)"
echo "fuse=$(grep -c ' - fuse' /proc/self/mountinfo)"
"#,
    );
    let get = labelled(&out);
    let host = std::fs::read_to_string("/proc/meminfo").unwrap();
    assert_eq!(
        get("meminfo"),
        meminfo_kb(&host, "MemTotal").to_string(),
        "{out}"
    );
    assert_eq!(get("fuse"), "0", "{out}");
}

/// A reboot runs the hooks again: the rebooted container has its views while the daemon
/// serves; once it has stopped, the next reboot starts with the container's own files and
/// the post-stop hook says so in the container's log (once: a stop says nothing).
#[test]
fn lxc_container_reboots_with_its_views() {
    let test = "lxc_container_reboots_with_its_views";
    if !root_or_skip(test) || !lxc_or_skip(test) {
        return;
    }
    let mut d = Daemon::start("lxc-reboot", &[]);
    let c = started(&d.dir, "lxc-reboot", "0", &d.mnt);
    let memtotal = || {
        labelled(&c.attach(r#"echo "meminfo=$(awk '/^MemTotal:/{print $2}' /proc/meminfo)""#))(
            "meminfo",
        )
    };
    let warning = "reboots without its /proc views";
    c.reboot();
    assert_eq!(memtotal(), (MIB256 / 1024).to_string());
    assert_eq!(c.logged(warning), 0);
    d.signal(nix::sys::signal::Signal::SIGTERM);
    d.wait_exit(Duration::from_secs(10))
        .expect("the daemon exits on SIGTERM");
    c.reboot();
    let host = std::fs::read_to_string("/proc/meminfo").unwrap();
    assert_eq!(memtotal(), meminfo_kb(&host, "MemTotal").to_string());
    assert_eq!(c.logged(warning), 1, "{}", c.log.display());
    let stop = c.lxc("lxc-stop", &["--kill"]);
    assert!(stop.status.success(), "lxc-stop: {}", text(&stop));
    assert_eq!(c.logged(warning), 1, "a stop says nothing");
}

/// A busybox container named after `name` (made unique) in an lxcpath in `dir`, limited to
/// 256 MiB and the CPUs `cpus` by lxc.cgroup.* keys, with our configuration, started by
/// lxc-start with the hooks looking for the views at `lxcfs_dir`.
fn started(dir: &Path, name: &str, cpus: &str, lxcfs_dir: &Path) -> Lxc {
    // lxc.cgroup.relative: the container's cgroups go below lxc-start's, which in the
    // memory hierarchy is this process's own (the others are each hierarchy's root).
    let extra = format!(
        "lxc.net.0.type = empty\n\
         lxc.apparmor.profile = unconfined\n\
         lxc.include = {conf}\n\
         lxc.cgroup.relative = 1\n\
         lxc.cgroup.memory.limit_in_bytes = {MIB256}\n\
         lxc.cgroup.cpuset.cpus = {cpus}\n",
        conf = our_lxc_conf(dir).display(),
    );
    let name = unique(name);
    let c = Lxc::create(&dir.join("lxc"), &name, &extra);
    // The hooks find the mount through LXCFS_DIR, which lxc-start passes on to them.
    let log = c.log.clone();
    let start = Command::new("timeout")
        .args(["--kill-after=5", "30", "lxc-start", "-P"])
        .arg(&c.lxcpath)
        .args(["-n", &name, "-l", "DEBUG", "-o"])
        .arg(&log)
        .env("LXCFS_DIR", lxcfs_dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        start.status.success(),
        "lxc-start: {}\nlog:\n{}",
        text(&start),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    c
}

both_transports!(lxc_container_sees_its_limits);

/// With --enable-psi-poll the mount hook binds /proc/pressure too, and busybox in the
/// container arms a trigger through it as on the kernel's file.
#[test]
fn lxc_container_gets_pressure_when_the_daemon_takes_triggers() {
    let test = "lxc_container_gets_pressure_when_the_daemon_takes_triggers";
    if !root_or_skip(test) || !lxc_or_skip(test) {
        return;
    }
    if !host_has_or_skip(test, Path::new("/proc/pressure/cpu").exists(), "PSI") {
        return;
    }
    let d = Daemon::start("lxc-psi", &["--enable-psi-poll"]);
    let c = started(&d.dir, "lxc-psi", "0", &d.mnt);
    let out = c.attach(
        r#"
echo "pressure=$(awk '$5 == "/proc/pressure" {print $9}' /proc/self/mountinfo)"
exec 3<>/proc/pressure/memory
printf 'some 100000 2000000\000' >&3 && echo armed=yes
printf 'some 100000 2000000\000' >&3 2>/dev/null || echo again=refused
"#,
    );
    let get = labelled(&out);
    assert_eq!(get("pressure"), "fuse.lxcfs", "{out}");
    assert_eq!(get("armed"), "yes", "{out}");
    assert_eq!(get("again"), "refused", "EBUSY: {out}");
    let stop = c.lxc("lxc-stop", &["--kill"]);
    assert!(stop.status.success(), "lxc-stop: {}", text(&stop));
}
