#!/usr/bin/env bash
# What the current-kernel test VM (tests/vm.rs) takes from Debian unstable, fetched as
# Debian packages with a private apt configuration: nothing from unstable is installed on
# this machine. Leaves, under <cache>/sid:
# - kernel/<release>/{vmlinuz,virtio_blk.ko}: fuse (with FUSE-over-io_uring and
#   passthrough) and virtio-pci are built into that kernel, the disk driver is a module;
# - lxcfs/<version>/: lxcfs (the reference the VM compares against), its liblxcfs.so, and
#   the loader and libraries it runs with (ld-linux-x86-64.so.2, lib/), which this
#   machine's glibc is too old for.
# Idempotent: what is already unpacked is kept.
set -euo pipefail

cache=${LXCFS_TEST_CACHE:-/var/cache/lxcfs-uring-test}/sid
have_kernel() { compgen -G "$cache/kernel/*/virtio_blk.ko" >/dev/null; }
have_lxcfs() { compgen -G "$cache/lxcfs/*/lxcfs" >/dev/null; }
if have_kernel && have_lxcfs; then
    exit 0
fi
mkdir -p "$cache/etc" "$cache/lists/partial" "$cache/archives/partial" "$cache/kernel" "$cache/lxcfs"
# The mirror this machine's own apt uses, with suite sid.
uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
uri=${uri:-http://deb.debian.org/debian}
cat >"$cache/etc/sid.sources" <<SOURCES
Types: deb
URIs: $uri
Suites: sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
apt=(-o Dir::Etc::sourcelist=/dev/null -o "Dir::Etc::sourceparts=$cache/etc"
    -o "Dir::State::Lists=$cache/lists" -o "Dir::Cache=$cache"
    -o "Dir::Cache::archives=$cache/archives" -o APT::Architecture=amd64
    -o APT::Sandbox::User=root)
apt-get "${apt[@]}" update -qq
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

kernel() {
    # linux-image-amd64 -> linux-image-<release> -> linux-binary-<release> (the vmlinuz).
    local image release dir vmlinuz blk deb
    image=$(apt-cache "${apt[@]}" depends linux-image-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
    release=${image#linux-image-}
    mkdir -p "$work/kernel/root"
    # Newer packaging splits the image into linux-binary (vmlinuz) and linux-modules;
    # older packaging has both in linux-image.
    if ! (cd "$work/kernel" && apt-get "${apt[@]}" download -qq "linux-binary-$release" "linux-modules-$release"); then
        (cd "$work/kernel" && apt-get "${apt[@]}" download -qq "$image")
    fi
    dir="$cache/kernel/$release"
    mkdir -p "$dir"
    for deb in "$work"/kernel/linux-binary-*.deb "$work"/kernel/linux-image-*.deb; do
        [ -e "$deb" ] && dpkg-deb -x "$deb" "$work/kernel/root"
    done
    for deb in "$work"/kernel/linux-modules-*.deb; do
        [ -e "$deb" ] && dpkg-deb --fsys-tarfile "$deb" |
            tar -x -C "$work/kernel/root" --wildcards '*/kernel/drivers/block/virtio_blk.ko*'
    done
    vmlinuz=$(find "$work/kernel/root" \( -path "*/modules/$release/vmlinuz" -o -name "vmlinuz-$release" \) | head -n 1)
    blk=$(find "$work/kernel/root" -name 'virtio_blk.ko*' | head -n 1)
    if [ -z "$vmlinuz" ] || [ -z "$blk" ]; then
        echo "scripts/vm-sid.sh: no vmlinuz or virtio_blk module in Linux $release's packages" >&2
        return 1
    fi
    cp "$vmlinuz" "$dir/vmlinuz.part"
    case $blk in
    *.xz) xz -dc "$blk" >"$dir/virtio_blk.ko.part" ;;
    *.ko) cp "$blk" "$dir/virtio_blk.ko.part" ;;
    *)
        echo "scripts/vm-sid.sh: $blk: a compression this script does not unpack" >&2
        return 1
        ;;
    esac
    # Complete files only: a run cut short leaves nothing the VM test would take.
    mv "$dir/vmlinuz.part" "$dir/vmlinuz"
    mv "$dir/virtio_blk.ko.part" "$dir/virtio_blk.ko"
    echo "scripts/vm-sid.sh: Linux $release unpacked into $dir"
}

lxcfs() {
    local version root dir f
    version=$(apt-cache "${apt[@]}" show --no-all-versions lxcfs | awk '/^Version:/ {print $2; exit}')
    mkdir -p "$work/lxcfs/root"
    # lxcfs and what its loader needs (readelf -d: libfuse3.so.4, libgcc_s.so.1, libc.so.6).
    (cd "$work/lxcfs" && apt-get "${apt[@]}" download -qq lxcfs libfuse3-4 libc6 libgcc-s1)
    for deb in "$work"/lxcfs/*.deb; do
        dpkg-deb -x "$deb" "$work/lxcfs/root"
    done
    root="$work/lxcfs/root"
    dir="$cache/lxcfs/$version"
    # Filled under a hidden name, then renamed: a run cut short leaves nothing the VM
    # test would take.
    part="$cache/lxcfs/.part"
    rm -rf "$part"
    mkdir -p "$part/lib"
    cp "$root/usr/lib/x86_64-linux-gnu/lxcfs/liblxcfs.so" "$root/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" "$root/usr/bin/lxcfs" "$part/"
    for f in libc.so.6 libfuse3.so.4 libgcc_s.so.1; do
        cp -L "$root/usr/lib/x86_64-linux-gnu/$f" "$part/lib/"
    done
    rm -rf "$dir"
    mv "$part" "$dir"
    echo "scripts/vm-sid.sh: lxcfs $version unpacked into $dir"
}

status=0
have_kernel || kernel || status=1
have_lxcfs || lxcfs || status=1
exit $status
