//! runc (or crun) containers for the OCI tests (tests/oci.rs, tests/oci_hook.rs): a bundle
//! whose root file system is the host's /usr and /etc, read-only, so the programs are the
//! host's own, or an Alpine-like root of busybox and its applets (scripts/test.sh installs
//! runc, crun, procps, python3, busybox-static).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{Cgroup, host_has_or_skip, own_cgroup, unique};

/// The files runtimes bind-mount over the container's own: runc refuses mounts over any
/// other file under /proc (so `proc/vmstat` and `proc/pressure/*` only come by a hook).
pub const VIEWS: [&str; 9] = [
    "proc/cpuinfo",
    "proc/diskstats",
    "proc/loadavg",
    "proc/meminfo",
    "proc/stat",
    "proc/swaps",
    "proc/uptime",
    "sys/devices/system/cpu",
    "sys/devices/system/node",
];

/// What a bundle's config.json says beyond its defaults.
pub struct Spec<'a> {
    pub name: &'a str,
    /// Memory limit in bytes.
    pub memory: u64,
    /// The cpuset.
    pub cpus: &'a str,
    /// Run under sh -c.
    pub script: &'a str,
    /// Bind-mount the views of the daemon mounted here, as Docker and Kubernetes do.
    pub views: Option<&'a Path>,
    /// Entries of hooks.createContainer, each a JSON object.
    pub create_container_hooks: Vec<String>,
    /// The annotations.
    pub annotations: Vec<(&'a str, &'a str)>,
    /// The OCI runtime's command: `runc` or `crun`.
    pub runtime: &'a str,
    /// An Alpine-like root: /bin/busybox (static) and a link per applet, instead of the
    /// host's /usr and /etc.
    pub busybox_root: bool,
    /// More entries of config.json's mounts (each a JSON object, see `mount`), after the
    /// views.
    pub mounts: Vec<String>,
}

impl<'a> Spec<'a> {
    pub fn new(name: &'a str, memory: u64, cpus: &'a str, script: &'a str) -> Spec<'a> {
        Spec {
            name,
            memory,
            cpus,
            script,
            views: None,
            create_container_hooks: Vec::new(),
            annotations: Vec::new(),
            runtime: "runc",
            busybox_root: false,
            mounts: Vec::new(),
        }
    }
}

/// A runc container, deleted (and its cgroups with it) on drop.
pub struct Runc {
    pub id: String,
    pub bundle: PathBuf,
    pub runtime: String,
}

impl Runc {
    /// A bundle in `dir` whose container runs `script` under sh with the views of the
    /// daemon mounted at `views`, limited to `memory` bytes and the CPUs `cpus`.
    pub fn new(
        dir: &Path,
        views: &Path,
        name: &str,
        memory: u64,
        cpus: &str,
        script: &str,
    ) -> Runc {
        let mut spec = Spec::new(name, memory, cpus, script);
        spec.views = Some(views);
        Runc::with(dir, &spec)
    }

    /// A bundle in `dir` as `spec` says.
    pub fn with(dir: &Path, spec: &Spec<'_>) -> Runc {
        let name = spec.name;
        let bundle = dir.join(format!("bundle-{name}"));
        let rootfs = bundle.join("rootfs");
        for d in ["proc", "sys", "dev", "tmp", "usr", "etc"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        if spec.busybox_root {
            busybox_root(&rootfs);
        } else {
            for l in ["bin", "lib", "lib64", "sbin"] {
                let target = format!("usr/{l}");
                if Path::new("/").join(&target).exists() {
                    let _ = std::os::unix::fs::symlink(&target, rootfs.join(l));
                }
            }
        }
        let mut mounts = vec![
            mount("/proc", "proc", "proc", &[]),
            mount(
                "/dev",
                "tmpfs",
                "tmpfs",
                &["nosuid", "mode=755", "size=65536k"],
            ),
            mount("/tmp", "tmpfs", "tmpfs", &["nosuid", "nodev", "mode=1777"]),
            mount(
                "/sys",
                "sysfs",
                "sysfs",
                &["nosuid", "noexec", "nodev", "ro"],
            ),
        ];
        if !spec.busybox_root {
            mounts.push(mount("/usr", "/usr", "bind", &["rbind", "ro"]));
            mounts.push(mount("/etc", "/etc", "bind", &["rbind", "ro"]));
        }
        if let Some(views) = spec.views {
            for v in VIEWS {
                let source = views.join(v);
                mounts.push(mount(
                    &format!("/{v}"),
                    &source.to_string_lossy(),
                    "bind",
                    &["rbind", "rw"],
                ));
            }
        }
        mounts.extend(spec.mounts.iter().cloned());
        let id = unique(&format!("oci-{name}"));
        let args = json_string(spec.script);
        let annotations: Vec<String> = spec
            .annotations
            .iter()
            .map(|(k, v)| format!("{}: {}", json_string(k), json_string(v)))
            .collect();
        let config = format!(
            r#"{{
  "ociVersion": "1.0.2",
  "process": {{
    "terminal": false,
    "user": {{ "uid": 0, "gid": 0 }},
    "args": ["sh", "-c", {args}],
    "env": ["PATH=/usr/bin:/bin:/usr/sbin:/sbin", "TERM=dumb"],
    "cwd": "/",
    "rlimits": [],
    "noNewPrivileges": true
  }},
  "root": {{ "path": "rootfs", "readonly": false }},
  "hostname": "{name}",
  "mounts": [{mounts}],
  "hooks": {{ "createContainer": [{hooks}] }},
  "annotations": {{ {annotations} }},
  "linux": {{
    "cgroupsPath": "{id}",
    "resources": {{
      "memory": {{ "limit": {memory} }},
      "cpu": {{ "cpus": "{cpus}" }}
    }},
    "namespaces": [
      {{ "type": "pid" }}, {{ "type": "ipc" }}, {{ "type": "uts" }}, {{ "type": "mount" }}
    ]
  }}
}}"#,
            mounts = mounts.join(",\n    "),
            hooks = spec.create_container_hooks.join(", "),
            annotations = annotations.join(", "),
            memory = spec.memory,
            cpus = spec.cpus,
        );
        std::fs::write(bundle.join("config.json"), config).unwrap();
        Runc {
            id,
            bundle,
            runtime: spec.runtime.to_owned(),
        }
    }

