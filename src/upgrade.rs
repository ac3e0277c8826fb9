//! Restart-free upgrades by re-exec (SIGUSR1): the process replaces its program image with
//! the binary now on disk and keeps the live /dev/fuse connection, so containers' bind
//! mounts never see it go.
//!
//! Lossless on both transports. Classic (with FUSE_NOTIFY_RESEND, Linux 6.9+): replies are
//! held back, every /dev/fuse file (the original and the workers' clones) stays open across
//! execve, and the new image asks the kernel to resend whatever was read but not answered.
//! io_uring: the ring entries' memory (ring::arena) stays open across execve too, and the
//! new image maps it where it was and answers what the entries hold (ring::uring::recover).
//! Handles opened before the upgrade are served from the node the kernel names
//! (fs::Fs::read).
//!
//! `--takeover` does the same between two processes: the new one asks over the control
//! socket, the old one freezes and passes its /dev/fuse files (and ring arena) with
//! SCM_RIGHTS, exits once the new one confirms, and the new one has the kernel resend what
//! the old one held (or, on io_uring, answers it from the arena once the old one is gone).

use std::ffi::{CString, OsString};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};

use crate::proto::abi::{self, init_flags};
use crate::proto::{InitOut, encode};
use crate::ring::Session;
use crate::ring::arena::Arena;
use crate::ring::fill;

/// The hidden command-line flag that carries the handed-over state to the new image.
pub const RESUME_FLAG: &str = "--resume";
/// The format of handed-over state. A peer that speaks another refuses before anything is
/// frozen, and the running instance keeps serving.
pub const STATE_VERSION: u32 = 3;

/// What a successor takes over.
pub struct Resume {
    /// The keeper process watching over the connection (0: none).
    pub keeper: u32,
    pub dev: OwnedFd,
    pub clones: Vec<OwnedFd>,
    pub init: InitOut,
    pub kernel_flags: u64,
    /// The process that served until now.
    pub predecessor: u32,
    /// On the io_uring transport: the ring arena, mapped where the predecessor had it.
    pub arena: Option<Arena>,
    /// Helper processes of the predecessor image still running, to be reaped: the one that
    /// filled the ring entries for the handover, the one nudging the queues after a recovery.
    pub helpers: Vec<u32>,
    /// Whether the host's files were being shown unchanged (SIGUSR2).
    pub passthrough: bool,
    /// What the predecessor carried over (see `carried`).
    pub carried: Option<String>,
    /// The PSI trigger fds taken from a predecessor process (fs::psi::take_fds).
    pub psi_fds: crate::fs::psi::Taken,
    /// The table of the passthrough backing files (fs::backing), when it had one.
    pub backings: Option<OwnedFd>,
}

/// Why an upgrade cannot happen now; None when it can.
pub fn refusal(s: &Session) -> Option<&'static str> {
    let Some(init) = s.init() else {
        return Some("the kernel has not initialised the connection yet");
    };
    if init.flags & init_flags::OVER_IO_URING != 0 {
        return s
            .arena
            .get()
            .is_none()
            .then_some("the io_uring transport is not serving yet");
    }
    if s.kernel_flags() & init_flags::HAS_RESEND == 0 {
        return Some(
            "this kernel has no FUSE_NOTIFY_RESEND (Linux 6.9+): requests in flight would be lost",
        );
    }
    None
}

/// Stop answering and describe the connection: the state line and the fds to hand over
/// (`describe`), then the memfd of the carried state (see `carried`).
/// Called off (a reply that does not end, a failed description) through `thaw`, so the
/// requests classic workers held back meanwhile are resent and answered.
fn freeze(s: &Session) -> io::Result<(String, Vec<OwnedFd>)> {
    let described =
        s.freeze
            .freeze()
            .and_then(|()| describe(s))
            .and_then(|(mut state, mut fds)| {
                if let Some(fd) = carried(s)? {
                    state.push_str(",carry=1");
                    fds.push(fd);
                }
                Ok((state, fds))
            });
    if described.is_err() {
        thaw(s)?;
    }
    described
}

