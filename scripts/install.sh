#!/usr/bin/env bash
# Build and install lxcfs-uring with its systemd unit, LXC hooks and manual page.
# PREFIX (default /usr) and DESTDIR (default empty) work as usual for packaging;
# NO_BUILD=1 installs the release binary already built (scripts/deb.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${PREFIX:-/usr}
dest=${DESTDIR:-}
[ -n "${NO_BUILD:-}" ] || cargo build --release --locked
install -D -m 0755 target/release/lxcfs-uring "$dest$prefix/bin/lxcfs-uring"
install -D -m 0644 contrib/systemd/lxcfs-uring.service "$dest/lib/systemd/system/lxcfs-uring.service"
install -D -m 0755 contrib/lxc/lxc.mount.hook "$dest$prefix/share/lxcfs-uring/lxc.mount.hook"
install -D -m 0755 contrib/lxc/lxc.reboot.hook "$dest$prefix/share/lxcfs-uring/lxc.reboot.hook"
install -D -m 0644 contrib/lxc/00-lxcfs.conf "$dest$prefix/share/lxc/config/common.conf.d/00-lxcfs-uring.conf"
mkdir -p "$dest$prefix/share/man/man1"
target/release/lxcfs-uring man > "$dest$prefix/share/man/man1/lxcfs-uring.1"
if [ "$prefix" != /usr ]; then
    sed -i "s|/usr/bin/lxcfs-uring|$prefix/bin/lxcfs-uring|" "$dest/lib/systemd/system/lxcfs-uring.service"
    sed -i "s|/usr/share/lxcfs-uring|$prefix/share/lxcfs-uring|g" "$dest$prefix/share/lxc/config/common.conf.d/00-lxcfs-uring.conf"
fi
echo "installed into ${dest:-/}; start it with: systemctl daemon-reload && systemctl enable --now lxcfs-uring"
