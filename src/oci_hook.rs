//! `lxcfs-uring oci-hook`: an OCI runtime-spec `createContainer` hook that bind-mounts the
//! daemon's views over a container's `/proc` files and `/sys/devices/system/cpu`, for
//! runtimes (runc, crun; Podman and CRI-O through `contrib/oci/lxcfs-uring.json`) whose
//! containers do not list the views in their `config.json`.
//!
//! When it runs (runtime-spec config.md, "POSIX-platform Hooks"; runc's
//! `libcontainer/rootfs_linux.go` `prepareRootfs`): after the runtime has mounted every
//! `config.json` mount (`/proc`, `/sys`, ...) into the rootfs and before `pivot_root`, in
//! the container's namespaces (mount and pid included) but with the host's file system
//! still visible, so both the daemon's mountpoint and the rootfs (`root.path` of the
//! bundle's `config.json`, relative to the bundle) are reachable by their host paths. Our
//! mounts land in the container's mount namespace and go away with it. The container's
//! state is on stdin (runtime.md "State": `ociVersion`, `id`, `status`, `pid`, `bundle`,
//! `annotations`).
//!
//! Rules:
//! - Only a malformed state on stdin fails (exit 1, one sentence saying what is wrong).
//!   Everything else exits 0 with a log line, so the container starts with the host's files:
//!   the daemon not serving, no views wanted, an unreadable `config.json`, a view that
//!   cannot be mounted (each view is independent: the others are still mounted).
//! - Targets are resolved in the rootfs with `openat2(RESOLVE_IN_ROOT |
//!   RESOLVE_NO_MAGICLINKS)` and `O_NOFOLLOW`, so no symlink leads out of it; a `/proc` target
//!   must be a regular file on procfs and the cpu target a directory on sysfs. The mount is
//!   made onto the opened file (`open_tree` + `move_mount`), never a path that could be
//!   swapped after the check.
//! - Sources are resolved beneath the daemon's mountpoint without symlinks or mount
//!   crossings, after the mountpoint is checked to be a FUSE mount of type `fuse.lxcfs`.

use std::collections::BTreeMap;
use std::ffi::CStr;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{Mode, SFlag};
use nix::sys::statfs::{FUSE_SUPER_MAGIC, FsType, PROC_SUPER_MAGIC, SYSFS_MAGIC};

/// Annotation that turns the views off for one container: `false`, `disabled`, `off`,
/// `no` or `0` (on: `true`, `enabled`, `on`, `yes`, `1`, or no annotation).
pub const VIEWS_ANNOTATION: &str = "io.lxcfs-uring.views";
/// Annotation that binds `/proc/pressure/*` (on values as above) or not (off values). By
/// default, as in the LXC hook, they are bound only when the daemon takes PSI triggers
/// (`--enable-psi-poll`, which shows them writable, 0666): otherwise binding them would
/// take triggers away from the container's programs (systemd-oomd, low-memory-monitor).
pub const PRESSURE_ANNOTATION: &str = "io.lxcfs-uring.pressure";

/// The filesystem type our daemon (and lxcfs) mounts with, as mountinfo shows it.
const FSTYPE: &str = crate::mount::FSTYPE;

/// Largest state and config.json read (Kubernetes caps a pod's annotations at 256 KiB).
const STATE_MAX: u64 = 4 << 20;
const CONFIG_MAX: u64 = 16 << 20;

/// How long the daemon may take to answer the first request (statfs) before the hook
/// gives up and lets the container start with the host's files.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What kind of file a view replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file on procfs.
    ProcFile,
    /// A directory on sysfs.
    SysDir,
}

/// One view: the same relative path under the daemon's mountpoint and the rootfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    pub path: &'static str,
    pub kind: Kind,
}

