//! Which cgroup a process is in: parsing /proc/<pid>/cgroup.

/// The cgroup path (as the host sees it) of `controller` in the text of /proc/<pid>/cgroup.
/// `controller` None asks for the unified (v2) line `0::/path`. A trailing `/init.scope`
/// (systemd's place for a container's init) is dropped, as lxcfs does.
pub fn cgroup_path<'a>(text: &'a str, controller: Option<&str>) -> Option<&'a str> {
    find(text, |id, list| match controller {
        None => id == "0" && list.is_empty(),
        Some(c) => !list.is_empty() && list.split(',').any(|x| x == c),
    })
}

/// The cgroup path in the hierarchy with id `hid` (the line's first field), as
/// `cgroup_path` gives it.
pub fn path_by_hid(text: &str, hid: u32) -> Option<&str> {
    find(text, |id, _| id.parse() == Ok(hid))
}

/// The path of the first line whose id and controller list `hit` accepts.
fn find(text: &str, hit: impl Fn(&str, &str) -> bool) -> Option<&str> {
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(id), Some(list), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if hit(id, list) && path.starts_with('/') {
            let p = path.strip_suffix("/init.scope").unwrap_or(path);
            return Some(if p.is_empty() { "/" } else { p });
        }
    }
    None
}

/// The path of `cg` relative to a hierarchy mounted with `root` (mountinfo's root field):
/// None when the cgroup lies outside what the mount shows.
pub fn relative_to_root<'a>(cg: &'a str, root: &str) -> Option<&'a str> {
    if root == "/" {
        return Some(cg.trim_start_matches('/'));
    }
    let rest = cg.strip_prefix(root)?;
    if rest.is_empty() || rest.starts_with('/') {
        Some(rest.trim_start_matches('/'))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/abc\n\
        2:cpu,cpuacct:/lxc/c1/init.scope\n0::/user.slice\n";

    #[test]
    fn v1_and_v2_lines() {
        assert_eq!(
            cgroup_path(HYBRID, Some("memory")),
            Some("/process_api/abc")
        );
        assert_eq!(cgroup_path(HYBRID, Some("cpuacct")), Some("/lxc/c1"));
        assert_eq!(cgroup_path(HYBRID, Some("cpu")), Some("/lxc/c1"));
        assert_eq!(cgroup_path(HYBRID, Some("name=systemd")), Some("/"));
        assert_eq!(cgroup_path(HYBRID, None), Some("/user.slice"));
        assert_eq!(cgroup_path(HYBRID, Some("blkio")), None);
        assert_eq!(cgroup_path("0::/init.scope\n", None), Some("/"));
        assert_eq!(path_by_hid(HYBRID, 2), Some("/lxc/c1"));
        assert_eq!(path_by_hid(HYBRID, 0), Some("/user.slice"));
        assert_eq!(path_by_hid(HYBRID, 7), None);
    }

    #[test]
    fn hostile_text() {
        for t in ["", "\n\n", "::::", "0::relative", "x", "4:memory", "0::"] {
            assert_eq!(cgroup_path(t, Some("memory")), None, "{t:?}");
            assert_eq!(cgroup_path(t, None), None, "{t:?}");
        }
        // A path holding ':' stays whole.
        assert_eq!(cgroup_path("0::/a:b\n", None), Some("/a:b"));
    }

    #[test]
    fn relative_paths() {
        assert_eq!(relative_to_root("/a/b", "/"), Some("a/b"));
        assert_eq!(relative_to_root("/", "/"), Some(""));
        assert_eq!(relative_to_root("/a/b", "/a"), Some("b"));
        assert_eq!(relative_to_root("/a", "/a"), Some(""));
        assert_eq!(relative_to_root("/ab", "/a"), None);
        assert_eq!(relative_to_root("/x", "/a"), None);
    }
}
