//! Each file, read from a real container on this host: cpusets, CFS quotas, CPU time,
//! block I/O, slabinfo, load averages.

#[macro_use]
mod common;

use common::*;

fn host_online() -> Vec<u32> {
    read_list("/sys/devices/system/cpu/online")
}

fn cpuset_cgroup(name: &str, cpus: &str) -> Cgroup {
    let cg = Cgroup::new("cpuset", name);
    if cg.path.join("cpuset.mems").exists() {
        let mems = std::fs::read_to_string(cg.path.parent().unwrap().join("cpuset.mems")).unwrap();
        cg.set("cpuset.mems", mems.trim());
        cg.set("cpuset.cpus", cpus);
    } else {
        cg.set("cpuset.cpus", cpus);
    }
    cg
}

fn read_in(cgs: &[&Cgroup], d: &Daemon, files: &[&str]) -> Vec<String> {
    let script: Vec<String> = files
        .iter()
        .map(|f| format!("cat {}; echo '=====';", d.path(f).display()))
        .collect();
    let out = in_container(cgs, &script.join(" "));
    String::from_utf8(out.stdout)
        .unwrap()
        .split("=====\n")
        .map(str::to_owned)
        .collect()
}

fn cpu_ids(stat: &str) -> Vec<String> {
    stat.lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect()
}

#[test]
fn one_cpu_cpuset_is_coherent() {
    if !root_or_skip("one_cpu_cpuset_is_coherent") {
        return;
    }
    let cpu = *host_online().last().unwrap();
    let d = Daemon::start("cpuset", &[]);
    let cs = cpuset_cgroup("cpuset-one", &cpu.to_string());
    let r = read_in(
        &[&cs],
        &d,
        &["proc/cpuinfo", "proc/stat", "sys/devices/system/cpu/online"],
    );
    assert_eq!(r[0].matches("processor").count(), 1, "{}", r[0]);
    assert!(
        r[0].starts_with("processor\t: 0\n"),
        "renumbered from 0: {}",
        r[0]
    );
    assert_eq!(cpu_ids(&r[1]), vec![format!("cpu{cpu}")], "{}", r[1]);
    assert!(r[1].starts_with("cpu  "), "{}", r[1]);
    assert!(r[1].contains("\nbtime "), "host lines kept");
    assert_eq!(r[2].trim(), cpu.to_string());
}

