//! /sys/devices/system/cpu as a container sees it: the cpuN directories of its CPUs only,
//! and every other host entry passed through read-only.
//!
//! Node ids below the cpu directory are computed, not allocated: a path is encoded as its
//! cpu number and the positions of its components in their host directories' sorted
//! listings. Any process (a successor after a takeover or a crash) maps an id back to the
//! same path with no table, and no lookup can grow the daemon's memory.

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

const ROOT: &str = "/sys/devices/system/cpu";
const TAG: u64 = 1 << 63;
const CPU_FLAG: u64 = 1 << 62;
const FIRST_SHIFT: u32 = 48;
const FIRST_MASK: u64 = (1 << 14) - 1;
/// Components after the first: six bytes, each a 1-based position (0 ends the path).
const MAX_REST: usize = 6;

/// Top-level files shown from the container's CPU list instead of the host's.
pub const CPU_LISTS: [&str; 5] = ["online", "possible", "present", "offline", "enabled"];

pub fn is_dynamic(id: u64) -> bool {
    id & TAG != 0
}

/// The CPUs one caller is shown.
pub struct CpuNames<'a> {
    /// Host CPU ids shown, ascending.
    pub shown: &'a [u32],
    /// Shown as cpu0.. (--enable-cfs) rather than by host id.
    pub renumber: bool,
}

impl CpuNames<'_> {
    /// The host CPU behind the shown `cpuN`.
    fn host_cpu(&self, n: u32) -> Option<u32> {
        if self.renumber {
            self.shown.get(n as usize).copied()
        } else {
            self.shown.binary_search(&n).ok().map(|_| n)
        }
    }

    /// The names shown for the container's CPUs.
    fn numbers(&self) -> Vec<u32> {
        if self.renumber {
            (0..self.shown.len() as u32).collect()
        } else {
            self.shown.to_vec()
        }
    }
}

/// One node below the cpu directory, for one caller.
#[derive(Debug)]
pub struct Entry {
    pub id: u64,
    pub host: PathBuf,
    pub meta: std::fs::Metadata,
}

fn cpu_number(name: &[u8]) -> Option<u32> {
    let digits = name.strip_prefix(b"cpu")?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) || digits.len() > 5 {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Sorted names of a host directory.
fn listing(dir: &std::path::Path) -> io::Result<Vec<OsString>> {
    let mut names: Vec<OsString> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    names.sort();
    Ok(names)
}

/// Top-level host entries passed through: all but the cpuN directories and the CPU lists.
fn top_listing() -> io::Result<Vec<OsString>> {
    let mut names = listing(ROOT.as_ref())?;
    names.retain(|n| {
        let b = n.as_bytes();
        cpu_number(b).is_none() && !CPU_LISTS.iter().any(|l| l.as_bytes() == b)
    });
    Ok(names)
}

fn enoent() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOENT)
}

/// Decode `id` to the host path it names for this caller.
fn host_path(id: u64, cpus: &CpuNames<'_>) -> io::Result<PathBuf> {
    if !is_dynamic(id) {
        return Err(enoent());
    }
    let first = ((id >> FIRST_SHIFT) & FIRST_MASK) as u32;
    let mut path = PathBuf::from(ROOT);
    if id & CPU_FLAG != 0 {
        let host = cpus.host_cpu(first).ok_or_else(enoent)?;
        path.push(format!("cpu{host}"));
    } else {
        let names = top_listing()?;
        let name = names
            .get((first as usize).wrapping_sub(1))
            .ok_or_else(enoent)?;
        path.push(name);
    }
    for i in 0..MAX_REST {
        let pos = ((id >> (8 * (MAX_REST - 1 - i))) & 0xff) as usize;
        if pos == 0 {
            break;
        }
        let names = listing(&path)?;
        let name = names.get(pos - 1).ok_or_else(enoent)?;
        path.push(name);
    }
    Ok(path)
}

/// How many components after the first `id` has.
fn depth(id: u64) -> usize {
    (0..MAX_REST)
        .take_while(|i| (id >> (8 * (MAX_REST - 1 - i))) & 0xff != 0)
        .count()
}

fn entry_at(id: u64, host: PathBuf) -> io::Result<Entry> {
    let meta = std::fs::symlink_metadata(&host)?;
    Ok(Entry { id, host, meta })
}

/// The node `id` names for this caller.
pub fn entry(id: u64, cpus: &CpuNames<'_>) -> io::Result<Entry> {
    entry_at(id, host_path(id, cpus)?)
}

/// Look `name` up in the cpu directory itself.
pub fn lookup_top(name: &[u8], cpus: &CpuNames<'_>) -> io::Result<Entry> {
    if let Some(n) = cpu_number(name) {
        let host = cpus.host_cpu(n).ok_or_else(enoent)?;
        let id = TAG | CPU_FLAG | (u64::from(n) << FIRST_SHIFT);
        return entry_at(id, PathBuf::from(format!("{ROOT}/cpu{host}")));
    }
    let names = top_listing()?;
    let pos = names
        .iter()
        .position(|n| n.as_bytes() == name)
        .ok_or_else(enoent)?;
    let first = u64::try_from(pos + 1)
        .ok()
        .filter(|&p| p <= FIRST_MASK)
        .ok_or_else(enoent)?;
    entry_at(
        TAG | (first << FIRST_SHIFT),
        PathBuf::from(ROOT).join(&names[pos]),
    )
}

