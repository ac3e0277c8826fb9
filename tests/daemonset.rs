//! The Kubernetes DaemonSet (contrib/kubernetes/lxcfs-uring.yaml) rolled out without a
//! cluster: its pods run from the image scripts/image.sh builds, under runc, as the
//! kubelet would have them run (privileged, the host's pid namespace, the manifest's
//! hostPath volumes with their type checks and mount propagation), on a "node" whose state
//! directories (/var/lib/lxcfs, /run/lxcfs-uring) live in a shared mount of the test's
//! own. Application containers bind the views as the manifest's example pod does.
//! scripts/test.sh builds the image once and names it in LXCFS_URING_IMAGE.

mod common;

use std::fs::File;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::runc::{Runc, Spec, VIEWS, json_string, mount, runc_or_skip, values};
use common::*;
use serde_json::Value;

const MANIFEST: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/contrib/kubernetes/lxcfs-uring.yaml"
);

/// The host paths the manifest's volumes name that are the node's own state (and what is
/// below them): the test gives each node its own copy of them. Every other hostPath is the
/// real one.
const NODE_STATE: [&str; 2] = ["/var/lib", "/run/lxcfs-uring"];

/// The capabilities by number.
const CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// An application container's reader: every view, open-read-close in a loop until SIGTERM;
/// prints how many reads, how many failed (an error or an empty file), the first failures
/// and the MemTotal lines it saw.
const READER: &str = r#"
import signal
stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
files = ["/proc/meminfo", "/proc/stat", "/proc/uptime", "/proc/cpuinfo", "/proc/loadavg",
         "/sys/devices/system/cpu/online"]
reads, failed, memtotal = 0, [], set()
while not stop:
    for f in files:
        try:
            with open(f, "rb") as fh:
                data = fh.read()
            if not data:
                failed.append(f + ": empty")
            elif f == "/proc/meminfo":
                memtotal.add(" ".join(data.split(b"\n")[0].decode().split()))
        except OSError as e:
            failed.append(f"{f}: {e}")
        reads += 1
print(f"reads={reads}")
print(f"failed={len(failed)}")
print(f"first={failed[:3]}")
print(f"memtotal={'|'.join(sorted(memtotal))}")
"#;

/// The manifest's documents, as JSON: python3-yaml reads the very file operators apply.
fn manifest() -> Vec<Value> {
    let out = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
            MANIFEST,
        ])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python3-yaml cannot read the manifest (scripts/test.sh installs python3-yaml): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The pod spec of the manifest's document of `kind` (a DaemonSet's is its template's).
fn pod_spec(docs: &[Value], kind: &str) -> Value {
    let doc = docs
        .iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in the manifest"));
    match kind {
        "Pod" => doc["spec"].clone(),
        _ => doc["spec"]["template"]["spec"].clone(),
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The volume named `name` of a pod spec.
fn volume<'a>(pod: &'a Value, name: &str) -> &'a Value {
    pod["volumes"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["name"] == name))
        .unwrap_or_else(|| panic!("no volume {name}"))
}

/// The image under test (LXCFS_URING_IMAGE, or one scripts/image.sh builds now), unpacked
/// by umoci into `dir/rootfs`, as a runtime unpacks a pod's image.
fn image_rootfs(dir: &Path) -> PathBuf {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    let archive = IMAGE.get_or_init(|| {
        if let Some(p) = std::env::var_os("LXCFS_URING_IMAGE") {
            return PathBuf::from(p);
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new(root.join("scripts/image.sh"))
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        assert!(out.status.success(), "scripts/image.sh failed");
        root.join(String::from_utf8(out.stdout).unwrap().trim())
    });
    let layout = dir.join("layout");
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(&layout).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(&layout));
    let tags = run(Command::new("umoci").arg("ls").arg("--layout").arg(&layout));
    let tag = tags.lines().next().expect("a tagged image");
    run(Command::new("umoci")
        .args(["raw", "unpack", "--image"])
        .arg(format!("{}:{tag}", layout.display()))
        .arg(&rootfs));
    rootfs
}