/// For the tests only: set, every handover's description (of the carried state) fails
/// once the workers are frozen, so the freeze is called off (tests/upgrade.rs). Unset in
/// any real deployment.
pub const DESCRIBE_FAULT_ENV: &str = "LXCFS_URING_TEST_DESCRIBE_FAULT";

fn describe_fault() -> io::Result<()> {
    match std::env::var_os(DESCRIBE_FAULT_ENV) {
        Some(_) => Err(io::Error::other(format!(
            "a fault injected through {DESCRIBE_FAULT_ENV}"
        ))),
        None => Ok(()),
    }
}

/// State of this process a planned successor continues from, so an upgrade changes
/// nothing a container sees: each container's /proc/stat and /proc/vmstat histories
/// (counters never go backwards) and, with -l, its load averages and blocked threads. One line per item, `stat ...` or `load ...`,
/// in a memfd (it grows with the containers); a crash's successor starts without it.
fn carried(s: &Session) -> io::Result<Option<OwnedFd>> {
    describe_fault()?;
    let mut text = String::new();
    for line in s.fs.containers.export_histories().lines() {
        text.push_str(&format!("stat {line}\n"));
    }
    if let Some(tracker) = &s.fs.loadavg {
        for line in tracker.export().lines() {
            text.push_str(&format!("load {line}\n"));
        }
    }
    let fd = nix::sys::memfd::memfd_create(
        c"lxcfs-uring-carry",
        nix::sys::memfd::MFdFlags::MFD_CLOEXEC,
    )?;
    let mut file = std::fs::File::from(fd);
    file.write_all(text.as_bytes())?;
    Ok(Some(file.into()))
}

/// The text of a carried-state memfd.
fn read_carried(fd: OwnedFd) -> Result<String, String> {
    use std::io::{Seek, SeekFrom};
    let mut file = std::fs::File::from(fd);
    let mut text = String::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.take(16 << 20).read_to_string(&mut text))
        .map_err(|e| format!("cannot read the carried state: {e}"))?;
    Ok(text)
}

/// The state line and duplicates (close-on-exec) of the fds of the connection: the
/// original first, then the clones, then the ring arena's memfd on the io_uring transport.
/// Duplicates, so that what goes to another process is ours to give: closing them after
/// (a failed exec, a sent message) leaves the session's own open.
pub fn describe(s: &Session) -> io::Result<(String, Vec<OwnedFd>)> {
    let init = s
        .init()
        .copied()
        .ok_or_else(|| io::Error::other("INIT not done yet"))?;
    let keeper = s.keeper.load(Ordering::Relaxed);
    let mut fds = vec![s.dev.try_clone()?];
    for clone in s.clones.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        fds.push(clone.try_clone()?);
    }
    let devices = fds.len();
    let arena = match s.arena.get() {
        Some(a) => {
            fds.push(a.fd().try_clone_to_owned()?);
            format!(",arena={}", a.describe())
        }
        None => String::new(),
    };
    let backings = match s.fs.backings.table_fd()? {
        Some(fd) => {
            fds.push(fd);
            ",backings=1"
        }
        None => "",
    };
    let state = format!(
        "v={STATE_VERSION},pid={},keeper={keeper},minor={},readahead={},flags={},background={},max_write={},max_pages={},kernel={},passthrough={},fds={devices}{arena}{backings}",
        std::process::id(),
        init.minor,
        init.max_readahead,
        init.flags,
        init.max_background,
        init.max_write,
        init.max_pages,
        s.kernel_flags(),
        u8::from(s.fs.passthrough.load(Ordering::Relaxed)),
    );
    Ok((state, fds))
}

/// Undo a freeze: answer again, and have the kernel resend what we held back.
fn thaw(s: &Session) -> io::Result<()> {
    s.freeze.thaw();
    resend(s.dev.as_fd())
}