/// The views the daemon's mount offers, as the LXC hook binds them (every `proc/` file,
/// `sys/devices/system/cpu` and, where the host has NUMA, `sys/devices/system/node`);
/// `/proc/pressure/*` only with `pressure`.
pub fn views(pressure: bool) -> Vec<View> {
    const PROC: [&str; 9] = [
        "proc/cpuinfo",
        "proc/diskstats",
        "proc/loadavg",
        "proc/meminfo",
        "proc/slabinfo",
        "proc/stat",
        "proc/swaps",
        "proc/uptime",
        "proc/vmstat",
    ];
    const PRESSURE: [&str; 4] = [
        "proc/pressure/cpu",
        "proc/pressure/io",
        "proc/pressure/memory",
        "proc/pressure/irq",
    ];
    let file = |path| View {
        path,
        kind: Kind::ProcFile,
    };
    let mut v: Vec<View> = PROC.into_iter().map(file).collect();
    if pressure {
        v.extend(PRESSURE.into_iter().map(file));
    }
    v.extend(
        ["sys/devices/system/cpu", "sys/devices/system/node"].map(|path| View {
            path,
            kind: Kind::SysDir,
        }),
    );
    v
}

/// The fields of the container state the hook uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub id: String,
    pub bundle: PathBuf,
    /// `None` when the state has no `annotations` (then config.json's count).
    pub annotations: Option<BTreeMap<String, String>>,
}

/// The fields of config.json the hook uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `root.path`: absolute, or relative to the bundle.
    pub root: PathBuf,
    pub annotations: BTreeMap<String, String>,
}

/// The container state (runtime.md "State") from the bytes on stdin; an error says in one
/// sentence what is wrong.
pub fn parse_state(bytes: &[u8]) -> Result<State, String> {
    let v: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("the container state on stdin is not JSON ({e})"))?;
    let obj = v
        .as_object()
        .ok_or("the container state on stdin is not a JSON object")?;
    let id = obj
        .get("id")
        .and_then(|v| v.as_str())
        .ok_or("the container state on stdin has no string \"id\"")?;
    let bundle = obj
        .get("bundle")
        .and_then(|v| v.as_str())
        .ok_or("the container state on stdin has no string \"bundle\"")?;
    if !bundle.starts_with('/') || bundle.contains('\0') {
        return Err(format!(
            "the container state's \"bundle\" {} is not an absolute path",
            printable(bundle)
        ));
    }
    let annotations = match obj.get("annotations") {
        None | Some(serde_json::Value::Null) => None,
        Some(a) => Some(
            string_map(a)
                .ok_or("the container state's \"annotations\" is not an object of strings")?,
        ),
    };
    Ok(State {
        id: id.to_owned(),
        bundle: PathBuf::from(bundle),
        annotations,
    })
}

/// `root.path` and `annotations` of a config.json.
pub fn parse_config(bytes: &[u8]) -> Result<Config, String> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("config.json is not JSON ({e})"))?;
    let root = v
        .get("root")
        .and_then(|r| r.get("path"))
        .and_then(|p| p.as_str())
        .filter(|p| !p.is_empty() && !p.contains('\0'))
        .ok_or("config.json has no string root.path")?;
    let annotations = match v.get("annotations") {
        None | Some(serde_json::Value::Null) => BTreeMap::new(),
        Some(a) => string_map(a).ok_or("config.json's annotations is not an object of strings")?,
    };
    Ok(Config {
        root: PathBuf::from(root),
        annotations,
    })
}

fn string_map(v: &serde_json::Value) -> Option<BTreeMap<String, String>> {
    v.as_object()?
        .iter()
        .map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect()
}

/// The rootfs of a bundle: `root.path` if absolute, else relative to the bundle.
pub fn rootfs_path(bundle: &Path, root: &Path) -> PathBuf {
    if root.is_absolute() {
        root.to_path_buf()
    } else {
        bundle.join(root)
    }
}

/// What the annotations ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// Leave the container alone; why.
    Skip(String),
    /// Bind the views, with `/proc/pressure/*` when `pressure` says so (None: when the
    /// daemon takes PSI triggers).
    Bind { pressure: Option<bool> },
}