/// Run `c`; its stdout, or the test fails.
fn run(c: &mut Command) -> String {
    let out = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    assert!(
        out.status.success(),
        "{c:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A node in a fresh directory `dir`, which also holds the pods' bundles: its state
/// directories under `root`, which is bind-mounted on itself and made shared, as `/` is on
/// a systemd host (containerd refuses Bidirectional propagation from a private mount).
/// Unmounted, with whatever the pods propagated into it, and removed on drop (declare it
/// before the pods and containers, so they go first).
struct Node {
    dir: PathBuf,
    root: PathBuf,
}

impl Node {
    fn new(test: &str) -> Node {
        let dir = std::env::temp_dir().join(unique(test));
        let root = dir.join("node");
        // /var/lib/lxcfs as a node that ran the daemon before has it: an empty directory.
        for p in NODE_STATE.iter().chain(&["/var/lib/lxcfs"]) {
            std::fs::create_dir_all(root.join(&p[1..])).unwrap();
        }
        let node = Node { dir, root };
        run(Command::new("mount")
            .arg("--bind")
            .arg(&node.root)
            .arg(&node.root));
        run(Command::new("mount").arg("--make-rshared").arg(&node.root));
        node
    }

    /// Where the pods' hostPath `path` is: the node's own copy of its state, the host's
    /// file otherwise.
    fn host_path(&self, path: &str) -> PathBuf {
        if NODE_STATE
            .iter()
            .any(|s| path == *s || path.starts_with(&format!("{s}/")))
        {
            self.root.join(&path[1..])
        } else {
            PathBuf::from(path)
        }
    }

    /// What is on the node's /var/lib/lxcfs, the mount the pods share.
    fn lxcfs(&self) -> PathBuf {
        self.host_path("/var/lib/lxcfs")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-R")
            .arg("-l")
            .arg(&self.root)
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The kubelet's hostPath type check (pkg/volume/hostpath): a path that cannot be stat'ed
/// does not exist for it; `*OrCreate` then creates it (an "already exists" error counts as
/// done), the other types refuse to start the pod unless the path is of that type.
fn kubelet_hostpath_check(kind: &str, path: &Path) -> Result<(), String> {
    let made = |r: std::io::Result<()>| match r {
        Ok(()) => true,
        Err(e) => e.kind() == std::io::ErrorKind::AlreadyExists,
    };
    let meta = std::fs::metadata(path);
    let ok = match (kind, &meta) {
        ("", _) => true,
        ("DirectoryOrCreate", Err(_)) => made(std::fs::create_dir_all(path)),
        ("FileOrCreate", Err(_)) => made(
            File::options()
                .create(true)
                .append(true)
                .open(path)
                .map(drop),
        ),
        ("Directory" | "DirectoryOrCreate", Ok(m)) => m.is_dir(),
        ("File" | "FileOrCreate", Ok(m)) => m.is_file(),
        ("CharDevice", Ok(m)) => m.file_type().is_char_device(),
        _ => false,
    };
    match ok {
        true => Ok(()),
        false => Err(format!(
            "hostPath type check failed: {} is not a {kind} ({:?})",
            path.display(),
            meta.map(|m| m.file_type())
        )),
    }
}

/// containerd's CRI plugin on a bind source: one it cannot stat fails the container, a
/// missing one is created as a directory.
fn runtime_bind_source(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(path).map_err(|e| format!("mkdir {}: {e}", path.display()))
        }
        Err(e) => Err(format!("failed to stat {}: {e}", path.display())),
    }
}

/// What a privileged container gets: as containerd gives it, every capability the runtime
/// itself has (its bounding set; these machines' lacks CAP_SYS_RESOURCE).
fn privileged_capabilities() -> Vec<&'static str> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let bounding = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .expect("CapBnd in /proc/self/status");
    CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(bit, _)| bounding & (1 << bit) != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// The bundle of a pod's `container` as the kubelet has the runtime make it, named `name`,
/// from the image unpacked under `dir`: the manifest's command and args, privileged, in the
/// host's pid namespace, each volume checked and mounted with its propagation.
fn container_bundle(spec: &Value, container: &Value, node: &Node, dir: &Path, name: &str) -> Runc {
    assert_eq!(container["securityContext"]["privileged"], true);
    let bundle = dir.join(format!("pod-{name}"));
    let rootfs = image_rootfs(&bundle);

    let mut args = strings(&container["command"]);
    args.extend(strings(&container["args"]));
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &[]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "mode=755", "size=65536k"],
        ),
        mount("/dev/pts", "devpts", "devpts", &["nosuid", "noexec"]),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "rw"],
        ),
    ];
    let mut rootfs_propagation = "rprivate";
    for m in container["volumeMounts"].as_array().unwrap() {
        let v = volume(spec, m["name"].as_str().unwrap());
        let path = v["hostPath"]["path"]
            .as_str()
            .expect("hostPath volumes only");
        let source = node.host_path(path);
        let kind = v["hostPath"]["type"].as_str().unwrap_or("");
        kubelet_hostpath_check(kind, &source).unwrap();
        runtime_bind_source(&source).unwrap();
        // containerd's CRI plugin: Bidirectional is rshared and makes the rootfs
        // rshared; None is rprivate.
        let propagation = match m["mountPropagation"].as_str() {
            Some("Bidirectional") => {
                rootfs_propagation = "rshared";
                "rshared"
            }
            Some("HostToContainer") => "rslave",
            _ => "rprivate",
        };
        mounts.push(mount(
            m["mountPath"].as_str().unwrap(),
            &source.to_string_lossy(),
            "bind",
            &["rbind", propagation, "rw"],
        ));
    }
    let id = unique(&format!("pod-{name}"));
    let caps: Vec<String> = privileged_capabilities()
        .iter()
        .map(|c| json_string(c))
        .collect();
    let caps = caps.join(", ");
    let args: Vec<String> = args.iter().map(|a| json_string(a)).collect();
    let config = format!(
        r#"{{
  "ociVersion": "1.0.2",
  "process": {{
    "terminal": false,
    "user": {{ "uid": 0, "gid": 0 }},
    "args": [{args}],
    "env": ["PATH=/usr/bin:/bin:/usr/sbin:/sbin"],
    "cwd": "/",
    "rlimits": [],
    "capabilities": {{
      "bounding": [{caps}], "effective": [{caps}], "permitted": [{caps}]
    }}
  }},
  "root": {{ "path": {rootfs}, "readonly": false }},
  "hostname": "{name}",
  "mounts": [{mounts}],
  "linux": {{
    "cgroupsPath": "{id}",
    "rootfsPropagation": "{rootfs_propagation}",
    "resources": {{ "devices": [{{ "allow": true, "access": "rwm" }}] }},
    "namespaces": [{{ "type": "ipc" }}, {{ "type": "uts" }}, {{ "type": "mount" }}]
  }}
}}"#,
        args = args.join(", "),
        rootfs = json_string(&rootfs.to_string_lossy()),
        mounts = mounts.join(",\n    "),
    );
    std::fs::write(bundle.join("config.json"), config).unwrap();
    Runc {
        id,
        bundle,
        runtime: "runc".into(),
    }
}

