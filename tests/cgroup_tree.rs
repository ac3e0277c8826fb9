//! The /cgroup tree (--enable-cgroup) with real cgroups and pid namespaces: a container
//! sees and manages its own cgroups and nothing else, and escape attempts fail.

mod common;

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// The cgroup's path below its hierarchy's mountpoint.
fn rel(cg: &Cgroup, mount: &Path) -> String {
    cg.path
        .strip_prefix(mount)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn name(cg: &Cgroup) -> String {
    cg.path.file_name().unwrap().to_string_lossy().into_owned()
}

/// Shell functions for container scripts: `try KEY CMD` prints KEY=ok or KEY=<the error
/// message's last part> (e.g. "No such file or directory").
const TRY: &str = r#"try() { k=$1; shift; if o=$(sh -c "$*" 2>&1); then echo "$k=ok"; else echo "$k=${o##*: }"; fi; }
"#;

/// KEY=VALUE lines of a container script's output.
fn results(out: &std::process::Output) -> HashMap<String, String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            // dash's wording for ENOENT when a redirection's directory is missing.
            let v = match v.trim() {
                "Directory nonexistent" => ENOENT,
                v => v,
            };
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn get<'a>(r: &'a HashMap<String, String>, k: &str) -> &'a str {
    r.get(k)
        .unwrap_or_else(|| panic!("no {k} in {r:?}"))
        .as_str()
}

const ENOENT: &str = "No such file or directory";
const EACCES: &str = "Permission denied";

#[test]
fn a_container_sees_and_manages_only_its_own_cgroup() {
    if !root_or_skip("a_container_sees_and_manages_only_its_own_cgroup") {
        return;
    }
    let d = Daemon::start("cgtree", &["--enable-cgroup"]);
    let (mount, _) = own_cgroup("memory").unwrap();
    let c1 = Cgroup::new("memory", "c1");
    let c2 = Cgroup::new("memory", "c2");
    let _sub = c1.child("sub");
    let tree = d.path("cgroup/memory");
    let own = rel(&c1, &mount);
    let parent = own.rsplit_once('/').map_or("", |(p, _)| p).to_owned();
    let first = own.split('/').next().unwrap().to_owned();
    let outsider = std::process::id();
    let script = format!(
        r#"{TRY}
M={tree}; P=$M/{parent}; C=$M/{own}
echo "top=$(ls $M | tr '\n' ' ')"
echo "parent=$(ls $P | tr '\n' ' ')"
try sibling "ls $P/{c2}"
try dotdot "stat $C/../{c2}"
try parentfile "cat $P/memory.limit_in_bytes"
try mkparent "mkdir $P/evil"
try mksibling "mkdir $P/{c2}/evil"
try wsibling "/bin/echo 1 > $P/{c2}/cgroup.procs"
try symlink "ln -s / $C/link"
try rename "mv $C/memory.limit_in_bytes $C/x"
echo "tasks=$(cat $C/tasks | tr '\n' ' ')"
# Read by the shell itself, so no short-lived reader is in the list.
echo "foreign=$(while read p; do [ -d /proc/$p ] || echo $p; done < $C/cgroup.procs)"
sleep 100 & S=$!
try mkdir "mkdir $C/sub"
try limit "echo 100M > $C/sub/memory.limit_in_bytes"
echo "limitread=$(cat $C/sub/memory.limit_in_bytes)"
try move "echo $S > $C/sub/cgroup.procs"
echo "moved=$(grep :memory: /proc/$S/cgroup)"
try outsider "/bin/echo {outsider} > $C/sub/cgroup.procs"
try garbage "/bin/echo x > $C/sub/cgroup.procs"
try eventfds "/bin/echo 3 4 > $C/sub/cgroup.event_control"
try back "echo $S > $C/cgroup.procs"
echo "backcg=$(grep :memory: /proc/$S/cgroup)"
kill $S
try busy "rmdir $C"
try rmdir "rmdir $C/sub"
"#,
        tree = tree.display(),
        c2 = name(&c2),
    );
    let out = in_container(&[&c1], &script);
    let r = results(&out);
    assert_eq!(get(&r, "top"), first, "only the way toward our own cgroup");
    assert_eq!(get(&r, "parent"), name(&c1));
    for k in ["sibling", "dotdot", "parentfile", "mksibling", "wsibling"] {
        assert_eq!(
            get(&r, k),
            ENOENT,
            "{k}: another's cgroup does not exist for us"
        );
    }
    assert_eq!(get(&r, "garbage"), "Invalid argument");
    assert_eq!(
        get(&r, "eventfds"),
        "Invalid argument",
        "fd numbers are not ours to lend"
    );
    assert_eq!(get(&r, "mkparent"), EACCES, "ancestors are read-only");
    assert_ne!(get(&r, "symlink"), "ok");
    assert_ne!(get(&r, "rename"), "ok");
    assert!(
        get(&r, "tasks").split(' ').any(|p| p == "1"),
        "tasks in the container's numbering: {r:?}"
    );
    assert_eq!(
        get(&r, "foreign"),
        "",
        "every pid listed is one the container has"
    );
    for k in ["mkdir", "limit", "move", "back", "rmdir"] {
        assert_eq!(get(&r, k), "ok", "{k}: {r:?}");
    }
    assert_eq!(get(&r, "limitread"), "104857600");
    assert!(get(&r, "moved").ends_with(&format!("/{own}/sub")), "{r:?}");
    assert!(get(&r, "backcg").ends_with(&format!("/{own}")), "{r:?}");
    assert_eq!(
        get(&r, "outsider"),
        "No such process",
        "a pid it cannot see"
    );
    assert_eq!(
        get(&r, "busy"),
        EACCES,
        "its own cgroup is not its to remove"
    );
    // The real cgroups agree, and nothing outside moved.
    assert!(!c1.path.join("sub").exists());
    assert!(c2.path.exists());
    let ours = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    assert!(!ours.contains(&own), "the test process was not pulled in");
}

