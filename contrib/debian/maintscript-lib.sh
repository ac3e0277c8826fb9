# What the maintainer scripts share; scripts/deb.sh puts it in place of their
# "#LXCFS_URING_LIB#" line, as debhelper does with #DEBHELPER#.
#
# The paths of the unit's instance (contrib/systemd/lxcfs-uring.service). An instance
# started with other paths, such as a test's, is found by setting these in dpkg's
# environment: LXCFS_URING_RUNTIME_DIR=/run/other LXCFS_URING_MOUNTPOINT=/srv/v dpkg -i ...
RUNTIME_DIR=${LXCFS_URING_RUNTIME_DIR:-/run}
MOUNTPOINT=${LXCFS_URING_MOUNTPOINT:-/var/lib/lxcfs}
BIN=/usr/bin/lxcfs-uring
UNIT=lxcfs-uring.service

systemd_running() {
    [ -d /run/systemd/system ]
}

# Whether the instance in question is the unit's (systemd knows only that one).
unit_instance() {
    systemd_running && [ "$RUNTIME_DIR" = /run ] && [ "$MOUNTPOINT" = /var/lib/lxcfs ]
}

# The pid the pidfile names, when it runs our binary (the installed file, or the one
# dpkg has just replaced or removed). Debian's lxcfs uses the same pidfile name: its pid
# does not count. The pidfile is the daemon's own: it names the serving process even
# after a crash, when the keeper's successor took over and systemd's MAINPID is gone.
running_pid() {
    pid=$(cat "$RUNTIME_DIR/lxcfs.pid" 2>/dev/null) || return 1
    case "$pid" in '' | *[!0-9]*) return 1 ;; esac
    case "$(readlink "/proc/$pid/exe" 2>/dev/null)" in
    "$BIN" | "$BIN (deleted)") echo "$pid" ;;
    *) return 1 ;;
    esac
}

# Whether a container uses the views: a mount of our filesystem, in any mount namespace,
# other than the top one at the mountpoint (copies of that one are in every namespace
# made after it, a service's private one included). LXC's hook, docker -v and
# Kubernetes' hostPath all bind files or directories of it (mountinfo's root field is
# then /proc/meminfo, ...), or the whole tree elsewhere. Our mount is told from another
# lxcfs's (the same fstype fuse.lxcfs) by its device number.
in_use() {
    dev=
    while read -r _id _parent majmin _root mnt rest; do
        [ "$mnt" = "$MOUNTPOINT" ] || continue
        case "$rest" in *" - fuse.lxcfs "*) dev=$majmin ;; esac
    done </proc/self/mountinfo
    [ -n "$dev" ] || return 1
    # One process of each mount namespace; then every mount of that device but the top one.
    stat -L -c '%i %n' /proc/[0-9]*/ns/mnt 2>/dev/null | sort -u -k1,1 |
        while read -r _ns path; do echo "${path%/ns/mnt}/mountinfo"; done |
        xargs -r grep -h "^[0-9]* [0-9]* $dev " 2>/dev/null | cut -d' ' -f3-5 |
        grep -qvxF "$dev / $MOUNTPOINT"
}

# Wait up to 10 s for the pid to stop running our binary; false if it still does.
wait_gone() {
    i=0
    while readlink "/proc/$1/exe" >/dev/null 2>&1; do
        [ $i -lt 100 ] || return 1
        sleep 0.1
        i=$((i + 1))
    done
}