#[test]
fn cpu_time_is_the_containers_own() {
    if !root_or_skip("cpu_time_is_the_containers_own") {
        return;
    }
    let d = Daemon::start("cputime", &[]);
    let acct = Cgroup::new("cpuacct", "cputime");
    let out = in_container(
        &[&acct],
        &format!(
            "timeout 1.5 sh -c 'while :; do :; done'; cat {} {}; cat {}",
            d.path("proc/stat").display(),
            d.path("proc/uptime").display(),
            acct.path.join("cpuacct.usage").display()
        ),
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let total: Vec<u64> = lines[0]
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect();
    let busy = total[0] + total[2];
    // What the cgroup itself says it used, in ticks (the busy loop got whatever CPU the
    // machine had to give): the file shows that, not the host's total.
    let usage_ticks = lines.last().unwrap().trim().parse::<u64>().unwrap() / 10_000_000;
    assert!(busy >= 10, "the busy loop ran: {text}");
    assert!(
        busy.abs_diff(usage_ticks) <= 5,
        "stat busy {busy} vs cpuacct.usage {usage_ticks} ticks: {text}"
    );
    let uptime: Vec<f64> = lines[lines.len() - 2]
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(uptime[0] >= 1.5 && uptime[0] < 5.0, "{text}");
    assert!(
        uptime[1] <= uptime[0] - busy as f64 / 100.0 + 0.1,
        "idle net of the busy loop: {text}"
    );
    // the counters only move forward between reads
    let stat = d.path("proc/stat");
    let again = in_container(&[&acct], &format!("cat {}", stat.display()));
    let later: Vec<u64> = String::from_utf8(again.stdout)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(
        later[0] >= total[0] && later[3] >= total[3],
        "{total:?} -> {later:?}"
    );
}

/// A daemon with `--enable-cfs` for `test`, or None when not root. With one CPU there is
/// nothing for a quota to cut, which the test then checks all the same.
fn cfs_daemon(test: &str, name: &str) -> Option<Daemon> {
    if !root_or_skip(test) {
        return None;
    }
    if host_online().len() < 2 {
        eprintln!("*** {test} needs 2 CPUs: checking 1 ***");
    }
    Some(Daemon::start(name, &["--enable-cfs"]))
}

#[test]
fn cfs_quota_limits_the_cpus_shown() {
    let Some(d) = cfs_daemon("cfs_quota_limits_the_cpus_shown", "cfs") else {
        return;
    };
    for (quota, want) in [(50_000, 1usize), (150_000, 2)] {
        let want = want.min(host_online().len());
        let cpu = Cgroup::new("cpu", &format!("cfs-{quota}"));
        cpu.set("cpu.cfs_period_us", "100000");
        cpu.set("cpu.cfs_quota_us", &quota.to_string());
        let r = read_in(
            &[&cpu],
            &d,
            &["proc/cpuinfo", "proc/stat", "sys/devices/system/cpu/online"],
        );
        assert_eq!(
            r[0].matches("processor").count(),
            want,
            "quota {quota}: {}",
            r[0]
        );
        let ids: Vec<String> = (0..want).map(|i| format!("cpu{i}")).collect();
        assert_eq!(cpu_ids(&r[1]), ids, "quota {quota}: {}", r[1]);
        let online = if want == 1 {
            "0".to_owned()
        } else {
            format!("0-{}", want - 1)
        };
        assert_eq!(r[2].trim(), online);
    }
}

#[test]
fn cfs_quota_of_an_ancestor_binds_the_container() {
    let Some(d) = cfs_daemon("cfs_quota_of_an_ancestor_binds_the_container", "cfs-up") else {
        return;
    };
    // The quota sits two levels above the container's cgroup, which has none of its own.
    let top = Cgroup::new("cpu", "cfs-top");
    top.set("cpu.cfs_period_us", "100000");
    top.set("cpu.cfs_quota_us", "50000");
    let mid = top.child("mid");
    std::fs::create_dir(&mid.path).unwrap();
    let leaf = mid.child("leaf");
    std::fs::create_dir(&leaf.path).unwrap();
    let r = read_in(
        &[&leaf],
        &d,
        &["proc/cpuinfo", "sys/devices/system/cpu/online"],
    );
    assert_eq!(r[0].matches("processor").count(), 1, "{}", r[0]);
    assert_eq!(r[1].trim(), "0");
}

/// The whole disk holding the temp dir, as "major:minor".
fn temp_disk() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(std::env::temp_dir()).ok()?.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let sys = std::path::PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
    if !sys.exists() {
        return None;
    }
    if sys.join("partition").exists() {
        let parent = std::fs::canonicalize(&sys).ok()?.parent()?.join("dev");
        return std::fs::read_to_string(parent)
            .ok()
            .map(|s| s.trim().to_owned());
    }
    Some(format!("{major}:{minor}"))
}

#[test]
fn diskstats_shows_the_containers_own_io() {
    if !root_or_skip("diskstats_shows_the_containers_own_io") {
        return;
    }
    let Some(disk) = temp_disk() else {
        panic!("the temp dir is not on a block device: cannot test diskstats");
    };
    let d = Daemon::start("disk", &[]);
    let blk = Cgroup::new("blkio", "disk");
    // blk-mq kernels count per-cgroup I/O on v1 only for devices with a throttle rule.
    blk.set(
        "blkio.throttle.write_bps_device",
        &format!("{disk} 100000000000"),
    );
    let file = d.dir.join("io-test");
    let out = in_container(
        &[&blk],
        &format!(
            "dd if=/dev/zero of={f} bs=64k count=64 oflag=direct 2>/dev/null && dd if={f} of=/dev/null bs=64k iflag=direct 2>/dev/null; cat {}",
            d.path("proc/diskstats").display(),
            f = file.display()
        ),
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (major, minor) = disk.split_once(':').unwrap();
    let line = text
        .lines()
        .find(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[0] == major && f[1] == minor
        })
        .unwrap_or_else(|| panic!("no line for {disk}: {text:?}"));
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(3)
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(f[4] >= 64, "writes completed: {line}");
    assert!(f[6] >= 64 * 128, "sectors written: {line}");
    assert!(f[0] >= 1, "reads: {line}");
    // devices the container never touched are left out
    assert_eq!(text.lines().count(), 1, "{text}");
}