fn switch(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "enabled" | "on" | "yes" | "1" => Some(true),
        "false" | "disabled" | "off" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// The choice the annotations make. A views annotation we do not understand leaves the
/// container alone: its owner asked for something, and the host's files are the safe side.
pub fn choose(annotations: &BTreeMap<String, String>) -> Choice {
    if let Some(v) = annotations.get(VIEWS_ANNOTATION) {
        match switch(v) {
            Some(true) => {}
            Some(false) => {
                return Choice::Skip(format!(
                    "views turned off by the annotation {VIEWS_ANNOTATION}={}",
                    printable(v)
                ));
            }
            None => {
                return Choice::Skip(format!(
                    "the annotation {VIEWS_ANNOTATION}={} is neither true nor false",
                    printable(v)
                ));
            }
        }
    }
    // A value we do not understand binds nothing more: the host's files are the safe side.
    let pressure = annotations
        .get(PRESSURE_ANNOTATION)
        .map(|v| switch(v).unwrap_or(false));
    Choice::Bind { pressure }
}

/// `s` for a log line: printable ASCII kept, anything else `?`, at most 200 characters.
pub fn printable(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(200)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if s.chars().count() > 200 {
        out.push_str("...");
    }
    out
}

/// The (device `major:minor`, fstype) of the topmost mount on `path` in a mountinfo text.
pub fn mount_on(mountinfo: &str, path: &[u8]) -> Option<(String, String)> {
    mountinfo.lines().rev().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut f = left.split(' ');
        let dev = f.nth(2)?;
        let point = f.nth(1)?;
        let fstype = right.split(' ').next()?;
        (crate::cgroupfs::mounts::unescape_bytes(point) == path)
            .then(|| (dev.to_owned(), fstype.to_owned()))
    })
}

/// Where the hook logs: stderr, and a file when asked (runc shows a hook's stderr only
/// when the hook fails).
struct Log {
    prefix: String,
    file: Option<std::fs::File>,
}

impl Log {
    /// A malformed state's sentence: main prints it on stderr, as every command's error.
    fn file_only(&mut self, msg: &str) {
        if let Some(f) = self.file.as_mut() {
            let _ = writeln!(f, "lxcfs-uring: {msg}");
        }
    }

