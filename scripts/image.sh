#!/usr/bin/env bash
# Build the DaemonSet's container image (contrib/image/Containerfile) with Debian's
# buildah, as an OCI archive: target/image/lxcfs-uring_<version>.oci.tar, whose path is
# the one line printed on stdout. Push it with
#   skopeo copy oci-archive:target/image/lxcfs-uring_<version>.oci.tar docker://REGISTRY/lxcfs-uring:<version>
# (or load it: `podman load -i`, `ctr images import`). See README, "Kubernetes".
#   IMAGE_TAG       the image's name in the archive (default lxcfs-uring:<version>)
#   IMAGE_OUT_DIR   where to put it (default target/image)
#   IMAGE_NO_BUILD  1: use the static release binary already built
set -euo pipefail
cd "$(dirname "$0")/.."
umask 022

command -v buildah >/dev/null || {
    echo "scripts/image.sh: buildah is missing (apt-get install buildah)" >&2
    exit 1
}
# The pod's command is a shell script: busybox, and only a static one works FROM scratch.
if [ ! -x /bin/busybox ] || readelf -l /bin/busybox | grep -q INTERP; then
    echo "scripts/image.sh: a static /bin/busybox is missing (apt-get install busybox-static)" >&2
    exit 1
fi
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
tag=${IMAGE_TAG:-lxcfs-uring:$version}
out_dir=${IMAGE_OUT_DIR:-target/image}
archive="$out_dir/lxcfs-uring_$version.oci.tar"

# Statically linked against glibc (crt-static), so the image needs no libraries; see
# BENCHMARKS.md for the request path measured both ways. --target keeps the flag away from
# build scripts and proc macros, which must stay dynamic.
host=$(rustc -vV | sed -n 's/^host: //p')
bin="target/$host/release/lxcfs-uring"
[ -n "${IMAGE_NO_BUILD:-}" ] ||
    RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --target "$host" >&2
if readelf -l "$bin" | grep -q INTERP; then
    echo "scripts/image.sh: $bin is dynamically linked" >&2
    exit 1
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root="$stage/context/rootfs"
install -D -m 0755 "$bin" "$root/usr/bin/lxcfs-uring"
install -D -m 0755 /bin/busybox "$root/bin/busybox"
# What the pod's command and readiness probe run.
for applet in sh cat grep mkdir sleep timeout umount; do
    ln -s busybox "$root/bin/$applet"
done
install -D -m 0644 -t "$root/usr/share/doc/lxcfs-uring" LICENSE-APACHE LICENSE-MIT
install -D -m 0644 /usr/share/doc/busybox-static/copyright "$root/usr/share/doc/busybox/copyright"
# glibc is linked into the daemon (LGPL-2.1: the daemon's sources allow relinking).
install -D -m 0644 /usr/share/doc/libc6/copyright "$root/usr/share/doc/glibc/copyright"

# buildah's own storage in the stage, so the build leaves no image or layer in
# /var/lib/containers (only the small blob-info cache that pushes keep in its cache/);
# the commit's timestamp makes the image reproducible (the same digest from the same sources).
b=(buildah --root "$stage/storage" --runroot "$stage/run" --storage-driver vfs)
epoch=$(git log -1 --format=%ct 2>/dev/null || echo 0)
"${b[@]}" bud --quiet --timestamp "$epoch" -f contrib/image/Containerfile \
    --label "org.opencontainers.image.version=$version" -t "$tag" "$stage/context" >&2
mkdir -p "$out_dir"
rm -f "$archive"
"${b[@]}" push --quiet "$tag" "oci-archive:$archive:$tag" >&2
echo "$archive"