#[test]
fn diskstats_in_the_root_io_cgroup_is_the_hosts() {
    if !root_or_skip("diskstats_in_the_root_io_cgroup_is_the_hosts") {
        return;
    }
    let (root, _) = own_cgroup("blkio").expect("a v1 blkio hierarchy (the hybrid dev host)");
    let d = Daemon::start("disk-root", &[]);
    // Every process's I/O is the root cgroup's: it sees the host's devices, although on
    // blk-mq kernels the root's own blkio counters stay empty.
    let out = in_container_at(
        &[root.as_path()],
        &format!("cat {}", d.path("proc/diskstats").display()),
    );
    let devices = |text: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
            .collect()
    };
    let host = std::fs::read_to_string("/proc/diskstats").unwrap();
    assert!(!devices(&host).is_empty());
    assert_eq!(
        devices(&String::from_utf8(out.stdout).unwrap()),
        devices(&host)
    );
}

#[test]
fn slabinfo_reads_from_a_container() {
    if !root_or_skip("slabinfo_reads_from_a_container") {
        return;
    }
    let d = Daemon::start("slab", &[]);
    let mem = Cgroup::new("memory", "slab");
    let r = read_in(&[&mem], &d, &["proc/slabinfo"]);
    assert!(
        r[0].starts_with("slabinfo - version"),
        "{}",
        &r[0][..r[0].len().min(200)]
    );
}

#[test]
fn loadavg_per_container() {
    if !root_or_skip("loadavg_per_container") {
        return;
    }
    let d = Daemon::start("load", &["-l"]);
    let cpu = Cgroup::new("cpu", "load");
    let p = d.path("proc/loadavg");
    let out = in_container(
        &[&cpu],
        &format!(
            "cat {p}; (timeout 12 sh -c 'while :; do :; done' &); sleep 11; cat {p}",
            p = p.display()
        ),
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0], "0.00 0.00 0.00 1/1 1",
        "the first read: no load yet, the reader running: {text}"
    );
    let f: Vec<&str> = lines[1].split_whitespace().collect();
    let one: f64 = f[0].parse().unwrap();
    assert!(one > 0.05, "a busy loop raises the 1-min load: {text}");
    let (running, total) = f[3].split_once('/').unwrap();
    assert!(
        running.parse::<u32>().unwrap() >= 1 && total.parse::<u32>().unwrap() >= 2,
        "{text}"
    );
    let last_pid: u32 = f[4].parse().unwrap();
    assert!(
        last_pid > 0 && last_pid < 1000,
        "last_pid as the container sees pids: {text}"
    );
    // the host still sees its own
    let host = std::fs::read_to_string(&p).unwrap();
    assert_eq!(host.split_whitespace().count(), 5);
}

#[test]
fn swap_follows_lxcfs_rules() {
    if !root_or_skip("swap_follows_lxcfs_rules") {
        return;
    }
    let d = Daemon::start("swap", &[]);
    let du = Daemon::start("noswap", &["-u"]);
    let mem = Cgroup::new("memory", "swap");
    mem.set("memory.limit_in_bytes", "268435456");
    let host_swap = meminfo_kb(
        &std::fs::read_to_string("/proc/meminfo").unwrap(),
        "SwapTotal",
    );
    let r = read_in(&[&mem], &d, &["proc/meminfo", "proc/swaps"]);
    let total = meminfo_kb(&r[0], "SwapTotal");
    assert!(
        total <= host_swap,
        "capped at the host's swap: {total} > {host_swap}"
    );
    assert!(r[1].starts_with("Filename\t\t\t\tType\t\tSize\tUsed\tPriority\n"));
    assert_eq!(
        r[1].lines().count(),
        if total > 0 { 2 } else { 1 },
        "{}",
        r[1]
    );
    let r = read_in(&[&mem], &du, &["proc/meminfo", "proc/swaps"]);
    assert_eq!(meminfo_kb(&r[0], "SwapTotal"), 0);
    assert_eq!(meminfo_kb(&r[0], "SwapFree"), 0);
    assert_eq!(r[1].lines().count(), 1);
}

