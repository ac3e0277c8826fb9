//! /sys/devices/system/node from real containers in cpusets on this host: the node lists,
//! only the container's nodeN directories, each node's CPUs limited to the container's,
//! its meminfo from memory.numa_stat, writes refused, numactl agreeing with the cpuset, and
//! the host's files in pass-through mode.

#[macro_use]
mod common;

use common::*;

const NODE: &str = "/sys/devices/system/node";

fn host_list(file: &str) -> Vec<u32> {
    read_list(&format!("{NODE}/{file}"))
}

fn value_kb(meminfo: &str, key: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|l| l.split_once(&format!(" {key}:")).map(|(_, v)| v))
        .unwrap_or_else(|| panic!("no {key} in {meminfo}"))
        .trim()
        .trim_end_matches(" kB")
        .parse()
        .unwrap()
}

/// A container on the host's first node and its last CPU there, in a 100 MiB memory
/// cgroup holding a 20 MiB file on a tmpfs of its own mount namespace: what it reads in the node directory, and what numactl
/// says with the view bound over /sys/devices/system/node.
fn node_view_follows_the_cpuset(transport: &str) {
    if !host_has_or_skip(
        "node_view_follows_the_cpuset",
        std::path::Path::new(NODE).exists(),
        "/sys/devices/system/node (CONFIG_NUMA)",
    ) {
        return;
    }
    let node = host_list("online")[0];
    let node_cpus = host_list(&format!("node{node}/cpulist"));
    let cpu = *node_cpus.last().unwrap();
    let d = Daemon::start(&format!("numa-{transport}"), &["--transport", transport]);
    let cs = Cgroup::new("cpuset", &format!("numa-{transport}"));
    if cs.path.join("cpuset.mems").exists() {
        cs.set("cpuset.mems", &node.to_string());
    }
    cs.set("cpuset.cpus", &cpu.to_string());
    let mem = Cgroup::new("memory", &format!("numa-{transport}"));
    let limit = if mem.path.join("memory.max").exists() {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    mem.set(limit, &(100 << 20).to_string());
    let dir = d.path("sys/devices/system/node");
    let n = format!("{}/node{node}", dir.display());
    let script = format!(
        "for f in online possible has_cpu has_memory has_normal_memory; do cat {d}/$f; done; \
         echo =====; ls {d}; echo =====; cat {n}/cpulist {n}/cpumap; echo =====; ls {n}; \
         echo =====; mount -t tmpfs none /mnt && \
         dd if=/dev/zero of=/mnt/f bs=1M count=20 2>/dev/null && cat {n}/meminfo; \
         echo =====; (echo 1 > {n}/cpulist) 2>&1 | grep -c 'Permission denied'; \
         (echo 1 > {d}/online) 2>&1 | grep -c 'Permission denied'; \
         echo =====; mount --bind {d} {NODE} && numactl --hardware",
        d = dir.display(),
    );
    let out = in_container(&[&cs, &mem], &script);
    let text = String::from_utf8(out.stdout).unwrap();
    let parts: Vec<&str> = text.split("=====\n").collect();
    assert_eq!(parts.len(), 7, "{text}");
    let (lists, top, cpus, inside, meminfo, refused, numactl) = (
        parts[0], parts[1], parts[2], parts[3], parts[4], parts[5], parts[6],
    );

    // The lists hold the container's node: it has memory and a CPU there.
    for (i, l) in lists.lines().enumerate() {
        assert_eq!(l, node.to_string(), "list {i}: {lists}");
    }
    assert_eq!(lists.lines().count(), 5);
    // Only its nodeN directory, the host's other entries.
    let nodes: Vec<&str> = top.lines().filter(|l| l.starts_with("node")).collect();
    assert_eq!(nodes, [format!("node{node}")], "{top}");
    assert!(top.lines().any(|l| l == "uevent"), "passed through: {top}");
    // The node's CPUs: only the container's, as a list and a mask.
    let mut c = cpus.lines();
    assert_eq!(c.next(), Some(cpu.to_string().as_str()));
    let mask = c.next().unwrap();
    let host_mask = std::fs::read_to_string(format!("{NODE}/node{node}/cpumap")).unwrap();
    assert_eq!(
        mask.len(),
        host_mask.trim().len(),
        "the host's width: {mask}"
    );
    let digits: String = mask.chars().filter(|c| *c != ',').collect();
    let bits = u128::from_str_radix(&digits[digits.len().saturating_sub(32)..], 16).unwrap();
    assert_eq!(bits, 1u128 << cpu, "{mask}");
    let links: Vec<&str> = inside
        .lines()
        .filter(|l| l.starts_with("cpu") && l[3..].chars().all(|c| c.is_ascii_digit()))
        .collect();
    assert_eq!(links, [format!("cpu{cpu}")], "{inside}");
    assert!(inside.lines().any(|l| l == "distance"), "{inside}");
    // meminfo: the node within the limit, the tmpfs file used on it.
    assert_eq!(value_kb(meminfo, "MemTotal"), 100 << 10, "{meminfo}");
    let used = value_kb(meminfo, "MemUsed");
    assert!((20 << 10..100 << 10).contains(&used), "{meminfo}");
    assert_eq!(value_kb(meminfo, "MemFree"), (100 << 10) - used);
    let host_meminfo = std::fs::read_to_string(format!("{NODE}/node{node}/meminfo")).unwrap();
    assert_eq!(
        meminfo.lines().count(),
        host_meminfo.lines().count(),
        "the host's lines"
    );
    // Writes: refused, as for the cpu directory.
    assert_eq!(
        refused.lines().take(2).collect::<Vec<_>>(),
        ["1", "1"],
        "{refused}"
    );
    // numactl: one node, the container's CPU, its memory limit.
    assert!(
        numactl.contains(&format!("available: 1 nodes ({node})\n")),
        "{numactl}"
    );
    assert!(
        numactl.contains(&format!("node {node} cpus: {cpu}\n")),
        "{numactl}"
    );
    assert!(
        numactl.contains(&format!("node {node} size: 100 MB\n")),
        "{numactl}"
    );

    // Pass-through (SIGUSR2): the host's files.
    let files = format!("cat {d}/has_cpu {n}/cpulist {n}/meminfo", d = dir.display());
    let read = || String::from_utf8(in_container(&[&cs, &mem], &files).stdout).unwrap();
    let host = || {
        ["has_cpu".to_owned(), format!("node{node}/cpulist")]
            .map(|f| std::fs::read_to_string(format!("{NODE}/{f}")).unwrap())
            .concat()
    };
    d.signal(nix::sys::signal::Signal::SIGUSR2);
    wait_until("pass-through", std::time::Duration::from_secs(5), || {
        read().starts_with(&host())
    });
    let passed = read();
    let total = passed.lines().find(|l| l.contains(" MemTotal:")).unwrap();
    assert_eq!(
        total,
        host_meminfo
            .lines()
            .find(|l| l.contains(" MemTotal:"))
            .unwrap(),
        "the host node's meminfo"
    );
}

/// With --enable-cfs a container's CPUs are numbered from 0: its node's cpulist and cpumap
/// follow the cpu directory's names, and no cpuN link (a host CPU's name) is shown.
#[test]
fn renumbered_cpus_in_the_node_view() {
    if !root_or_skip("renumbered_cpus_in_the_node_view")
        || !host_has_or_skip(
            "renumbered_cpus_in_the_node_view",
            std::path::Path::new(NODE).exists(),
            "/sys/devices/system/node (CONFIG_NUMA)",
        )
    {
        return;
    }
    let node = host_list("online")[0];
    let cpu = *host_list(&format!("node{node}/cpulist")).last().unwrap();
    let d = Daemon::start("numa-cfs", &["--enable-cfs"]);
    let cs = Cgroup::new("cpuset", "numa-cfs");
    if cs.path.join("cpuset.mems").exists() {
        cs.set("cpuset.mems", &node.to_string());
    }
    cs.set("cpuset.cpus", &cpu.to_string());
    let quota = Cgroup::new("cpu", "numa-cfs");
    quota.set("cpu.cfs_period_us", "100000");
    quota.set("cpu.cfs_quota_us", "50000");
    let dir = d.path("sys/devices/system");
    let n = format!("{}/node/node{node}", dir.display());
    let out = in_container(
        &[&cs, &quota],
        &format!(
            "cat {n}/cpulist {n}/cpumap; ls {n} | grep -c '^cpu[0-9]'; ls {c} | grep '^cpu[0-9]'; \
             mount --bind {d} {NODE} && numactl --hardware | grep cpus:",
            c = dir.join("cpu").display(),
            d = dir.join("node").display(),
        ),
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "0", "cpu{cpu} is shown as cpu0: {text}");
    assert!(lines[1].trim_start_matches(['0', ',']) == "1", "{text}");
    assert_eq!(lines[2], "0", "no cpuN link: {text}");
    assert_eq!(lines[3], "cpu0", "{text}");
    assert_eq!(lines[4], format!("node {node} cpus: 0"), "{text}");
}

both_transports!(node_view_follows_the_cpuset);
