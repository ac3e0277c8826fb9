//! /sys/devices/system/cpu and /sys/devices/system/node as a container sees them: the
//! cpuN directories of its CPUs and the nodeN directories of its memory nodes only, and
//! every other host entry passed through read-only (a node's CPU lists and its cpuN links
//! limited to the container's CPUs).
//!
//! Node ids below these directories are computed, not allocated: a path is encoded as its
//! directory, its cpu or node number and the positions of its components in their host
//! directories' sorted listings. Any process (a successor after a takeover or a crash)
//! maps an id back to the same path with no table, and no lookup can grow the daemon's
//! memory.

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Where the host's cpu and node directories are (a fake tree in tests).
pub const HOST_BASE: &str = "/sys/devices/system";
const TAG: u64 = 1 << 63;
/// The first component is a cpuN or nodeN directory (its number), not a position.
const NUM_FLAG: u64 = 1 << 62;
/// Below the node directory rather than the cpu directory.
const NODE_FLAG: u64 = 1 << 61;
const FIRST_SHIFT: u32 = 48;
/// Linux has at most 8192 CPUs (NR_CPUS) and 1024 nodes.
const FIRST_MASK: u64 = (1 << 13) - 1;
/// Components after the first fill the low 48 bits, each a 1-based position (0 ends the
/// path): six bytes, except below a nodeN directory (see `widths`).
const REST_BITS: u32 = 48;
/// A child of a nodeN directory that is a cpuN link, named by its CPU number: a node of a
/// large host links thousands of CPUs, which would crowd its files out of a position.
const CPU_LINK: u64 = 1 << 15;
/// Positions of a nodeN directory's other entries (thousands of memoryN blocks on hosts
/// with much memory).
const NODE_POS_MAX: u64 = CPU_LINK - 1;

/// Top-level files of the cpu directory shown from the container's CPU list instead of
/// the host's.
pub const CPU_LISTS: [&str; 5] = ["online", "possible", "present", "offline", "enabled"];
/// Top-level files of the node directory shown from the container's memory nodes.
pub const NODE_LISTS: [&str; 5] = [
    "online",
    "possible",
    "has_cpu",
    "has_memory",
    "has_normal_memory",
];

pub fn is_dynamic(id: u64) -> bool {
    id & TAG != 0
}

/// The two host directories served this way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SysDir {
    Cpu,
    Node,
}

impl SysDir {
    /// The directory whose static node id (fs::tree) is `id`, if it is one of them.
    pub fn top(id: u64) -> Option<SysDir> {
        match id {
            super::tree::CPU_DIR => Some(SysDir::Cpu),
            super::tree::NODE_DIR => Some(SysDir::Node),
            _ => None,
        }
    }

    /// The directory a dynamic node id lies in.
    pub fn of(id: u64) -> SysDir {
        if id & NODE_FLAG != 0 {
            SysDir::Node
        } else {
            SysDir::Cpu
        }
    }

    fn name(self) -> &'static str {
        match self {
            SysDir::Cpu => "cpu",
            SysDir::Node => "node",
        }
    }

    fn flag(self) -> u64 {
        match self {
            SysDir::Cpu => 0,
            SysDir::Node => NODE_FLAG,
        }
    }

    /// The top-level files rendered for the container rather than passed through.
    fn lists(self) -> &'static [&'static str] {
        match self {
            SysDir::Cpu => &CPU_LISTS,
            SysDir::Node => &NODE_LISTS,
        }
    }
}

/// A file of a nodeN directory rendered for the container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeFile {
    Cpulist,
    Cpumap,
    Meminfo,
}

/// The CPUs and memory nodes one caller is shown.
pub struct Shown<'a> {
    /// The host's /sys/devices/system.
    pub base: &'a Path,
    /// Host CPU ids shown, ascending.
    pub cpus: &'a [u32],
    /// Shown as cpu0.. (--enable-cfs) rather than by host id.
    pub renumber: bool,
    /// Host memory nodes shown, ascending (empty when the request is below the cpu
    /// directory).
    pub nodes: &'a [u32],
}

