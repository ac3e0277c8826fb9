//! Restart-free upgrades: SIGUSR1 replaces the daemon's program image with the binary now
//! on disk while readers hammer the mount; not one read may fail or stall.

mod common;

use std::fs::File;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;

/// Readers on `files` until `stop`: (reads, failures, slowest read).
fn hammer(
    d: &Daemon,
    files: &[&str],
    stop: Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<(u64, Vec<String>, Duration)>> {
    files
        .iter()
        .map(|f| {
            let path = d.path(f);
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut n, mut failures, mut slowest) = (0u64, Vec::new(), Duration::ZERO);
                let mut buf = Vec::with_capacity(1 << 16);
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    buf.clear();
                    match File::open(&path).and_then(|mut f| f.read_to_end(&mut buf)) {
                        Ok(_) if buf.is_empty() => {
                            failures.push(format!("{}: empty", path.display()))
                        }
                        Ok(_) => {}
                        Err(e) => failures.push(format!("{}: {e}", path.display())),
                    }
                    slowest = slowest.max(t.elapsed());
                    n += 1;
                }
                (n, failures, slowest)
            })
        })
        .collect()
}

#[test]
fn sigusr1_upgrades_in_place_without_a_failed_read() {
    if !root_or_skip("sigusr1_upgrades_in_place_without_a_failed_read") {
        return;
    }
    // The daemon runs from a copy that the test replaces, as an operator's upgrade does.
    let bin_dir = std::env::temp_dir().join(unique("upgrade-bin"));
    std::fs::create_dir_all(&bin_dir).unwrap();
    let bin = bin_dir.join("lxcfs-uring");
    std::fs::copy(env!("CARGO_BIN_EXE_lxcfs-uring"), &bin).unwrap();
    let mut d = Daemon::start_binary(
        "upgrade",
        bin.to_str().unwrap(),
        &["--transport", "classic"],
    );
    let pid = d.pid();
    let stop = Arc::new(AtomicBool::new(false));
    let readers = hammer(
        &d,
        &["proc/meminfo", "proc/stat", "proc/uptime", "proc/cpuinfo"],
        stop.clone(),
    );
    let upgrades = 8;
    for _ in 0..upgrades {
        std::thread::sleep(Duration::from_millis(400));
        // rm the old file, copy the new one, signal: the seed's recipe.
        std::fs::remove_file(&bin).unwrap();
        std::fs::copy(env!("CARGO_BIN_EXE_lxcfs-uring"), &bin).unwrap();
        d.signal(nix::sys::signal::Signal::SIGUSR1);
    }
    std::thread::sleep(Duration::from_millis(400));
    stop.store(true, Ordering::Relaxed);
    let (mut reads, mut failures, mut slowest) = (0, Vec::new(), Duration::ZERO);
    for r in readers {
        let (n, f, s) = r.join().unwrap();
        reads += n;
        failures.extend(f);
        slowest = slowest.max(s);
    }
    assert!(is_mounted(&d.mnt), "the mount went away");
    assert_eq!(d.pid(), pid);
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(
        !exe.to_string_lossy().contains("(deleted)"),
        "runs the new binary: {}",
        exe.display()
    );
    d.signal(nix::sys::signal::Signal::SIGTERM);
    let (_, log) = d.wait_exit(Duration::from_secs(10)).expect("exits");
    let _ = std::fs::remove_dir_all(&bin_dir);
    assert!(
        failures.is_empty(),
        "{} of {reads} reads failed: {:?}\n{log}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        slowest < Duration::from_secs(1),
        "slowest read {slowest:?}\n{log}"
    );
    assert_eq!(
        log.matches("resumed on").count(),
        upgrades,
        "every SIGUSR1 upgraded:\n{log}"
    );
    assert!(reads > 100, "the readers ran: {reads}");
}

#[test]
fn sigusr1_on_the_uring_transport_is_refused_and_serving_goes_on() {
    if !root_or_skip("sigusr1_on_the_uring_transport_is_refused_and_serving_goes_on") {
        return;
    }
    let mut d = Daemon::start("upgrade-uring", &["--transport", "uring"]);
    d.signal(nix::sys::signal::Signal::SIGUSR1);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        std::fs::read_to_string(d.path("proc/meminfo"))
            .unwrap()
            .starts_with("MemTotal:")
    );
    d.signal(nix::sys::signal::Signal::SIGTERM);
    let (_, log) = d.wait_exit(Duration::from_secs(10)).expect("exits");
    assert!(
        log.contains("no in-place upgrade") && log.contains("io_uring"),
        "{log}"
    );
}
