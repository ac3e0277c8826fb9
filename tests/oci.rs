//! Real OCI runtimes: runc and crun run containers whose config.json bind-mounts the views
//! over /proc and /sys/devices/system/cpu, as Docker and Kubernetes do, with the memory
//! limit and cpuset set by the runtime. Inside, real programs (procps free, top and ps,
//! htop, nproc, getconf, Python, busybox) must see the container's limits and usage, on
//! both transports.
//!
//! The container's root file system is the host's /usr and /etc, read-only, so the
//! programs are the host's own, or an Alpine-like root of busybox and its applets (the
//! bundle is tests/common/runc.rs's).

#[macro_use]
mod common;

use common::runc::*;
use common::*;

const MIB256: u64 = 256 << 20;

/// One container with a busy loop per CPU at a time: a second one would halve what top
/// sees. Each transport's containers take a CPU of their own.
static CPUS: [std::sync::Mutex<()>; 2] = [std::sync::Mutex::new(()), std::sync::Mutex::new(())];

fn cpu_of(transport: &str) -> (&'static str, std::sync::MutexGuard<'static, ()>) {
    let i = usize::from(transport != "uring");
    let guard = CPUS[i].lock().unwrap_or_else(|e| e.into_inner());
    (["0", "1"][i], guard)
}

fn programs_in_a_runc_container(transport: &str) {
    programs_in_a_container(transport, "runc");
}

fn programs_in_a_crun_container(transport: &str) {
    programs_in_a_container(transport, "crun");
}

/// A container limited to 256 MiB and one CPU by `runtime`: what free, top, nproc,
/// getconf, Python and busybox report in it.
fn programs_in_a_container(transport: &str, runtime: &str) {
    if !runtime_or_skip(&format!("programs_in_a_{runtime}_container"), runtime) {
        return;
    }
    let (cpu, _cpu) = cpu_of(transport);
    let d = Daemon::start(
        &format!("oci-{runtime}-{transport}"),
        &["--transport", transport],
    );
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
# the loop's share of its CPU while top runs, from its own ticks (fields 14, 15: user,
# system) over the wall time, so a machine busy with other work is no failure
t0=$(date +%s%N); c0=$(awk '{print $14 + $15}' /proc/$busy/stat)
# "%Cpu(s): 99.0 us, ..." or, at 100, "%Cpu(s):100.0 us, ...": the number before " us"
echo "top=$(top -bn2 -d 1 | awk -F'[:,]' '/^%Cpu/ {split($2, f, " "); v = f[1]} END {print int(v)}')"
c1=$(awk '{print $14 + $15}' /proc/$busy/stat); t1=$(date +%s%N)
echo "share=$(( (c1 - c0) * 100000000000 / $(getconf CLK_TCK) / (t1 - t0) ))"
kill $busy
"#;
    let name = format!("progs-{runtime}-{transport}");
    let mut spec = Spec::new(&name, MIB256, cpu, script);
    spec.views = Some(&d.mnt);
    spec.runtime = runtime;
    let out = Runc::with(&d.dir, &spec).run();
    let get = labelled(&out);
    let kb = (MIB256 / 1024).to_string();
    for k in ["meminfo", "free", "copyfile", "busybox"] {
        assert_eq!(get(k), kb, "{k}:\n{out}");
    }
    for k in ["nproc", "conf", "onln", "python", "statcpus"] {
        assert_eq!(get(k), "1", "{k}:\n{out}");
    }
    let up: u64 = get("uptime").parse().unwrap();
    assert!(up < 30, "the container's uptime, not the host's:\n{out}");
    // top sees its busy loop on its one CPU: 99-100% us on an idle machine, whatever
    // share it got on a busy one
    let top: i64 = get("top").parse().unwrap();
    let share: i64 = get("share").parse().unwrap();
    assert!(
        top >= 10 && (top - share).abs() <= 25,
        "top's us {top}%, the loop's share of its CPU {share}%:\n{out}"
    );
}

