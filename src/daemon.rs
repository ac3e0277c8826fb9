//! Start-up checks, mounting, signals and shutdown.

use std::os::fd::AsFd;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use nix::sys::signal::{SigSet, Signal};

use crate::cgroupfs::mounts::Hierarchies;
use crate::cgroupfs::tree::CgroupTree;
use crate::cli::Cli;
use crate::container::Containers;
use crate::fs::{Fs, ViewOptions};
use crate::pidfile::Pidfile;
use crate::ring::{self, Session, TransportKind};
use crate::{info, mount, warn, warn_each};

const ENABLE_URING: &str = "/sys/module/fuse/parameters/enable_uring";

/// Run the daemon. An Err is one sentence for the user: what is wrong, what to do.
pub fn run(cli: &Cli) -> Result<(), String> {
    crate::log::set_debug(cli.debug);
    let mountpoint = cli
        .mountpoint
        .as_deref()
        .ok_or("no mountpoint given: pass one, e.g. /var/lib/lxcfs.")?;
    // A keeper or a successor must not touch the mount: the request would wait for the
    // process that is to serve it, or for a dead one (see `serve`).
    if cli.keep.is_none() && cli.resume.is_none() {
        check_mountpoint(mountpoint)?;
    }
    if !nix::unistd::geteuid().is_root() {
        return Err("lxcfs-uring must run as root: it mounts a filesystem and reads every container's cgroups.".into());
    }
    if let Some(state) = &cli.keep {
        let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
        return crate::keeper::run(state, mountpoint, &crate::keeper::successor_args(&argv));
    }
    if let Some(state) = &cli.resume {
        return run_resumed(cli, mountpoint, state);
    }
    if cli.takeover {
        return run_takeover(cli, mountpoint);
    }
    let pidfile_path = cli.pidfile();
    let pidfile = Pidfile::acquire(&pidfile_path).map_err(|e| {
        if Pidfile::is_held_elsewhere(&e) {
            format!("another lxcfs-uring holds {}: stop it first, or use another --runtime-dir or --pidfile.", pidfile_path.display())
        } else {
            format!("cannot create the pidfile {} ({e}): create the directory or pass --pidfile.", pidfile_path.display())
        }
    })?;
    let result = run_locked(cli, mountpoint, &pidfile);
    pidfile.remove();
    result
}

/// Continue serving a connection a predecessor program image handed over (SIGUSR1).
fn run_resumed(cli: &Cli, mountpoint: &Path, state: &str) -> Result<(), String> {
    let (r, pidfile_fd) =
        crate::upgrade::adopt_exec(state).map_err(|e| format!("{e}: start without --resume."))?;
    let pidfile = match pidfile_fd {
        Some(fd) => Pidfile::adopt(&cli.pidfile(), fd),
        // Started by the keeper after a crash: the dead server's lock died with it.
        None => acquire_pidfile_soon(&cli.pidfile())?,
    };
    serve_handed_over(cli, mountpoint, r, pidfile)
}

/// `--takeover`: take the connection over from the instance running with our
/// --runtime-dir, then serve it.
fn run_takeover(cli: &Cli, mountpoint: &Path) -> Result<(), String> {
    let mut r = crate::upgrade::take(&cli.runtime_dir, mountpoint)?;
    // The predecessor takes its keeper along; ours is started once we serve.
    r.keeper = 0;
    // The predecessor exits once it has our confirmation; its pidfile lock goes with it.
    let pidfile = acquire_pidfile_soon(&cli.pidfile())?;
    info!("took over from pid {}", r.predecessor);
    serve_handed_over(cli, mountpoint, r, pidfile)
}

/// The pidfile, waiting up to 10 s for a predecessor that is exiting to release it.
fn acquire_pidfile_soon(path: &Path) -> Result<Pidfile, String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match Pidfile::acquire(path) {
            Ok(p) => return Ok(p),
            Err(e) if Pidfile::is_held_elsewhere(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => {
                return Err(format!(
                    "took the connection over, but the pidfile {} stays locked ({e}).",
                    path.display()
                ));
            }
        }
    }
}