/// Replace this process's image with `exe`, handing the connection over. Returns only if
/// the exec failed; the process then goes on serving.
pub fn exec(
    s: &Session,
    pidfile: BorrowedFd<'_>,
    exe: &Path,
    argv: &[OsString],
    mountpoint: &Path,
) -> io::Result<()> {
    let (mut state, fds) = freeze(s)?;
    // On io_uring: no entry may be armed when this image's threads end (fill.rs).
    let helper = match s.arena.get() {
        Some(arena) => match fill::fill(arena, exe, mountpoint, &[]) {
            Ok(child) => {
                state.push_str(&format!(",helper={}", child.id()));
                Some(child)
            }
            Err(e) => {
                thaw(s)?;
                return Err(e);
            }
        },
        None => None,
    };
    let nudger = s.nudger.load(Ordering::SeqCst);
    if nudger != 0 {
        state.push_str(&format!(",nudger={nudger}"));
    }
    let result = (|| {
        // The pidfile itself, not a duplicate: closing any fd of it would drop its lock.
        for fd in fds.iter().map(AsFd::as_fd).chain([pidfile]) {
            set_cloexec(fd, false)?;
        }
        let numbers: Vec<String> = fds.iter().map(|f| f.as_raw_fd().to_string()).collect();
        let state = format!(
            "{state},fdnums={},pidfile={}",
            numbers.join(":"),
            pidfile.as_raw_fd()
        );
        let mut args: Vec<CString> = Vec::with_capacity(argv.len() + 2);
        let mut skip = false;
        for a in argv {
            if skip {
                skip = false;
                continue;
            }
            if a == RESUME_FLAG {
                skip = true;
                continue;
            }
            args.push(CString::new(a.clone().into_vec())?);
        }
        args.push(CString::new(RESUME_FLAG)?);
        args.push(CString::new(state)?);
        let path = CString::new(exe.as_os_str().as_encoded_bytes())?;
        if let Some(psi) = &s.fs.psi {
            psi.before_exec();
        }
        nix::unistd::execv(&path, &args)?;
        Ok(())
    })();
    // Still here: the exec failed. Serve on, and have the held requests resent to us.
    let _ = set_cloexec(pidfile, true);
    if let Some(psi) = &s.fs.psi {
        psi.after_failed_exec();
    }
    drop(fds);
    thaw(s)?;
    if let Some(mut h) = helper {
        std::thread::spawn(move || h.wait());
    }
    result
}

/// Give the connection to the process at the other end of `conn` (`--takeover`). True
/// when it took it: the caller then exits without unmounting. False (serving on) when it
/// is refused, or the peer fails before confirming.
pub fn give(s: &Session, conn: &UnixStream, request_version: u32) -> io::Result<bool> {
    let refuse = |why: &str| -> io::Result<bool> {
        (&*conn).write_all(format!("error: {why}\n").as_bytes())?;
        Ok(false)
    };
    if request_version != STATE_VERSION {
        return refuse(&format!(
            "this instance hands over state version {STATE_VERSION}, the new one asked for {request_version}"
        ));
    }
    if let Some(why) = refusal(s) {
        return refuse(why);
    }
    let (state, fds) = freeze(s)?;
    let line = format!("{state}\n");
    let numbers: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let sent = sendmsg::<()>(
        conn.as_raw_fd(),
        &[io::IoSlice::new(line.as_bytes())],
        &[ControlMessage::ScmRights(&numbers)],
        MsgFlags::empty(),
        None,
    );
    if let Err(e) = sent {
        thaw(s)?;
        return Err(e.into());
    }
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut ok = [0u8; 3];
    match (&*conn).read_exact(&mut ok) {
        Ok(()) if &ok == b"ok\n" => Ok(true),
        _ => {
            thaw(s)?;
            crate::warn_each!("--takeover: the new instance did not confirm; still serving");
            Ok(false)
        }
    }
}

