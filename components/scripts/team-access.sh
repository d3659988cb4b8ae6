#!/usr/bin/env bash
# team-access.sh — host step 6 of 6: one account per team member, in the docker group.
#
# For each member: an account (created by this step), its SSH keys in ~/.ssh/authorized_keys, and
# membership of the docker group — which is what lets the member use the shared builder over
# ssh://<member>@<host>. The docker group is root-equivalent on the host: membership is access.
# /var/lib/buildx-host/team-members lists every account this step created. Such an account that is
# no longer in TEAM_MEMBERS loses access: its authorized_keys is removed, it leaves the docker
# group and is locked (password locked, expired, shell nologin); its home stays. Listed again
# later, it is unlocked. An existing account this step did not create is never touched: the step
# fails instead, before changing anything.
#
# Runs as root, script on stdin: sudo -n env NAME='value' ... bash -s
#
# Environment (default in brackets):
#   TEAM_MEMBERS   lines "<name> <ssh public key>" (type, base64, optional comment); a name on
#                  several lines gets every key; blank lines and lines starting with # are
#                  ignored; empty: no members [""]
#
# Output: progress on stderr; the last stdout line is
#   {"step":"team-access","changed":bool,"members":[…],"added":[…],"updated":[…],"removed":[…]}
# added: members who got access this run (account created, or unlocked after a removal);
# updated: members whose keys or docker group membership were put right; removed: accounts
# that lost access this run.
set -euo pipefail

# The functions all steps share: sent ahead of this script by steps.ts, or sourced from a checkout.
if ! declare -F log >/dev/null; then
  # shellcheck source=lib/common.sh
  source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
  # shellcheck source=lib/host-facts.sh
  source "$(dirname "${BASH_SOURCE[0]}")/lib/host-facts.sh"
fi

TEAM_MEMBERS="${TEAM_MEMBERS:-}"