/// Serve a connection handed over by a predecessor (an older image or process).
fn serve_handed_over(
    cli: &Cli,
    mountpoint: &Path,
    r: crate::upgrade::Resume,
    pidfile: Pidfile,
) -> Result<(), String> {
    raise_fd_limit();
    let transport = if r.arena.is_some() {
        TransportKind::Uring
    } else {
        TransportKind::Classic
    };
    let session = Arc::new(
        Session::new(build_fs(cli)?, r.dev, transport, r.clones.len() + 1)
            .resumed(r.init, r.kernel_flags),
    );
    ring::fill::serving(mountpoint);
    let signals = block_signals()?;
    session.keeper.store(r.keeper, Ordering::Relaxed);
    session.fs.backings.resume(
        std::os::fd::AsFd::as_fd(&session.dev),
        r.init.flags & crate::proto::abi::init_flags::PASSTHROUGH != 0,
        r.backings,
    );
    session
        .fs
        .passthrough
        .store(r.passthrough, Ordering::Relaxed);
    if let Some(text) = &r.carried {
        continue_from(&session, text);
    }
    // Before any worker serves: a poll of a trigger's file must find it.
    start_psi(&session, false, r.psi_fds)?;
    for pid in r.helpers {
        // The predecessor's helpers exit once we answer their lookups: reap them.
        std::thread::spawn(move || {
            nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid as i32), None)
        });
    }
    let workers = match r.arena {
        Some(arena) => resume_uring(&session, mountpoint, arena, r.predecessor)?,
        None => {
            let n = ring::classic::start_workers(session.clone(), r.clones);
            crate::stats::set_transport("classic");
            // Requests the predecessor read but did not answer come back to us.
            crate::upgrade::resend(session.dev.as_fd())
                .map_err(|e| format!("cannot ask the kernel to resend held requests ({e})."))?;
            n + 1
        }
    };
    crate::upgrade::forget_attributes(session.dev.as_fd());
    info!(
        "resumed on {} as {} ({transport:?} transport, {workers} workers, pid {})",
        mountpoint.display(),
        std::env::current_exe().map_or_else(|_| "?".into(), |p| p.display().to_string()),
        std::process::id()
    );
    let result = serve(cli, mountpoint, &session, &signals, &pidfile, false);
    pidfile.remove();
    result
}

/// Continue what the predecessor carried over (upgrade::carried): /proc/stat histories and
/// load averages, so containers see no step back across an upgrade.
fn continue_from(session: &Session, carried: &str) {
    let pick = |kind: &str| -> String {
        carried
            .lines()
            .filter_map(|l| l.strip_prefix(kind))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    let stats = session.fs.containers.inherit_histories(&pick("stat "));
    let loads = match &session.fs.loadavg {
        Some(tracker) => tracker.inherit(&pick("load ")),
        None => 0,
    };
    info!(
        "continuing the /proc/stat counters of {stats} containers and the loads of {loads} cgroups"
    );
}

/// Take over the io_uring entries of a predecessor (their arena mapped where it had it):
/// once it is gone, and its entries hold still, answer and re-arm them.
fn resume_uring(
    session: &Arc<Session>,
    mountpoint: &Path,
    arena: ring::arena::Arena,
    predecessor: u32,
) -> Result<usize, String> {
    let _ = session.arena.set(arena);
    if predecessor != std::process::id()
        && let Ok(pidfd) = crate::container::pidns::pidfd_open(predecessor)
    {
        crate::container::pidns::wait_exit(&pidfd);
    }
    let n = ring::uring::recover(session.clone(), mountpoint.to_owned())
        .map_err(|e| format!("cannot serve the predecessor's io_uring entries ({e})."))?;
    crate::stats::set_transport("uring");
    Ok(n)
}

/// The filesystem with the views the command line asks for.
fn build_fs(cli: &Cli) -> Result<Fs, String> {
    let hier = Hierarchies::discover()
        .map_err(|e| format!("cannot read /proc/self/mountinfo ({e}): is /proc mounted?"))?;
    if hier.v1.is_empty() && hier.unified.is_none() {
        warn!("no cgroup hierarchy is mounted: every container will see the host's values");
    }
    let cgroups = cli
        .enable_cgroup
        .then(|| {
            let own = std::fs::read_to_string("/proc/self/cgroup")
                .map_err(|e| format!("cannot read /proc/self/cgroup ({e}): is /proc mounted?"))?;
            Ok::<_, String>(CgroupTree::discover(&hier, &own))
        })
        .transpose()?;
    let containers = Containers::new(hier)
        .map_err(|e| format!("cannot read our own pid namespace ({e}): is /proc mounted?"))?;
    let opts = ViewOptions {
        swap: !cli.disable_swap,
        cfs: cli.enable_cfs,
        loadavg: cli.enable_loadavg,
        zswap: !cli.disable_zswap,
    };
    let mut fs = Fs::new(opts, containers);
    fs.cgroups = cgroups;
    if cli.enable_psi_poll {
        let registry = cli.runtime_dir.join(crate::fs::psi::REGISTRY);
        fs.psi = Some(
            crate::fs::psi::Triggers::new(registry)
                .map_err(|e| format!("cannot create an epoll instance for PSI triggers ({e})."))?,
        );
    }
    fs.backings =
        crate::fs::backing::Backings::new(cli.passthrough == crate::cli::Passthrough::Auto);
    Ok(fs)
}

/// Signals are taken synchronously by the main thread; workers inherit the blocked mask.
fn block_signals() -> Result<SigSet, String> {
    let mut signals = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ] {
        signals.add(s);
    }
    signals
        .thread_block()
        .map_err(|e| format!("cannot block signals: {e}"))?;
    Ok(signals)
}