    /// The runtime's command line `args`, under `timeout` when given. crun refuses hybrid
    /// hosts whose unified hierarchy offers a controller (these machines' offers hugetlb),
    /// so there it runs in a mount namespace of its own without the unified mount: on the
    /// v1 hierarchies, as on a v1 host.
    fn command(&self, timeout: Option<&str>, args: &[&str]) -> Command {
        let hybrid = std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers")
            .is_ok_and(|c| !c.trim().is_empty());
        let mut words: Vec<&str> = Vec::new();
        if self.runtime == "crun" && hybrid {
            words.extend([
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                r#"umount -l /sys/fs/cgroup/unified && exec "$@""#,
                "sh",
            ]);
        }
        if let Some(t) = timeout {
            words.extend(["timeout", "--kill-after=5", t]);
        }
        words.push(&self.runtime);
        let mut c = Command::new(words[0]);
        c.args(&words[1..]).args(args);
        c
    }

    /// Run the container to its end (a minute at most); its standard output.
    pub fn run(&self) -> String {
        let bundle = self.bundle.to_string_lossy();
        let out = self
            .command(Some("60"), &["run", "--bundle", &bundle, &self.id])
            .stdin(Stdio::null())
            .output()
            .expect("run the runtime (scripts/test.sh installs it)");
        assert!(
            out.status.success(),
            "{} run failed ({}): {}\n{}",
            self.runtime,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Runc {
    /// Start the container and leave it running; its output is the child's stdout. Stop it
    /// with `kill`, then collect the output with `wait_with_output`.
    pub fn spawn(&self) -> std::process::Child {
        let bundle = self.bundle.to_string_lossy();
        self.command(None, &["run", "--bundle", &bundle, &self.id])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the runtime (scripts/test.sh installs it)")
    }

    /// Send `signal` (a name such as TERM) to the container's init.
    pub fn kill(&self, signal: &str) {
        let _ = self
            .command(None, &["kill", &self.id, signal])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Runc {
    fn drop(&mut self) {
        let _ = self
            .command(None, &["delete", "--force", &self.id])
            .stderr(Stdio::null())
            .status();
    }
}

/// An Alpine-like root file system in `rootfs`: the host's static busybox as /bin/busybox
/// and a symbolic link to it for each of its applets in /bin.
pub fn busybox_root(rootfs: &Path) {
    let bin = rootfs.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).expect("/bin/busybox (busybox-static)");
    let list = Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
        }
    }
}

/// A hooks.createContainer entry running `lxcfs-uring oci-hook` with the daemon at `mnt`,
/// logging to `log` (runc keeps a successful hook's stderr to itself).
pub fn oci_hook_entry(mnt: &Path, log: &Path) -> String {
    let args: Vec<String> = [
        "lxcfs-uring",
        "oci-hook",
        "--mountpoint",
        &mnt.to_string_lossy(),
        "--log-file",
        &log.to_string_lossy(),
    ]
    .iter()
    .map(|a| json_string(a))
    .collect();
    format!(
        r#"{{ "path": {}, "args": [{}], "timeout": 30 }}"#,
        json_string(env!("CARGO_BIN_EXE_lxcfs-uring")),
        args.join(", ")
    )
}

/// One entry of config.json's mounts.
pub fn mount(destination: &str, source: &str, kind: &str, options: &[&str]) -> String {
    let options: Vec<String> = options.iter().map(|o| json_string(o)).collect();
    format!(
        r#"{{ "destination": {}, "type": {}, "source": {}, "options": [{}] }}"#,
        json_string(destination),
        json_string(kind),
        json_string(source),
        options.join(", ")
    )
}

/// `s` as a JSON string.
pub fn json_string(s: &str) -> String {
    let mut out = String::from('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// True when runc is installed; a loud skip otherwise, never under CI=true.
pub fn runc_or_skip(test: &str) -> bool {
    runtime_or_skip(test, "runc")
}

/// True when the OCI runtime or engine `runtime` (runc, crun, podman) is installed; a loud skip otherwise,
/// never under CI=true.
pub fn runtime_or_skip(test: &str, runtime: &str) -> bool {
    let has = Command::new(runtime)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    host_has_or_skip(
        test,
        has,
        &format!("{runtime} (scripts/test.sh installs it)"),
    )
}

/// A lookup of the script output's `name=value` lines; a missing name fails the test with
/// the whole output.
pub fn labelled(text: &str) -> impl Fn(&str) -> String {
    let (v, text) = (values(text), text.to_owned());
    move |k| {
        v.get(k)
            .cloned()
            .unwrap_or_else(|| panic!("no {k} in:\n{text}"))
    }
}

/// Each line of the script's output, labelled `name=value`.
pub fn values(text: &str) -> std::collections::HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

/// Run `script` under sh in a Podman container named after `name` (made unique) on an
/// Alpine-like root built in `rootfs`, with Podman's global options `global` and `run`
/// options `args`; its standard output. Podman runs as these machines allow: its default
/// rlimits ask for more open files and processes than their hard limits, and raising a
/// hard limit needs CAP_SYS_RESOURCE, which they do not give (hence `--ulimit`); its
/// default runtime here, crun, refuses hybrid hosts whose unified hierarchy offers a
/// controller (hence runc); `--rootfs` pulls nothing; its cgroups go below this process's
/// and are removed after.
pub fn podman_run(
    name: &str,
    rootfs: &Path,
    global: &[String],
    args: &[String],
    script: &str,
) -> String {
    for dir in ["proc", "sys", "dev", "tmp", "etc"] {
        std::fs::create_dir_all(rootfs.join(dir)).unwrap();
    }
    busybox_root(rootfs);
    let name = unique(name);
    let (parent, _cgroups) = podman_cgroup_parent(&name);
    let out = Command::new("timeout")
        .args(["--kill-after=5", "120", "podman"])
        .args(global)
        .args(["run", "--rm", "--name", &name, "--runtime", "runc"])
        .args(["--network", "none", "--cgroup-parent", &parent])
        .args([
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
        ])
        .args(args)
        .arg("--rootfs")
        .arg(rootfs)
        .args(["sh", "-c", script])
        .stdin(Stdio::null())
        .output()
        .expect("run podman");
    let _ = Command::new("podman")
        .args(["rm", "--force", &name])
        .output();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "podman run failed ({}): {text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// A cgroup parent for a Podman container named `name`: below this process's memory
/// cgroup, as every test cgroup, and the same path in every hierarchy (Podman takes one
/// path for all). The second value removes, on drop, what Podman leaves there (its
/// `conmon` cgroup, the parent, and the directories above it that it had to create).
fn podman_cgroup_parent(name: &str) -> (String, Vec<Cgroup>) {
    let (_, own) = own_cgroup("memory").expect("a memory cgroup");
    let parent = format!("{}/{name}", own.trim_end_matches('/'));
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut remove = Vec::new();
    for line in info.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        if !right.starts_with("cgroup ") && !right.starts_with("cgroup2 ") {
            continue;
        }
        let Some(mount) = left.split(' ').nth(4) else {
            continue;
        };
        let dir = std::path::Path::new(mount).join(parent.trim_start_matches('/'));
        remove.push(Cgroup {
            path: dir.join("conmon"),
        });
        // deepest first: the parent, then each ancestor that does not exist yet
        let mut d = dir.as_path();
        while d != std::path::Path::new(mount) && !d.exists() {
            remove.push(Cgroup {
                path: d.to_path_buf(),
            });
            d = d.parent().unwrap();
        }
    }
    (parent, remove)
}