readonly STEP=team-access
readonly STATE_FILE=/var/lib/buildx-host/team-members
readonly DOCKER_GROUP=docker
readonly MEMBER_SHELL=/bin/bash
readonly LOCKED_SHELL=/usr/sbin/nologin
readonly NAME_PATTERN="${HOST_FACTS_ACCOUNT_NAME_PATTERN}"
# One of the key types the program accepts (host-facts.sh), dots matched literally.
KEY_TYPES="$(IFS='|' && echo "${HOST_FACTS_SSH_KEY_TYPES[*]//./\\.}")"
readonly KEY_PATTERN="^(${KEY_TYPES}) [A-Za-z0-9+/]+={0,3}( [^[:cntrl:]]*)?$"

MEMBERS=()
MANAGED=()
ADDED=()
UPDATED=()
REMOVED=()
declare -A KEYS_OF=()

contains() {
  local wanted="$1" item
  shift
  for item in "$@"; do
    [[ "${item}" != "${wanted}" ]] || return 0
  done
  return 1
}

validate_key() {
  local name="$1" key="$2" tmp
  [[ "${key}" =~ ${KEY_PATTERN} ]] \
    || die "TEAM_MEMBERS: the key of '${name}' is not an OpenSSH public key line ('<type> <base64> [comment]', no options)"
  command -v ssh-keygen >/dev/null 2>&1 || return 0
  tmp="$(mktemp)"
  printf '%s\n' "${key}" >"${tmp}"
  if ! ssh-keygen -l -f "${tmp}" >/dev/null 2>&1; then
    rm -f "${tmp}"
    die "TEAM_MEMBERS: ssh-keygen rejects the key of '${name}'; paste the whole .pub line"
  fi
  rm -f "${tmp}"
}

# Fills MEMBERS (in order of first appearance) and KEYS_OF (newline-separated keys per member).
parse_members() {
  local line name key
  while IFS= read -r line || [[ -n "${line}" ]]; do
    line="${line%$'\r'}"
    [[ "${line}" =~ ^[[:space:]]*(#|$) ]] && continue
    read -r name key <<<"${line}"
    [[ "${name}" =~ ${NAME_PATTERN} ]] \
      || die "TEAM_MEMBERS: '${name}' is not a valid account name (lowercase letter or _, then up to 31 of a-z 0-9 _ -)"
    [[ -n "${key}" ]] || die "TEAM_MEMBERS: '${name}' has no SSH public key"
    validate_key "${name}" "${key}"
    if [[ -v "KEYS_OF[${name}]" ]]; then
      KEYS_OF["${name}"]+=$'\n'"${key}"
    else
      MEMBERS+=("${name}")
      KEYS_OF["${name}"]="${key}"
    fi
  done <<<"${TEAM_MEMBERS}"
}

read_state() {
  [[ -f "${STATE_FILE}" ]] || return 0
  mapfile -t MANAGED < <(grep -E "${NAME_PATTERN}" "${STATE_FILE}" || true)
}

write_state() {
  local tmp
  install -d -m 0755 "$(dirname "${STATE_FILE}")"
  tmp="$(mktemp "${STATE_FILE}.XXXXXX")"
  {
    echo "# Accounts created by buildx-host (team-access.sh), one per line. Do not edit."
    ((${#MANAGED[@]} == 0)) || printf '%s\n' "${MANAGED[@]}" | sort -u
  } >"${tmp}"
  chmod 0644 "${tmp}"
  if cmp -s "${tmp}" "${STATE_FILE}"; then
    rm -f "${tmp}"
  else
    mv -f "${tmp}" "${STATE_FILE}"
  fi
}

# Refuses, before any change, members whose name belongs to an account we did not create.
check_ownership() {
  local name foreign=()
  for name in "${MEMBERS[@]}"; do
    if getent passwd "${name}" >/dev/null && ! contains "${name}" "${MANAGED[@]}"; then
      foreign+=("${name}")
    fi
  done
  ((${#foreign[@]} == 0)) \
    || die "account(s) ${foreign[*]} already exist on this host and were not created by buildx-host; this step will not take over an existing account (give the member another name)"
  # Only granting needs the group; revoking everyone (the delete run) must work without it.
  ((${#MEMBERS[@]} == 0)) || getent group "${DOCKER_GROUP}" >/dev/null \
    || die "the ${DOCKER_GROUP} group does not exist; run the docker-engine step (docker-engine.sh) first"
}

home_of() { getent passwd "$1" | cut -d: -f6; }
shell_of() { getent passwd "$1" | cut -d: -f7; }
expiry_of() { getent shadow "$1" | cut -d: -f8; }
password_of() { getent shadow "$1" | cut -d: -f2; }

is_locked() { [[ "$(shell_of "$1")" == "${LOCKED_SHELL}" || "$(expiry_of "$1")" == 1 ]]; }

create_account() {
  local name="$1"
  useradd --create-home --shell "${MEMBER_SHELL}" --user-group "${name}"
  # Record it at once: a later failure must not leave an account we would then call foreign.
  MANAGED+=("${name}")
  write_state
  log "created account ${name}"
}

unlock_account() {
  local name="$1"
  usermod --expiredate '' --shell "${MEMBER_SHELL}" "${name}"
  # --lock put a "!" in front of the password field; take that one off again.
  [[ "$(password_of "${name}")" != '!'?* ]] || usermod --unlock "${name}" >/dev/null 2>&1 || true
  log "unlocked account ${name}"
}

render_authorized_keys() {
  echo "# Managed by buildx-host (team-access.sh); changes here are overwritten."
  printf '%s\n' "$1"
}

# Writes ~/.ssh/authorized_keys when it differs; sets KEYS_WRITTEN.
write_authorized_keys() {
  local name="$1" home ssh_dir file tmp group
  KEYS_WRITTEN=false
  home="$(home_of "${name}")"
  group="$(id -gn "${name}")"
  ssh_dir="${home}/.ssh"
  file="${ssh_dir}/authorized_keys"
  [[ ! -L "${ssh_dir}" && ! -L "${file}" ]] || die "${ssh_dir} or ${file} is a symbolic link; remove it so the keys can be written safely"
  if [[ ! -d "${ssh_dir}" ]]; then
    install -d -m 0700 -o "${name}" -g "${group}" "${ssh_dir}"
  fi
  tmp="$(mktemp "${ssh_dir}/.authorized_keys.XXXXXX")"
  render_authorized_keys "${KEYS_OF[${name}]}" >"${tmp}"
  if cmp -s "${tmp}" "${file}" && [[ "$(stat -c '%a %U' "${file}")" == "600 ${name}" \
    && "$(stat -c '%a %U' "${ssh_dir}")" == "700 ${name}" ]]; then
    rm -f "${tmp}"
    return 0
  fi
  chown "${name}:${group}" "${tmp}" "${ssh_dir}"
  chmod 0600 "${tmp}"
  chmod 0700 "${ssh_dir}"
  mv -f "${tmp}" "${file}"
  KEYS_WRITTEN=true
  log "wrote ${file}"
}

grant_member() {
  local name="$1" gained=false touched=false
  if ! getent passwd "${name}" >/dev/null; then
    create_account "${name}"
    gained=true
  elif is_locked "${name}"; then
    unlock_account "${name}"
    gained=true
  fi
  if ! in_group "${name}" "${DOCKER_GROUP}"; then
    usermod -aG "${DOCKER_GROUP}" "${name}"
    log "added ${name} to the ${DOCKER_GROUP} group"
    touched=true
  fi
  write_authorized_keys "${name}"
  [[ "${KEYS_WRITTEN}" == false ]] || touched=true
  if [[ "${gained}" == true ]]; then
    ADDED+=("${name}")
  elif [[ "${touched}" == true ]]; then
    UPDATED+=("${name}")
  fi
}

revoke_member() {
  local name="$1" home touched=false
  getent passwd "${name}" >/dev/null || return 0
  home="$(home_of "${name}")"
  if [[ -e "${home}/.ssh/authorized_keys" || -L "${home}/.ssh/authorized_keys" ]]; then
    rm -f "${home}/.ssh/authorized_keys"
    touched=true
  fi
  if in_group "${name}" "${DOCKER_GROUP}"; then
    gpasswd -d "${name}" "${DOCKER_GROUP}" >/dev/null
    touched=true
  fi
  if [[ "$(shell_of "${name}")" != "${LOCKED_SHELL}" || "$(expiry_of "${name}")" != 1 || "$(password_of "${name}")" != '!'* ]]; then
    usermod --lock --expiredate 1 --shell "${LOCKED_SHELL}" "${name}"
    touched=true
  fi
  if [[ "${touched}" == true ]]; then
    REMOVED+=("${name}")
    log "${name} lost access: keys removed, out of the ${DOCKER_GROUP} group, account locked (home kept)"
  fi
}

print_result() {
  local changed=false
  ((${#ADDED[@]} + ${#UPDATED[@]} + ${#REMOVED[@]} == 0)) || changed=true
  report "$(printf '{"step":"%s","changed":%s,"members":%s,"added":%s,"updated":%s,"removed":%s}' \
    "${STEP}" "${changed}" "$(json_array "${MEMBERS[@]}")" "$(json_array "${ADDED[@]}")" \
    "$(json_array "${UPDATED[@]}")" "$(json_array "${REMOVED[@]}")")"
}

main() {
  begin_step
  local name
  parse_members
  read_state
  check_ownership
  for name in "${MEMBERS[@]}"; do
    grant_member "${name}"
  done
  for name in "${MANAGED[@]}"; do
    if ! contains "${name}" "${MEMBERS[@]}"; then
      revoke_member "${name}"
    fi
  done
  write_state
  log "members: ${MEMBERS[*]:-none}"
  print_result
}

main "$@"
