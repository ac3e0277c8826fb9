//! The control socket, `<runtime-dir>/lxcfs-uring.sock`: how `lxcfs-uring stats` (and
//! other local tools run as root) talk to the running instance. One request line per
//! connection, one answer; the socket is only reachable by root (mode 0600).

use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::ring::Session;
use crate::{info, stats, warn};

pub fn socket_path(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join("lxcfs-uring.sock")
}

/// Listen on the control socket (replacing a stale one: the caller holds the pidfile
/// lock, so no live instance owns it) and answer in a thread of its own.
pub fn listen(runtime_dir: &Path, session: Arc<Session>) -> io::Result<()> {
    let path = socket_path(runtime_dir);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(c) => match answer(&session, c) {
                        Ok(true) => {
                            // A successor took the connection: leave without unmounting,
                            // and take our keeper along (the successor starts its own).
                            let keeper = session.keeper.load(std::sync::atomic::Ordering::Relaxed);
                            if keeper != 0 {
                                let _ = nix::sys::signal::kill(
                                    nix::unistd::Pid::from_raw(keeper as i32),
                                    nix::sys::signal::Signal::SIGTERM,
                                );
                            }
                            info!("handed the mount over; exiting");
                            std::process::exit(0);
                        }
                        Ok(false) => {}
                        Err(e) => warn!("control socket: {e}"),
                    },
                    Err(e) => warn!("control socket: {e}"),
                }
            }
        })?;
    Ok(())
}

/// Answer one request. True when the connection was handed over (`takeover`).
fn answer(session: &Session, conn: UnixStream) -> io::Result<bool> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = String::new();
    // One byte at a time: nothing past the request line may be swallowed by a buffer
    // (a takeover's confirmation follows on the same connection).
    let mut byte = [0u8; 1];
    while line.len() <= 256 {
        (&conn).read_exact(&mut byte)?;
        if byte[0] == b'\n' {
            break;
        }
        line.push(char::from(byte[0]));
    }
    let reply = match line.trim().split_once(' ').unwrap_or((line.trim(), "")) {
        ("stats", "") => stats::snapshot().text(),
        ("stats", "prometheus") => stats::snapshot().prometheus(),
        ("takeover", version) => {
            let version = version.parse().unwrap_or(0);
            return crate::upgrade::give(session, &conn, version);
        }
        _ => format!("error: unknown request {:?}\n", line.trim()),
    };
    (&conn).write_all(reply.as_bytes())?;
    Ok(false)
}

/// Ask the instance with `runtime_dir` for `request`; its answer. Errors are one sentence.
pub fn ask(runtime_dir: &Path, request: &str) -> Result<String, String> {
    let path = socket_path(runtime_dir);
    let mut conn = UnixStream::connect(&path).map_err(|e| {
        format!(
            "no lxcfs-uring is running with --runtime-dir {} ({}: {e}): start one, or pass its --runtime-dir.",
            runtime_dir.display(),
            path.display()
        )
    })?;
    let talk = |conn: &mut UnixStream| -> io::Result<String> {
        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
        conn.write_all(format!("{request}\n").as_bytes())?;
        let mut out = String::new();
        conn.read_to_string(&mut out)?;
        Ok(out)
    };
    talk(&mut conn).map_err(|e| format!("the instance at {} did not answer: {e}.", path.display()))
}