/// A pod of the DaemonSet, run by runc as the kubelet has its runtime run it.
struct Pod {
    runc: Runc,
    log: PathBuf,
    probe: Vec<String>,
}

impl Pod {
    /// The DaemonSet's pod `name` on `node`, from the image unpacked under `dir`: its init
    /// containers run to their end, then its container is started (`container_bundle`).
    /// Returns once runc has started it.
    fn start(docs: &[Value], node: &Node, dir: &Path, name: &str) -> Pod {
        let spec = pod_spec(docs, "DaemonSet");
        assert_eq!(
            spec["hostPID"], true,
            "the daemon sees every container's pids"
        );
        let inits = spec["initContainers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for (i, init) in inits.iter().enumerate() {
            let runc = container_bundle(&spec, init, node, dir, &format!("{name}-init{i}"));
            let out = runc.spawn().wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "pod {name}'s init container {i} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let container = &spec["containers"][0];
        let pod = Pod {
            runc: container_bundle(&spec, container, node, dir, name),
            log: dir.join(format!("pod-{name}.log")),
            probe: strings(&container["readinessProbe"]["exec"]["command"]),
        };
        // runc's messages and the pod's output go to the log: a pipe would stay open in
        // the detached container.
        let log = File::create(&pod.log).unwrap();
        let started = Command::new("runc")
            .args(["run", "--detach", "--bundle"])
            .arg(&pod.runc.bundle)
            .arg(&pod.runc.id)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .status()
            .unwrap();
        assert!(started.success(), "runc run {name}: {}", pod.log_text());
        pod
    }

    /// The manifest's readiness probe, run in the pod as the kubelet runs it.
    fn ready(&self) -> bool {
        Command::new("runc")
            .args(["exec", &self.runc.id])
            .args(&self.probe)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// `start`, then wait until the pod is ready and the node's /var/lib/lxcfs answers.
    fn serving(docs: &[Value], node: &Node, dir: &Path, name: &str) -> Pod {
        let pod = Pod::start(docs, node, dir, name);
        pod.wait_ready();
        assert!(
            std::fs::read_to_string(node.lxcfs().join("proc/uptime")).is_ok(),
            "pod {name} is ready but its mount is not on the node's /var/lib/lxcfs; its log:\n{}",
            pod.log_text()
        );
        pod
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.ready() {
            assert!(
                Instant::now() < deadline,
                "pod {} not ready within 30 s; its log:\n{}",
                self.runc.id,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether process `pid` runs in this pod (its cgroup, which runc names by the id).
    fn holds(&self, pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|c| {
            c.lines()
                .any(|l| l.ends_with(&format!("/{}", self.runc.id)))
        })
    }

    /// Delete the pod as the kubelet does: SIGTERM to its process, a grace period, then
    /// everything left in it killed and the container removed.
    fn delete(self, grace: Duration) {
        self.runc.kill("TERM");
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && !self.stopped() {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("runc")
            .args(["kill", "--all", &self.runc.id, "KILL"])
            .stderr(Stdio::null())
            .status();
        // Drop: runc delete --force.
    }

    /// Every process of the pod SIGKILLed at once, then the pod removed: what a daemon
    /// stuck past its grace period, or the OOM killer taking the daemon and its keeper,
    /// leaves.
    fn kill_all(self) {
        let _ = Command::new("runc")
            .args(["kill", "--all", &self.runc.id, "KILL"])
            .stderr(Stdio::null())
            .status();
        // Drop: runc delete --force.
    }

    fn stopped(&self) -> bool {
        Command::new("runc")
            .args(["state", &self.runc.id])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("\"stopped\""))
    }
}

/// The daemon serving the node: the pid in the pidfile of the pods' runtime directory.
fn serving_pid(node: &Node) -> Option<i32> {
    std::fs::read_to_string(node.host_path("/run/lxcfs-uring").join("lxcfs.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|&pid| alive(pid))
}

/// The manifest's example pod binds exactly the views a runtime binds (runc.rs's VIEWS),
/// each from /var/lib/lxcfs, each with a hostPath type the kubelet checks without creating
/// anything: `File` for files and `Directory` for the cpu and node directories. A missing
/// path (no daemon yet after a node reboot) then keeps the pod from starting until the
/// views are there; with no type or an `*OrCreate` one, the kubelet (or containerd's and
/// CRI-O's CRI, which create a missing bind source as a directory) would turn the view into
/// a directory on the node's disk under /var/lib/lxcfs and bind that into the container.
/// Returns the example pod's memory limit in bytes.
fn example_pod_binds_every_view_checked(docs: &[Value]) -> u64 {
    let spec = pod_spec(docs, "Pod");
    let container = &spec["containers"][0];
    let mut bound: Vec<String> = Vec::new();
    for m in container["volumeMounts"].as_array().unwrap() {
        let target = m["mountPath"].as_str().unwrap().trim_start_matches('/');
        let v = volume(&spec, m["name"].as_str().unwrap());
        assert_eq!(
            v["hostPath"]["path"].as_str(),
            Some(format!("/var/lib/lxcfs/{target}").as_str()),
            "{target}"
        );
        let want = match target {
            "sys/devices/system/cpu" | "sys/devices/system/node" => "Directory",
            _ => "File",
        };
        assert_eq!(v["hostPath"]["type"].as_str(), Some(want), "{target}");
        bound.push(target.to_owned());
    }
    bound.sort();
    let mut views: Vec<String> = VIEWS.iter().map(|v| v.to_string()).collect();
    views.sort();
    assert_eq!(bound, views);
    let memory = container["resources"]["limits"]["memory"].as_str().unwrap();
    let mib: u64 = memory.strip_suffix("Mi").unwrap().parse().unwrap();
    mib << 20
}

/// An application container like the manifest's example pod, reading every view until
/// stopped (`READER`).
fn reader(dir: &Path, node: &Node, name: &str, memory: u64) -> (Runc, Child) {
    let script = format!("exec python3 -c {}", shell_quote(READER));
    let mut spec = Spec::new(name, memory, "0", &script);
    let views = node.lxcfs();
    spec.views = Some(&views);
    let runc = Runc::with(dir, &spec);
    let child = runc.spawn();
    (runc, child)
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Stop a reader and check what it saw: reads, none failed, and the container's own
/// MemTotal only.
fn stop_reader(runc: &Runc, child: Child, memory: u64) -> u64 {
    runc.kill("TERM");
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let v = values(&text);
    let reads: u64 = v
        .get("reads")
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "reader {} printed no totals: {text}\n{}",
                runc.id,
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert_eq!(
        v["failed"], "0",
        "reader {}: failed reads, first {}",
        runc.id, v["first"]
    );
    assert_eq!(
        v["memtotal"],
        format!("MemTotal: {} kB", memory >> 10),
        "reader {} saw another MemTotal",
        runc.id
    );
    assert!(reads > 100, "reader {} read only {reads} files", runc.id);
    reads
}

/// An application container `name` reads its views for a second: none fails, its own
/// memory.
fn app_sees_its_views(dir: &Path, node: &Node, name: &str, memory: u64) {
    let (runc, child) = reader(dir, node, name, memory);
    std::thread::sleep(Duration::from_secs(1));
    stop_reader(&runc, child, memory);
}

/// What every test starts from, unless it must skip: the manifest, the example pod's
/// memory limit (its views checked), and a node named after the test.
fn setup(test: &str) -> Option<(Vec<Value>, u64, Node)> {
    let ready = root_or_skip(test)
        && runc_or_skip(test)
        && host_has_or_skip(
            test,
            Command::new("umoci").arg("--version").output().is_ok(),
            "umoci (scripts/test.sh installs it)",
        );
    if !ready {
        return None;
    }
    let docs = manifest();
    let memory = example_pod_binds_every_view_checked(&docs);
    Some((docs, memory, Node::new(test)))
}

/// A rolling update as `maxSurge: 1, maxUnavailable: 0` makes it: the new pod starts beside
/// the old one and takes the mount over, the old pod is deleted; two application containers
/// bind the views and read all along: not one read fails, and they see their own memory.
#[test]
fn rolling_update_takes_the_mount_over_without_a_failed_read() {
    let Some((docs, memory, node)) =
        setup("rolling_update_takes_the_mount_over_without_a_failed_read")
    else {
        return;
    };
    let dir = node.dir.clone();

    let old = Pod::serving(&docs, &node, &dir, "old");
    let first = serving_pid(&node).expect("a daemon serving");
    assert!(old.holds(first), "the old pod serves");

    let readers: Vec<(Runc, Child)> = ["app-a", "app-b"]
        .iter()
        .map(|n| reader(&dir, &node, n, memory))
        .collect();
    std::thread::sleep(Duration::from_secs(2));

    let new = Pod::serving(&docs, &node, &dir, "new");
    wait_until("the new pod serves", Duration::from_secs(20), || {
        serving_pid(&node).is_some_and(|pid| new.holds(pid))
    });
    wait_until("the old daemon leaves", Duration::from_secs(10), || {
        !alive(first)
    });
    std::thread::sleep(Duration::from_secs(2));
    let old_log = old.log_text();
    old.delete(Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(2));
    assert!(new.ready(), "the new pod serves after the old one is gone");

    let mut reads = 0;
    for (runc, child) in readers {
        reads += stop_reader(&runc, child, memory);
    }
    eprintln!(
        "rollout: {reads} reads by 2 containers, none failed; old pod's log:\n{old_log}\nnew pod's log:\n{}",
        new.log_text()
    );
    new.delete(Duration::from_secs(10));
}

/// After a node reboot the hostPath /var/lib/lxcfs is an empty directory and no daemon
/// runs. The example pod's hostPath checks refuse to start it and create nothing (the
/// reason no view turns into a directory), and so does runc; the DaemonSet's pod then
/// mounts afresh where the node sees it, the checks pass, and the application container
/// sees its own memory.
#[test]
fn after_a_node_reboot_no_view_turns_into_a_directory() {
    let Some((docs, memory, node)) = setup("after_a_node_reboot_no_view_turns_into_a_directory")
    else {
        return;
    };
    let app = pod_spec(&docs, "Pod");
    let dir = node.dir.clone();
    let checks = || -> Vec<Result<(), String>> {
        app["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                let path = node.host_path(v["hostPath"]["path"].as_str().unwrap());
                kubelet_hostpath_check(v["hostPath"]["type"].as_str().unwrap_or(""), &path)
            })
            .collect()
    };

    // Booted, no daemon yet: every check fails, and nothing appears on the node. runc,
    // given the views' bind mounts regardless, refuses the missing sources too.
    assert!(checks().iter().all(|c| c.is_err()), "{:?}", checks());
    let views = node.lxcfs();
    let mut early = Spec::new("app-before-daemon", memory, "0", "true");
    early.views = Some(&views);
    let early = Runc::with(&dir, &early).spawn().wait_with_output().unwrap();
    assert!(!early.status.success(), "runc started without the views");
    assert_eq!(
        std::fs::read_dir(node.lxcfs()).unwrap().count(),
        0,
        "something was created under /var/lib/lxcfs"
    );

    let pod = Pod::serving(&docs, &node, &dir, "booted");
    assert!(checks().iter().all(|c| c.is_ok()), "{:?}", checks());
    app_sees_its_views(&dir, &node, "app-after-boot", memory);
    pod.delete(Duration::from_secs(10));
}

/// Deleting the pod that serves, with no new one beside it (a drain), stops its daemon with
/// the kubelet's SIGTERM, which unmounts: the node's /var/lib/lxcfs is a plain directory
/// again, not a dead mount, and the DaemonSet's next pod on the node mounts afresh.
#[test]
fn deleting_the_serving_pod_leaves_the_node_to_the_next_one() {
    let Some((docs, memory, node)) =
        setup("deleting_the_serving_pod_leaves_the_node_to_the_next_one")
    else {
        return;
    };
    let dir = node.dir.clone();

    let pod = Pod::serving(&docs, &node, &dir, "drained");
    let log = pod.log_text();
    pod.delete(Duration::from_secs(10));
    assert!(
        !is_mounted(&node.lxcfs()),
        "the deleted pod left a mount on the node; its log:\n{log}"
    );

    let next = Pod::serving(&docs, &node, &dir, "next");
    app_sees_its_views(&dir, &node, "app-after-drain", memory);
    next.delete(Duration::from_secs(10));
}

/// A pod whose processes were all SIGKILLed at once leaves its mount dead on the node
/// (ENOTCONN for anything but the attributes the kernel still caches). The next pod's
/// /var/lib/lxcfs volume would bind that dead mount itself, and a fresh mount made there
/// would stay in the pod; its init container unmounts the dead mount through the parent
/// directory first, and the pod mounts afresh where the node sees it.
#[test]
fn a_mount_left_dead_is_cleared_by_the_next_pod() {
    let Some((docs, memory, node)) = setup("a_mount_left_dead_is_cleared_by_the_next_pod") else {
        return;
    };
    let dir = node.dir.clone();

    Pod::serving(&docs, &node, &dir, "killed").kill_all();
    let errno = || {
        std::fs::read_dir(node.lxcfs())
            .err()
            .and_then(|e| e.raw_os_error())
    };
    wait_until(
        "the killed pod's mount is dead on the node",
        Duration::from_secs(10),
        || errno() == Some(libc::ENOTCONN),
    );

    let next = Pod::serving(&docs, &node, &dir, "after-kill");
    assert_eq!(errno(), None, "{}", next.log_text());
    app_sees_its_views(&dir, &node, "app-after-kill", memory);
    next.delete(Duration::from_secs(10));
}