impl Shown<'_> {
    /// The host CPU or node behind the shown `cpuN` or `nodeN`.
    fn host_number(&self, dir: SysDir, n: u32) -> Option<u32> {
        match dir {
            SysDir::Cpu if self.renumber => self.cpus.get(n as usize).copied(),
            SysDir::Cpu => self.cpus.binary_search(&n).ok().map(|_| n),
            SysDir::Node => self.nodes.binary_search(&n).ok().map(|_| n),
        }
    }

    /// The names shown for the container's CPUs or nodes.
    fn numbers(&self, dir: SysDir) -> Vec<u32> {
        match dir {
            SysDir::Cpu if self.renumber => (0..self.cpus.len() as u32).collect(),
            SysDir::Cpu => self.cpus.to_vec(),
            SysDir::Node => self.nodes.to_vec(),
        }
    }

    fn root(&self, dir: SysDir) -> PathBuf {
        self.base.join(dir.name())
    }

    /// Whether the entry `name` of nodeN is shown: a cpuN link only for a CPU of the
    /// container, and none when CPUs are renumbered (their targets are host names).
    fn in_node_dir(&self, name: &[u8]) -> bool {
        match numbered(b"cpu", name) {
            Some(cpu) => !self.renumber && self.cpus.binary_search(&cpu).is_ok(),
            None => true,
        }
    }
}

/// One node below the cpu or node directory, for one caller.
#[derive(Debug)]
pub struct Entry {
    pub id: u64,
    pub host: PathBuf,
    pub meta: std::fs::Metadata,
}

impl Entry {
    /// The node and file, when this is one of a nodeN directory's rendered files.
    pub fn node_file(&self) -> Option<(u32, NodeFile)> {
        if self.id & (NODE_FLAG | NUM_FLAG) != (NODE_FLAG | NUM_FLAG) || depth(self.id) != 1 {
            return None;
        }
        let file = match self.host.file_name()?.as_bytes() {
            b"cpulist" => NodeFile::Cpulist,
            b"cpumap" => NodeFile::Cpumap,
            b"meminfo" => NodeFile::Meminfo,
            _ => return None,
        };
        Some((((self.id >> FIRST_SHIFT) & FIRST_MASK) as u32, file))
    }
}

/// The number of a `cpuN` or `nodeN` name with this prefix.
fn numbered(prefix: &[u8], name: &[u8]) -> Option<u32> {
    let digits = name.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) || digits.len() > 5 {
        return None;
    }
    std::str::from_utf8(digits)
        .ok()?
        .parse()
        .ok()
        .filter(|&n| u64::from(n) <= FIRST_MASK)
}

fn number_of(dir: SysDir, name: &[u8]) -> Option<u32> {
    numbered(dir.name().as_bytes(), name)
}

/// Sorted names of a host directory.
fn listing(dir: &Path) -> io::Result<Vec<OsString>> {
    let mut names: Vec<OsString> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    names.sort();
    Ok(names)
}

/// Top-level host entries passed through: all but the numbered directories and the lists.
fn top_listing(dir: SysDir, shown: &Shown<'_>) -> io::Result<Vec<OsString>> {
    let mut names = listing(&shown.root(dir))?;
    names.retain(|n| {
        let b = n.as_bytes();
        number_of(dir, b).is_none() && !dir.lists().iter().any(|l| l.as_bytes() == b)
    });
    Ok(names)
}

fn enoent() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOENT)
}

/// Whether `id` is a nodeN directory itself.
fn is_node_dir(id: u64) -> bool {
    id & (NODE_FLAG | NUM_FLAG) == (NODE_FLAG | NUM_FLAG) && depth(id) == 0
}

/// Bit widths of the components after the first: below a nodeN directory the first is
/// two bytes (`CPU_LINK` and the CPU number, or a position up to `NODE_POS_MAX`).
fn widths(id: u64) -> &'static [u32] {
    if id & (NODE_FLAG | NUM_FLAG) == (NODE_FLAG | NUM_FLAG) {
        &[16, 8, 8, 8, 8]
    } else {
        &[8; 6]
    }
}

/// Where the `i`-th component after the first (0-based) of `id` starts, and its mask.
fn field(id: u64, i: usize) -> (u32, u64) {
    let w = widths(id);
    (REST_BITS - w[..=i].iter().sum::<u32>(), (1 << w[i]) - 1)
}