/// An Alpine-like container (busybox and its applets, nothing else) limited to 256 MiB and
/// one CPU: what busybox's cat, top, free, nproc and uptime show in it. free and uptime ask
/// the kernel with sysinfo(2), which no file system can answer for the container: their
/// totals, free memory and uptime are the host's, only free's "available" column comes
/// from /proc/meminfo.
fn busybox_in_a_container(transport: &str) {
    if !runc_or_skip("busybox_in_a_container") {
        return;
    }
    let (cpu, _cpu) = cpu_of(transport);
    let d = Daemon::start(
        &format!("oci-busybox-{transport}"),
        &["--transport", transport],
    );
    let script = r#"
echo "cat=$(cat /proc/meminfo | awk '/^MemTotal:/{print $2}')"
echo "cpuinfo=$(cat /proc/cpuinfo | grep -c ^processor)"
echo "uptimefile=$(cat /proc/uptime | cut -d. -f1)"
echo "nproc=$(nproc)"
# "Mem: 532K used, 261612K free, ...": used + free is MemTotal
echo "topmem=$(top -bn1 | awk '/^Mem:/ {print $2 + $4}')"
echo "topcpu=$(top -bn1 | grep -c '^CPU: ')"
echo "free=$(free | awk '/^Mem:/ {print $2}')"
echo "freeavail=$(free | awk '/^Mem:/ {print $7}')"
echo "uptime=$(uptime)"
"#;
    let name = format!("busybox-{transport}");
    let mut spec = Spec::new(&name, MIB256, cpu, script);
    spec.views = Some(&d.mnt);
    spec.busybox_root = true;
    let out = Runc::with(&d.dir, &spec).run();
    let get = labelled(&out);
    let kb = MIB256 / 1024;
    for k in ["cat", "topmem"] {
        assert_eq!(get(k), kb.to_string(), "{k}:\n{out}");
    }
    for k in ["cpuinfo", "nproc", "topcpu"] {
        assert_eq!(get(k), "1", "{k}:\n{out}");
    }
    let up: u64 = get("uptimefile").parse().unwrap();
    assert!(up < 30, "the container's uptime in the file:\n{out}");
    // sysinfo(2): the host's memory in free's total, the container's only in "available"
    let host = std::fs::read_to_string("/proc/meminfo").unwrap();
    assert_eq!(
        get("free"),
        meminfo_kb(&host, "MemTotal").to_string(),
        "busybox free's total is the host's:\n{out}"
    );
    let avail: u64 = get("freeavail").parse().unwrap();
    assert!(avail <= kb, "free's available is the container's:\n{out}");
    // ... and the host's uptime in busybox uptime ("up 0 min" would be the container's)
    let host_up = host_uptime();
    if host_up >= 120.0 {
        assert!(
            get("uptime").contains(" up ") && !get("uptime").contains("up 0 min"),
            "busybox uptime is the host's:\n{out}"
        );
    }
}

/// Podman (with runc) running an Alpine-like root (`--rootfs`: nothing to pull) with the
/// views bound by `-v` as the README shows, and its memory limit and cpuset. Its default
/// rlimits cannot start here: it asks for more open files and processes than these
/// machines' hard limits, and raising a hard limit needs CAP_SYS_RESOURCE, which they do
/// not give, so the container gets lower ones (`--ulimit`). Its default runtime here,
/// crun, refuses hybrid hosts whose unified hierarchy offers a controller, hence runc.
fn programs_in_a_podman_container(transport: &str) {
    if !runtime_or_skip("programs_in_a_podman_container", "podman") {
        return;
    }
    let (cpu, _cpu) = cpu_of(transport);
    let d = Daemon::start(
        &format!("oci-podman-{transport}"),
        &["--transport", transport],
    );
    let mut args: Vec<String> = ["--memory", "256m", "--cpuset-cpus", cpu]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for v in VIEWS {
        args.push("-v".into());
        args.push(format!("{}:/{v}:rw", d.path(v).display()));
    }
    let script = r#"
echo "cat=$(cat /proc/meminfo | awk '/^MemTotal:/{print $2}')"
echo "topmem=$(top -bn1 | awk '/^Mem:/ {print $2 + $4}')"
echo "cpuinfo=$(grep -c ^processor /proc/cpuinfo)"
echo "online=$(cat /sys/devices/system/cpu/online)"
echo "uptime=$(cut -d. -f1 /proc/uptime)"
"#;
    let text = podman_run(
        &format!("podman-{transport}"),
        &d.dir.join("podman-rootfs"),
        &[],
        &args,
        script,
    );
    let get = labelled(&text);
    for k in ["cat", "topmem"] {
        assert_eq!(get(k), (MIB256 / 1024).to_string(), "{k}:\n{text}");
    }
    assert_eq!(get("cpuinfo"), "1", "{text}");
    assert_eq!(get("online"), cpu, "{text}");
    let up: u64 = get("uptime").parse().unwrap();
    assert!(up < 30, "the container's uptime:\n{text}");
}

