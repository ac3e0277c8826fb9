//! A real OCI runtime: runc runs containers whose config.json bind-mounts the views over
//! /proc and /sys/devices/system/cpu, as Docker and Kubernetes do, with the memory limit
//! and cpuset set by the runtime. Inside, real programs (procps free and top, nproc,
//! getconf, Python, busybox) must see the container's limits and usage, on both
//! transports.
//!
//! The container's root file system is the host's /usr and /etc, read-only, so the
//! programs are the host's own (scripts/test.sh installs runc, procps, python3, busybox).

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

const MIB256: u64 = 256 << 20;

/// The files runtimes bind-mount over the container's own.
const VIEWS: [&str; 8] = [
    "proc/cpuinfo",
    "proc/diskstats",
    "proc/loadavg",
    "proc/meminfo",
    "proc/stat",
    "proc/swaps",
    "proc/uptime",
    "sys/devices/system/cpu",
];

/// A runc container, deleted (and its cgroups with it) on drop.
struct Runc {
    id: String,
    bundle: PathBuf,
}

impl Runc {
    /// A bundle in `dir` whose container runs `script` under sh with the views of the
    /// daemon mounted at `views`, limited to `memory` bytes and the CPUs `cpus`.
    fn new(dir: &Path, views: &Path, name: &str, memory: u64, cpus: &str, script: &str) -> Runc {
        let bundle = dir.join(format!("bundle-{name}"));
        let rootfs = bundle.join("rootfs");
        for d in ["proc", "sys", "dev", "tmp", "usr", "etc"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        for l in ["bin", "lib", "lib64", "sbin"] {
            let target = format!("usr/{l}");
            if Path::new("/").join(&target).exists() {
                let _ = std::os::unix::fs::symlink(&target, rootfs.join(l));
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
            mount("/usr", "/usr", "bind", &["rbind", "ro"]),
            mount("/etc", "/etc", "bind", &["rbind", "ro"]),
        ];
        for v in VIEWS {
            let source = views.join(v);
            mounts.push(mount(
                &format!("/{v}"),
                &source.to_string_lossy(),
                "bind",
                &["rbind", "rw"],
            ));
        }
        let id = unique(&format!("oci-{name}"));
        let args = json_string(script);
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
        );
        std::fs::write(bundle.join("config.json"), config).unwrap();
        Runc { id, bundle }
    }

    /// Run the container to its end (a minute at most); its standard output.
    fn run(&self) -> String {
        let out = Command::new("timeout")
            .args(["--kill-after=5", "60", "runc", "run", "--bundle"])
            .arg(&self.bundle)
            .arg(&self.id)
            .stdin(Stdio::null())
            .output()
            .expect("run runc (scripts/test.sh installs it)");
        assert!(
            out.status.success(),
            "runc run failed ({}): {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Runc {
    fn drop(&mut self) {
        let _ = Command::new("runc")
            .args(["delete", "--force", &self.id])
            .stderr(Stdio::null())
            .status();
    }
}

fn mount(destination: &str, source: &str, kind: &str, options: &[&str]) -> String {
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
fn json_string(s: &str) -> String {
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
fn runc_or_skip(test: &str) -> bool {
    let runc = Command::new("runc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    host_has_or_skip(test, runc, "runc (scripts/test.sh installs it)")
}

/// Each line of the script's output, labelled `name=value`.
fn values(text: &str) -> std::collections::HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect()
}

/// A container limited to 256 MiB and one CPU: what free, top, nproc, getconf, Python and
/// busybox report in it.
fn programs_in_a_runc_container(transport: &str) {
    if !runc_or_skip("programs_in_a_runc_container") {
        return;
    }
    // A CPU of its own per transport: the two run at once, each with a busy loop.
    let cpu = if transport == "uring" { "0" } else { "1" };
    let d = Daemon::start(&format!("oci-{transport}"), &["--transport", transport]);
    let script = r#"
echo "meminfo=$(awk '/^MemTotal:/{print $2}' /proc/meminfo)"
echo "free=$(free -k | awk '/^Mem:/{print $2}')"
echo "nproc=$(nproc)"
echo "conf=$(getconf _NPROCESSORS_CONF)"
echo "onln=$(getconf _NPROCESSORS_ONLN)"
echo "python=$(python3 -c 'import os; print(os.cpu_count())')"
python3 -c 'import shutil; shutil.copyfile("/proc/meminfo", "/tmp/meminfo")'
echo "copyfile=$(awk '/^MemTotal:/{print $2}' /tmp/meminfo)"
echo "busybox=$(busybox cat /proc/meminfo | awk '/^MemTotal:/{print $2}')"
echo "uptime=$(busybox cat /proc/uptime | cut -d. -f1)"
echo "statcpus=$(grep -c '^cpu[0-9]' /proc/stat)"
(while :; do :; done) &
busy=$!
# "%Cpu(s): 99.0 us, ..." or, at 100, "%Cpu(s):100.0 us, ...": the number before " us"
echo "top=$(top -bn2 -d 1 | awk -F'[:,]' '/^%Cpu/ {split($2, f, " "); v = f[1]} END {print int(v)}')"
kill $busy
"#;
    let c = Runc::new(
        &d.dir,
        &d.mnt,
        &format!("progs-{transport}"),
        MIB256,
        cpu,
        script,
    );
    let out = c.run();
    let v = values(&out);
    let get = |k: &str| {
        v.get(k)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no {k} in:\n{out}"))
    };
    let kb = (MIB256 / 1024).to_string();
    for k in ["meminfo", "free", "copyfile", "busybox"] {
        assert_eq!(get(k), kb, "{k}:\n{out}");
    }
    for k in ["nproc", "conf", "onln", "python", "statcpus"] {
        assert_eq!(get(k), "1", "{k}:\n{out}");
    }
    let up: u64 = get("uptime").parse().unwrap();
    assert!(up < 30, "the container's uptime, not the host's:\n{out}");
    let top: u32 = get("top").parse().unwrap();
    assert!(top >= 80, "top sees its busy loop on its one CPU:\n{out}");
}

both_transports!(programs_in_a_runc_container);