#[test]
fn credentials_are_checked_as_the_kernel_checks_them() {
    if !root_or_skip("credentials_are_checked_as_the_kernel_checks_them") {
        return;
    }
    let d = Daemon::start("cgcreds", &["--enable-cgroup"]);
    let (mount, _) = own_cgroup("memory").unwrap();
    let c1 = Cgroup::new("memory", "creds");
    let _u = c1.child("u");
    let c = d.path("cgroup/memory").join(rel(&c1, &mount));
    let user = |cmd: &str| {
        format!(
            "try {cmd}",
            cmd = cmd.replace(
                "CMD",
                "setpriv --reuid 1000 --regid 1000 --clear-groups sh -c"
            )
        )
    };
    let script = |more: &str| format!("{TRY}C={}\n{more}", c.display());
    // Root-owned, as a cgroup is until it is delegated: a plain user may not create in it.
    let r = results(&in_container(
        &[&c1],
        &script(&user(r#"denied "CMD 'mkdir $C/u'""#)),
    ));
    assert_eq!(get(&r, "denied"), EACCES);
    // Delegated to uid 1000 (the directory and its files, as a runtime does).
    for p in std::iter::once(c1.path.clone()).chain(
        std::fs::read_dir(&c1.path)
            .unwrap()
            .map(|e| e.unwrap().path()),
    ) {
        std::os::unix::fs::chown(&p, Some(1000), Some(1000)).unwrap();
    }
    let more = [
        user(r#"mkdir "CMD 'mkdir $C/u'""#),
        // init (root) is not the user's to move; the user's own shell is.
        user(r#"moveroot "CMD '/bin/echo 1 > $C/u/cgroup.procs'""#),
        user(r#"moveself "CMD 'echo 0 > $C/u/cgroup.procs; grep -q /u\$ /proc/self/cgroup'""#),
        user(r#"chmod "CMD 'chmod 700 $C/u'""#),
        user(r#"chown "CMD 'chown 0 $C/u'""#),
    ]
    .join("\n");
    let r = results(&in_container(&[&c1], &script(&more)));
    assert_eq!(get(&r, "mkdir"), "ok", "{r:?}");
    assert_eq!(get(&r, "moveroot"), EACCES);
    assert_eq!(get(&r, "moveself"), "ok", "{r:?}");
    assert_eq!(get(&r, "chmod"), "ok");
    assert_eq!(get(&r, "chown"), "Operation not permitted");
    // The new cgroup and its files belong to their creator, as the kernel makes them.
    let u = c1.path.join("u");
    let meta = std::fs::metadata(&u).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o777),
        (1000, 1000, 0o700)
    );
    assert_eq!(
        std::fs::metadata(u.join("cgroup.procs")).unwrap().uid(),
        1000
    );
}

#[test]
fn the_unified_hierarchy_is_confined_too() {
    if !root_or_skip("the_unified_hierarchy_is_confined_too") {
        return;
    }
    let d = Daemon::start("cgv2", &["--enable-cgroup"]);
    let (mount, _) = own_unified().unwrap();
    let c1 = Cgroup::unified("v2a");
    let c2 = Cgroup::unified("v2b");
    let _sub = c1.child("sub");
    let own = rel(&c1, &mount);
    let script = format!(
        r#"{TRY}
M={tree}; C=$M/{own}
echo "top=$(ls $M | tr '\n' ' ')"
try sibling "ls $M/{c2}"
echo "procs=$(cat $C/cgroup.procs | tr '\n' ' ')"
sleep 100 & S=$!
try mkdir "mkdir $C/sub"
try move "echo $S > $C/sub/cgroup.procs"
echo "threads=$(cat $C/sub/cgroup.threads | tr '\n' ' ')"
echo "S=$S"
try back "echo $S > $C/cgroup.procs"
kill $S
try rmdir "rmdir $C/sub"
"#,
        tree = d.path("cgroup/unified").display(),
        c2 = rel(&c2, &mount),
    );
    let r = results(&in_container(&[&c1], &script));
    assert_eq!(
        get(&r, "top"),
        own.split('/').next().unwrap(),
        "only the way toward our own cgroup"
    );
    assert_eq!(get(&r, "sibling"), ENOENT);
    assert!(get(&r, "procs").split(' ').any(|p| p == "1"), "{r:?}");
    for k in ["mkdir", "move", "back", "rmdir"] {
        assert_eq!(get(&r, k), "ok", "{k}: {r:?}");
    }
    assert_eq!(
        get(&r, "threads"),
        get(&r, "S"),
        "the moved process's one thread, in the container's numbering"
    );
}

#[test]
fn the_tree_exists_only_when_asked_for() {
    if !root_or_skip("the_tree_exists_only_when_asked_for") {
        return;
    }
    let d = Daemon::start("cgoff", &[]);
    assert!(!d.path("cgroup").exists());
    let names: Vec<String> = std::fs::read_dir(&d.mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.contains(&"cgroup".to_owned()), "{names:?}");
    let d = Daemon::start("cgon", &["--enable-cgroup"]);
    let mut hier: Vec<String> = std::fs::read_dir(d.path("cgroup"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    hier.sort();
    // Every hierarchy mounted here, named as lxcfs names them.
    let mounted = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    for line in mounted.lines() {
        let list = line.split(':').nth(1).unwrap();
        let want = match list {
            "" => "unified".to_owned(),
            l => l.trim_start_matches("name=").to_owned(),
        };
        assert!(hier.contains(&want), "{want} missing from {hier:?}");
    }
}

/// The issue's finish line: a container whose rootfs LXC's mount hook prepared manages its
/// cgroups through /sys/fs/cgroup/<hierarchy> and cannot see another's.
#[test]
fn lxc_hook_gives_a_container_its_cgroups() {
    if !root_or_skip("lxc_hook_gives_a_container_its_cgroups") {
        return;
    }
    let d = Daemon::start("cglxc", &["--enable-cgroup"]);
    let (mount, _) = own_cgroup("memory").unwrap();
    let c1 = Cgroup::new("memory", "lxc1");
    let c2 = Cgroup::new("memory", "lxc2");
    let _sub = c1.child("sub");
    let rootfs = d.dir.join("rootfs");
    for dir in [
        "bin",
        "dev",
        "proc",
        "sys/fs/cgroup/memory",
        "sys/fs/cgroup/unified",
    ] {
        std::fs::create_dir_all(rootfs.join(dir)).unwrap();
    }
    std::fs::copy(busybox(), rootfs.join("bin/busybox")).unwrap();
    let own = rel(&c1, &mount);
    let parent = own.rsplit_once('/').map_or("", |(p, _)| p).to_owned();
    // Inside the container (chrooted, its own pid namespace): only busybox.
    let inside = format!(
        r#"B=/bin/busybox; $B mount -t proc proc /proc; $B mknod /dev/null c 1 3
M=/sys/fs/cgroup/memory; C=$M/{own}
echo "parent=$($B ls $M/{parent} | $B tr '\n' ' ')"
$B ls $M/{parent}/{c2} >/dev/null 2>&1 && echo sibling=seen || echo sibling=hidden
$B sleep 100 & S=$!
$B mkdir $C/sub && echo $S > $C/sub/cgroup.procs && echo move=ok
echo "now=$($B grep :memory: /proc/$S/cgroup)"
echo $S > $C/cgroup.procs && $B rmdir $C/sub && echo cleanup=ok
$B kill $S
"#,
        c2 = name(&c2)
    );
    let hook = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/lxc/lxc.mount.hook");
    let script = format!(
        "echo $$ > {procs} && exec unshare -m --propagation private sh -c '{hook} && exec unshare --pid --fork chroot {root} /bin/busybox sh -c \"$0\"' \"$0\"",
        procs = c1.path.join("cgroup.procs").display(),
        hook = hook.display(),
        root = rootfs.display(),
    );
    let out = Command::new("sh")
        .args(["-c", &script, &inside])
        .env("LXC_ROOTFS_MOUNT", &rootfs)
        .env("LXCFS_DIR", &d.mnt)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let r = results(&out);
    assert_eq!(get(&r, "parent"), name(&c1));
    assert_eq!(get(&r, "sibling"), "hidden");
    assert_eq!(get(&r, "move"), "ok");
    assert!(get(&r, "now").ends_with(&format!("/{own}/sub")), "{r:?}");
    assert_eq!(get(&r, "cleanup"), "ok");
}

fn busybox() -> PathBuf {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("busybox-static (scripts/test.sh installs it)")
}

/// A cgroup removed while the tree has it looked up and open: ENOENT, and serving goes on.
#[test]
fn a_removed_cgroup_is_gone_not_broken() {
    if !root_or_skip("a_removed_cgroup_is_gone_not_broken") {
        return;
    }
    use std::io::Read;
    let d = Daemon::start("cggone", &["--enable-cgroup"]);
    let (mount, _) = own_cgroup("memory").unwrap();
    let c1 = Cgroup::new("memory", "gone");
    let dir = d.path("cgroup/memory").join(rel(&c1, &mount));
    let mut open = std::fs::File::open(dir.join("memory.limit_in_bytes")).unwrap();
    assert!(dir.join("tasks").exists());
    std::fs::remove_dir(&c1.path).unwrap();
    // The open's snapshot serves reads for a few milliseconds; after that a read renders
    // anew and finds the cgroup gone.
    std::thread::sleep(std::time::Duration::from_millis(50));
    let mut buf = String::new();
    let err = open.read_to_string(&mut buf).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "{err}");
    assert!(!dir.exists());
    assert!(
        std::fs::read_dir(dir.parent().unwrap())
            .unwrap()
            .all(|e| e.unwrap().path() != dir)
    );
    // The rest of the mount is unaffected.
    assert!(
        std::fs::read_to_string(d.path("proc/meminfo"))
            .unwrap()
            .starts_with("MemTotal:")
    );
}
