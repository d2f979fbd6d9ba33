#!/usr/bin/env bash
# `make images`: both images built from the project's Dockerfiles, unchanged, with podman on local bases, for a
# machine with no Docker daemon and no registry (Debian's packages and PyPI are enough):
#   localhost/flops-fit-base:bookworm       Debian bookworm (debootstrap --variant=minbase) + python3 and pip;
#                                           stands in for python:3.11-slim (the operator's FROM)
#   localhost/flops-fit-trainer-base:torch  that + torch from a wheel on disk; stands in for pytorch/pytorch
#   localhost/flops-fit-operator:dev        Dockerfile.operator  (podman build --from the first)
#   localhost/flops-fit-trainer:dev         Dockerfile.trainer   (podman build --from the second)
# The bases are made once and reused while podman holds them (FRESH=1 remakes them). Needs root, or the
# packages podman, runc and debootstrap already installed. With a registry, build as is instead:
#   docker build -f Dockerfile.trainer -t flops-fit-trainer .   (and the same for the operator)
set -euo pipefail
cd "$(dirname "$0")/.."
source images/env.sh

missing=()
for tool in podman runc debootstrap; do command -v "$tool" > /dev/null || missing+=("$tool"); done
if ((${#missing[@]})); then
    if [[ $(id -u) != 0 ]]; then
        echo "images/build.sh: ${missing[*]} missing; install them (apt-get install podman runc debootstrap) or run as root" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman runc debootstrap > /dev/null
fi

if [[ ${FRESH:-0} == 1 ]]; then podman rmi -f "$TRAINER_BASE" "$BASE" > /dev/null 2>&1 || true; fi

if ! podman image exists "$BASE"; then
    root=$(mktemp -d)
    trap 'rm -rf "$root"' EXIT
    echo "images: debootstrap bookworm (minbase + python3, pip) -> $BASE"
    debootstrap --variant=minbase --include=python3,python3-pip,python-is-python3,ca-certificates \
        bookworm "$root" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" > "$IMAGES_LOG/debootstrap.log" 2>&1 \
        || { tail -30 "$IMAGES_LOG/debootstrap.log" >&2; exit 1; }
    # This machine's own certificate authorities (a TLS-inspecting egress proxy's among them), so pip and apt
    # inside the builds trust what the host trusts; update-ca-certificates keeps them when apt reruns it.
    if compgen -G "/usr/local/share/ca-certificates/*.crt" > /dev/null; then
        cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
        chroot "$root" update-ca-certificates > /dev/null
    fi
    # Debian's python3 refuses pip installs outside a venv (PEP 668); the official python images carry no such
    # marker, and the Dockerfiles pip install into the system interpreter.
    rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -c . | podman import --change 'CMD ["/bin/bash"]' - "$BASE" > /dev/null
    rm -rf "$root"
    trap - EXIT
fi

if ! podman image exists "$TRAINER_BASE"; then
    # The CPU wheel the tests use, from the folder pip already looks in; without one, PyPI's torch (a CUDA build).
    wheels=${TORCH_WHEELS:-/opt/wheels}
    [[ -d $wheels ]] || wheels=$(mktemp -d)
    echo "images: $TORCH (wheels from $wheels) -> $TRAINER_BASE"
    podman build --from "$BASE" -v "$wheels:/wheels:ro" --build-arg TORCH="$TORCH" \
        -f images/trainer-base.Containerfile -t "$TRAINER_BASE" . > "$IMAGES_LOG/trainer-base.log" 2>&1 \
        || { tail -30 "$IMAGES_LOG/trainer-base.log" >&2; exit 1; }
fi

echo "images: Dockerfile.operator -> $OPERATOR_IMAGE"
podman build --from "$BASE" -f Dockerfile.operator -t "$OPERATOR_IMAGE" . > "$IMAGES_LOG/operator.log" 2>&1 \
    || { tail -30 "$IMAGES_LOG/operator.log" >&2; exit 1; }
echo "images: Dockerfile.trainer -> $TRAINER_IMAGE"
podman build --from "$TRAINER_BASE" -f Dockerfile.trainer -t "$TRAINER_IMAGE" . > "$IMAGES_LOG/trainer.log" 2>&1 \
    || { tail -30 "$IMAGES_LOG/trainer.log" >&2; exit 1; }
podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep flops-fit