/// Look `name` up in the directory `parent` (a dynamic node).
pub fn lookup(parent: u64, name: &[u8], cpus: &CpuNames<'_>) -> io::Result<Entry> {
    let d = depth(parent);
    if d >= MAX_REST {
        return Err(enoent());
    }
    let dir = host_path(parent, cpus)?;
    let names = listing(&dir)?;
    let pos = names
        .iter()
        .position(|n| n.as_bytes() == name)
        .ok_or_else(enoent)?;
    if pos + 1 > 0xff {
        return Err(enoent());
    }
    let id = parent | (((pos + 1) as u64) << (8 * (MAX_REST - 1 - d)));
    entry_at(id, dir.join(&names[pos]))
}

/// A directory entry: name, node id, d_type.
pub type DirEntry = (Vec<u8>, u64, u32);

fn dtype(meta: &std::fs::Metadata) -> u32 {
    let t = meta.file_type();
    if t.is_dir() {
        libc::DT_DIR as u32
    } else if t.is_symlink() {
        libc::DT_LNK as u32
    } else {
        libc::DT_REG as u32
    }
}

/// The cpu directory's dynamic entries: the container's cpuN, then the host's others.
pub fn readdir_top(cpus: &CpuNames<'_>) -> io::Result<Vec<DirEntry>> {
    let mut out: Vec<DirEntry> = cpus
        .numbers()
        .into_iter()
        .map(|n| {
            let id = TAG | CPU_FLAG | (u64::from(n) << FIRST_SHIFT);
            (format!("cpu{n}").into_bytes(), id, libc::DT_DIR as u32)
        })
        .collect();
    for (i, name) in top_listing()?.into_iter().enumerate() {
        let Ok(meta) = std::fs::symlink_metadata(PathBuf::from(ROOT).join(&name)) else {
            continue;
        };
        let id = TAG | (((i + 1) as u64) << FIRST_SHIFT);
        out.push((name.as_bytes().to_vec(), id, dtype(&meta)));
    }
    Ok(out)
}

/// The entries of the dynamic directory `id`.
pub fn readdir(id: u64, cpus: &CpuNames<'_>) -> io::Result<Vec<DirEntry>> {
    let d = depth(id);
    let dir = host_path(id, cpus)?;
    let mut out = Vec::new();
    if d >= MAX_REST {
        return Ok(out);
    }
    for (i, name) in listing(&dir)?.into_iter().enumerate().take(0xff) {
        let Ok(meta) = std::fs::symlink_metadata(dir.join(&name)) else {
            continue;
        };
        let child = id | (((i + 1) as u64) << (8 * (MAX_REST - 1 - d)));
        out.push((name.as_bytes().to_vec(), child, dtype(&meta)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_cpus() -> Vec<u32> {
        crate::cpulist::read(c"/sys/devices/system/cpu/online").unwrap()
    }

    #[test]
    fn names() {
        assert_eq!(cpu_number(b"cpu12"), Some(12));
        assert_eq!(cpu_number(b"cpu"), None);
        assert_eq!(cpu_number(b"cpufreq"), None);
        assert_eq!(cpu_number(b"cpu1x"), None);
        assert_eq!(cpu_number(b"cpu999999"), None);
    }

    #[test]
    fn ids_round_trip_to_the_same_host_paths() {
        let all = host_cpus();
        let last = *all.last().unwrap();
        let cpus = CpuNames {
            shown: &[last],
            renumber: false,
        };
        let cpu = lookup_top(format!("cpu{last}").as_bytes(), &cpus).unwrap();
        assert!(cpu.meta.is_dir());
        assert_eq!(entry(cpu.id, &cpus).unwrap().host, cpu.host);
        let topo = lookup(cpu.id, b"topology", &cpus).unwrap();
        let core = lookup(topo.id, b"core_id", &cpus).unwrap();
        assert_eq!(
            core.host,
            PathBuf::from(format!("{ROOT}/cpu{last}/topology/core_id"))
        );
        assert_eq!(entry(core.id, &cpus).unwrap().host, core.host);
        // a CPU the container does not have is not there
        if last > 0 {
            assert!(lookup_top(b"cpu0", &cpus).is_err());
        }
        // renumbered: cpu0 is the first shown host CPU
        let renum = CpuNames {
            shown: &[last],
            renumber: true,
        };
        assert_eq!(
            lookup_top(b"cpu0", &renum).unwrap().host,
            PathBuf::from(format!("{ROOT}/cpu{last}"))
        );
        assert!(
            lookup_top(b"online", &cpus).is_err(),
            "the CPU lists are not passed through"
        );
        let km = lookup_top(b"kernel_max", &cpus).unwrap();
        assert_eq!(
            entry(km.id, &cpus).unwrap().host,
            PathBuf::from(format!("{ROOT}/kernel_max"))
        );
    }

    #[test]
    fn listings() {
        let all = host_cpus();
        let cpus = CpuNames {
            shown: &all[..1],
            renumber: false,
        };
        let top = readdir_top(&cpus).unwrap();
        let cpu_dirs: Vec<&[u8]> = top
            .iter()
            .map(|e| e.0.as_slice())
            .filter(|n| cpu_number(n).is_some())
            .collect();
        assert_eq!(cpu_dirs.len(), 1);
        assert!(
            top.iter()
                .all(|e| !CPU_LISTS.iter().any(|l| l.as_bytes() == e.0.as_slice()))
        );
        for (name, id, _) in &top {
            let e = entry(*id, &cpus).unwrap();
            assert!(e.host.as_os_str().as_bytes().ends_with(name));
        }
        let sub = readdir(top[0].1, &cpus).unwrap();
        assert!(!sub.is_empty());
        for (name, id, _) in &sub {
            assert!(
                entry(*id, &cpus)
                    .unwrap()
                    .host
                    .as_os_str()
                    .as_bytes()
                    .ends_with(name)
            );
        }
        assert!(entry(TAG | (9999 << FIRST_SHIFT), &cpus).is_err());
        assert!(entry(5, &cpus).is_err());
    }
}