/// Take the connection over from the instance listening in `runtime_dir`.
pub fn take(runtime_dir: &Path, mountpoint: &Path) -> Result<Resume, String> {
    let path = crate::control::socket_path(runtime_dir);
    let conn = UnixStream::connect(&path).map_err(|e| {
        format!(
            "nothing to take over: no lxcfs-uring answers at {} ({e}); start without --takeover.",
            path.display()
        )
    })?;
    let talk = |e: io::Error| {
        format!(
            "the running instance at {} did not hand over: {e}.",
            path.display()
        )
    };
    (&conn)
        .write_all(format!("takeover {STATE_VERSION}\n").as_bytes())
        .map_err(talk)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(talk)?;
    let mut buf = vec![0u8; 4096];
    let mut space = nix::cmsg_space!([RawFd; 1025]);
    let mut iov = [io::IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| talk(e.into()))?;
    let mut fds = Vec::new();
    for c in msg.cmsgs().map_err(|e| talk(e.into()))? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            // SAFETY: SCM_RIGHTS just installed these fds in our table; nothing else owns them.
            fds.extend(raw.into_iter().map(|r| unsafe { OwnedFd::from_raw_fd(r) }));
        }
    }
    let n = msg.bytes;
    let line = String::from_utf8_lossy(&buf[..n]).trim().to_owned();
    if let Some(why) = line.strip_prefix("error: ") {
        return Err(format!("the running instance refused to hand over: {why}."));
    }
    let mut resume = resume_from(&line, fds)?;
    resume.psi_fds = crate::fs::psi::take_fds(runtime_dir, resume.predecessor);
    // On io_uring: fill the entries while the predecessor, frozen, still owns them.
    if let Some(arena) = &resume.arena {
        let exe = std::env::current_exe().map_err(&talk)?;
        let helper = fill::fill(arena, &exe, mountpoint, &[]).map_err(talk)?;
        resume.helpers.push(helper.id());
    }
    (&conn).write_all(b"ok\n").map_err(talk)?;
    Ok(resume)
}

/// Parse the state a predecessor image passed across execve, and take its fds.
pub fn adopt_exec(state: &str) -> Result<(Resume, Option<OwnedFd>), String> {
    let fds = field(state, "fdnums")?
        .split(':')
        .map(|n| {
            n.parse::<RawFd>()
                .map_err(|_| bad("fdnums"))
                .and_then(adopt_raw)
        })
        .collect::<Result<Vec<_>, _>>()?;
    // A keeper's successor has no pidfile fd: the dead server's lock went with it.
    let pidfile = match field(state, "pidfile") {
        Ok(n) => Some(adopt_raw(n.parse().map_err(|_| bad("pidfile"))?)?),
        Err(_) => None,
    };
    let mut resume = resume_from(state, fds)?;
    resume.helpers = ["helper", "nudger"]
        .into_iter()
        .filter_map(|key| field(state, key).ok()?.parse().ok())
        .collect();
    Ok((resume, pidfile))
}

/// The value of `key` in a state line (`k=v,k=v,...`).
pub fn field<'a>(state: &'a str, key: &str) -> Result<&'a str, String> {
    state
        .split(',')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .ok_or_else(|| format!("the handed-over state lacks {key}"))
}

fn bad(key: &str) -> String {
    format!("the handed-over state has a bad {key}")
}

fn adopt_raw(raw: RawFd) -> Result<OwnedFd, String> {
    // Only take fds that are open (a --resume typed by hand must not adopt garbage).
    // SAFETY: F_GETFD reads no memory; on a closed fd it fails with EBADF.
    if unsafe { libc::fcntl(raw, libc::F_GETFD) } < 0 {
        return Err(format!("fd {raw} of the handed-over state is not open"));
    }
    // SAFETY: the predecessor image left this fd open across execve for us alone, and we
    // checked above that it is open; nothing else in this process owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    set_cloexec(fd.as_fd(), true).map_err(|e| e.to_string())?;
    Ok(fd)
}

