#!/usr/bin/env bash
# Builds Haven's container image without pulling anything: FROM scratch, holding an already built
# `haven` binary and the shared libraries `ldd` lists for it, with the runtime instructions of
# docker/Dockerfile's final stage (user, working folder, data volume, port, health check, entry
# point, default command) copied from it, so both images run the same way. For CI and machines
# without registry access; docker/Dockerfile stays the multi-stage build for everyone else.
#   docker/build-local-image.sh [BINARY] [TAG]   defaults: target/debug/haven, localhost/haven:local
# Runs with podman (or buildah) as root without a daemon: vfs storage (no overlay mounts needed)
# and chroot isolation (no RUN step needs it, but no user namespace is assumed). Extra options for
# every podman call: PODMAN_OPTS (default: --storage-driver vfs).
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-target/debug/haven}
tag=${2:-localhost/haven:local}
podman_opts=${PODMAN_OPTS:---storage-driver vfs}
[ -x "$binary" ] || { echo "build-local-image: no binary at $binary" >&2; exit 1; }

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
# The build stage's output, laid out as that stage leaves it in /out.
out=$context/out
install -d "$out/home/dynamodblocal/data"
# Without debug information: the image needs the code only.
objcopy --strip-debug "$binary" "$out/haven"
# The dynamic loader and every library the binary links, at the paths the binary looks for them,
# and a /tmp.
install -d -m 1777 "$context/system/tmp"
for library in $(ldd "$binary" | grep -o '/[^ ]*'); do
  install -D "$library" "$context/system$library"
done

# docker/Dockerfile's final stage on scratch: its base replaced by the system folder above, its
# copies from the build stage taken from the folder above.
{
  echo "FROM scratch"
  echo "COPY system/ /"
  awk '/^FROM /{stage++; next} stage==2' docker/Dockerfile | sed 's#^COPY --from=build \(.*\)/out/#COPY \1out/#'
} >"$context/Containerfile"
grep -q '^COPY .*out/haven' "$context/Containerfile" || {
  echo "build-local-image: docker/Dockerfile's final stage no longer copies /out/haven" >&2
  exit 1
}

# --format docker keeps HEALTHCHECK (the OCI format has no health checks).
# shellcheck disable=SC2086
podman $podman_opts build --quiet --format docker --isolation chroot \
  -f "$context/Containerfile" -t "$tag" "$context" >/dev/null
# shellcheck disable=SC2086
size=$(podman $podman_opts image inspect --format '{{.Size}}' "$tag")
echo "build-local-image: built $tag ($((size / 1024 / 1024)) MB) from $binary"
