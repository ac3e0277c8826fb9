//! Bad input gets one plain sentence and a non-zero exit, and disturbs nothing.

mod common;

use std::process::Command;

use common::*;

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lxcfs-uring"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn missing_mountpoint() {
    let dir = std::env::temp_dir().join(unique("nomnt"));
    let missing = dir.join("does-not-exist");
    let (code, err) = run(&["--runtime-dir", "/tmp", missing.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("does not exist") && err.contains("mkdir -p"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one sentence: {err}");
}

#[test]
fn wrong_flag_and_bad_value() {
    let (code, err) = run(&["--no-such-flag", "/tmp"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--no-such-flag"), "{err}");
    let (code, err) = run(&["--transport", "carrier-pigeon", "/tmp"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("carrier-pigeon"), "{err}");
    let (code, _) = run(&[]);
    assert_eq!(code, 2);
}

#[test]
fn second_instance_refuses_and_leaves_the_first_serving() {
    if !root_or_skip("second_instance_refuses_and_leaves_the_first_serving") {
        return;
    }
    let d = Daemon::start("twice", &[]);
    let other = std::env::temp_dir().join(unique("twice-other"));
    std::fs::create_dir_all(&other).unwrap();
    let (code, err) = run(&[
        "--runtime-dir",
        d.runtime.to_str().unwrap(),
        other.to_str().unwrap(),
    ]);
    let _ = std::fs::remove_dir(&other);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("another lxcfs-uring holds"), "{err}");
    assert!(!is_mounted(&other));
    // the first instance still serves, and still owns the pidfile
    assert!(
        std::fs::read_to_string(d.path("proc/meminfo"))
            .unwrap()
            .starts_with("MemTotal:")
    );
    let pid: i32 = std::fs::read_to_string(d.runtime.join("lxcfs.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, d.pid());
}

#[test]
fn help_reads_well() {
    let out = Command::new(env!("CARGO_BIN_EXE_lxcfs-uring"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--transport",
        "--disable-swap",
        "--pidfile",
        "--runtime-dir",
        "MOUNTPOINT",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}:\n{text}");
    }
}
