#!/usr/bin/env bash
# Start a fresh lab host: a Debian container (13, or 12: HOST_IMAGE) with systemd as PID 1 that plays a newly
# provisioned server the program reaches over SSH.
#
# It is set up the way the program sets up an EC2 instance through cloud-init: an SSH host
# key generated here (outside the host) and installed before sshd first starts, so clients
# pin it in known_hosts before first contact; a login user with passwordless sudo and a
# fresh ed25519 key. sshd listens only on 127.0.0.1:$HOSTLAB_SSH_PORT (host networking,
# no Docker bridge). /etc/docker/daemon.json is pre-seeded with keys the inner engine needs
# here (no bridge, no iptables); the experimental step must keep them.
#
# Environment (defaults in brackets):
#   HOSTLAB_NAME        [buildx-host-lab]   container name; volumes are <name>-docker, <name>-containerd
#   HOSTLAB_SSH_PORT    [2222]              sshd port on 127.0.0.1
#   HOSTLAB_USER        [builder]           login user (passwordless sudo)
#   HOSTLAB_STATE_DIR   [/var/tmp/buildx-host-lab/<name>]  keys, known_hosts, ssh config, env file
#   HOST_IMAGE          [output of build-host-image.sh]
#   CACHE_DIR           [/var/cache/buildx-host]  apt archives are kept under it between runs
#   HOSTLAB_SSH_WAIT_SECONDS [120]
#   HOSTLAB_DOCKER_ROOT_SIZE [] a size (1536m): the host's /var/lib/docker, Docker's data root, is a
#                           tmpfs of that size instead of a volume on this machine's disk; it stands
#                           in for a small disk (disk-pressure.test.ts)
#   HOSTLAB_BLOCK_DEVICE [] a block device of this machine (a loop device) given to the host as the
#                           same node: it stands in for an attached EBS volume (cache-volume.test.ts)
#   HOST_VARIANT        []  cloud-init: boot the EC2 path for real instead (cloud-init.test.ts) on the
#                           image of the same variant: no lab host key and no lab first-boot user;
#                           Debian's cloud-init runs at first boot from a NoCloud seed
#                           (/var/lib/cloud/seed/nocloud) holding the user data the program renders
#                           with components/ec2-host.ts cloudInitUserData for a host key generated
#                           here, and meta-data whose public-keys give the image's default user
#                           (HOSTLAB_USER is that user, read from the image's cloud.cfg) the login
#                           key. The seed is kept in <state dir>/nocloud.
# Positional arguments NAME PORT override HOSTLAB_NAME and HOSTLAB_SSH_PORT.
# Writes <state dir>/host.env (shell syntax) and prints its path on stdout.
set -euo pipefail

INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "${INFRA_DIR}/../../.." && pwd)"
HOSTLAB_NAME="${1:-${HOSTLAB_NAME:-buildx-host-lab}}"
HOSTLAB_SSH_PORT="${2:-${HOSTLAB_SSH_PORT:-2222}}"
HOSTLAB_USER="${HOSTLAB_USER:-builder}"
HOSTLAB_STATE_DIR="${HOSTLAB_STATE_DIR:-/var/tmp/buildx-host-lab/${HOSTLAB_NAME}}"
CACHE_DIR="${CACHE_DIR:-/var/cache/buildx-host}"
HOSTLAB_SSH_WAIT_SECONDS="${HOSTLAB_SSH_WAIT_SECONDS:-120}"
HOSTLAB_DOCKER_ROOT_SIZE="${HOSTLAB_DOCKER_ROOT_SIZE:-}"
HOSTLAB_BLOCK_DEVICE="${HOSTLAB_BLOCK_DEVICE:-}"
HOST_VARIANT="${HOST_VARIANT:-}"

log() { echo "start-host: $*" >&2; }

# systemd as PID 1 with full powers, on cgroup v1, without --privileged: that fails on these VMs,
# whose bounding set lacks CAP_SYS_RESOURCE.
SYSTEMD_CONTAINER_FLAGS=(
  --cap-add ALL --cap-drop SYS_RESOURCE
  --security-opt seccomp=unconfined --security-opt apparmor=unconfined
  --security-opt systempaths=unconfined
  --device-cgroup-rule 'a *:* rwm'
  --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw
  --tmpfs /run --tmpfs /run/lock
  --stop-signal SIGRTMIN+3 --stop-timeout 60
)

