#!/usr/bin/env bash
# Debian unstable's current kernel for the test VM (tests/vm.rs), fetched as Debian
# packages with a private apt configuration: nothing from unstable is installed on this
# machine. Leaves <cache>/kernel/<release>/{vmlinuz,virtio_blk.ko}; fuse (with
# FUSE-over-io_uring and passthrough) and virtio-pci are built into that kernel, the disk
# driver is a module. Idempotent: a kernel already unpacked is kept.
set -euo pipefail

cache=${LXCFS_TEST_CACHE:-/var/cache/lxcfs-uring-test}/sid
if compgen -G "$cache/kernel/*/virtio_blk.ko" >/dev/null; then
    exit 0
fi
mkdir -p "$cache/etc" "$cache/lists/partial" "$cache/archives/partial" "$cache/kernel"
# The mirror this machine's own apt uses, with suite sid.
uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
uri=${uri:-http://deb.debian.org/debian}
cat >"$cache/etc/sid.sources" <<EOF
Types: deb
URIs: $uri
Suites: sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
apt=(-o Dir::Etc::sourcelist=/dev/null -o "Dir::Etc::sourceparts=$cache/etc"
    -o "Dir::State::Lists=$cache/lists" -o "Dir::Cache=$cache"
    -o "Dir::Cache::archives=$cache/archives" -o APT::Architecture=amd64
    -o APT::Sandbox::User=root)
apt-get "${apt[@]}" update -qq
# linux-image-amd64 -> linux-image-<release> -> linux-binary-<release> (the vmlinuz).
image=$(apt-cache "${apt[@]}" depends linux-image-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
release=${image#linux-image-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Newer packaging splits the image into linux-binary (vmlinuz) and linux-modules; older
# packaging has both in linux-image.
if ! (cd "$work" && apt-get "${apt[@]}" download -qq "linux-binary-$release" "linux-modules-$release"); then
    (cd "$work" && apt-get "${apt[@]}" download -qq "$image")
fi
dir="$cache/kernel/$release"
mkdir -p "$work/root" "$dir"
for deb in "$work"/linux-binary-*.deb "$work"/linux-image-*.deb; do
    [ -e "$deb" ] && dpkg-deb -x "$deb" "$work/root"
done
for deb in "$work"/linux-modules-*.deb; do
    [ -e "$deb" ] && dpkg-deb --fsys-tarfile "$deb" |
        tar -x -C "$work/root" --wildcards '*/kernel/drivers/block/virtio_blk.ko*'
done
vmlinuz=$(find "$work/root" \( -path "*/modules/$release/vmlinuz" -o -name "vmlinuz-$release" \) | head -n 1)
blk=$(find "$work/root" -name 'virtio_blk.ko*' | head -n 1)
if [ -z "$vmlinuz" ] || [ -z "$blk" ]; then
    echo "scripts/vm-kernel.sh: no vmlinuz or virtio_blk module in Linux $release's packages" >&2
    exit 1
fi
cp "$vmlinuz" "$dir/vmlinuz.part"
case $blk in
*.xz) xz -dc "$blk" >"$dir/virtio_blk.ko.part" ;;
*.ko) cp "$blk" "$dir/virtio_blk.ko.part" ;;
*)
    echo "scripts/vm-kernel.sh: $blk: a compression this script does not unpack" >&2
    exit 1
    ;;
esac
# Complete files only: a run cut short leaves nothing the VM test would take.
mv "$dir/vmlinuz.part" "$dir/vmlinuz"
mv "$dir/virtio_blk.ko.part" "$dir/virtio_blk.ko"
echo "scripts/vm-kernel.sh: Linux $release unpacked into $dir"
