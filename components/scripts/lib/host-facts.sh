# shellcheck shell=bash disable=SC2034 # the steps read these
# Generated from components/host-facts.ts (UPDATE_HOST_FACTS=1 npm test); do not edit.
# steps.ts sends it after lib/common.sh, ahead of every step's script.
readonly HOST_FACTS_SUPPORTED_RELEASES=('ubuntu 22.04 jammy' 'ubuntu 24.04 noble' 'debian 12 bookworm' 'debian 13 trixie')
readonly HOST_FACTS_SSH_KEY_TYPES=(ssh-ed25519 ssh-rsa ecdsa-sha2-nistp256 ecdsa-sha2-nistp384 ecdsa-sha2-nistp521 sk-ssh-ed25519@openssh.com sk-ecdsa-sha2-nistp256@openssh.com)
readonly HOST_FACTS_MEMBERS_GROUP='buildx-members'
readonly HOST_FACTS_EBS_DEVICE_LINK_PREFIX='/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_'
readonly HOST_FACTS_ACCOUNT_NAME_PATTERN='^[a-z_][a-z0-9_-]{0,31}$'
declare -rA HOST_FACTS_EMULATOR_OF=([linux/amd64]=x86_64 [linux/arm64]=aarch64 [linux/arm/v7]=arm [linux/arm/v6]=arm [linux/ppc64le]=ppc64le [linux/s390x]=s390x [linux/riscv64]=riscv64 [linux/386]=i386 [linux/mips64le]=mips64el)
readonly HOST_FACTS_DEFAULT_PLATFORMS='linux/amd64 linux/arm64 linux/arm/v7 linux/ppc64le linux/s390x linux/riscv64'
readonly HOST_FACTS_BUILDER_NAME_PATTERN='^[a-z][a-z0-9_-]{0,62}$'
readonly HOST_FACTS_DISK_SIZE_PATTERN='^[0-9]+(\.[0-9]+)?(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$|^[0-9]{1,2}%$'
readonly HOST_FACTS_BUILDKIT_REPOSITORY='moby/buildkit'
readonly HOST_FACTS_BUILDKIT_VERSION='v0.34.2'
readonly HOST_FACTS_IDLE_CHECK_SECONDS=15
declare -rA HOST_FACTS_DEFAULT=([DOCKER_APT_REPO]='https://download.docker.com/linux' [DOCKER_APT_KEY_FINGERPRINT]='9DC858229FC7DD38854AE2D88D81803C0EBFCD88' [BUILDER_NAME]='buildx-host' [BUILDKIT_IMAGE]='moby/buildkit:v0.34.2' [BUILDKIT_GC_RESERVED_SPACE]='10%' [BUILDKIT_GC_MAX_USED_SPACE]='70%' [BUILDKIT_GC_MIN_FREE_SPACE]='20%' [HOST_READY_TIMEOUT_MINUTES]='15')