remove_previous() {
  if docker container inspect "${HOSTLAB_NAME}" >/dev/null 2>&1; then
    log "removing previous container ${HOSTLAB_NAME}"
    docker rm -f "${HOSTLAB_NAME}" >/dev/null
  fi
  # A fresh machine: no engine state from an earlier run.
  docker volume rm -f "${HOSTLAB_NAME}-docker" "${HOSTLAB_NAME}-containerd" >/dev/null
}

make_keys() {
  rm -rf "${HOSTLAB_STATE_DIR}"
  mkdir -p "${HOSTLAB_STATE_DIR}"
  chmod 0700 "${HOSTLAB_STATE_DIR}"
  # The EC2 path's host key is the program's tls.PrivateKey (ED25519, OpenSSH format, no comment);
  # ssh-keygen makes the same kind of key.
  local host_key_comment="buildx-host-lab host ${HOSTLAB_NAME}"
  [[ "${HOST_VARIANT}" != cloud-init ]] || host_key_comment=""
  ssh-keygen -q -t ed25519 -N '' -C "${host_key_comment}" -f "${HOSTLAB_STATE_DIR}/ssh_host_ed25519_key"
  ssh-keygen -q -t ed25519 -N '' -C "${HOSTLAB_USER}@buildx-host-lab" -f "${HOSTLAB_STATE_DIR}/id_ed25519"
  printf '[127.0.0.1]:%s %s\n' "${HOSTLAB_SSH_PORT}" \
    "$(cut -d' ' -f1,2 "${HOSTLAB_STATE_DIR}/ssh_host_ed25519_key.pub")" >"${HOSTLAB_STATE_DIR}/known_hosts"
  # For tools that read ssh config (the Docker CLI's ssh:// transport): strict host key
  # checking against the pinned key only.
  cat >"${HOSTLAB_STATE_DIR}/ssh_config" <<CONFIG
Host 127.0.0.1
  Port ${HOSTLAB_SSH_PORT}
  IdentityFile ${HOSTLAB_STATE_DIR}/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile ${HOSTLAB_STATE_DIR}/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes
CONFIG
}

