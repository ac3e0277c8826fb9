#!/usr/bin/env bash
# Build the Debian package: target/debian/lxcfs-uring_<version>_<arch>.deb, whose path is
# the one line printed on stdout. Made with Debian's own dpkg-deb (and dpkg-shlibdeps for
# Depends, from dpkg-dev) from what scripts/install.sh installs; see README, "Install
# from the Debian package".
#   DEB_VERSION   the package's version (default: Cargo.toml's, revision -1)
#   DEB_OUT_DIR   where to put it (default target/debian)
#   DEB_NO_BUILD  1: package the release binary already built
set -euo pipefail
cd "$(dirname "$0")/.."
umask 022

for tool in dpkg-deb dpkg-shlibdeps; do
    command -v "$tool" >/dev/null || {
        echo "scripts/deb.sh: $tool is missing (apt-get install dpkg-dev)" >&2
        exit 1
    }
done
upstream=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
version=${DEB_VERSION:-$upstream-1}
arch=$(dpkg --print-architecture)
out_dir=${DEB_OUT_DIR:-target/debian}
deb="$out_dir/lxcfs-uring_${version}_$arch.deb"

[ -n "${DEB_NO_BUILD:-}" ] || cargo build --release --locked >&2
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root="$stage/root"

# The files: the same layout as a source install.
NO_BUILD=1 DESTDIR="$root" scripts/install.sh >&2
gzip -9n "$root/usr/share/man/man1/lxcfs-uring.1"
# The mountpoint, as Debian's lxcfs ships it (a directory both packages may own).
install -d "$root/var/lib/lxcfs"
# The OCI hook's hooks.d JSON, shipped inactive: in /usr/share/containers/oci/hooks.d it
# would change every Podman and CRI-O container on the host, so operators link it there.
install -D -m 0644 contrib/oci/lxcfs-uring.json "$root/usr/share/lxcfs-uring/oci/lxcfs-uring.json"
doc="$root/usr/share/doc/lxcfs-uring"
install -d "$doc"
gzip -9nc CHANGELOG.md >"$doc/changelog.gz"
{
    cat contrib/debian/copyright
    echo
    echo "Files: usr/bin/lxcfs-uring"
    echo "Copyright: The lxcfs-uring authors; the authors of the Rust crates below"
    echo "License: Apache-2.0 or Expat"
    echo "Comment: The binary statically links these Rust crates (version: license); each"
    echo " crate's license text ships with its source."
    cargo tree --locked -e normal,no-proc-macro --prefix none -f '{p}: {l}' |
        sed 's/ (\*)$//' | grep -v '^lxcfs-uring ' | sort -u | sed 's/^/ /'
} >"$doc/copyright"

# The control area: metadata, maintainer scripts with their shared part, checksums.
install -d "$root/DEBIAN"
for script in postinst prerm postrm; do
    sed -e '/^#LXCFS_URING_LIB#$/{r contrib/debian/maintscript-lib.sh' -e 'd}' \
        "contrib/debian/$script" >"$root/DEBIAN/$script"
    chmod 0755 "$root/DEBIAN/$script"
done
# dpkg-shlibdeps wants to run in a source tree: an empty debian/control is enough.
mkdir -p "$stage/src/debian"
: >"$stage/src/debian/control"
depends=$(cd "$stage/src" && dpkg-shlibdeps -O -e "$root/usr/bin/lxcfs-uring" 2>/dev/null |
    sed -n 's/^shlibs:Depends=//p')
{
    echo "Package: lxcfs-uring"
    echo "Version: $version"
    echo "Architecture: $arch"
    echo "Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)"
    echo "Depends: $depends"
    grep -v '^Package:' contrib/debian/control
} >"$root/DEBIAN/control"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
    xargs -0 md5sum) >"$root/DEBIAN/md5sums"

mkdir -p "$out_dir"
dpkg-deb --root-owner-group --build "$root" "$deb" >&2
echo "$deb"
