//! Pure cgroup v2, for real: boots a kernel under qemu-system-x86_64 (TCG) with a busybox
//! initramfs holding the daemon, and runs the scenarios of tests/vm/init.sh inside, once
//! per transport the kernel offers.
//!
//! - Debian's Linux 6.1 has neither FUSE-over-io_uring nor NOTIFY_RESEND nor the
//!   pid-namespace ioctls, and splices through read's path: the old-kernel test.
//! - Debian unstable's current kernel (7.x) is what the hosts that get the io_uring
//!   transport run: auto must pick io_uring there, and every scenario runs on both.
//!
//! scripts/test.sh installs qemu-system-x86, linux-image-amd64 (6.1) and busybox-static,
//! and scripts/vm-kernel.sh unpacks the current kernel into `CURRENT_KERNELS`.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One boot must end within this (a boot that dies before init is tried once more).
const DEADLINE: Duration = Duration::from_secs(400);

/// Where scripts/vm-kernel.sh unpacks Debian unstable's kernel:
/// `<release>/{vmlinuz,virtio_blk.ko}`.
const CURRENT_KERNELS: &str = "/var/cache/lxcfs-uring-test/sid/kernel";

/// The scenarios every pass must pass.
const SCENARIOS: &[&str] = &[
    "transport",
    "transport_second",
    "mem_total",
    "mem_free",
    "swap_total",
    "swap_capped_at_host",
    "swaps_size",
    "read_cat",
    "read_cp",
    "read_bytewise",
    "read_tail",
    "read_size",
    "pressure_own",
    "cpuinfo_one",
    "online_one",
    "possible_one",
    "stat_cpus_one",
    "sys_cpudirs_one",
    "cfs_half_cpuinfo",
    "cfs_half_online",
    "cfs_oneandhalf_cpuinfo",
    "cfs_oneandhalf_online",
    "stat_own_usage",
    "stat_not_the_hosts",
    "uptime_own_idle",
    "diskstats_writes",
    "diskstats_only_used",
    "loadavg_starts_at_zero",
    "loadavg_rises",
    "missing_controller_meminfo",
    "missing_controller_reads",
    "cgroup_tree_names",
    "cgroup_tree_confined",
    "cgroup_tree_sibling_hidden",
    "cgroup_tree_pids",
    "cgroup_tree_move",
    "upgrade_reads",
    "upgrade_no_failed_read",
];

/// And those of a kernel with FUSE_NOTIFY_RESEND (6.9+), where a crash is survived ...
const CRASH_SCENARIOS: &[&str] = &[
    "crash_failed_reads_at_most_one_per_cpu",
    "serves_after_crash",
    "upgrades_resumed",
];
/// ... or of one without, where upgrades are refused with a reason.
const NO_RESEND_SCENARIOS: &[&str] = &["upgrade_refused_says_why"];

/// One VM at a time: two under TCG on two cores would slow each other's timed scenarios.
static ONE_VM: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A cpio "newc" archive, as the kernel unpacks an initramfs.
struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.ino += 1;
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            0,
            0,
            name.len() + 1,
            0
        );
        self.out.extend_from_slice(header.as_bytes());
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, b"");
    }

    fn file(&mut self, name: &str, from: &Path, mode: u32) {
        let data = std::fs::read(from).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
        self.entry(name, 0o100000 | mode, &data);
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, b"");
        self.out
    }
}

fn find(dir: &str, prefix: &str) -> Option<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect();
    v.sort();
    v.pop()
}

/// The shared libraries `bin` loads, as ldd lists them.
fn libraries(bin: &str) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(bin).output().expect("ldd");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with('/'))
                .map(PathBuf::from)
        })
        .collect()
}