# Files the "cloud-init" of this lab puts on the machine before first boot.
stage_first_boot_files() {
  local stage="$1"
  install -d -m 0755 "${stage}/etc/ssh/sshd_config.d" "${stage}/etc/docker" "${stage}/etc/buildx-host-lab" \
    "${stage}/etc/systemd/system/multi-user.target.wants" "${stage}/etc/systemd/system/sysinit.target.wants" \
    "${stage}/usr/local/sbin"
  install -m 0600 "${HOSTLAB_STATE_DIR}/ssh_host_ed25519_key" "${stage}/etc/ssh/ssh_host_ed25519_key"
  install -m 0644 "${HOSTLAB_STATE_DIR}/ssh_host_ed25519_key.pub" "${stage}/etc/ssh/ssh_host_ed25519_key.pub"
  cat >"${stage}/etc/ssh/sshd_config.d/10-buildx-host-lab.conf" <<CONFIG
# Host lab: loopback only, on a port of its own; the pinned host key only.
Port ${HOSTLAB_SSH_PORT}
ListenAddress 127.0.0.1
HostKey /etc/ssh/ssh_host_ed25519_key
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
CONFIG
  chmod 0644 "${stage}/etc/ssh/sshd_config.d/10-buildx-host-lab.conf"
  install -m 0644 "${HOSTLAB_STATE_DIR}/id_ed25519.pub" "${stage}/etc/buildx-host-lab/authorized_keys"
  echo "${HOSTLAB_USER}" >"${stage}/etc/buildx-host-lab/login-user"
  chmod 0644 "${stage}/etc/buildx-host-lab/login-user"
  # The inner engine has no bridge (172.x is off limits) and no iptables.
  printf '%s\n' '{"bridge":"none","iptables":false,"ip6tables":false}' >"${stage}/etc/docker/daemon.json"
  chmod 0644 "${stage}/etc/docker/daemon.json"
  cat >"${stage}/usr/local/sbin/buildx-host-lab-first-boot" <<'SCRIPT'
#!/bin/bash
# Lab stand-in for cloud-init's user setup: the login user, its key, passwordless sudo.
set -euo pipefail
user="$(cat /etc/buildx-host-lab/login-user)"
if ! id "$user" >/dev/null 2>&1; then
  useradd --create-home --shell /bin/bash --user-group "$user"
  usermod -p '*' "$user"
fi
install -d -m 0700 -o "$user" -g "$user" "/home/$user/.ssh"
install -m 0600 -o "$user" -g "$user" /etc/buildx-host-lab/authorized_keys "/home/$user/.ssh/authorized_keys"
echo "$user ALL=(ALL) NOPASSWD:ALL" >"/etc/sudoers.d/90-$user"
chmod 0440 "/etc/sudoers.d/90-$user"
SCRIPT
  chmod 0755 "${stage}/usr/local/sbin/buildx-host-lab-first-boot"
  cat >"${stage}/etc/systemd/system/buildx-host-lab-first-boot.service" <<'UNIT'
[Unit]
Description=Host lab stand-in for cloud-init (login user and key)
Before=ssh.service
After=local-fs.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/buildx-host-lab-first-boot

[Install]
WantedBy=multi-user.target
UNIT
  chmod 0644 "${stage}/etc/systemd/system/buildx-host-lab-first-boot.service"
  ln -s ../buildx-host-lab-first-boot.service \
    "${stage}/etc/systemd/system/multi-user.target.wants/buildx-host-lab-first-boot.service"
  # A real machine mounts binfmt_misc at boot through proc-sys-fs-binfmt_misc.automount;
  # systemd does not support automounts inside a container, so the lab mounts it directly
  # (same mount, same ordering before systemd-binfmt.service).
  ln -s /usr/lib/systemd/system/proc-sys-fs-binfmt_misc.mount \
    "${stage}/etc/systemd/system/sysinit.target.wants/proc-sys-fs-binfmt_misc.mount"
  # The harness checks that every pre-seeded key survives the experimental step.
  install -m 0644 "${stage}/etc/docker/daemon.json" "${HOSTLAB_STATE_DIR}/daemon.json.seed"
}

# The cloud-init variant's login user: the default user of the image's cloud-init configuration
# (on EC2 the AMI's, "ubuntu"), which cloud-init creates with passwordless sudo.
cloud_init_default_user() {
  docker run --rm --network none --entrypoint python3 "$1" -c \
    'import yaml; print(yaml.safe_load(open("/etc/cloud/cloud.cfg"))["system_info"]["default_user"]["name"])'
}

# Prints the user data the program gives an EC2 instance for host key $1 (private) / $2 (public):
# components/ec2-host.ts cloudInitUserData itself (infra/render-user-data.ts).
render_user_data() {
  (cd "${ROOT}" && node tools/run-ts.js tests/hostlab/infra/render-user-data.ts "$1" "$2")
}