#[test]
fn sys_cpu_directory_is_coherent_for_glibc() {
    if !root_or_skip("sys_cpu_directory_is_coherent_for_glibc") {
        return;
    }
    let cpu = *host_online().last().unwrap();
    let d = Daemon::start("syscpu", &[]);
    let cs = cpuset_cgroup("syscpu", &cpu.to_string());
    let dir = d.path("sys/devices/system/cpu");
    // Bind the view over the real directory inside the container's own mount namespace,
    // as runtimes do, and ask glibc.
    let out = in_container(
        &[&cs],
        &format!(
            "for f in online possible present offline; do printf '%s=' $f; cat {dir}/$f; done; \
             ls {dir} | tr '\\n' ' '; echo; \
             mount --bind {dir} /sys/devices/system/cpu && getconf _NPROCESSORS_CONF && getconf _NPROCESSORS_ONLN; \
             cat /sys/devices/system/cpu/cpu{cpu}/topology/core_id >/dev/null && echo readable; \
             echo 1 > /sys/devices/system/cpu/cpu{cpu}/online 2>/dev/null || echo refused",
            dir = dir.display()
        ),
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], format!("online={cpu}"), "{text}");
    assert_eq!(lines[1], format!("possible={cpu}"), "{text}");
    assert_eq!(lines[2], format!("present={cpu}"), "{text}");
    assert_eq!(lines[3], "offline=", "{text}");
    let names: Vec<&str> = lines[4].split_whitespace().collect();
    let cpus: Vec<&&str> = names
        .iter()
        .filter(|n| n.starts_with("cpu") && n[3..].chars().all(|c| c.is_ascii_digit()))
        .collect();
    assert_eq!(cpus, vec![&format!("cpu{cpu}").as_str()], "{text}");
    assert!(
        names.contains(&"kernel_max") && names.contains(&"vulnerabilities"),
        "host entries passed through: {text}"
    );
    assert_eq!(
        lines[5], "1",
        "get_nprocs_conf counts one cpuN directory: {text}"
    );
    assert_eq!(lines[6], "1", "get_nprocs reads online: {text}");
    assert_eq!(lines[7], "readable");
    assert_eq!(lines[8], "refused", "no write reaches the host's sysfs");
}

#[test]
fn nested_pid_namespaces_and_cgroup_namespaces() {
    if !root_or_skip("nested_pid_namespaces_and_cgroup_namespaces") {
        return;
    }
    let d = Daemon::start("nested", &[]);
    let outer = Cgroup::new("memory", "nest-outer");
    outer.set("memory.limit_in_bytes", &(256u64 << 20).to_string());
    let inner_path = outer.path.join("inner");
    std::fs::create_dir_all(&inner_path).unwrap();
    std::fs::write(
        inner_path.join("memory.limit_in_bytes"),
        (128u64 << 20).to_string(),
    )
    .unwrap();
    let meminfo = d.path("proc/meminfo");
    // The outer container's init starts a nested container (its own pid and cgroup
    // namespaces) in a child cgroup with a smaller limit.
    let out = in_container(
        &[&outer],
        &format!(
            "grep MemTotal {m}; \
             sh -c 'echo $$ > {inner}/cgroup.procs; exec unshare --pid --fork --mount-proc --cgroup sh -c \"grep MemTotal {m}; cat /proc/self/cgroup | grep memory\"'; \
             grep MemTotal {m}",
            m = meminfo.display(),
            inner = inner_path.display()
        ),
    );
    let _ = std::fs::remove_dir(&inner_path);
    let text = String::from_utf8(out.stdout).unwrap();
    let totals: Vec<u64> = text
        .lines()
        .filter(|l| l.starts_with("MemTotal"))
        .map(|l| meminfo_kb(l, "MemTotal"))
        .collect();
    assert_eq!(totals, vec![262144, 131072, 262144], "{text}");
    assert!(
        text.contains(":memory:/\n"),
        "the nested container has its own cgroup namespace: {text}"
    );
}

