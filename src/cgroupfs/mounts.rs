//! Where the cgroup hierarchies are mounted: parsed from /proc/self/mountinfo.

use std::path::PathBuf;

/// One mounted cgroup hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hierarchy {
    /// v1: the controllers bound to it (`cpu`, `memory`, `name=systemd`); v2: empty.
    pub controllers: Vec<String>,
    /// Where it is mounted in our mount namespace.
    pub mountpoint: PathBuf,
    /// The cgroup path that mountpoint shows (`/` unless a sub-tree was bind-mounted).
    pub root: String,
    pub unified: bool,
}

/// All cgroup hierarchies of the host, v1 and v2.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hierarchies {
    pub v1: Vec<Hierarchy>,
    pub unified: Option<Hierarchy>,
    /// Controllers enabled at the root of the unified hierarchy (cgroup.controllers).
    pub unified_controllers: Vec<String>,
}

impl Hierarchies {
    /// Read this process's mountinfo and the unified root's controllers.
    pub fn discover() -> std::io::Result<Hierarchies> {
        let text = std::fs::read_to_string("/proc/self/mountinfo")?;
        let mut h = parse_mountinfo(&text);
        if let Some(u) = &h.unified {
            let list = std::fs::read_to_string(u.mountpoint.join("cgroup.controllers"))
                .unwrap_or_default();
            h.unified_controllers = list.split_whitespace().map(str::to_owned).collect();
        }
        Ok(h)
    }

    /// The hierarchy that carries `controller`: a v1 mount wins where both exist, as in lxcfs.
    pub fn for_controller(&self, controller: &str) -> Option<&Hierarchy> {
        self.v1_for(controller)
            .or_else(|| self.unified_for(controller))
    }

    /// The v1 hierarchy that carries `controller`.
    pub fn v1_for(&self, controller: &str) -> Option<&Hierarchy> {
        self.v1
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == controller))
    }

    /// The unified hierarchy, when `controller` is enabled in it.
    pub fn unified_for(&self, controller: &str) -> Option<&Hierarchy> {
        self.unified
            .as_ref()
            .filter(|_| self.unified_controllers.iter().any(|c| c == controller))
    }
}

/// Parse mountinfo text. Lines that are not cgroup mounts, or are malformed, are skipped.
/// When a hierarchy is mounted twice, the first mount wins.
pub fn parse_mountinfo(text: &str) -> Hierarchies {
    let mut out = Hierarchies::default();
    for line in text.lines() {
        // id parent major:minor root mountpoint options [optional fields...] - fstype source superopts
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut l = left.split(' ');
        let (Some(root), Some(mountpoint)) = (l.nth(3), l.next()) else {
            continue;
        };
        let mut r = right.split(' ');
        let (Some(fstype), Some(_src), Some(superopts)) = (r.next(), r.next(), r.next()) else {
            continue;
        };
        let mountpoint = PathBuf::from(unescape(mountpoint));
        let root = unescape(root);
        match fstype {
            "cgroup2" if out.unified.is_none() => {
                out.unified = Some(Hierarchy {
                    controllers: Vec::new(),
                    mountpoint,
                    root,
                    unified: true,
                });
            }
            "cgroup" => {
                let controllers: Vec<String> = superopts
                    .split(',')
                    .filter(|o| is_controller_option(o))
                    .map(str::to_owned)
                    .collect();
                if controllers.is_empty() || out.v1.iter().any(|h| h.controllers == controllers) {
                    continue;
                }
                out.v1.push(Hierarchy {
                    controllers,
                    mountpoint,
                    root,
                    unified: false,
                });
            }
            _ => {}
        }
    }
    out
}

/// Superblock options of a v1 cgroup mount that are not controllers.
fn is_controller_option(o: &str) -> bool {
    !matches!(
        o,
        "rw" | "ro" | "noprefix" | "clone_children" | "xattr" | "cpuset_v2_mode" | "favordynmods"
    ) && !o.starts_with("release_agent=")
}

/// mountinfo escapes space, tab, newline and backslash as \ooo octal.
fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_owned();
    }
    String::from_utf8_lossy(&unescape_bytes(s)).into_owned()
}

/// A mountinfo field with its octal escapes (`\040` for a space, ...) undone; an escape
/// past `\377` is no byte and stays as it is.
pub fn unescape_bytes(field: &str) -> Vec<u8> {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let n = b[i + 1..i + 4]
                .iter()
                .fold(0u32, |n, c| n * 8 + u32::from(c - b'0'));
            if let Ok(byte) = u8::try_from(n) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
24 1 254:0 / / rw,relatime - ext4 /dev/vda rw
30 24 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
32 30 0:28 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:12 - cgroup cgroup rw,cpu,cpuacct
34 30 0:30 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
35 30 0:31 /sub /mnt/my\\040mem rw,relatime - cgroup cgroup rw,memory
36 30 0:32 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset,clone_children
garbage line without separator
";

    #[test]
    fn hybrid_host() {
        let h = parse_mountinfo(HYBRID);
        let u = h.unified.as_ref().unwrap();
        assert_eq!(u.mountpoint, PathBuf::from("/sys/fs/cgroup/unified"));
        assert_eq!(h.v1.len(), 4, "{:?}", h.v1);
        assert_eq!(h.v1[1].controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(
            h.for_controller("cpuacct").unwrap().mountpoint,
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert_eq!(
            h.for_controller("memory").unwrap().mountpoint,
            PathBuf::from("/sys/fs/cgroup/memory")
        );
        assert_eq!(
            h.for_controller("cpuset").unwrap().controllers,
            vec!["cpuset"]
        );
        assert_eq!(
            h.for_controller("name=systemd").unwrap().controllers.len(),
            1
        );
        // unified has no controllers on a hybrid host
        assert!(h.for_controller("io").is_none());
    }

    #[test]
    fn pure_v2() {
        let mut h = parse_mountinfo(
            "31 24 0:27 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate\n",
        );
        h.unified_controllers = vec!["memory".into(), "cpu".into()];
        assert!(h.v1.is_empty());
        let m = h.for_controller("memory").unwrap();
        assert!(m.unified);
        assert_eq!(m.root, "/");
        assert!(h.for_controller("blkio").is_none());
    }

    #[test]
    fn escapes_and_sub_roots() {
        assert_eq!(unescape("/mnt/my\\040mem"), "/mnt/my mem");
        assert_eq!(unescape("a\\0"), "a\\0");
        assert_eq!(unescape("\\999"), "\\999");
        assert_eq!(parse_mountinfo("").v1.len(), 0);
    }
}
