//! Who may move whom between cgroups through the /cgroup tree.
//!
//! We write to cgroup.procs and tasks as root, so the kernel's own check (cgroup v1: the
//! writer is root or the target's user) must be made here, for the caller. The rule is
//! lxcfs's: that check, widened to user namespaces so a container's root manages its own
//! processes.

use std::io;

use crate::kfile::{self, ProcPath};

/// The user ids of a process (the Uid line of /proc/<pid>/status).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uids {
    pub real: u32,
    pub effective: u32,
    pub saved: u32,
}

/// A user namespace's uid map (/proc/<pid>/uid_map): (inside, outside, count) ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdMap(Vec<(u32, u32, u32)>);

/// What the check needs to know about one process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Creds {
    pub uids: Uids,
    pub map: IdMap,
}

pub fn parse_uids(status: &[u8]) -> Option<Uids> {
    let line = kfile::lines(status).find_map(|l| l.strip_prefix(b"Uid:"))?;
    let mut ids = kfile::u32_words(line);
    Some(Uids {
        real: ids.next()??,
        effective: ids.next()??,
        saved: ids.next()??,
    })
}

impl IdMap {
    /// Malformed lines are dropped (they map nothing).
    pub fn parse(text: &[u8]) -> IdMap {
        IdMap(
            kfile::lines(text)
                .filter_map(|l| {
                    let mut f = kfile::u32_words(l);
                    Some((f.next()??, f.next()??, f.next()??))
                })
                .collect(),
        )
    }

    /// The id that host id `outside` has inside the namespace.
    pub fn inside(&self, outside: u32) -> Option<u32> {
        self.0.iter().find_map(|&(inside, start, count)| {
            let off = outside.checked_sub(start)?;
            (off < count).then(|| inside.checked_add(off)).flatten()
        })
    }
}

impl Creds {
    /// The credentials of `pid` now.
    pub fn of(pid: u32, scratch: &mut Vec<u8>) -> io::Result<Creds> {
        let bad = || io::Error::from_raw_os_error(libc::EIO);
        kfile::read_path(ProcPath::new(pid, "status").as_cstr(), scratch)?;
        let uids = parse_uids(scratch).ok_or_else(bad)?;
        kfile::read_path(ProcPath::new(pid, "uid_map").as_cstr(), scratch)?;
        Ok(Creds {
            uids,
            map: IdMap::parse(scratch),
        })
    }

    /// Whether this process may move `target` to another cgroup: it is root on the host,
    /// runs as the target's user (the kernel's v1 rule), or is root in its user namespace
    /// and the target's user is mapped in it.
    pub fn may_move(&self, target: &Uids) -> bool {
        let me = self.uids.effective;
        me == 0
            || me == target.real
            || me == target.saved
            || (self.map.inside(me) == Some(0) && self.map.inside(target.real).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uids(real: u32, effective: u32, saved: u32) -> Uids {
        Uids {
            real,
            effective,
            saved,
        }
    }

    #[test]
    fn uid_lines_and_maps_parse() {
        let status = b"Name:\tsh\nUid:\t1000\t0\t1001\t0\nGid:\t0\t0\t0\t0\n";
        assert_eq!(parse_uids(status), Some(uids(1000, 0, 1001)));
        assert_eq!(parse_uids(b"Uid:\t1\t2\n"), None);
        assert_eq!(parse_uids(b"Uid:\tx\t2\t3\n"), None);
        let m = IdMap::parse(b"         0     100000      65536\n garbage\n");
        assert_eq!(m.inside(100000), Some(0));
        assert_eq!(m.inside(165535), Some(65535));
        assert_eq!(m.inside(165536), None);
        assert_eq!(m.inside(0), None);
        let host = IdMap::parse(b"0 0 4294967295\n");
        assert_eq!(host.inside(1000), Some(1000));
    }

    #[test]
    fn who_may_move_whom() {
        let host = IdMap::parse(b"0 0 4294967295\n");
        let userns = IdMap::parse(b"0 100000 65536\n");
        let root = Creds {
            uids: uids(0, 0, 0),
            map: host.clone(),
        };
        let alice = Creds {
            uids: uids(1000, 1000, 1000),
            map: host,
        };
        let ct_root = Creds {
            uids: uids(100000, 100000, 100000),
            map: userns.clone(),
        };
        let ct_user = Creds {
            uids: uids(101000, 101000, 101000),
            map: userns,
        };
        assert!(root.may_move(&uids(1000, 1000, 1000)));
        assert!(alice.may_move(&uids(1000, 1000, 1000)));
        assert!(
            alice.may_move(&uids(5, 5, 1000)),
            "saved uid counts, as in the kernel"
        );
        assert!(!alice.may_move(&uids(0, 0, 0)));
        assert!(!alice.may_move(&uids(1001, 1001, 1001)));
        assert!(ct_root.may_move(&uids(101000, 101000, 101000)));
        assert!(
            !ct_root.may_move(&uids(0, 0, 0)),
            "host root is not mapped in"
        );
        assert!(!ct_user.may_move(&uids(100000, 100000, 100000)));
        assert!(ct_user.may_move(&uids(101000, 101000, 101000)));
    }
}