#[test]
fn a_reused_pid_namespace_gets_fresh_values() {
    if !root_or_skip("a_reused_pid_namespace_gets_fresh_values") {
        return;
    }
    // Containers come and go: each must see its own limit even though the daemon caches
    // per namespace (namespace inodes and pids are reused by the kernel).
    let d = Daemon::start("reuse", &[]);
    let meminfo = d.path("proc/meminfo");
    for (i, mib) in [64u64, 96, 128, 160, 192, 224].iter().enumerate() {
        let mem = Cgroup::new("memory", &format!("reuse-{i}"));
        mem.set("memory.limit_in_bytes", &(mib << 20).to_string());
        let out = in_container(&[&mem], &format!("grep MemTotal {}", meminfo.display()));
        let text = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            meminfo_kb(&text, "MemTotal"),
            mib * 1024,
            "container {i}: {text}"
        );
    }
}

/// /proc/pressure is the container's own cgroup's PSI (the unified hierarchy's, which has
/// PSI on this hybrid host with no controller enabled), and a host process sees the host's.
#[test]
fn pressure_is_the_containers_own() {
    if !root_or_skip("pressure_is_the_containers_own") {
        return;
    }
    let psi = std::path::Path::new("/proc/pressure/cpu").exists();
    if !host_has_or_skip(
        "pressure_is_the_containers_own",
        psi,
        "PSI (/proc/pressure)",
    ) {
        return;
    }
    let d = Daemon::start("pressure", &[]);
    let cg = Cgroup::unified("pressure");
    // Four busy loops on one CPU: the cgroup's tasks wait for it, so its cpu pressure
    // grows; nothing else runs in it.
    let script = format!(
        "for i in 1 2 3 4; do timeout 1 taskset -c 0 sh -c 'while :; do :; done' & done; wait; cat {p}/cpu {p}/io {p}/memory",
        p = d.path("proc/pressure").display()
    );
    let out = in_container(&[&cg], &script);
    let after = cg.get("cpu.pressure");
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "three files of two lines:\n{text}");
    for (i, l) in lines.iter().enumerate() {
        let kind = if i % 2 == 0 {
            "some avg10="
        } else {
            "full avg10="
        };
        assert!(l.starts_with(kind), "{l}");
    }
    let total = |l: &str| -> u64 { l.rsplit("total=").next().unwrap().parse().unwrap() };
    let (ours, cgroup) = (total(lines[0]), total(after.lines().next().unwrap()));
    assert!(
        ours > 0 && ours <= cgroup,
        "container {ours}, its cgroup after {cgroup}:\n{text}"
    );
    let host = total(
        std::fs::read_to_string("/proc/pressure/cpu")
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    );
    assert!(ours < host, "the container's own, not the host's {host}");
    // PSI turned off in the cgroup: its files go away, and the container is shown the
    // host's (served, not an error).
    if cg.path.join("cgroup.pressure").exists() {
        cg.set("cgroup.pressure", "0");
        let out = in_container(
            &[&cg],
            &format!("cat {}", d.path("proc/pressure/cpu").display()),
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let shown = total(text.lines().next().unwrap());
        assert!(
            shown >= host,
            "with PSI off in the cgroup, the host's ({host}):\n{text}"
        );
    }
    // A host process: its own cgroup's (or, in the root, the host's): never less than
    // what that file said just before.
    let (mount, path) = own_unified().unwrap();
    let own = match path.as_str() {
        "/" => std::path::PathBuf::from("/proc/pressure/cpu"),
        p => mount.join(p.trim_start_matches('/')).join("cpu.pressure"),
    };
    let before = total(
        std::fs::read_to_string(own)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    );
    let seen = std::fs::read_to_string(d.path("proc/pressure/cpu")).unwrap();
    assert!(total(seen.lines().next().unwrap()) >= before, "{seen}");
}