/// Everything after the pidfile is ours.
fn run_locked(cli: &Cli, mountpoint: &Path, pidfile: &Pidfile) -> Result<(), String> {
    let transport = choose_transport(cli.transport)?;
    raise_fd_limit();
    let dev = mount::open_dev().map_err(|e| {
        format!("cannot open /dev/fuse ({e}): load the fuse module (modprobe fuse) or give the daemon access to the device.")
    })?;
    let threads = cli.threads.map_or_else(online_cpus, usize::from);
    let session = Arc::new(Session::new(build_fs(cli)?, dev, transport, threads));
    ring::fill::serving(mountpoint);
    let signals = block_signals()?;
    mount::mount(session.dev.as_fd(), mountpoint).map_err(|e| mount_error(mountpoint, &e))?;
    info!(
        "mounted on {} (transport {:?}, pid {})",
        mountpoint.display(),
        transport,
        std::process::id()
    );
    start_psi(&session, true, Default::default())?;
    serve(cli, mountpoint, &session, &signals, pidfile, true)
}

/// Serve until a signal says stop: then unmount. SIGUSR1 upgrades in place. `fresh`: the
/// connection is new (not handed over), and readiness is checked by reading the mount.
fn serve(
    cli: &Cli,
    mountpoint: &Path,
    session: &Arc<Session>,
    signals: &SigSet,
    pidfile: &Pidfile,
    fresh: bool,
) -> Result<(), String> {
    // The binary's path now, before an upgrade replaces the file, and our arguments.
    let exe = std::env::current_exe().map_err(|e| format!("cannot find our own binary: {e}"))?;
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(tracker) = session.fs.loadavg.clone() {
        let s = session.clone();
        std::thread::Builder::new()
            .name("loadavg".into())
            .spawn(move || crate::loadavg::run(tracker, &s.fs.containers))
            .map_err(|e| format!("cannot start the loadavg thread: {e}"))?;
    }
    std::thread::Builder::new()
        .name("trim".into())
        .spawn({
            let s = session.clone();
            move || crate::memory::run_trimmer(|| s.fs.handles.drain_pools())
        })
        .map_err(|e| format!("cannot start the memory trimmer: {e}"))?;
    let server = {
        let s = session.clone();
        std::thread::Builder::new()
            .name("serve".into())
            .spawn(move || ring::serve(s))
            .map_err(|e| format!("cannot start the server thread: {e}"))?
    };
    crate::control::listen(&cli.runtime_dir, session.clone()).map_err(|e| {
        format!(
            "cannot listen on {} ({e}): check --runtime-dir.",
            crate::control::socket_path(&cli.runtime_dir).display()
        )
    })?;
    // Ready once a file of the mount reads: systemd (Type=notify) starts containers after.
    // A handed-over connection already serves, and a successor never reads its own mount:
    // killed while its read is in flight, this process could never finish dying (the read
    // waits for an answer only this process could give), and no keeper would replace it.
    if fresh {
        match std::fs::metadata(mountpoint.join("proc/meminfo")) {
            Ok(_) => notify_ready(),
            Err(e) => warn!("the mount does not answer yet: {e}"),
        }
    } else {
        notify_ready();
    }
    // Where a successor can recover what we hold, a keeper holds the connection for one.
    if session.keeper.load(Ordering::Relaxed) == 0 && crate::upgrade::refusal(session).is_none() {
        match crate::keeper::spawn(session, &exe, &argv) {
            Ok(pid) => info!("keeper pid {pid} holds the connection should this process die"),
            Err(e) => warn!("cannot start a keeper ({e}): a crash would take the mount down"),
        }
    }

    let sig = loop {
        let sig = signals
            .wait()
            .map_err(|e| format!("waiting for signals: {e}"))?;
        match sig {
            Signal::SIGUSR1 => upgrade(session, pidfile, &exe, &argv, mountpoint),
            Signal::SIGUSR2 => {
                let on = !session.fs.passthrough.fetch_xor(true, Ordering::Relaxed);
                info!(
                    "SIGUSR2: {}",
                    if on {
                        "showing the host's files unchanged"
                    } else {
                        "showing containers their own files again"
                    }
                );
            }
            _ => break sig,
        }
    };
    info!("{sig:?}: unmounting {}", mountpoint.display());
    if let Err(e) = mount::unmount(mountpoint) {
        warn!("unmounting {}: {e}", mountpoint.display());
    }
    // Workers end when the kernel drops the connection; the process exits regardless.
    drop(server);
    Ok(())
}