/// The initramfs, with the kernel modules init.sh loads, in that order.
fn build_initramfs(modules: &[PathBuf]) -> Vec<u8> {
    let mut c = Cpio {
        out: Vec::new(),
        ino: 0,
    };
    for d in [
        "bin",
        "dev",
        "proc",
        "sys",
        "tmp",
        "run",
        "lib",
        "lib64",
        "lib/modules",
        "var",
        "var/lib",
        "usr",
        "usr/lib",
        "usr/lib/x86_64-linux-gnu",
        "lib/x86_64-linux-gnu",
    ] {
        c.dir(d);
    }
    c.entry("init", 0o100755, include_bytes!("vm/init.sh"));
    c.file("bin/busybox", Path::new("/bin/busybox"), 0o755);
    let bin = env!("CARGO_BIN_EXE_lxcfs-uring");
    c.file("bin/lxcfs-uring", Path::new(bin), 0o755);
    for lib in libraries(bin) {
        let real = std::fs::canonicalize(&lib).unwrap();
        let name = lib.to_string_lossy().trim_start_matches('/').to_owned();
        c.file(&name, &real, 0o755);
    }
    let mut load = String::new();
    for (i, m) in modules.iter().enumerate() {
        let name = format!("{i:02}-{}", m.file_name().unwrap().to_string_lossy());
        c.file(&format!("lib/modules/{name}"), m, 0o644);
        load.push_str(&name);
        load.push('\n');
    }
    c.entry("lib/modules/load", 0o100644, load.as_bytes());
    c.finish()
}

/// Debian 6.1's fuse and virtio disk drivers (modules there), dependencies first.
fn modules_6_1(dir: &Path) -> Vec<PathBuf> {
    let deps = std::fs::read_to_string(dir.join("modules.dep")).unwrap();
    let mut order = Vec::new();
    for m in [
        "kernel/fs/fuse/fuse.ko",
        "kernel/drivers/virtio/virtio_pci.ko",
        "kernel/drivers/block/virtio_blk.ko",
    ] {
        with_deps(&deps, m, &mut order);
    }
    order.iter().map(|m| dir.join(m)).collect()
}

/// `module` after everything it depends on (modules.dep lists a module's dependencies).
fn with_deps(deps: &str, module: &str, order: &mut Vec<String>) {
    if order.iter().any(|m| m == module) {
        return;
    }
    let line = deps
        .lines()
        .find(|l| l.split(':').next() == Some(module))
        .unwrap_or_else(|| panic!("{module} not in modules.dep"));
    for d in line.split(':').nth(1).unwrap_or("").split_whitespace() {
        with_deps(deps, d, order);
    }
    order.push(module.to_owned());
}

/// A kernel to boot, and what the scenarios expect of it.
struct Kernel {
    vmlinuz: PathBuf,
    /// The modules init.sh loads (fuse and virtio where they are not built in), in order.
    modules: Vec<PathBuf>,
    /// The transport the daemon's auto must pick on it.
    auto: &'static str,
    /// Whether it has FUSE_NOTIFY_RESEND (Linux 6.9+): upgrades and crash recovery.
    resend: bool,
}

/// The kernel, or a loud skip (never under CI=true) naming what is missing.
fn kernel_or_skip(test: &str, kernel: Option<Kernel>, install: &str) -> Option<Kernel> {
    if !common::root_or_skip(test) {
        return None;
    }
    let qemu = Path::new("/usr/bin/qemu-system-x86_64").exists();
    match kernel {
        Some(k) if qemu && Path::new("/bin/busybox").exists() => Some(k),
        _ => {
            let msg = format!(
                "needs qemu-system-x86, busybox-static and {install}: scripts/test.sh installs them"
            );
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{test}: {msg}");
            }
            eprintln!("\n*** SKIPPED {test}: {msg} ***\n");
            None
        }
    }
}

#[test]
fn pure_cgroup_v2_on_linux_6_1() {
    let kernel = find("/boot", "vmlinuz-6.1").map(|vmlinuz| {
        let release = vmlinuz.file_name().unwrap().to_string_lossy();
        let modules = Path::new("/usr/lib/modules").join(release.trim_start_matches("vmlinuz-"));
        Kernel {
            vmlinuz,
            modules: modules_6_1(&modules),
            auto: "classic",
            resend: false,
        }
    });
    let test = "pure_cgroup_v2_on_linux_6_1";
    if let Some(k) = kernel_or_skip(test, kernel, "linux-image-amd64 (6.1)") {
        run_scenarios(&k, &["auto"]);
    }
}

