//! The static tree lxcfs shows. Node ids are fixed, so a successor process (takeover,
//! crash restart) agrees with the kernel's cached ids without any table.

/// What a regular file shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileId {
    Cpuinfo,
    Diskstats,
    Loadavg,
    Meminfo,
    Slabinfo,
    Stat,
    Swaps,
    Uptime,
    Vmstat,
    /// One of /sys/devices/system/cpu's CPU lists, from the container's CPUs.
    CpuList(CpuList),
    /// One of /proc/pressure's files, from the container's cgroup (PSI).
    Pressure(Pressure),
    /// One of /sys/devices/system/node's node lists, from the container's memory nodes.
    NodeList(NodeList),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeList {
    Online,
    Possible,
    HasCpu,
    HasMemory,
    HasNormalMemory,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pressure {
    Cpu,
    Io,
    Memory,
    /// Only where the host has it (CONFIG_IRQ_TIME_ACCOUNTING).
    Irq,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuList {
    Online,
    Possible,
    Present,
    Offline,
    /// Only where the host has it (Linux 6.10+).
    Enabled,
}

impl FileId {
    /// The host's own file, shown unchanged in pass-through mode (SIGUSR2).
    pub fn host_path(self) -> &'static std::ffi::CStr {
        match self {
            FileId::Cpuinfo => c"/proc/cpuinfo",
            FileId::Diskstats => c"/proc/diskstats",
            FileId::Loadavg => c"/proc/loadavg",
            FileId::Meminfo => c"/proc/meminfo",
            FileId::Slabinfo => c"/proc/slabinfo",
            FileId::Stat => c"/proc/stat",
            FileId::Swaps => c"/proc/swaps",
            FileId::Uptime => c"/proc/uptime",
            FileId::Vmstat => c"/proc/vmstat",
            FileId::CpuList(CpuList::Online) => c"/sys/devices/system/cpu/online",
            FileId::CpuList(CpuList::Possible) => c"/sys/devices/system/cpu/possible",
            FileId::CpuList(CpuList::Present) => c"/sys/devices/system/cpu/present",
            FileId::CpuList(CpuList::Offline) => c"/sys/devices/system/cpu/offline",
            FileId::CpuList(CpuList::Enabled) => c"/sys/devices/system/cpu/enabled",
            FileId::Pressure(Pressure::Cpu) => c"/proc/pressure/cpu",
            FileId::Pressure(Pressure::Io) => c"/proc/pressure/io",
            FileId::Pressure(Pressure::Memory) => c"/proc/pressure/memory",
            FileId::Pressure(Pressure::Irq) => c"/proc/pressure/irq",
            FileId::NodeList(NodeList::Online) => c"/sys/devices/system/node/online",
            FileId::NodeList(NodeList::Possible) => c"/sys/devices/system/node/possible",
            FileId::NodeList(NodeList::HasCpu) => c"/sys/devices/system/node/has_cpu",
            FileId::NodeList(NodeList::HasMemory) => c"/sys/devices/system/node/has_memory",
            FileId::NodeList(NodeList::HasNormalMemory) => {
                c"/sys/devices/system/node/has_normal_memory"
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File(FileId),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Node {
    pub id: u64,
    pub parent: u64,
    pub name: &'static [u8],
    pub kind: Kind,
    /// Permission bits, as the host counterpart has them.
    pub perm: u32,
}

pub const ROOT: u64 = 1;
/// /sys/devices/system/cpu: its other entries are the host's, passed through (fs::sysfs).
pub const CPU_DIR: u64 = 14;
/// /cgroup: the cgroup hierarchies (fs::cgroup), with --enable-cgroup only.
pub const CGROUP_DIR: u64 = 16;
/// /proc/pressure: only where the host has PSI.
pub const PRESSURE_DIR: u64 = 21;
/// /sys/devices/system/node: only where the host has it (CONFIG_NUMA); its other entries
/// are the host's, passed through (fs::sysfs).
pub const NODE_DIR: u64 = 27;

const fn dir(id: u64, parent: u64, name: &'static [u8], perm: u32) -> Node {
    Node {
        id,
        parent,
        name,
        kind: Kind::Dir,
        perm,
    }
}

const fn file(id: u64, parent: u64, name: &'static [u8], f: FileId, perm: u32) -> Node {
    Node {
        id,
        parent,
        name,
        kind: Kind::File(f),
        perm,
    }
}

/// Index i holds node id i + 1. Ids are never reused or moved: new nodes go at the end.
pub static NODES: [Node; 32] = [
    dir(1, 1, b"", 0o755),
    dir(2, 1, b"proc", 0o555),
    file(3, 2, b"cpuinfo", FileId::Cpuinfo, 0o444),
    file(4, 2, b"diskstats", FileId::Diskstats, 0o444),
    file(5, 2, b"loadavg", FileId::Loadavg, 0o444),
    file(6, 2, b"meminfo", FileId::Meminfo, 0o444),
    file(7, 2, b"slabinfo", FileId::Slabinfo, 0o400),
    file(8, 2, b"stat", FileId::Stat, 0o444),
    file(9, 2, b"swaps", FileId::Swaps, 0o444),
    file(10, 2, b"uptime", FileId::Uptime, 0o444),
    dir(11, 1, b"sys", 0o555),
    dir(12, 11, b"devices", 0o555),
    dir(13, 12, b"system", 0o555),
    dir(14, 13, b"cpu", 0o555),
    file(15, 14, b"online", FileId::CpuList(CpuList::Online), 0o444),
    dir(16, 1, b"cgroup", 0o755),
    file(
        17,
        14,
        b"possible",
        FileId::CpuList(CpuList::Possible),
        0o444,
    ),
    file(18, 14, b"present", FileId::CpuList(CpuList::Present), 0o444),
    file(19, 14, b"offline", FileId::CpuList(CpuList::Offline), 0o444),
    file(20, 14, b"enabled", FileId::CpuList(CpuList::Enabled), 0o444),
    dir(21, 2, b"pressure", 0o555),
    file(22, 21, b"cpu", FileId::Pressure(Pressure::Cpu), 0o444),
    file(23, 21, b"io", FileId::Pressure(Pressure::Io), 0o444),
    file(24, 21, b"memory", FileId::Pressure(Pressure::Memory), 0o444),
    file(25, 21, b"irq", FileId::Pressure(Pressure::Irq), 0o444),
    file(26, 2, b"vmstat", FileId::Vmstat, 0o444),
    dir(27, 13, b"node", 0o555),
    file(28, 27, b"online", FileId::NodeList(NodeList::Online), 0o444),
    file(
        29,
        27,
        b"possible",
        FileId::NodeList(NodeList::Possible),
        0o444,
    ),
    file(
        30,
        27,
        b"has_cpu",
        FileId::NodeList(NodeList::HasCpu),
        0o444,
    ),
    file(
        31,
        27,
        b"has_memory",
        FileId::NodeList(NodeList::HasMemory),
        0o444,
    ),
    file(
        32,
        27,
        b"has_normal_memory",
        FileId::NodeList(NodeList::HasNormalMemory),
        0o444,
    ),
];

pub fn node(id: u64) -> Option<&'static Node> {
    id.checked_sub(1).and_then(|i| NODES.get(i as usize))
}

pub fn lookup(parent: u64, name: &[u8]) -> Option<&'static Node> {
    children(parent).find(|n| n.name == name)
}

/// The children of a directory, in a stable order (readdir cookies depend on it).
pub fn children(parent: u64) -> impl Iterator<Item = &'static Node> {
    NODES
        .iter()
        .filter(move |n| n.parent == parent && n.id != ROOT)
}

/// Directory link count: 2 plus one per subdirectory.
pub fn nlink(n: &Node) -> u32 {
    match n.kind {
        Kind::Dir => 2 + children(n.id).filter(|c| c.kind == Kind::Dir).count() as u32,
        Kind::File(_) => 1,
    }
}

/// Whether a file lives under /sys (sysfs semantics: write-opens refused, size 4096).
pub fn in_sys(n: &Node) -> bool {
    let mut id = n.id;
    while id != ROOT {
        if id == 11 {
            return true;
        }
        id = node(id).map_or(ROOT, |p| p.parent);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_positions_and_parents_are_dirs() {
        for (i, n) in NODES.iter().enumerate() {
            assert_eq!(n.id, i as u64 + 1);
            assert_eq!(node(n.parent).unwrap().kind, Kind::Dir);
        }
        assert!(node(0).is_none());
        assert!(node(33).is_none());
        assert!(node(u64::MAX).is_none());
    }

    #[test]
    fn lookups() {
        assert_eq!(lookup(ROOT, b"proc").unwrap().id, 2);
        assert_eq!(
            lookup(2, b"meminfo").unwrap().kind,
            Kind::File(FileId::Meminfo)
        );
        assert_eq!(lookup(14, b"online").unwrap().id, 15);
        assert!(lookup(2, b"nope").is_none());
        assert!(lookup(ROOT, b"").is_none());
        assert_eq!(children(2).count(), 10);
        assert_eq!(
            lookup(2, b"vmstat").unwrap().kind,
            Kind::File(FileId::Vmstat)
        );
        assert_eq!(
            lookup(PRESSURE_DIR, b"memory").unwrap().kind,
            Kind::File(FileId::Pressure(Pressure::Memory))
        );
        assert_eq!(nlink(node(ROOT).unwrap()), 5);
        assert!(in_sys(node(15).unwrap()));
        assert!(!in_sys(node(6).unwrap()));
        assert_eq!(lookup(2, b"slabinfo").unwrap().perm, 0o400);
        assert_eq!(lookup(13, b"node").unwrap().id, NODE_DIR);
        assert_eq!(children(NODE_DIR).count(), 5);
        assert!(in_sys(lookup(NODE_DIR, b"has_cpu").unwrap()));
    }
}
