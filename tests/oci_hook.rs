//! `lxcfs-uring oci-hook`, the OCI createContainer hook: runc runs containers whose
//! config.json lists no view mounts, only the hook, and inside, real programs see the
//! container's limits; with the daemon down or the opt-out annotation the container starts
//! with the host's files; and a hostile rootfs (symlinks out of it, directories where files
//! belong) gets nothing mounted anywhere it should not.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

use common::runc::*;
use common::*;

const MIB256: u64 = 256 << 20;
const HOOK: &str = env!("CARGO_BIN_EXE_lxcfs-uring");

/// What the containers print: their limits as programs see them, and where views are.
const SCRIPT: &str = r#"
echo "meminfo=$(awk '/^MemTotal:/{print $2}' /proc/meminfo)"
echo "free=$(free -k | awk '/^Mem:/{print $2}')"
echo "nproc=$(nproc)"
echo "conf=$(getconf _NPROCESSORS_CONF)"
echo "uptime=$(cut -d. -f1 /proc/uptime)"
echo "nodecpus=$(cat /sys/devices/system/node/node0/cpulist 2>/dev/null)"
echo "views=$(awk '/ - fuse\.lxcfs / {print $5}' /proc/self/mountinfo | sort | tr '\n' ' ')"
"#;

/// The views a container gets from the daemon at `mnt`: those the daemon offers whose
/// file the kernel's procfs and sysfs have.
fn offered(mnt: &Path, pressure: bool) -> BTreeSet<String> {
    let mut names: Vec<&str> = vec![
        "proc/cpuinfo",
        "proc/diskstats",
        "proc/loadavg",
        "proc/meminfo",
        "proc/slabinfo",
        "proc/stat",
        "proc/swaps",
        "proc/uptime",
        "proc/vmstat",
        "sys/devices/system/cpu",
        "sys/devices/system/node",
    ];
    if pressure {
        names.extend([
            "proc/pressure/cpu",
            "proc/pressure/io",
            "proc/pressure/memory",
        ]);
        names.push("proc/pressure/irq");
    }
    names
        .into_iter()
        .filter(|v| mnt.join(v).exists() && Path::new("/").join(v).exists())
        .map(|v| format!("/{v}"))
        .collect()
}

fn host_memtotal() -> String {
    meminfo_kb(
        &std::fs::read_to_string("/proc/meminfo").unwrap(),
        "MemTotal",
    )
    .to_string()
}

/// A container of `spec` with our hook: its values and the hook's log.
fn run_with_hook(
    dir: &Path,
    mnt: &Path,
    mut spec: Spec<'_>,
) -> (std::collections::HashMap<String, String>, String, String) {
    let log = dir.join(format!("hook-{}.log", spec.name));
    spec.create_container_hooks.push(oci_hook_entry(mnt, &log));
    let c = Runc::with(dir, &spec);
    let out = c.run();
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    (values(&out), out, log)
}