# The cloud-init variant's first-boot files. Lab staging only: sshd's loopback address and port,
# the inner engine's daemon.json and the binfmt_misc mount, as in the default mode, and a hold on
# cloud-init's last stage (below). Host keys, password authentication and the login user are left
# to cloud-init, which gets them from the NoCloud seed: it stands in for EC2's datasource (IMDS),
# which hands an instance its user data and its key pair's public key.
stage_cloud_init_files() {
  local stage="$1"
  install -d -m 0755 "${stage}/etc/ssh/sshd_config.d" "${stage}/etc/docker" \
    "${stage}/etc/systemd/system/sysinit.target.wants" "${stage}/var/lib/cloud/seed/nocloud" \
    "${stage}/var/lib/cloud/scripts/per-instance"
  cat >"${stage}/etc/ssh/sshd_config.d/10-buildx-host-lab.conf" <<CONFIG
# Host lab: loopback only, on a port of its own. Host keys and password authentication are cloud-init's.
Port ${HOSTLAB_SSH_PORT}
ListenAddress 127.0.0.1
CONFIG
  chmod 0644 "${stage}/etc/ssh/sshd_config.d/10-buildx-host-lab.conf"
  mkdir -p "${HOSTLAB_STATE_DIR}/nocloud"
  render_user_data "${HOSTLAB_STATE_DIR}/ssh_host_ed25519_key" "${HOSTLAB_STATE_DIR}/ssh_host_ed25519_key.pub" \
    >"${HOSTLAB_STATE_DIR}/nocloud/user-data"
  cat >"${HOSTLAB_STATE_DIR}/nocloud/meta-data" <<META
instance-id: ${HOSTLAB_NAME}-$(date +%s)
public-keys:
  - $(cut -d' ' -f1,2 "${HOSTLAB_STATE_DIR}/id_ed25519.pub")
META
  # The user data carries the host's private key: root only, like EC2 user data behind IMDS.
  install -m 0600 "${HOSTLAB_STATE_DIR}/nocloud/user-data" "${stage}/var/lib/cloud/seed/nocloud/user-data"
  install -m 0644 "${HOSTLAB_STATE_DIR}/nocloud/meta-data" "${stage}/var/lib/cloud/seed/nocloud/meta-data"
  printf '%s\n' '{"bridge":"none","iptables":false,"ip6tables":false}' >"${stage}/etc/docker/daemon.json"
  chmod 0644 "${stage}/etc/docker/daemon.json"
  ln -s /usr/lib/systemd/system/proc-sys-fs-binfmt_misc.mount \
    "${stage}/etc/systemd/system/sysinit.target.wants/proc-sys-fs-binfmt_misc.mount"
  install -m 0644 "${stage}/etc/docker/daemon.json" "${HOSTLAB_STATE_DIR}/daemon.json.seed"
  # cloud-init is done within a second here (no network to configure, nothing to install), long
  # before a client connects; on EC2 its last stage still runs when sshd already answers. This
  # per-instance script (run in cloud-init's final stage) holds it until the test creates the
  # release file, so wait-for-host's `cloud-init status --wait` demonstrably waits; at most 300 s.
  cat >"${stage}/var/lib/cloud/scripts/per-instance/buildx-host-lab-hold" <<'SCRIPT'
#!/bin/sh
# Host lab: hold cloud-init's final stage until /run/buildx-host-lab-release-cloud-init exists (300 s at most).
i=0
while [ ! -e /run/buildx-host-lab-release-cloud-init ] && [ "$i" -lt 300 ]; do
  sleep 1
  i=$((i + 1))
done
echo "buildx-host-lab: cloud-init's final stage held for ${i}s"
SCRIPT
  chmod 0755 "${stage}/var/lib/cloud/scripts/per-instance/buildx-host-lab-hold"
}

create_container() {
  local image="$1"
  # One package cache per release (the image tag starts with it): hosts of one release share it.
  local tag="${image##*:}"
  local archives="${CACHE_DIR}/apt-archives-${tag%%-*}"
  mkdir -p "${archives}/partial"
  if [[ -n "${HOSTLAB_DOCKER_ROOT_SIZE}" ]]; then
    docker volume create --driver local --opt type=tmpfs --opt device=tmpfs \
      --opt "o=size=${HOSTLAB_DOCKER_ROOT_SIZE}" "${HOSTLAB_NAME}-docker" >/dev/null
    log "Docker's data root on ${HOSTLAB_NAME}: a tmpfs of ${HOSTLAB_DOCKER_ROOT_SIZE}"
  fi
  local devices=()
  [[ -z "${HOSTLAB_BLOCK_DEVICE}" ]] || devices=(--device "${HOSTLAB_BLOCK_DEVICE}:${HOSTLAB_BLOCK_DEVICE}")
  docker create --name "${HOSTLAB_NAME}" \
    --network host \
    "${SYSTEMD_CONTAINER_FLAGS[@]}" "${devices[@]}" \
    -v "${HOSTLAB_NAME}-docker:/var/lib/docker" \
    -v "${HOSTLAB_NAME}-containerd:/var/lib/containerd" \
    -v "${archives}:/var/cache/apt/archives" \
    --label buildx-host-lab=host \
    "${image}" /sbin/init >/dev/null
}

