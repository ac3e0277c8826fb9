//! The control socket, `<runtime-dir>/lxcfs-uring.sock`: how `lxcfs-uring stats` (and
//! other local tools run as root) talk to the running instance. One request line per
//! connection, one answer; the socket is only reachable by root (mode 0600).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{stats, warn};

pub fn socket_path(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join("lxcfs-uring.sock")
}

/// Listen on the control socket (replacing a stale one: the caller holds the pidfile
/// lock, so no live instance owns it) and answer in a thread of its own.
pub fn listen(runtime_dir: &Path) -> io::Result<()> {
    let path = socket_path(runtime_dir);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(c) => {
                        if let Err(e) = answer(c) {
                            warn!("control socket: {e}");
                        }
                    }
                    Err(e) => warn!("control socket: {e}"),
                }
            }
        })?;
    Ok(())
}

fn answer(conn: UnixStream) -> io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = String::new();
    BufReader::new((&conn).take(256)).read_line(&mut line)?;
    let reply = match line.trim() {
        "stats" => stats::snapshot().text(),
        "stats prometheus" => stats::snapshot().prometheus(),
        other => format!("error: unknown request {other:?}\n"),
    };
    (&conn).write_all(reply.as_bytes())
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