/// A Resume from a state line and the fds it describes (dev first, then clones, then the
/// ring arena when the state names one).
fn resume_from(state: &str, mut fds: Vec<OwnedFd>) -> Result<Resume, String> {
    let num =
        |key: &str| -> Result<u64, String> { field(state, key)?.parse().map_err(|_| bad(key)) };
    if num("v")? != u64::from(STATE_VERSION) {
        return Err(format!(
            "the predecessor speaks state version {}, this binary {STATE_VERSION}",
            num("v")?
        ));
    }
    let carried = match field(state, "carry") {
        Ok(_) => Some(read_carried(fds.pop().ok_or_else(|| bad("carry"))?)?),
        Err(_) => None,
    };
    let backings = match field(state, "backings") {
        Ok(_) => Some(fds.pop().ok_or_else(|| bad("backings"))?),
        Err(_) => None,
    };
    let arena = match field(state, "arena") {
        Ok(desc) => Some(adopt_arena(fds.pop().ok_or_else(|| bad("arena"))?, desc)?),
        Err(_) => None,
    };
    if fds.is_empty() || num("fds")? != fds.len() as u64 {
        return Err(format!(
            "{} fds handed over, the state says {}",
            fds.len(),
            num("fds")?
        ));
    }
    for fd in &fds {
        is_fuse_device(fd)?;
    }
    let dev = fds.remove(0);
    let small =
        |key: &str| -> Result<u16, String> { u16::try_from(num(key)?).map_err(|_| bad(key)) };
    let word =
        |key: &str| -> Result<u32, String> { u32::try_from(num(key)?).map_err(|_| bad(key)) };
    Ok(Resume {
        init: InitOut {
            minor: word("minor")?,
            max_readahead: word("readahead")?,
            flags: num("flags")?,
            max_background: small("background")?,
            max_write: word("max_write")?,
            max_pages: small("max_pages")?,
        },
        kernel_flags: num("kernel")?,
        predecessor: word("pid")?,
        keeper: field(state, "keeper")
            .ok()
            .and_then(|k| k.parse().ok())
            .unwrap_or(0),
        dev,
        clones: fds,
        arena,
        helpers: Vec::new(),
        passthrough: field(state, "passthrough") == Ok("1"),
        carried,
        psi_fds: Default::default(),
        backings,
    })
}

/// Map the predecessor's ring arena where it had it.
fn adopt_arena(fd: OwnedFd, desc: &str) -> Result<Arena, String> {
    Arena::adopt(fd, desc).map_err(|e| {
        format!(
            "cannot take the predecessor's ring entries over ({e}): requests it holds would hang"
        )
    })
}

pub fn set_cloexec(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let flags = if on {
        FdFlag::FD_CLOEXEC
    } else {
        FdFlag::empty()
    };
    fcntl(fd, FcntlArg::F_SETFD(flags))?;
    Ok(())
}

/// FUSE_NOTIFY_RESEND: the kernel requeues every request read but not answered on any of
/// the connection's files, so this process's workers get them again.
pub fn resend(dev: BorrowedFd<'_>) -> io::Result<()> {
    let mut msg = [0u8; abi::OUT_HEADER_LEN];
    encode::out_header(&mut msg, abi::OUT_HEADER_LEN as u32, abi::NOTIFY_RESEND, 0)
        .map_err(|_| io::Error::other("notify header"))?;
    nix::unistd::write(dev, &msg)?;
    Ok(())
}

/// FUSE_NOTIFY_INVAL_INODE of every static file's attributes (offset -1: the page cache is
/// left alone, so nothing waits on a request): the kernel asks for them again, and a
/// predecessor's sizes and validity (an older build reported 0 for an hour) end now.
pub fn forget_attributes(dev: BorrowedFd<'_>) {
    for n in crate::fs::tree::NODES.iter() {
        if !matches!(n.kind, crate::fs::tree::Kind::File(_)) {
            continue;
        }
        let mut msg = [0u8; abi::OUT_HEADER_LEN + 24];
        let len = msg.len() as u32;
        if encode::out_header(&mut msg, len, abi::NOTIFY_INVAL_INODE, 0).is_err() {
            return;
        }
        msg[16..24].copy_from_slice(&n.id.to_ne_bytes());
        msg[24..32].copy_from_slice(&(-1i64).to_ne_bytes());
        // ENOENT: the kernel never looked this node up, so it holds nothing to forget.
        if let Err(e) = nix::unistd::write(dev, &msg)
            && e != nix::errno::Errno::ENOENT
        {
            crate::warn!(
                "cannot have the kernel forget node {}'s attributes: {e}",
                n.id
            );
        }
    }
}

/// /dev/fuse is character device 10:229.
fn is_fuse_device(fd: &OwnedFd) -> Result<(), String> {
    let st = nix::sys::stat::fstat(fd).map_err(|e| e.to_string())?;
    let is_chr = st.st_mode & libc::S_IFMT == libc::S_IFCHR;
    if is_chr && libc::major(st.st_rdev) == 10 && libc::minor(st.st_rdev) == 229 {
        Ok(())
    } else {
        Err("an fd of the resume state is not /dev/fuse: start without --resume.".into())
    }
}
