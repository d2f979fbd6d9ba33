# Names and settings shared by images/build.sh and the smoke tests (images/test_smoke.py reads the same names).
export CONTAINERS_CONF="$PWD/images/containers.conf"
BASE=localhost/flops-fit-base:bookworm
TORCH=${TORCH:-torch==2.13.0}
# The trainer base's tag names its torch and a hash of its Containerfile: an edited one is built anew.
TRAINER_BASE=localhost/flops-fit-trainer-base:${TORCH#torch==}-$(sha256sum images/trainer-base.Containerfile | cut -c1-8)
OPERATOR_IMAGE=${OPERATOR_IMAGE:-localhost/flops-fit-operator:dev}
TRAINER_IMAGE=${TRAINER_IMAGE:-localhost/flops-fit-trainer:dev}
IMAGES_LOG=${IMAGES_LOG:-$PWD/images/.log}
mkdir -p "$IMAGES_LOG"