/// The `i`-th component after the first (0-based) of `id`; 0 past its last.
fn position(id: u64, i: usize) -> u64 {
    if i >= widths(id).len() {
        return 0;
    }
    let (shift, mask) = field(id, i);
    (id >> shift) & mask
}

/// `parent` with one more component, `value`.
fn child_id(parent: u64, value: u64) -> u64 {
    let (shift, mask) = field(parent, depth(parent));
    parent | ((value & mask) << shift)
}

/// The children of the host directory `path` (the node `parent`) shown to this caller,
/// each with its component in a child's id: its 1-based position in the sorted listing,
/// but in a nodeN directory the container's cpuN links by number and the other entries
/// by position among themselves. Deterministic from the host tree, so a successor
/// process decodes the same ids.
fn children(parent: u64, path: &Path, shown: &Shown<'_>) -> io::Result<Vec<(OsString, u64)>> {
    let names = listing(path)?;
    if !is_node_dir(parent) {
        return Ok(names.into_iter().zip(1..=0xff).collect());
    }
    let mut out = Vec::new();
    let mut pos = 0;
    for name in names {
        match numbered(b"cpu", name.as_bytes()) {
            Some(cpu) if shown.in_node_dir(name.as_bytes()) => {
                out.push((name, CPU_LINK | u64::from(cpu)))
            }
            Some(_) => {}
            None if pos < NODE_POS_MAX => {
                pos += 1;
                out.push((name, pos));
            }
            None => {}
        }
    }
    Ok(out)
}

/// Decode `id` to the host path it names for this caller.
fn host_path(id: u64, shown: &Shown<'_>) -> io::Result<PathBuf> {
    if !is_dynamic(id) {
        return Err(enoent());
    }
    let dir = SysDir::of(id);
    let first = ((id >> FIRST_SHIFT) & FIRST_MASK) as u32;
    let mut path = shown.root(dir);
    if id & NUM_FLAG != 0 {
        let host = shown.host_number(dir, first).ok_or_else(enoent)?;
        path.push(format!("{}{host}", dir.name()));
    } else {
        let names = top_listing(dir, shown)?;
        let name = names
            .get((first as usize).wrapping_sub(1))
            .ok_or_else(enoent)?;
        path.push(name);
    }
    let mut parent = id & !((1 << REST_BITS) - 1);
    for i in 0..depth(id) {
        let pos = position(id, i);
        let (name, _) = children(parent, &path, shown)?
            .into_iter()
            .find(|&(_, v)| v == pos)
            .ok_or_else(enoent)?;
        path.push(name);
        parent = child_id(parent, pos);
    }
    Ok(path)
}

/// How many components after the first `id` has.
fn depth(id: u64) -> usize {
    (0..widths(id).len())
        .take_while(|&i| position(id, i) != 0)
        .count()
}

fn entry_at(id: u64, host: PathBuf) -> io::Result<Entry> {
    let meta = std::fs::symlink_metadata(&host)?;
    Ok(Entry { id, host, meta })
}

/// The node `id` names for this caller.
pub fn entry(id: u64, shown: &Shown<'_>) -> io::Result<Entry> {
    entry_at(id, host_path(id, shown)?)
}

/// Look `name` up in the cpu or node directory itself.
pub fn lookup_top(dir: SysDir, name: &[u8], shown: &Shown<'_>) -> io::Result<Entry> {
    let root = shown.root(dir);
    if let Some(n) = number_of(dir, name) {
        let host = shown.host_number(dir, n).ok_or_else(enoent)?;
        let id = TAG | dir.flag() | NUM_FLAG | (u64::from(n) << FIRST_SHIFT);
        return entry_at(id, root.join(format!("{}{host}", dir.name())));
    }
    let names = top_listing(dir, shown)?;
    let pos = names
        .iter()
        .position(|n| n.as_bytes() == name)
        .ok_or_else(enoent)?;
    let first = u64::try_from(pos + 1)
        .ok()
        .filter(|&p| p <= FIRST_MASK)
        .ok_or_else(enoent)?;
    entry_at(
        TAG | dir.flag() | (first << FIRST_SHIFT),
        root.join(&names[pos]),
    )
}