/// -z shows 0 for Zswap and Zswapped in a container's meminfo, as lxcfs 7.0 does.
#[test]
fn disable_zswap_zeroes_the_zswap_lines() {
    if !root_or_skip("disable_zswap_zeroes_the_zswap_lines") {
        return;
    }
    let host = std::fs::read_to_string("/proc/meminfo").unwrap();
    let zswap = host.contains("\nZswap:");
    if !host_has_or_skip("disable_zswap_zeroes_the_zswap_lines", zswap, "zswap") {
        return;
    }
    let mem = Cgroup::new("memory", "zswap");
    let d = Daemon::start("zswap", &["-z"]);
    let text = read_in(&[&mem], &d, &["proc/meminfo"]).remove(0);
    assert!(text.starts_with("MemTotal:"), "{text}");
    for key in ["Zswap", "Zswapped"] {
        assert_eq!(meminfo_kb(&text, key), 0, "{key}:\n{text}");
    }
}

/// The value of `key` in /proc/vmstat-formatted text.
fn vmstat_value(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in:\n{text}"))
}

fn vmstat_names(text: &str) -> Vec<&str> {
    text.lines()
        .map(|l| l.split(' ').next().unwrap_or(""))
        .collect()
}

/// /proc/vmstat in a container: the host's lines in the host's order, with the memory
/// cgroup's page faults, page counts (v1 `total_*` keys on this host) and OOM kills; vmstat(8) reads
/// it bound over the container's /proc/vmstat; pass-through shows the host's file; the root
/// memory cgroup sees the host's.
fn vmstat_is_the_containers_own(transport: &str) {
    let d = Daemon::start(&format!("vmstat-{transport}"), &["--transport", transport]);
    let mem = Cgroup::new("memory", &format!("vmstat-{transport}"));
    let p = d.path("proc/vmstat");
    // dd touches every page of its 32 MiB buffer: 8192 faults in the container's cgroup.
    let script = format!(
        "cat {p}; echo =====; dd if=/dev/zero of=/dev/null bs=32M count=1 2>/dev/null; cat {p}; \
         echo =====; mount --bind {p} /proc/vmstat && vmstat -s",
        p = p.display()
    );
    let out = in_container(&[&mem], &script);
    let cgroup_after = mem.get("memory.stat");
    let host = std::fs::read_to_string("/proc/vmstat").unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let parts: Vec<&str> = text.split("=====\n").collect();
    let (before, after, tool) = (parts[0], parts[1], parts[2]);
    assert_eq!(
        vmstat_names(after),
        vmstat_names(&host),
        "the host's layout"
    );
    let faults = vmstat_value(after, "pgfault") - vmstat_value(before, "pgfault");
    assert!(faults >= 8192, "dd's faults are counted: {faults}");
    let own = vmstat_value(after, "pgfault");
    assert!(
        own <= vmstat_value(&cgroup_after, "total_pgfault"),
        "the cgroup's total_pgfault bounds it"
    );
    assert!(own < vmstat_value(&host, "pgfault"), "not the host's");
    // Page counts in pages, within what the cgroup ever charged.
    let peak_pages = mem
        .get("memory.max_usage_in_bytes")
        .trim()
        .parse::<u64>()
        .unwrap()
        / 4096;
    let (anon, file) = (
        vmstat_value(after, "nr_anon_pages"),
        vmstat_value(after, "nr_file_pages"),
    );
    assert!(anon + file <= peak_pages, "{anon} + {file} > {peak_pages}");
    assert_eq!(
        vmstat_value(after, "nr_zone_inactive_anon"),
        vmstat_value(after, "nr_inactive_anon")
    );
    // Counters of the host where the cgroup has none (v1 has no reclaim counts).
    assert!(vmstat_value(after, "pgfree") >= vmstat_value(before, "pgfree"));
    // vmstat(8) reads our file: its swap-in count is our pswpin line.
    let swapped_in = tool
        .lines()
        .find_map(|l| l.trim().strip_suffix(" pages swapped in"))
        .unwrap_or_else(|| panic!("vmstat -s:\n{tool}"));
    assert_eq!(
        swapped_in.trim().parse::<u64>().unwrap(),
        vmstat_value(after, "pswpin")
    );

    // An OOM kill in a container is counted in its oom_kill; the other container's stays 0.
    let oom = Cgroup::new("memory", &format!("vmstat-oom-{transport}"));
    oom.set("memory.limit_in_bytes", &(16u64 << 20).to_string());
    let out = in_container(
        &[&oom],
        &format!(
            "dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; cat {}",
            p.display()
        ),
    );
    let killed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(vmstat_value(&killed, "oom_kill"), 1, "dd was killed");
    let out = in_container(&[&mem], &format!("cat {}", p.display()));
    let spared = String::from_utf8(out.stdout).unwrap();
    assert_eq!(vmstat_value(&spared, "oom_kill"), 0);
    assert!(
        vmstat_value(
            &std::fs::read_to_string("/proc/vmstat").unwrap(),
            "oom_kill"
        ) >= 1
    );

    // Pass-through (SIGUSR2) shows the host's file unchanged; toggled back, the
    // container's counters continue from what it was shown before.
    let pgfault_in = |cg: &Cgroup| {
        let out = in_container(&[cg], &format!("cat {}", p.display()));
        vmstat_value(&String::from_utf8(out.stdout).unwrap(), "pgfault")
    };
    let host_pgfault =
        || vmstat_value(&std::fs::read_to_string("/proc/vmstat").unwrap(), "pgfault");
    d.signal(nix::sys::signal::Signal::SIGUSR2);
    wait_until("pass-through", std::time::Duration::from_secs(5), || {
        let before = host_pgfault();
        pgfault_in(&mem) >= before
    });
    d.signal(nix::sys::signal::Signal::SIGUSR2);
    wait_until(
        "the container's again",
        std::time::Duration::from_secs(5),
        || pgfault_in(&mem) < host_pgfault(),
    );
    assert!(pgfault_in(&mem) >= own, "never below what it showed");

    // The root memory cgroup holds every host task: the host's file.
    let (root, _) = own_cgroup("memory").unwrap();
    let host_before = std::fs::read_to_string("/proc/vmstat").unwrap();
    let out = in_container_at(&[&root], &format!("cat {}", p.display()));
    let shown = String::from_utf8(out.stdout).unwrap();
    assert_eq!(vmstat_names(&shown), vmstat_names(&host_before));
    assert!(vmstat_value(&shown, "pgfault") >= vmstat_value(&host_before, "pgfault"));
}

