#!/usr/bin/env bash
# Build the local stand-in for `python:3.12-slim` that the container tests build the Dockerfile on.
#
# No container registry can be reached from CI, so the base is made here: Debian bookworm
# (debootstrap --variant=minbase from the mirror apt already uses), imported as an image, plus
# Debian's python3 and python3-venv, laid out like the official image (`python` and `python3`
# on PATH; CMD python3). Images already in local storage are reused, so only the first run on a
# machine pays (~85 s). Needs root, podman, buildah and debootstrap.
#
# Usage: tests/container/build-base.sh      prints the image name as its last line of stdout
# Env:   DB_INIT_TEST_BASE   use this image as it is (e.g. the real python:3.12-slim), build nothing
set -euo pipefail

if [[ -n "${DB_INIT_TEST_BASE:-}" ]]; then
    echo "$DB_INIT_TEST_BASE"
    exit 0
fi

# Bump the suffix when the recipe below changes, so that machines rebuild.
BASE=localhost/db-init-test-base:bookworm-python3-v1
DEBIAN=localhost/debian:bookworm-minbase

if podman image exists "$BASE"; then
    echo "$BASE"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! podman image exists "$DEBIAN"; then
    mirror=http://deb.debian.org/debian
    if [[ -r /etc/apt/sources.list.d/debian.sources ]]; then
        mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    fi
    echo "== debootstrap bookworm minbase from $mirror" >&2
    debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
        || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
    rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/cache/apt/*.bin \
           "$work"/rootfs/var/lib/apt/lists/* "$work/rootfs/etc/hostname" "$work/rootfs/etc/resolv.conf"
    if [[ -r /etc/apt/sources.list.d/debian.sources ]]; then  # same mirror, with updates and security
        rm -f "$work/rootfs/etc/apt/sources.list"
        cp /etc/apt/sources.list.d/debian.sources "$work/rootfs/etc/apt/sources.list.d/"
    fi
    tar --numeric-owner -C "$work/rootfs" -c . | podman import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' --change 'CMD ["/bin/bash"]' - "$DEBIAN" >&2
    rm -rf "$work/rootfs"
fi

echo "== building $BASE" >&2
cat >"$work/Containerfile" <<CONTAINERFILE
FROM $DEBIAN
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
      ca-certificates python3 python3-venv \\
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \\
 && ln -s /usr/bin/python3 /usr/local/bin/python3 \\
 && ln -s /usr/bin/python3 /usr/local/bin/python
CMD ["python3"]
CONTAINERFILE
buildah build --isolation chroot --network host --quiet -t "$BASE" "$work" >&2
echo "$BASE"