copy_first_boot_files() {
  local stage
  stage="$(mktemp -d)"
  if [[ "${HOST_VARIANT}" == cloud-init ]]; then
    (umask 022 && stage_cloud_init_files "${stage}")
    tar -C "${stage}" --owner=0 --group=0 -c etc var | docker cp - "${HOSTLAB_NAME}:/"
  else
    (umask 022 && stage_first_boot_files "${stage}")
    # A tar stream keeps modes and root ownership; only named top-level dirs so / is untouched.
    tar -C "${stage}" --owner=0 --group=0 -c etc usr | docker cp - "${HOSTLAB_NAME}:/"
  fi
  rm -rf "${stage}"
}

wait_for_ssh() {
  local deadline=$((SECONDS + HOSTLAB_SSH_WAIT_SECONDS))
  until ssh -F "${HOSTLAB_STATE_DIR}/ssh_config" -o ConnectTimeout=5 "${HOSTLAB_USER}@127.0.0.1" true 2>/dev/null; do
    if ! docker container inspect -f '{{.State.Running}}' "${HOSTLAB_NAME}" 2>/dev/null | grep -qx true; then
      log "container ${HOSTLAB_NAME} stopped; its log:"
      docker logs --tail 30 "${HOSTLAB_NAME}" >&2 || true
      return 1
    fi
    if ((SECONDS >= deadline)); then
      log "sshd on 127.0.0.1:${HOSTLAB_SSH_PORT} did not accept the lab key within ${HOSTLAB_SSH_WAIT_SECONDS}s"
      ssh -F "${HOSTLAB_STATE_DIR}/ssh_config" -o ConnectTimeout=5 "${HOSTLAB_USER}@127.0.0.1" true || true
      return 1
    fi
    sleep 1
  done
}

write_env_file() {
  cat >"${HOSTLAB_STATE_DIR}/host.env" <<ENV
HOSTLAB_CONTAINER=${HOSTLAB_NAME}
HOSTLAB_HOST=127.0.0.1
HOSTLAB_PORT=${HOSTLAB_SSH_PORT}
HOSTLAB_USER=${HOSTLAB_USER}
HOSTLAB_KEY=${HOSTLAB_STATE_DIR}/id_ed25519
HOSTLAB_HOST_PUBLIC_KEY_FILE=${HOSTLAB_STATE_DIR}/ssh_host_ed25519_key.pub
HOSTLAB_KNOWN_HOSTS=${HOSTLAB_STATE_DIR}/known_hosts
HOSTLAB_STATE_DIR=${HOSTLAB_STATE_DIR}
HOSTLAB_DAEMON_JSON_SEED=${HOSTLAB_STATE_DIR}/daemon.json.seed
ENV
}

main() {
  local image="${HOST_IMAGE:-}"
  [[ -n "${image}" ]] || image="$("${INFRA_DIR}/build-host-image.sh")"
  case "${HOST_VARIANT}" in
    "") ;;
    cloud-init)
      HOSTLAB_USER="$(cloud_init_default_user "${image}")"
      log "cloud-init variant: login user ${HOSTLAB_USER} (the image's cloud-init default user)"
      ;;
    *)
      log "unknown HOST_VARIANT '${HOST_VARIANT}' (known: cloud-init)"
      return 1
      ;;
  esac
  if ss -Hltn "sport = :${HOSTLAB_SSH_PORT}" 2>/dev/null | grep -q . &&
    ! docker container inspect "${HOSTLAB_NAME}" >/dev/null 2>&1; then
    log "port ${HOSTLAB_SSH_PORT} is in use on this machine; pick another HOSTLAB_SSH_PORT"
    return 1
  fi
  remove_previous
  make_keys
  create_container "${image}"
  copy_first_boot_files
  local start=${SECONDS}
  docker start "${HOSTLAB_NAME}" >/dev/null
  wait_for_ssh
  write_env_file
  log "host ${HOSTLAB_NAME} up in $((SECONDS - start))s: ssh -F ${HOSTLAB_STATE_DIR}/ssh_config ${HOSTLAB_USER}@127.0.0.1"
  echo "${HOSTLAB_STATE_DIR}/host.env"
}

main "$@"