    fn line(&mut self, msg: &str) {
        let line = format!("lxcfs-uring oci-hook: {}{msg}\n", self.prefix);
        let _ = std::io::stderr().write_all(line.as_bytes());
        if let Some(f) = self.file.as_mut() {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// Run the hook: the state from stdin, views from `mountpoint`. `Err` only for a
/// malformed state.
pub fn run(mountpoint: &Path, log_file: Option<&Path>) -> Result<(), String> {
    let mut log = Log {
        prefix: String::new(),
        file: None,
    };
    if let Some(p) = log_file {
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
        {
            Ok(f) => log.file = Some(f),
            Err(e) => log.line(&format!("cannot open the log file {}: {e}", p.display())),
        }
    }
    let mut input = Vec::new();
    std::io::stdin()
        .take(STATE_MAX + 1)
        .read_to_end(&mut input)
        .map_err(|e| format!("cannot read the container state on stdin: {e}"))?;
    if input.len() as u64 > STATE_MAX {
        let msg = format!("the container state on stdin is larger than {STATE_MAX} bytes");
        log.file_only(&msg);
        return Err(msg);
    }
    let state = match parse_state(&input) {
        Ok(s) => s,
        Err(msg) => {
            log.file_only(&msg);
            return Err(msg);
        }
    };
    log.prefix = format!("container {}: ", printable(&state.id));
    let msg = bind_views(&state, mountpoint, &mut log);
    log.line(&msg);
    Ok(())
}

/// Everything after the state: the summary line (the container starts whatever it says).
fn bind_views(state: &State, mountpoint: &Path, log: &mut Log) -> String {
    let keep = "the container keeps the host's files";
    let config_path = state.bundle.join("config.json");
    let config = match read_capped(&config_path, CONFIG_MAX).and_then(|b| parse_config(&b)) {
        Ok(c) => c,
        Err(e) => return format!("{}: {e}; {keep}", config_path.display()),
    };
    let annotations = state.annotations.as_ref().unwrap_or(&config.annotations);
    let pressure = match choose(annotations) {
        Choice::Skip(why) => return format!("{why}; {keep}"),
        Choice::Bind { pressure } => pressure,
    };
    let mnt = match probe_daemon(mountpoint) {
        Ok(fd) => fd,
        Err(why) => {
            return format!(
                "lxcfs-uring is not serving at {}: {why}; {keep}",
                mountpoint.display()
            );
        }
    };
    let pressure = pressure.unwrap_or_else(|| takes_psi_triggers(mnt.as_fd()));
    let rootfs = rootfs_path(&state.bundle, &config.root);
    let root = match nix::fcntl::open(
        &rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(e) => return format!("cannot open the rootfs {}: {e}; {keep}", rootfs.display()),
    };
    let mut bound = Vec::new();
    let mut absent = 0;
    for view in views(pressure) {
        match bind_view(mnt.as_fd(), root.as_fd(), view) {
            Ok(true) => bound.push(view.path),
            Ok(false) => absent += 1,
            Err(e) => log.line(&format!("/{}: {e}; left as it is", view.path)),
        }
    }
    let names: Vec<String> = bound.iter().map(|p| format!("/{p}")).collect();
    format!(
        "bound {} views from {} ({}); {absent} not offered or not in the rootfs",
        bound.len(),
        mountpoint.display(),
        names.join(" ")
    )
}

fn read_capped(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let mut b = Vec::new();
    f.take(max + 1)
        .read_to_end(&mut b)
        .map_err(|e| format!("cannot read: {e}"))?;
    if b.len() as u64 > max {
        return Err(format!("larger than {max} bytes"));
    }
    Ok(b)
}

/// An fd of the daemon's mount root, once it is a `fuse.lxcfs` mount that answers. The
/// statfs is the first request the daemon sees: a daemon that does not answer it within
/// `PROBE_TIMEOUT` is given up on (the thread stays blocked until the process exits; a FUSE
/// wait is killable).
fn probe_daemon(mountpoint: &Path) -> Result<OwnedFd, String> {
    let canonical = std::fs::canonicalize(mountpoint).map_err(|e| format!("{e}"))?;
    let fd = nix::fcntl::open(
        &canonical,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("cannot open it: {e}"))?;
    let st = nix::sys::stat::fstat(&fd).map_err(|e| format!("cannot stat it: {e}"))?;
    let dev = format!(
        "{}:{}",
        nix::sys::stat::major(st.st_dev),
        nix::sys::stat::minor(st.st_dev)
    );
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    match mount_on(&info, canonical.as_os_str().as_bytes()) {
        None => return Err("nothing is mounted there".into()),
        Some((d, t)) if d != dev || t != FSTYPE => {
            return Err(format!("the mount there is {t}, not {FSTYPE}"));
        }
        Some(_) => {}
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let probe = fd.try_clone().map_err(|e| format!("{e}"))?;
    std::thread::spawn(move || {
        let _ = tx.send(nix::sys::statfs::fstatfs(&probe).map(|s| s.filesystem_type()));
    });
    match rx.recv_timeout(PROBE_TIMEOUT) {
        Ok(Ok(t)) if t == FUSE_SUPER_MAGIC => Ok(fd),
        Ok(Ok(t)) => Err(format!("statfs says type {:#x}, not FUSE", fs_magic(t))),
        Ok(Err(Errno::ENOTCONN)) => Err("its daemon is gone (ENOTCONN)".into()),
        Ok(Err(e)) => Err(format!("statfs failed: {e}")),
        Err(_) => Err(format!("it did not answer statfs within {PROBE_TIMEOUT:?}")),
    }
}

/// Whether the daemon mounted at `mnt` takes PSI triggers (`--enable-psi-poll`): its
/// pressure files are writable then (0666), read-only (0444) otherwise.
fn takes_psi_triggers(mnt: BorrowedFd<'_>) -> bool {
    nix::sys::stat::fstatat(
        mnt,
        "proc/pressure/cpu",
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .is_ok_and(|st| st.st_mode & 0o222 != 0)
}

fn fs_magic(t: FsType) -> i64 {
    #[allow(clippy::unnecessary_cast)] // the field's type differs between targets
    let magic = t.0 as i64;
    magic
}

/// Bind one view: `Ok(false)` when the daemon does not offer it or the rootfs has no such
/// path; an error (nothing mounted) when the target is not what it must be or the mount
/// fails.
fn bind_view(mnt: BorrowedFd<'_>, root: BorrowedFd<'_>, view: View) -> Result<bool, String> {
    let (want_type, want_fs, fs_name) = match view.kind {
        Kind::ProcFile => (SFlag::S_IFREG, PROC_SUPER_MAGIC, "procfs"),
        Kind::SysDir => (SFlag::S_IFDIR, SYSFS_MAGIC, "sysfs"),
    };
    let path_flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    // The source: beneath the mount root, no symlinks, no other mount.
    let source = match nix::fcntl::openat2(
        mnt,
        view.path,
        OpenHow::new().flags(path_flags).resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_XDEV,
        ),
    ) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(false),
        Err(e) => return Err(format!("cannot open the daemon's view: {e}")),
    };
    let st = nix::sys::stat::fstat(&source).map_err(|e| format!("cannot stat the view: {e}"))?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != want_type {
        return Err("the daemon's view is not of the expected type".into());
    }
    // The target: resolved with the rootfs as "/", the last component not followed.
    let target = match nix::fcntl::openat2(
        root,
        view.path,
        OpenHow::new()
            .flags(path_flags)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS),
    ) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(false),
        Err(Errno::ELOOP) => return Err("a symlink loop in the rootfs; not followed".into()),
        Err(e) => return Err(format!("cannot open it in the rootfs: {e}")),
    };
    let st = nix::sys::stat::fstat(&target).map_err(|e| format!("cannot stat it: {e}"))?;
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    let fs = nix::sys::statfs::fstatfs(&target)
        .map_err(|e| format!("cannot statfs it: {e}"))?
        .filesystem_type();
    if kind != want_type || fs != want_fs {
        return Err(format!(
            "it is {} on a filesystem of type {:#x}, not {} on {fs_name}",
            type_name(kind),
            fs_magic(fs),
            type_name(want_type)
        ));
    }
    let tree = open_tree_clone(source.as_fd()).map_err(|e| format!("open_tree: {e}"))?;
    move_mount_onto(tree.as_fd(), target.as_fd()).map_err(|e| format!("move_mount: {e}"))?;
    Ok(true)
}

fn type_name(t: SFlag) -> &'static str {
    match t {
        SFlag::S_IFREG => "a regular file",
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFLNK => "a symlink",
        _ => "a special file",
    }
}