#[test]
fn pure_cgroup_v2_on_the_current_kernel() {
    let kernel = find(CURRENT_KERNELS, "")
        .filter(|dir| dir.join("vmlinuz").exists() && dir.join("virtio_blk.ko").exists())
        .map(|dir| Kernel {
            vmlinuz: dir.join("vmlinuz"),
            modules: vec![dir.join("virtio_blk.ko")],
            auto: "uring",
            resend: true,
        });
    let test = "pure_cgroup_v2_on_the_current_kernel";
    if let Some(k) = kernel_or_skip(
        test,
        kernel,
        "Debian unstable's kernel (scripts/vm-kernel.sh)",
    ) {
        run_scenarios(&k, &["auto", "classic"]);
    }
}

/// Boot `k`, run tests/vm/init.sh, and assert that each of `passes` passed every scenario.
fn run_scenarios(k: &Kernel, passes: &[&str]) {
    let _one = ONE_VM.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(common::unique("vm"));
    std::fs::create_dir_all(&dir).unwrap();
    let _cleanup = RemoveOnDrop(dir.clone());
    let initrd = dir.join("initramfs.cpio");
    std::fs::write(&initrd, build_initramfs(&k.modules)).unwrap();
    for disk in ["io.img", "swap.img"] {
        let f = std::fs::File::create(dir.join(disk)).unwrap();
        f.set_len(64 << 20).unwrap();
    }
    // Under TCG an early boot sometimes dies before init runs: boot once more then.
    let mut console = boot(k, &dir, &initrd);
    if !console.contains("VMTEST kernel") {
        console = boot(k, &dir, &initrd);
    }
    let results: Vec<&str> = console
        .lines()
        .filter_map(|l| l.trim_end_matches('\r').strip_prefix("VMTEST "))
        .collect();
    assert!(
        results.contains(&"DONE"),
        "the VM did not finish its scenarios in {DEADLINE:?}"
    );
    let failed: Vec<&&str> = results.iter().filter(|r| r.contains(" FAIL")).collect();
    assert!(
        failed.is_empty(),
        "failed in the VM:\n{}",
        failed
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let ran: Vec<&str> = results
        .iter()
        .filter_map(|r| r.strip_prefix("pass "))
        .collect();
    assert_eq!(ran, passes, "passes run");
    let upgrades = if k.resend {
        CRASH_SCENARIOS
    } else {
        NO_RESEND_SCENARIOS
    };
    for pass in passes {
        for name in SCENARIOS.iter().chain(upgrades) {
            assert!(
                results.contains(&format!("{pass}/{name} PASS").as_str()),
                "scenario {pass}/{name} did not pass:\n{console}"
            );
        }
    }
}

/// Boot `k` with `initrd` and the disks in `dir`; its serial console, once it powered off
/// or the deadline passed.
fn boot(k: &Kernel, dir: &Path, initrd: &Path) -> String {
    let mut qemu = Command::new("/usr/bin/qemu-system-x86_64")
        .args([
            "-machine",
            "q35",
            "-cpu",
            "max",
            "-smp",
            "2",
            "-m",
            "768",
            "-nographic",
            "-no-reboot",
        ])
        .arg("-kernel")
        .arg(&k.vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .arg("-append")
        .arg(format!(
            "console=ttyS0 quiet rdinit=/init panic=-1 psi=1 lxcfs_expect={} lxcfs_resend={}",
            k.auto,
            u8::from(k.resend)
        ))
        .arg("-drive")
        .arg(format!(
            "file={},if=virtio,format=raw",
            dir.join("io.img").display()
        ))
        .arg("-drive")
        .arg(format!(
            "file={},if=virtio,format=raw",
            dir.join("swap.img").display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start qemu");
    // Read the serial console until the VM powers off or the deadline passes.
    let mut stdout = qemu.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    while qemu.try_wait().unwrap().is_none() {
        if start.elapsed() > DEADLINE {
            let _ = qemu.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = qemu.wait();
    let console = reader.join().unwrap();
    let _ = std::io::stderr()
        .write_all(format!("VM console ({:?}):\n{console}\n", start.elapsed()).as_bytes());
    console
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