/// Look `name` up in the directory `parent` (a dynamic node).
pub fn lookup(parent: u64, name: &[u8], shown: &Shown<'_>) -> io::Result<Entry> {
    if depth(parent) >= widths(parent).len() {
        return Err(enoent());
    }
    let dir = host_path(parent, shown)?;
    let (name, pos) = children(parent, &dir, shown)?
        .into_iter()
        .find(|(n, _)| n.as_bytes() == name)
        .ok_or_else(enoent)?;
    entry_at(child_id(parent, pos), dir.join(name))
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

/// The directory's dynamic entries: the container's cpuN or nodeN, then the host's others.
pub fn readdir_top(dir: SysDir, shown: &Shown<'_>) -> io::Result<Vec<DirEntry>> {
    let mut out: Vec<DirEntry> = shown
        .numbers(dir)
        .into_iter()
        .map(|n| {
            let id = TAG | dir.flag() | NUM_FLAG | (u64::from(n) << FIRST_SHIFT);
            (
                format!("{}{n}", dir.name()).into_bytes(),
                id,
                libc::DT_DIR as u32,
            )
        })
        .collect();
    let root = shown.root(dir);
    for (i, name) in top_listing(dir, shown)?.into_iter().enumerate() {
        let Ok(meta) = std::fs::symlink_metadata(root.join(&name)) else {
            continue;
        };
        let id = TAG | dir.flag() | (((i + 1) as u64) << FIRST_SHIFT);
        out.push((name.as_bytes().to_vec(), id, dtype(&meta)));
    }
    Ok(out)
}

/// The entries of the dynamic directory `id`.
pub fn readdir(id: u64, shown: &Shown<'_>) -> io::Result<Vec<DirEntry>> {
    let dir = host_path(id, shown)?;
    let mut out = Vec::new();
    if depth(id) >= widths(id).len() {
        return Ok(out);
    }
    for (name, pos) in children(id, &dir, shown)? {
        let Ok(meta) = std::fs::symlink_metadata(dir.join(&name)) else {
            continue;
        };
        out.push((name.as_bytes().to_vec(), child_id(id, pos), dtype(&meta)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    fn host_cpus() -> Vec<u32> {
        crate::cpulist::read(c"/sys/devices/system/cpu/online").unwrap()
    }

    fn host(cpus: &[u32], renumber: bool) -> Shown<'_> {
        Shown {
            base: Path::new(HOST_BASE),
            cpus,
            renumber,
            nodes: &[],
        }
    }

    /// A fake host tree, removed when dropped.
    struct FakeTree(PathBuf);

    impl Drop for FakeTree {
        fn drop(&mut self) {
            std::fs::remove_dir_all(&self.0).ok();
        }
    }

    /// A host with four nodes of two CPUs each, as sysfs lays it out.
    fn fake_tree() -> FakeTree {
        let t = FakeTree(std::env::temp_dir().join(format!("sysfs-nodes-{}", std::process::id())));
        let node = t.0.join("node");
        std::fs::create_dir_all(&node).unwrap();
        for f in NODE_LISTS {
            std::fs::write(node.join(f), "0-3\n").unwrap();
        }
        std::fs::write(node.join("uevent"), "").unwrap();
        for n in 0..4u32 {
            let d = node.join(format!("node{n}"));
            std::fs::create_dir_all(d.join("hugepages")).unwrap();
            std::fs::write(d.join("cpulist"), format!("{}-{}\n", 2 * n, 2 * n + 1)).unwrap();
            std::fs::write(d.join("distance"), "10 20 20 20\n").unwrap();
            for c in [2 * n, 2 * n + 1] {
                std::os::unix::fs::symlink(format!("../../cpu/cpu{c}"), d.join(format!("cpu{c}")))
                    .unwrap();
                std::fs::create_dir_all(t.0.join(format!("cpu/cpu{c}"))).unwrap();
            }
        }
        t
    }

    fn names(v: &[DirEntry]) -> Vec<String> {
        v.iter()
            .map(|e| String::from_utf8_lossy(&e.0).into_owned())
            .collect()
    }

    #[test]
    fn numbered_names() {
        assert_eq!(numbered(b"cpu", b"cpu12"), Some(12));
        assert_eq!(numbered(b"cpu", b"cpu"), None);
        assert_eq!(numbered(b"cpu", b"cpufreq"), None);
        assert_eq!(numbered(b"cpu", b"cpu1x"), None);
        assert_eq!(numbered(b"cpu", b"cpu999999"), None);
        assert_eq!(numbered(b"node", b"node8191"), Some(8191));
        assert_eq!(
            numbered(b"node", b"node8192"),
            None,
            "beyond the id's field"
        );
        assert_eq!(numbered(b"node", b"cpu1"), None);
    }

    #[test]
    fn ids_round_trip_to_the_same_host_paths() {
        let root = PathBuf::from(HOST_BASE).join("cpu");
        let all = host_cpus();
        let last = *all.last().unwrap();
        let cpus = host(std::slice::from_ref(&last), false);
        let cpu = lookup_top(SysDir::Cpu, format!("cpu{last}").as_bytes(), &cpus).unwrap();
        assert!(cpu.meta.is_dir());
        assert_eq!(entry(cpu.id, &cpus).unwrap().host, cpu.host);
        let topo = lookup(cpu.id, b"topology", &cpus).unwrap();
        let core = lookup(topo.id, b"core_id", &cpus).unwrap();
        assert_eq!(core.host, root.join(format!("cpu{last}/topology/core_id")));
        assert_eq!(entry(core.id, &cpus).unwrap().host, core.host);
        // a CPU the container does not have is not there
        if last > 0 {
            assert!(lookup_top(SysDir::Cpu, b"cpu0", &cpus).is_err());
        }
        // renumbered: cpu0 is the first shown host CPU
        let renum = host(std::slice::from_ref(&last), true);
        assert_eq!(
            lookup_top(SysDir::Cpu, b"cpu0", &renum).unwrap().host,
            root.join(format!("cpu{last}"))
        );
        assert!(
            lookup_top(SysDir::Cpu, b"online", &cpus).is_err(),
            "the CPU lists are not passed through"
        );
        let km = lookup_top(SysDir::Cpu, b"kernel_max", &cpus).unwrap();
        assert_eq!(entry(km.id, &cpus).unwrap().host, root.join("kernel_max"));
        assert_eq!(SysDir::of(km.id), SysDir::Cpu);
    }

    #[test]
    fn listings() {
        let all = host_cpus();
        let cpus = host(&all[..1], false);
        let top = readdir_top(SysDir::Cpu, &cpus).unwrap();
        let cpu_dirs = top
            .iter()
            .filter(|e| number_of(SysDir::Cpu, &e.0).is_some())
            .count();
        assert_eq!(cpu_dirs, 1);
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
            let e = entry(*id, &cpus).unwrap();
            assert!(e.host.as_os_str().as_bytes().ends_with(name));
        }
        assert!(entry(TAG | (8000 << FIRST_SHIFT), &cpus).is_err());
        assert!(entry(5, &cpus).is_err());
    }

    #[test]
    fn a_container_on_two_of_four_nodes() {
        let t = fake_tree();
        // CPUs 3 and 4: one of node1's and one of node2's.
        let shown = Shown {
            base: t.0.as_path(),
            cpus: &[3, 4],
            renumber: false,
            nodes: &[1, 2],
        };
        let top = readdir_top(SysDir::Node, &shown).unwrap();
        assert_eq!(names(&top), ["node1", "node2", "uevent"]);
        assert!(lookup_top(SysDir::Node, b"node0", &shown).is_err());
        assert!(lookup_top(SysDir::Node, b"online", &shown).is_err());
        let node2 = lookup_top(SysDir::Node, b"node2", &shown).unwrap();
        assert_eq!(SysDir::of(node2.id), SysDir::Node);
        assert_eq!(
            entry(node2.id, &shown).unwrap().host,
            t.0.as_path().join("node/node2")
        );
        let inside = readdir(node2.id, &shown).unwrap();
        assert_eq!(names(&inside), ["cpu4", "cpulist", "distance", "hugepages"]);
        assert!(
            lookup(node2.id, b"cpu5", &shown).is_err(),
            "not the container's CPU"
        );
        let list = lookup(node2.id, b"cpulist", &shown).unwrap();
        assert_eq!(list.node_file(), Some((2, NodeFile::Cpulist)));
        assert_eq!(entry(list.id, &shown).unwrap().host, list.host);
        let huge = lookup(node2.id, b"hugepages", &shown).unwrap();
        assert_eq!(huge.node_file(), None);
        let cpu = lookup(node2.id, b"cpu4", &shown).unwrap();
        assert!(cpu.meta.file_type().is_symlink());
        // The id of a hidden link decodes to nothing for this caller.
        let five = child_id(node2.id, CPU_LINK | 5);
        assert!(entry(five, &shown).is_err());
        // Renumbered CPUs: the links would name host CPUs, so none is shown.
        let renum = Shown {
            renumber: true,
            ..shown
        };
        let inside = readdir(node2.id, &renum).unwrap();
        assert_eq!(names(&inside), ["cpulist", "distance", "hugepages"]);
        // Another container's node ids decode to its own nodes only.
        let other = Shown {
            nodes: &[0],
            ..renum
        };
        assert!(entry(node2.id, &other).is_err());
        assert!(entry(list.id, &other).is_err());
        // The cpu directory's entries are not the node directory's.
        assert!(lookup_top(SysDir::Cpu, b"node1", &shown).is_err());
    }

    /// A large host: node0 links 256 CPUs and holds 2000 memory blocks.
    #[test]
    fn a_node_with_many_cpus_and_memory_blocks() {
        let t = FakeTree(std::env::temp_dir().join(format!("sysfs-big-{}", std::process::id())));
        let d = t.0.join("node/node0");
        std::fs::create_dir_all(&d).unwrap();
        for f in ["cpulist", "cpumap", "distance", "meminfo"] {
            std::fs::write(d.join(f), "0\n").unwrap();
        }
        for c in 0..256 {
            std::os::unix::fs::symlink(format!("../../cpu/cpu{c}"), d.join(format!("cpu{c}")))
                .unwrap();
        }
        for m in 0..2000 {
            std::fs::create_dir_all(d.join(format!("memory{m}/power"))).unwrap();
        }
        let shown = Shown {
            base: t.0.as_path(),
            cpus: &[0, 1, 2, 3],
            renumber: false,
            nodes: &[0],
        };
        let node0 = lookup_top(SysDir::Node, b"node0", &shown).unwrap();
        for f in ["cpulist", "cpumap", "distance", "meminfo", "memory1999"] {
            let e = lookup(node0.id, f.as_bytes(), &shown).unwrap();
            assert_eq!(e.host, d.join(f));
            assert_eq!(entry(e.id, &shown).unwrap().host, e.host, "{f}");
        }
        let power = lookup(
            lookup(node0.id, b"memory1999", &shown).unwrap().id,
            b"power",
            &shown,
        );
        assert_eq!(
            entry(power.unwrap().id, &shown).unwrap().host,
            d.join("memory1999/power")
        );
        let inside = readdir(node0.id, &shown).unwrap();
        let listed = names(&inside);
        assert_eq!(inside.len(), 4 + 4 + 2000, "{:?}", &listed[..10]);
        for want in [
            "cpu0", "cpu3", "cpulist", "cpumap", "distance", "meminfo", "memory0",
        ] {
            assert!(listed.iter().any(|n| n == want), "{want} missing");
        }
        assert!(!listed.iter().any(|n| n == "cpu4"));
        assert!(lookup(node0.id, b"cpu200", &shown).is_err());
        for (name, id, _) in &inside {
            assert!(
                entry(*id, &shown)
                    .unwrap()
                    .host
                    .ends_with(OsStr::from_bytes(name))
            );
        }
        let meminfo = lookup(node0.id, b"meminfo", &shown).unwrap();
        assert_eq!(meminfo.node_file(), Some((0, NodeFile::Meminfo)));
        // The ids of the files do not move when the container's CPUs change.
        let other = Shown {
            cpus: &[100, 255],
            ..shown
        };
        assert_eq!(lookup(node0.id, b"meminfo", &other).unwrap().id, meminfo.id);
        assert_eq!(
            entry(lookup(node0.id, b"cpu255", &other).unwrap().id, &other)
                .unwrap()
                .host,
            d.join("cpu255")
        );
    }
}