fn views_of(v: &std::collections::HashMap<String, String>) -> BTreeSet<String> {
    v.get("views")
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

#[test]
fn the_hook_gives_a_runc_container_its_views() {
    if !root_or_skip("the_hook_gives_a_runc_container_its_views")
        || !runc_or_skip("the_hook_gives_a_runc_container_its_views")
    {
        return;
    }
    let d = Daemon::start("ocihook-views", &[]);
    let (v, out, log) = run_with_hook(&d.dir, &d.mnt, Spec::new("hooked", MIB256, "0", SCRIPT));
    let kb = (MIB256 / 1024).to_string();
    for k in ["meminfo", "free"] {
        assert_eq!(v.get(k), Some(&kb), "{k}:\n{out}\nhook: {log}");
    }
    for k in ["nproc", "conf"] {
        assert_eq!(v.get(k).map(String::as_str), Some("1"), "{k}:\n{out}");
    }
    let up: u64 = v["uptime"].parse().unwrap();
    assert!(up < 30, "the container's uptime, not the host's:\n{out}");
    let want = offered(&d.mnt, false);
    assert!(want.contains("/proc/meminfo") && want.contains("/sys/devices/system/cpu"));
    if Path::new("/sys/devices/system/node/node0").exists() {
        assert!(want.contains("/sys/devices/system/node"));
        // The container's one CPU on node 0, not the host's.
        assert_eq!(v.get("nodecpus").map(String::as_str), Some("0"), "{out}");
    }
    assert_eq!(views_of(&v), want, "mounted views:\n{out}\nhook: {log}");
    assert!(
        log.contains(&format!("bound {} views", want.len())),
        "the hook's log: {log}"
    );
}

#[test]
fn pressure_views_only_when_the_annotation_asks() {
    if !root_or_skip("pressure_views_only_when_the_annotation_asks")
        || !runc_or_skip("pressure_views_only_when_the_annotation_asks")
    {
        return;
    }
    let d = Daemon::start("ocihook-psi", &[]);
    let mut spec = Spec::new("psi", MIB256, "0", SCRIPT);
    spec.annotations = vec![("io.lxcfs-uring.pressure", "true")];
    let (v, out, log) = run_with_hook(&d.dir, &d.mnt, spec);
    // Without PSI on the host the daemon offers no pressure files and this is the plain
    // list: the hook binds what exists.
    assert_eq!(views_of(&v), offered(&d.mnt, true), "{out}\nhook: {log}");
}

#[test]
fn a_container_starts_with_the_hosts_files_when_the_daemon_is_down() {
    if !root_or_skip("a_container_starts_with_the_hosts_files_when_the_daemon_is_down")
        || !runc_or_skip("a_container_starts_with_the_hosts_files_when_the_daemon_is_down")
    {
        return;
    }
    // A mountpoint nothing is mounted on.
    let d = Daemon::paths_only("ocihook-down");
    let (v, out, log) = run_with_hook(&d.dir, &d.mnt, Spec::new("down", MIB256, "0", SCRIPT));
    assert_eq!(v.get("meminfo"), Some(&host_memtotal()), "{out}");
    assert_eq!(views_of(&v), BTreeSet::new(), "{out}");
    let why = format!(
        "lxcfs-uring is not serving at {}: nothing is mounted there; the container keeps the host's files",
        d.mnt.display()
    );
    assert!(log.contains(&why), "the hook's log says why: {log}");
    assert_eq!(log.lines().count(), 1, "one line: {log}");
}

#[test]
fn the_opt_out_annotation_leaves_the_container_alone() {
    if !root_or_skip("the_opt_out_annotation_leaves_the_container_alone")
        || !runc_or_skip("the_opt_out_annotation_leaves_the_container_alone")
    {
        return;
    }
    let d = Daemon::start("ocihook-optout", &[]);
    let mut spec = Spec::new("optout", MIB256, "0", SCRIPT);
    spec.annotations = vec![("io.lxcfs-uring.views", "false")];
    let (v, out, log) = run_with_hook(&d.dir, &d.mnt, spec);
    assert_eq!(v.get("meminfo"), Some(&host_memtotal()), "{out}");
    assert_eq!(views_of(&v), BTreeSet::new(), "{out}");
    assert!(
        log.contains("views turned off by the annotation io.lxcfs-uring.views=false"),
        "{log}"
    );
}

/// The hook run directly (no runtime), as a runtime runs it, with `stdin`: exit code and
/// stderr.
fn hook_directly(mnt: &Path, stdin: &[u8]) -> (i32, String) {
    use std::io::Write;
    let mut child = Command::new(HOOK)
        .args(["oci-hook", "--mountpoint"])
        .arg(mnt)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(stdin);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn only_a_malformed_state_fails() {
    let d = Daemon::paths_only("ocihook-malformed");
    let (rc, err) = hook_directly(&d.mnt, b"{\"id\": \"x\", \"bundle\": ");
    assert_eq!(rc, 1, "{err}");
    assert_eq!(err.lines().count(), 1, "one sentence: {err}");
    assert!(
        err.contains("the container state on stdin is not JSON"),
        "{err}"
    );
    let (rc, err) = hook_directly(&d.mnt, b"{\"id\": \"x\", \"bundle\": \"relative\"}");
    assert_eq!(rc, 1, "{err}");
    assert!(err.contains("not an absolute path"), "{err}");
    // A well-formed state whose bundle has no config.json: logged, exit 0.
    let state = format!(
        r#"{{"ociVersion":"1.0.2","id":"nobundle","status":"creating","pid":1,"bundle":{}}}"#,
        json_string(&d.dir.join("no-such-bundle").to_string_lossy())
    );
    let (rc, err) = hook_directly(&d.mnt, state.as_bytes());
    assert_eq!(rc, 0, "{err}");
    assert!(err.contains("config.json: cannot open"), "{err}");
    // A mountpoint that does not exist: exit 0 and why.
    let bundle = d.dir.join("b");
    std::fs::create_dir_all(bundle.join("rootfs")).unwrap();
    std::fs::write(bundle.join("config.json"), r#"{"root":{"path":"rootfs"}}"#).unwrap();
    let state = format!(
        r#"{{"ociVersion":"1.0.2","id":"nomnt","status":"creating","pid":1,"bundle":{}}}"#,
        json_string(&bundle.to_string_lossy())
    );
    let (rc, err) = hook_directly(&d.dir.join("no-such-mountpoint"), state.as_bytes());
    assert_eq!(rc, 0, "{err}");
    assert!(
        err.contains("is not serving at") && err.contains("No such file or directory"),
        "{err}"
    );
}

/// (device, mount point, fstype) of every mount in a mountinfo text.
fn mounts(info: &str) -> Vec<(String, String, String)> {
    info.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            Some((
                f.get(2)?.to_string(),
                f.get(4)?.to_string(),
                right.split(' ').next()?.to_owned(),
            ))
        })
        .collect()
}

#[test]
fn a_hostile_rootfs_gets_nothing_mounted_outside_it() {
    if !root_or_skip("a_hostile_rootfs_gets_nothing_mounted_outside_it") {
        return;
    }
    let d = Daemon::start("ocihook-hostile", &[]);
    let outside = d.dir.join("outside");
    std::fs::create_dir_all(outside.join("devices/system/cpu")).unwrap();
    std::fs::create_dir_all(outside.join("cpuinfo-dir")).unwrap();
    std::fs::write(outside.join("meminfo"), "MemTotal: 1 kB\n").unwrap();
    let bundle = |name: &str| {
        let b = d.dir.join(name);
        std::fs::create_dir_all(b.join("rootfs/proc")).unwrap();
        std::fs::write(b.join("config.json"), r#"{"root":{"path":"rootfs"}}"#).unwrap();
        let state = format!(
            r#"{{"ociVersion":"1.0.2","id":"{name}","status":"creating","pid":1,"bundle":{}}}"#,
            json_string(&b.to_string_lossy())
        );
        std::fs::write(b.join("state.json"), state).unwrap();
        b
    };
    let link = |target: &Path, at: &Path| std::os::unix::fs::symlink(target, at).unwrap();
    // a: /proc is a plain directory of traps.
    let a = bundle("hostile-a");
    let ap = a.join("rootfs/proc");
    link(&outside.join("meminfo"), &ap.join("meminfo")); // a file outside the rootfs
    link(&outside.join("cpuinfo-dir"), &ap.join("cpuinfo")); // a directory outside it
    link(Path::new("/proc/diskstats"), &ap.join("diskstats")); // the host's procfs file
    link(
        Path::new("../../../../../../../../proc/stat"),
        &ap.join("stat"),
    );
    std::fs::create_dir(ap.join("uptime")).unwrap(); // a directory where a file belongs
    std::fs::write(ap.join("loadavg"), "0 0 0 1/1 1\n").unwrap(); // not procfs's file
    // The host's sysfs, whose devices/system/cpu would pass the check if followed.
    link(Path::new("/sys"), &a.join("rootfs/sys"));
    // b: a real procfs at /proc (mounted below), but /sys/devices leads out of the rootfs
    // to a directory of the same shape.
    let b = bundle("hostile-b");
    std::fs::create_dir_all(b.join("rootfs/sys")).unwrap();
    link(&outside.join("devices"), &b.join("rootfs/sys/devices"));

    let script = format!(
        r#"mount -t proc proc '{bp}' || exit 97
"$0" oci-hook --mountpoint '{mnt}' < '{a}/state.json' 2> '{a}/stderr'; echo "rc-a=$?" >&2
"$0" oci-hook --mountpoint '{mnt}' < '{b}/state.json' 2> '{b}/stderr'; echo "rc-b=$?" >&2
cat /proc/self/mountinfo"#,
        bp = b.join("rootfs/proc").display(),
        mnt = d.mnt.display(),
        a = a.display(),
        b = b.display(),
    );
    // A private mount namespace: whatever the hook mounts goes away with it.
    let out = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            HOOK,
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let info = String::from_utf8_lossy(&out.stdout);
    let rcs = String::from_utf8_lossy(&out.stderr);
    let err_a = std::fs::read_to_string(a.join("stderr")).unwrap_or_default();
    let err_b = std::fs::read_to_string(b.join("stderr")).unwrap_or_default();
    assert!(out.status.success(), "{rcs}");
    assert!(
        rcs.contains("rc-a=0") && rcs.contains("rc-b=0"),
        "{rcs}\n{err_a}\n{err_b}"
    );

    let b_proc = format!("{}/", b.join("rootfs/proc").display());
    let all = mounts(&info);
    let ours = &all
        .iter()
        .find(|(_, p, _)| Path::new(p) == d.mnt)
        .expect("the daemon's mount in the namespace")
        .0;
    // Every mount of our daemon's file system but its own mountpoint (other daemons on
    // this machine have theirs).
    let fuse: Vec<String> = all
        .iter()
        .filter(|(dev, p, _)| dev == ours && Path::new(p) != d.mnt)
        .map(|(_, p, _)| p.clone())
        .collect();
    // And no mount of any kind on the traps' targets (our daemon's mounts over the host's
    // /proc or /sys files would be in `fuse`, checked below).
    for (_, p, t) in &all {
        let p = Path::new(p);
        assert!(
            !p.starts_with(&outside) && !p.starts_with(&a),
            "{} ({t}) mounted:\n{info}",
            p.display()
        );
    }
    // Only b's procfs files got views, each its own file's.
    let want: BTreeSet<String> = offered(&d.mnt, false)
        .into_iter()
        .filter_map(|v| Some(format!("{b_proc}{}", v.strip_prefix("/proc/")?)))
        .collect();
    assert_eq!(
        fuse.iter().cloned().collect::<BTreeSet<_>>(),
        want,
        "views mounted only over b's procfs files:\n{info}\na: {err_a}\nb: {err_b}"
    );
    // Nothing outside the rootfs, nothing in a, and the host's own files untouched.
    for p in &fuse {
        assert!(p.starts_with(&b_proc), "{p} is outside b's /proc:\n{info}");
    }
    assert!(err_a.contains("bound 0 views"), "{err_a}");
    for (view, says) in [
        ("/proc/meminfo", "it is a symlink"),
        ("/proc/cpuinfo", "it is a symlink"),
        ("/proc/diskstats", "it is a symlink"),
        ("/proc/stat", "it is a symlink"),
        ("/proc/uptime", "it is a directory"),
        (
            "/proc/loadavg",
            "it is a regular file on a filesystem of type",
        ),
        ("/sys/devices/system/cpu", "symlink loop"),
    ] {
        assert!(
            err_a
                .lines()
                .any(|l| l.contains(&format!("{view}: ")) && l.contains(says)),
            "{view} refused ({says}):\n{err_a}"
        );
    }
    assert!(
        err_b.contains(&format!("bound {} views", want.len())),
        "{err_b}"
    );
}

/// Podman reads the hook from a hooks.d directory (`contrib/oci/lxcfs-uring.json`'s form)
/// and its container, with no view in its mounts, sees its limits through the views the
/// hook bound. Podman runs as `common::runc::podman_run` says these machines allow.
#[test]
fn the_hook_from_hooks_d_gives_a_podman_container_its_views() {
    let test = "the_hook_from_hooks_d_gives_a_podman_container_its_views";
    if !root_or_skip(test) || !runtime_or_skip(test, "podman") {
        return;
    }
    let d = Daemon::start("ocihook-podman", &[]);
    let hooks = d.dir.join("hooks.d");
    std::fs::create_dir_all(&hooks).unwrap();
    let log = d.dir.join("hook-podman.log");
    std::fs::write(
        hooks.join("lxcfs-uring.json"),
        format!(
            r#"{{ "version": "1.0.0", "hook": {},
  "when": {{ "always": true }}, "stages": ["createContainer"] }}"#,
            oci_hook_entry(&d.mnt, &log)
        ),
    )
    .unwrap();
    let script = r#"
echo "meminfo=$(awk '/^MemTotal:/{print $2}' /proc/meminfo)"
echo "cpuinfo=$(grep -c ^processor /proc/cpuinfo)"
echo "online=$(cat /sys/devices/system/cpu/online)"
echo "uptime=$(cut -d. -f1 /proc/uptime)"
echo "views=$(awk '/ - fuse\.lxcfs / {print $5}' /proc/self/mountinfo | sort | tr '\n' ' ')"
"#;
    let out = podman_run(
        "hooked-podman",
        &d.dir.join("podman-rootfs"),
        &["--hooks-dir".into(), hooks.to_string_lossy().into_owned()],
        &[
            "--memory".into(),
            "256m".into(),
            "--cpuset-cpus".into(),
            "0".into(),
        ],
        script,
    );
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    let v = values(&out);
    assert_eq!(
        v.get("meminfo"),
        Some(&(MIB256 / 1024).to_string()),
        "{out}\nhook: {log}"
    );
    assert_eq!(v.get("cpuinfo").map(String::as_str), Some("1"), "{out}");
    assert_eq!(v.get("online").map(String::as_str), Some("0"), "{out}");
    let up: u64 = v["uptime"].parse().unwrap();
    assert!(up < 30, "the container's uptime, not the host's:\n{out}");
    assert_eq!(
        views_of(&v),
        offered(&d.mnt, false),
        "mounted views:\n{out}\nhook: {log}"
    );
}

#[test]
fn pressure_views_when_the_daemon_takes_psi_triggers() {
    let test = "pressure_views_when_the_daemon_takes_psi_triggers";
    if !root_or_skip(test) || !runc_or_skip(test) {
        return;
    }
    let d = Daemon::start("ocihook-psi-poll", &["--enable-psi-poll"]);
    // No annotation: the daemon shows its pressure files writable, so the hook binds them.
    let spec = Spec::new("psi-poll", MIB256, "0", SCRIPT);
    let (v, out, log) = run_with_hook(&d.dir, &d.mnt, spec);
    assert_eq!(views_of(&v), offered(&d.mnt, true), "{out}\nhook: {log}");
    // The annotation still says no.
    let mut spec = Spec::new("psi-poll-off", MIB256, "0", SCRIPT);
    spec.annotations = vec![("io.lxcfs-uring.pressure", "false")];
    let (v, out, log) = run_with_hook(&d.dir, &d.mnt, spec);
    assert_eq!(views_of(&v), offered(&d.mnt, false), "{out}\nhook: {log}");
}