fn stat_value(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in:\n{text}"))
}

/// With -l, /proc/stat's procs_running and procs_blocked are the container's threads at the
/// load tracker's last sample: three busy loops in one container show there, and a
/// container that only sleeps sees itself alone running while the host counts the loops.
fn procs_running_is_the_containers_own(transport: &str) {
    let d = Daemon::start(
        &format!("procs-{transport}"),
        &["-l", "--transport", transport],
    );
    let busy = Cgroup::new("cpu", &format!("procs-busy-{transport}"));
    let idle = Cgroup::new("cpu", &format!("procs-idle-{transport}"));
    let p = d.path("proc/stat");
    let (busy_text, idle_text) = std::thread::scope(|s| {
        let busy_run = s.spawn(|| {
            let script = format!(
                "for i in 1 2 3; do timeout 14 sh -c 'while :; do :; done' & done; \
                 cat {p} >/dev/null; sleep 6; cat {p}; wait",
                p = p.display()
            );
            String::from_utf8(in_container(&[&busy], &script).stdout).unwrap()
        });
        std::thread::sleep(std::time::Duration::from_secs(1));
        // The loops are running: the host counts them, the sleeping container does not.
        let script = format!(
            "cat {p} >/dev/null; sleep 6; cat {p}; echo =====; cat /proc/stat",
            p = p.display()
        );
        let idle_text = String::from_utf8(in_container(&[&idle], &script).stdout).unwrap();
        (busy_run.join().unwrap(), idle_text)
    });
    let running = stat_value(&busy_text, "procs_running");
    assert!(
        (3..=6).contains(&running),
        "three loops (and the reader): {running}\n{busy_text}"
    );
    let (own, host) = idle_text.split_once("=====\n").unwrap();
    assert_eq!(
        stat_value(own, "procs_running"),
        1,
        "only the reader:\n{own}"
    );
    assert_eq!(stat_value(own, "procs_blocked"), 0);
    assert!(
        stat_value(host, "procs_running") >= 3,
        "the host counts the loops:\n{host}"
    );
    assert_eq!(
        stat_value(own, "btime"),
        stat_value(host, "btime"),
        "btime stays the host's (ps needs it)"
    );
}

both_transports!(
    vmstat_is_the_containers_own,
    procs_running_is_the_containers_own
);