/// With --enable-psi-poll: continue a predecessor's triggers (`taken`: their fds taken
/// from it; forget those of an earlier mount on a fresh one), then wait for them all on
/// one thread.
fn start_psi(
    session: &Arc<Session>,
    fresh: bool,
    taken: crate::fs::psi::Taken,
) -> Result<(), String> {
    let Some(psi) = &session.fs.psi else {
        return Ok(());
    };
    if fresh {
        psi.clear();
    } else {
        psi.restore(session.dev.as_fd(), taken, |fh, node| {
            session.fs.handles.adopt(fh, node);
        });
    }
    let s = session.clone();
    std::thread::Builder::new()
        .name("psi-triggers".into())
        .spawn(move || {
            if let Some(psi) = &s.fs.psi {
                psi.run(s.dev.as_fd());
            }
        })
        .map_err(|e| format!("cannot start the PSI trigger thread: {e}"))?;
    Ok(())
}

/// SIGUSR1: become the binary now at `exe`, keeping the mount (as lxcfs's reload does).
fn upgrade(
    session: &Session,
    pidfile: &Pidfile,
    exe: &Path,
    argv: &[std::ffi::OsString],
    mountpoint: &Path,
) {
    if let Some(why) = crate::upgrade::refusal(session) {
        warn_each!("SIGUSR1: no in-place upgrade: {why}; still serving");
        return;
    }
    info!("SIGUSR1: upgrading in place to {}", exe.display());
    if let Err(e) = crate::upgrade::exec(session, pidfile.fd(), exe, argv, mountpoint) {
        warn_each!("SIGUSR1: the upgrade failed ({e}); still serving as before");
    }
}

/// Tell systemd (Type=notify) that we serve, when it asked to be told.
fn notify_ready() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name),
        None => SocketAddr::from_pathname(&path),
    };
    let msg = format!("READY=1\nMAINPID={}\n", std::process::id());
    let sent = addr.and_then(|a| UnixDatagram::unbound()?.send_to_addr(msg.as_bytes(), &a));
    if let Err(e) = sent {
        warn!("cannot notify systemd of readiness: {e}");
    }
}

fn mount_error(mnt: &Path, e: &std::io::Error) -> String {
    format!(
        "cannot mount on {} ({e}): check that it is a directory and that FUSE mounts are allowed here.",
        mnt.display()
    )
}

fn check_mountpoint(p: &Path) -> Result<(), String> {
    match std::fs::metadata(p) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(format!(
            "mountpoint {} is not a directory: pass a directory, e.g. /var/lib/lxcfs.",
            p.display()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "mountpoint {} does not exist: create it with `mkdir -p {}`.",
            p.display(),
            p.display()
        )),
        Err(e) => Err(format!("cannot use mountpoint {} ({e}).", p.display())),
    }
}

/// Decide the transport. `auto` turns the fuse module's enable_uring parameter on: it
/// only lets servers that ask for FUSE-over-io_uring have it, and changes nothing for
/// other FUSE filesystems.
fn choose_transport(wanted: TransportKind) -> Result<TransportKind, String> {
    if wanted == TransportKind::Classic {
        return Ok(TransportKind::Classic);
    }
    let state = std::fs::read_to_string(ENABLE_URING).ok();
    let enabled = match state.as_deref().map(str::trim) {
        Some("Y") => true,
        Some(_) => match std::fs::write(ENABLE_URING, "Y") {
            Ok(()) => {
                info!("turned on {ENABLE_URING}");
                true
            }
            Err(e) => {
                warn!("cannot turn on {ENABLE_URING}: {e}");
                false
            }
        },
        None => false,
    };
    match (wanted, enabled) {
        (_, true) => Ok(TransportKind::Uring),
        (TransportKind::Uring, false) => Err(format!(
            "this kernel ({}) cannot serve FUSE over io_uring (Linux 6.14+ with {ENABLE_URING}): use --transport classic or auto.",
            kernel_release()
        )),
        _ => {
            info!(
                "FUSE-over-io_uring is not available on {}; using the classic transport",
                kernel_release()
            );
            Ok(TransportKind::Classic)
        }
    }
}

/// Each container keeps a few cgroup files open: allow as many fds as the kernel does.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(1 << 20);
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let want = hard.max(nr_open);
    if setrlimit(Resource::RLIMIT_NOFILE, want, want).is_err() && soft < hard {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

fn kernel_release() -> String {
    nix::sys::utsname::uname().map_or_else(
        |_| "unknown".into(),
        |u| u.release().to_string_lossy().into_owned(),
    )
}

fn online_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