// The new mount API (Linux 5.2; openat2, which the hook also needs, is 5.6). Neither nix
// nor libc wraps these calls or defines their flags for glibc targets.
const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x04;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
const EMPTY: &CStr = c"";

/// A detached copy (bind mount) of the file `fd` is open on.
fn open_tree_clone(fd: BorrowedFd<'_>) -> nix::Result<OwnedFd> {
    // SAFETY: open_tree(2) reads only the NUL-terminated empty path and returns a new fd
    // (or -1); the flags are the kernel's documented ones.
    let r = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            fd.as_raw_fd(),
            EMPTY.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_EMPTY_PATH as libc::c_uint,
        )
    };
    let raw = Errno::result(r)?;
    let raw = i32::try_from(raw).map_err(|_| Errno::EBADF)?;
    // SAFETY: a successful open_tree returns a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Attach the detached mount `tree` on the file `target` is open on.
fn move_mount_onto(tree: BorrowedFd<'_>, target: BorrowedFd<'_>) -> nix::Result<()> {
    // SAFETY: move_mount(2) reads only the two NUL-terminated empty paths; both fds are
    // open for the duration of the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            EMPTY.as_ptr(),
            target.as_raw_fd(),
            EMPTY.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    Errno::result(r).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNC_STATE: &str = r#"{"ociVersion":"1.0.2","id":"web-1","status":"creating","pid":1,
        "bundle":"/run/containers/web-1","annotations":{"io.lxcfs-uring.views":"false"}}"#;

    #[test]
    fn a_runc_state_parses() {
        let s = parse_state(RUNC_STATE.as_bytes()).unwrap();
        assert_eq!(s.id, "web-1");
        assert_eq!(s.bundle, Path::new("/run/containers/web-1"));
        assert_eq!(
            s.annotations
                .unwrap()
                .get(VIEWS_ANNOTATION)
                .map(String::as_str),
            Some("false")
        );
    }

    #[test]
    fn a_state_without_annotations_defers_to_config_json() {
        let s = parse_state(br#"{"id":"a","bundle":"/b","pid":7,"status":"created"}"#).unwrap();
        assert_eq!(s.annotations, None);
        let s = parse_state(br#"{"id":"a","bundle":"/b","annotations":null}"#).unwrap();
        assert_eq!(s.annotations, None);
        let s = parse_state(br#"{"id":"a","bundle":"/b","annotations":{}}"#).unwrap();
        assert_eq!(s.annotations, Some(BTreeMap::new()));
    }

    #[test]
    fn malformed_states_say_what_is_wrong() {
        for (input, says) in [
            (&b""[..], "not JSON"),
            (b"\xff\xfe", "not JSON"),
            (b"[1,2]", "not a JSON object"),
            (b"{\"bundle\":\"/b\"}", "\"id\""),
            (b"{\"id\":\"a\"}", "\"bundle\""),
            (b"{\"id\":\"a\",\"bundle\":5}", "\"bundle\""),
            (b"{\"id\":\"a\",\"bundle\":\"rel/dir\"}", "absolute"),
            (b"{\"id\":\"a\",\"bundle\":\"/b\\u0000c\"}", "absolute"),
            (
                b"{\"id\":\"a\",\"bundle\":\"/b\",\"annotations\":[]}",
                "annotations",
            ),
            (
                b"{\"id\":\"a\",\"bundle\":\"/b\",\"annotations\":{\"k\":1}}",
                "annotations",
            ),
            (b"{\"id\":\"a\",\"bundle\":\"/b\"} trailing", "not JSON"),
        ] {
            let e = parse_state(input).unwrap_err();
            assert!(e.contains(says), "{input:?}: {e}");
            assert!(!e.contains('\n'), "one sentence: {e}");
        }
    }

    #[test]
    fn hostile_input_never_panics() {
        // Deep nesting hits serde_json's recursion limit, an error, not a stack overflow.
        let deep = "[".repeat(100_000);
        assert!(parse_state(deep.as_bytes()).is_err());
        assert!(parse_config(deep.as_bytes()).is_err());
        // Every prefix and a spread of byte flips of a real state.
        let base = RUNC_STATE.as_bytes();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for n in 0..base.len() {
            let _ = parse_state(&base[..n]);
            let mut b = base.to_vec();
            for _ in 0..4 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let i = (seed as usize) % b.len();
                b[i] = (seed >> 32) as u8;
            }
            let _ = parse_state(&b);
            let _ = parse_config(&b);
        }
    }

    #[test]
    fn config_json_gives_root_and_annotations() {
        let c = parse_config(
            br#"{"ociVersion":"1.0.2","root":{"path":"rootfs","readonly":true},
                 "annotations":{"io.lxcfs-uring.pressure":"true"}}"#,
        )
        .unwrap();
        assert_eq!(c.root, Path::new("rootfs"));
        assert_eq!(
            choose(&c.annotations),
            Choice::Bind {
                pressure: Some(true)
            }
        );
        assert!(parse_config(br#"{"root":{}}"#).is_err());
        assert!(parse_config(br#"{"root":{"path":""}}"#).is_err());
        assert!(parse_config(br#"{"root":{"path":"r"},"annotations":5}"#).is_err());
        assert_eq!(
            parse_config(br#"{"root":{"path":"r"}}"#)
                .unwrap()
                .annotations,
            BTreeMap::new()
        );
    }

    #[test]
    fn the_rootfs_is_relative_to_the_bundle_unless_absolute() {
        let b = Path::new("/run/b");
        assert_eq!(
            rootfs_path(b, Path::new("rootfs")),
            Path::new("/run/b/rootfs")
        );
        assert_eq!(rootfs_path(b, Path::new("/srv/r")), Path::new("/srv/r"));
    }

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn annotations_opt_out_and_opt_in() {
        assert_eq!(choose(&ann(&[])), Choice::Bind { pressure: None });
        for off in ["false", "disabled", "OFF", " no ", "0"] {
            assert!(
                matches!(choose(&ann(&[(VIEWS_ANNOTATION, off)])), Choice::Skip(w) if w.contains("turned off")),
                "{off}"
            );
        }
        for on in ["true", "enabled", "Yes", "1"] {
            assert_eq!(
                choose(&ann(&[(VIEWS_ANNOTATION, on)])),
                Choice::Bind { pressure: None }
            );
        }
        assert!(
            matches!(choose(&ann(&[(VIEWS_ANNOTATION, "flase\n")])), Choice::Skip(w) if w.contains("neither") && !w.contains('\n'))
        );
        assert_eq!(
            choose(&ann(&[(PRESSURE_ANNOTATION, "enabled")])),
            Choice::Bind {
                pressure: Some(true)
            }
        );
        for no in ["off", "maybe"] {
            assert_eq!(
                choose(&ann(&[(PRESSURE_ANNOTATION, no)])),
                Choice::Bind {
                    pressure: Some(false)
                }
            );
        }
    }

    #[test]
    fn the_view_list_matches_the_lxc_hook() {
        let paths = |v: Vec<View>| v.into_iter().map(|v| v.path).collect::<Vec<_>>();
        let plain = paths(views(false));
        assert_eq!(
            plain,
            [
                "proc/cpuinfo",
                "proc/diskstats",
                "proc/loadavg",
                "proc/meminfo",
                "proc/slabinfo",
                "proc/stat",
                "proc/swaps",
                "proc/uptime",
                "proc/vmstat",
                "sys/devices/system/cpu",
                "sys/devices/system/node"
            ]
        );
        let with = views(true);
        assert_eq!(with.len(), plain.len() + 4);
        assert!(with.iter().any(|v| v.path == "proc/pressure/memory"));
        for v in with {
            assert_eq!(v.kind == Kind::SysDir, v.path.starts_with("sys/"), "{v:?}");
            assert!(!v.path.starts_with('/') && !v.path.contains(".."));
        }
    }

    #[test]
    fn mountinfo_finds_the_topmost_mount_with_escapes() {
        let info = "\
22 1 0:21 / /proc rw,nosuid - proc proc rw
30 22 0:50 / /var/lib/lxcfs rw - tmpfs tmpfs rw
31 30 0:51 / /var/lib/lxcfs rw,nosuid - fuse.lxcfs lxcfs rw,user_id=0
40 1 0:60 / /tmp/a\\040b rw - fuse.lxcfs lxcfs rw
bad line
";
        assert_eq!(
            mount_on(info, b"/var/lib/lxcfs"),
            Some(("0:51".into(), "fuse.lxcfs".into()))
        );
        assert_eq!(
            mount_on(info, b"/tmp/a b"),
            Some(("0:60".into(), "fuse.lxcfs".into()))
        );
        assert_eq!(mount_on(info, b"/nowhere"), None);
        assert_eq!(
            crate::cgroupfs::mounts::unescape_bytes("a\\134b\\"),
            b"a\\b\\"
        );
        assert_eq!(crate::cgroupfs::mounts::unescape_bytes("\\777"), b"\\777");
    }

    #[test]
    fn the_hooks_d_json_runs_this_subcommand() {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../contrib/oci/lxcfs-uring.json")).unwrap();
        assert_eq!(v["version"], "1.0.0");
        assert_eq!(v["stages"], serde_json::json!(["createContainer"]));
        assert_eq!(v["when"]["always"], true);
        let args: Vec<&str> = v["hook"]["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from(&args).unwrap();
        assert!(matches!(
            cli.command,
            Some(crate::cli::Command::OciHook { ref mountpoint, .. }) if mountpoint == Path::new("/var/lib/lxcfs")
        ));
        assert_eq!(v["hook"]["path"], "/usr/bin/lxcfs-uring");
        // No timeout: a runtime fails the container when a hook times out.
        assert!(v["hook"].get("timeout").is_none());
    }

    #[test]
    fn log_text_is_printable() {
        assert_eq!(printable("a\nb\u{1b}[31m"), "a?b?[31m");
        assert!(printable(&"x".repeat(1000)).len() < 210);
    }
}