/// htop (which has no batch mode) in a runc container limited to 256 MiB and one CPU, with
/// the views and /proc/pressure bound by our OCI hook: drawn in a tmux pane, its screen shows one CPU meter
/// and a 256M memory total and its pressure meters show values, and strace shows it opened
/// /sys/devices/system/cpu, /proc/stat, /proc/meminfo and /proc/pressure/*, all ours.
fn htop_in_a_container(transport: &str) {
    let test = "htop_in_a_container";
    if !runc_or_skip(test) {
        return;
    }
    for tool in ["htop", "tmux", "strace"] {
        let has = std::path::Path::new("/usr/bin").join(tool).exists();
        if !host_has_or_skip(test, has, &format!("{tool} (scripts/test.sh installs it)")) {
            return;
        }
    }
    let d = Daemon::start(
        &format!("oci-htop-{transport}"),
        &["--transport", transport],
    );
    // The meters: every CPU, memory and swap on the left; tasks, load, uptime and two
    // pressure meters on the right. htop redraws every 1.5 s: the screen is taken after
    // its second draw.
    let script = r#"
export HOME=/tmp TERM=xterm
mkdir -p /tmp/.config/htop
printf '%s\n' htop_version=3.2.2 config_reader_min_version=3 \
    'column_meters_0=AllCPUs Memory Swap' 'column_meter_modes_0=1 1 1' \
    'column_meters_1=Tasks LoadAverage Uptime PressureStallCPUSome PressureStallMemorySome' \
    'column_meter_modes_1=2 2 2 2 2' > /tmp/.config/htop/htoprc
tmux -S /tmp/tmux new-session -d -x 100 -y 30 'strace -f -e trace=openat -o /tmp/trace htop'
i=0
until tmux -S /tmp/tmux capture-pane -p | grep -q 'PSI some memory'; do
    i=$((i + 1)); [ $i -gt 100 ] && break; sleep 0.1
done
sleep 2
tmux -S /tmp/tmux capture-pane -p | sed 's/^/screen:/'
tmux -S /tmp/tmux send-keys q
i=0
while tmux -S /tmp/tmux has-session 2>/dev/null; do
    i=$((i + 1)); [ $i -gt 100 ] && break; sleep 0.1
done
# what htop opened, with openat's result (an fd, or -1 and the error)
sed -n 's/.*openat(AT_FDCWD, "\([^"]*\)".* = \(-*[0-9]*\).*/opened:\1 \2/p' /tmp/trace | sort -u
awk '{for (i = 7; $i != "-"; i++); print "fstype:" $5 " " $(i+1)}' /proc/self/mountinfo
"#;
    let name = format!("htop-{transport}");
    let cpu = if transport == "uring" { "0" } else { "1" };
    let mut spec = Spec::new(&name, MIB256, cpu, script);
    // runc mounts nothing but a few named files inside /proc: the views, /proc/pressure
    // with them, come from our createContainer hook, as the annotation asks
    let log = d.dir.join("hook.log");
    spec.create_container_hooks
        .push(oci_hook_entry(&d.mnt, &log));
    spec.annotations = vec![("io.lxcfs-uring.pressure", "true")];
    // tmux needs pseudo-terminals
    spec.mounts.push(mount(
        "/dev/pts",
        "devpts",
        "devpts",
        &[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
        ],
    ));
    let out = Runc::with(&d.dir, &spec).run();
    let tagged = |tag: &str| -> Vec<String> {
        out.lines()
            .filter_map(|l| l.strip_prefix(tag))
            .map(str::to_owned)
            .collect()
    };
    let screen = tagged("screen:");
    let shown = screen.join("\n");
    // CPU meters: "  CPU[||    1.3%]" for a lone CPU, "    0[||    3.9%]" for several,
    // "[   offline]" for an id htop found no cpuN directory for. htop sizes its CPU list by
    // the highest cpuN (the host's numbers, as in /proc/stat): a container on CPU 1 gets
    // an offline meter for CPU 0 (README, "ps, free, uptime and htop in a container").
    let meters: Vec<&String> = screen
        .iter()
        .filter(|l| {
            let l = l.trim_start();
            let digits = l.chars().take_while(char::is_ascii_digit).count();
            l.starts_with("CPU[") || (digits > 0 && l[digits..].starts_with('['))
        })
        .collect();
    let offline = meters.iter().filter(|l| l.contains("offline]")).count();
    assert_eq!(meters.len() - offline, 1, "htop's CPU meters:\n{shown}");
    let lower: usize = cpu.parse().unwrap();
    assert_eq!(offline, lower, "htop's offline CPU meters:\n{shown}");
    // "  Mem[||||        1.23M/256M]" (the Tasks meter follows on the same line)
    let mem = screen
        .iter()
        .find_map(|l| l.trim_start().strip_prefix("Mem["))
        .unwrap_or_else(|| panic!("no Mem meter:\n{shown}"));
    assert!(mem.contains("/256M]"), "htop's Mem meter:\n{shown}");
    for psi in ["PSI some CPU:", "PSI some memory:"] {
        let line = screen
            .iter()
            .find(|l| l.contains(psi))
            .unwrap_or_else(|| panic!("no {psi} meter:\n{shown}"));
        assert!(line.contains('%'), "{psi} shows values:\n{shown}");
    }
    // it opened (fd >= 0) the cpu directory and the files its meters need, all ours
    let opened = tagged("opened:");
    let fstypes = tagged("fstype:");
    for path in [
        "/sys/devices/system/cpu",
        "/proc/stat",
        "/proc/meminfo",
        "/proc/pressure/cpu",
        "/proc/pressure/memory",
    ] {
        assert!(
            opened.iter().any(|o| o
                .split_once(' ')
                .is_some_and(|(p, fd)| p == path && !fd.starts_with('-'))),
            "htop opened {path}:\n{}",
            opened.join("\n")
        );
    }
    for mountpoint in [
        "/sys/devices/system/cpu",
        "/proc/stat",
        "/proc/meminfo",
        "/proc/pressure/cpu",
        "/proc/pressure/memory",
    ] {
        assert!(
            fstypes.contains(&format!("{mountpoint} fuse.lxcfs")),
            "{mountpoint} is our view:\n{}\nhook: {}",
            fstypes.join("\n"),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
}

/// The host's uptime in seconds, as this test process sees it.
fn host_uptime() -> f64 {
    let text = std::fs::read_to_string("/proc/uptime").unwrap();
    text.split_whitespace().next().unwrap().parse().unwrap()
}

both_transports!(
    programs_in_a_runc_container,
    programs_in_a_crun_container,
    busybox_in_a_container,
    programs_in_a_podman_container,
    htop_in_a_container
);

/// What procps ps shows in a container for a busy process (docs: README, "ps, free,
/// uptime and htop in a container"): the container's uptime is its own age while the kernel counts a
/// process's start from the host's boot, so ps's ELAPSED wraps to nonsense and %CPU is 0.0
/// (as under lxcfs); START (from the host's btime, which /proc/stat keeps) and TIME are
/// right.
#[test]
fn ps_in_a_container() {
    if !root_or_skip("ps_in_a_container") || !runc_or_skip("ps_in_a_container") {
        return;
    }
    let (cpu, _cpu) = cpu_of("uring");
    let d = Daemon::start("oci-ps", &[]);
    let script = r#"
(while :; do :; done) &
busy=$!
sleep 2
echo "etimes=$(ps -o etimes= -p $busy)"
echo "pcpu=$(ps -o pcpu= -p $busy)"
echo "cputimes=$(ps -o cputimes= -p $busy)"
echo "start=$(date -d "$(ps -o lstart= -p $busy)" +%s)"
echo "now=$(date +%s)"
echo "uptime=$(cut -d. -f1 /proc/uptime)"
kill $busy
"#;
    let out = Runc::new(&d.dir, &d.mnt, "ps", MIB256, cpu, script).run();
    let v = values(&out);
    let num = |k: &str| -> f64 {
        v.get(k)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no {k} in:\n{out}"))
    };
    let host_up = host_uptime();
    assert!(num("uptime") < 30.0, "the container's age:\n{out}");
    // The process started after the container, yet its age comes out beyond the host's
    // uptime (the subtraction wrapped), and %CPU is 0.0 however busy it is.
    assert!(num("etimes") > host_up, "ps's ELAPSED:\n{out}");
    assert_eq!(num("pcpu"), 0.0, "ps's %CPU:\n{out}");
    // Right: when it started (btime + start), and its CPU time.
    assert!(
        (num("now") - num("start") - 2.0).abs() <= 5.0,
        "ps's START:\n{out}"
    );
    assert!(num("cputimes") <= 3.0, "ps's TIME:\n{out}");
}
