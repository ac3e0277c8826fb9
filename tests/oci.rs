//! A real OCI runtime: runc runs containers whose config.json bind-mounts the views over
//! /proc and /sys/devices/system/cpu, as Docker and Kubernetes do, with the memory limit
//! and cpuset set by the runtime. Inside, real programs (procps free and top, nproc,
//! getconf, Python, busybox) must see the container's limits and usage, on both
//! transports.
//!
//! The container's root file system is the host's /usr and /etc, read-only, so the
//! programs are the host's own (the bundle is tests/common/runc.rs's).

#[macro_use]
mod common;

use common::runc::*;
use common::*;

const MIB256: u64 = 256 << 20;

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
