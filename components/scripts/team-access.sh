#!/usr/bin/env bash
# team-access.sh — host step 7 of 7: the member door. Each team member reaches the shared
# builder's BuildKit over SSH, and nothing else.
#
# Each member gets an account of this step's own in the group buildx-members (never docker) and a
# root-owned key file, /etc/ssh/buildx-host/members/<name>, whose lines carry `restrict` and a
# forced command. An sshd drop-in for the group reads only those files and forces, whatever the
# client asks, the command that joins the session to `buildctl dial-stdio` in the builder's
# container (through one sudoers rule): what buildx's remote driver runs at ssh://<member>@<host>.
# A drop-in that fails `sshd -t` is rolled back and fails the step. A member no longer listed
# loses access: key file gone, out of the group, account locked, processes ended; the home stays.
# An account this step did not create is never touched (the step fails first). With no members,
# the door itself is removed. /var/lib/buildx-host/team-members lists the accounts it created.
#
# Runs as root, script on stdin: sudo -n env NAME='value' ... bash -s
#
# Environment (default in brackets; [host facts]: HOST_FACTS_DEFAULT in lib/host-facts.sh):
#   TEAM_MEMBERS   lines "<name> [from=<cidr>[,<cidr>…]] <ssh public key>"; from= limits that key
#                  to those source addresses; a name on several lines gets every key; blank lines
#                  and # comments are ignored [""]
#   BUILDER_NAME   the shared builder whose BuildKit members reach [host facts]
#
# Output: progress on stderr; the last stdout line is
#   its JSON report, whose keys components/step-reports.ts declares.
set -euo pipefail

# The functions all steps share: sent ahead of this script by steps.ts, or sourced from a checkout.
if ! declare -F log >/dev/null; then
  # shellcheck source=lib/common.sh
  source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
  # shellcheck source=lib/host-facts.sh
  source "$(dirname "${BASH_SOURCE[0]}")/lib/host-facts.sh"
fi

TEAM_MEMBERS="${TEAM_MEMBERS:-}"
BUILDER_NAME="${BUILDER_NAME:-${HOST_FACTS_DEFAULT[BUILDER_NAME]}}"

readonly STEP=team-access
readonly STATE_FILE=/var/lib/buildx-host/team-members
readonly MEMBERS_GROUP="${HOST_FACTS_MEMBERS_GROUP}"
readonly DOCKER_GROUP=docker
# The forced command runs through the account's shell: dash reads no startup file a member could plant.
readonly MEMBER_SHELL=/bin/sh
readonly LOCKED_SHELL=/usr/sbin/nologin
readonly KEYS_DIR=/etc/ssh/buildx-host/members
readonly SSHD_DROP_IN=/etc/ssh/sshd_config.d/60-buildx-host-members.conf
readonly SUDOERS_FILE=/etc/sudoers.d/buildx-host-members
readonly DIAL_HELPER=/usr/local/libexec/buildx-host/buildkit-dial
readonly FORCED_COMMAND="/usr/bin/sudo -n ${DIAL_HELPER}"
readonly NAME_PATTERN="${HOST_FACTS_ACCOUNT_NAME_PATTERN}"
# One of the key types the program accepts (host-facts.sh), dots matched literally.
KEY_TYPES="$(IFS='|' && echo "${HOST_FACTS_SSH_KEY_TYPES[*]//./\\.}")"
readonly KEY_PATTERN="^(${KEY_TYPES}) [A-Za-z0-9+/]+={0,3}( [^[:cntrl:]]*)?$"
# Addresses and networks, IPv4 or IPv6, comma-separated: what sshd's from= takes, without wildcards.
readonly FROM_PATTERN='^[0-9A-Fa-f.:/]+(,[0-9A-Fa-f.:/]+)*$'

MEMBERS=()
MANAGED=()
ADDED=()
UPDATED=()
REMOVED=()
SESSIONS_ENDED=()
DOOR_CHANGED=false
CHANGED=false
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

# One line of a member's key file: the key, restricted to the forced command (and to from=, if given).
key_line() {
  local from="$1" key="$2" options="restrict,command=\"${FORCED_COMMAND}\""
  [[ -z "${from}" ]] || options+=",from=\"${from}\""
  printf '%s %s' "${options}" "${key}"
}

# Fills MEMBERS (in order of first appearance) and KEYS_OF (newline-separated key lines per member).
parse_members() {
  local line name key from
  while IFS= read -r line || [[ -n "${line}" ]]; do
    line="${line%$'\r'}"
    [[ "${line}" =~ ^[[:space:]]*(#|$) ]] && continue
    read -r name key <<<"${line}"
    from=""
    if [[ "${key}" == from=* ]]; then
      read -r from key <<<"${key}"
      from="${from#from=}"
      [[ "${from}" =~ ${FROM_PATTERN} ]] \
        || die "TEAM_MEMBERS: from= of '${name}' must list addresses or networks separated by commas (from=203.0.113.0/24,2001:db8::/32), not '${from}'"
    fi
    [[ "${name}" =~ ${NAME_PATTERN} ]] \
      || die "TEAM_MEMBERS: '${name}' is not a valid account name (lowercase letter or _, then up to 31 of a-z 0-9 _ -)"
    [[ -n "${key}" ]] || die "TEAM_MEMBERS: '${name}' has no SSH public key"
    validate_key "${name}" "${key}"
    if [[ -v "KEYS_OF[${name}]" ]]; then
      KEYS_OF["${name}"]+=$'\n'"$(key_line "${from}" "${key}")"
    else
      MEMBERS+=("${name}")
      KEYS_OF["${name}"]="$(key_line "${from}" "${key}")"
    fi
  done <<<"${TEAM_MEMBERS}"
}

validate_input() {
  [[ "${BUILDER_NAME}" =~ ${HOST_FACTS_BUILDER_NAME_PATTERN} ]] \
    || die "BUILDER_NAME '${BUILDER_NAME}' is not a valid builder name (a lowercase letter, then up to 62 of a-z 0-9 _ -)"
}

read_state() {
  [[ -f "${STATE_FILE}" ]] || return 0
  mapfile -t MANAGED < <(grep -E "${NAME_PATTERN}" "${STATE_FILE}" || true)
}

write_state() {
  local content="# Accounts created by buildx-host (team-access.sh), one per line. Do not edit."
  ((${#MANAGED[@]} == 0)) || content+=$'\n'"$(printf '%s\n' "${MANAGED[@]}" | sort -u)"
  place_file "${STATE_FILE}" 644 "${content}" || true
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
  ((${#MEMBERS[@]} == 0)) || command -v docker >/dev/null 2>&1 \
    || die "docker is not installed; run the docker-engine step (docker-engine.sh) first"
}

remove_file() {
  [[ -e "$1" || -L "$1" ]] || return 1
  rm -f "$1"
}

render_drop_in() {
  cat <<CONFIG
# The member door of buildx-host (team-access.sh); changes here are overwritten.
# Members reach the shared BuildKit's API and nothing else: their keys only from the root-owned
# file below, one forced command, no TTY, no forwarding of any kind, no ~/.ssh/rc.
Match Group ${MEMBERS_GROUP}
    AuthorizedKeysFile ${KEYS_DIR}/%u
    AuthorizedKeysCommand none
    AuthorizedPrincipalsFile none
    PasswordAuthentication no
    KbdInteractiveAuthentication no
    ForceCommand ${FORCED_COMMAND}
    PermitTTY no
    DisableForwarding yes
    AllowTcpForwarding no
    AllowStreamLocalForwarding no
    AllowAgentForwarding no
    X11Forwarding no
    PermitTunnel no
    PermitUserRC no
CONFIG
}

render_sudoers() {
  cat <<SUDOERS
# The member door of buildx-host (team-access.sh); changes here are overwritten.
# Members may run the BuildKit dial helper as root, with no arguments, and nothing else.
%${MEMBERS_GROUP} ALL=(root) NOPASSWD: ${DIAL_HELPER} ""
SUDOERS
}

render_dial_helper() {
  cat <<HELPER
#!/bin/sh
# The member door of buildx-host (team-access.sh); changes here are overwritten.
# A member's SSH session, joined to the shared builder's BuildKit API; whatever the client asked
# for, this is all it gets.
exec $(command -v docker) exec -i buildx_buildkit_${BUILDER_NAME}0 buildctl dial-stdio
HELPER
}

sshd_binary() { command -v sshd || echo /usr/sbin/sshd; }

reload_sshd() {
  local unit
  for unit in ssh.service sshd.service; do
    if systemctl is-active --quiet "${unit}" 2>/dev/null; then
      systemctl reload "${unit}" || die "systemctl reload ${unit} failed; see 'journalctl -u ${unit}'"
      log "reloaded ${unit}"
      return
    fi
  done
  log "no running ssh service: the drop-in applies when sshd next starts"
}

# Places the sshd drop-in only if sshd accepts the whole configuration with it (checked on every
# run, so that a bad file of anyone's stops the step before it relies on a reload); otherwise the
# previous drop-in (or none) is put back, sshd is not reloaded, and the step fails with sshd's words.
install_drop_in() {
  local backup="" check placed=false
  if [[ -f "${SSHD_DROP_IN}" ]]; then
    backup="$(mktemp)"
    cp -p "${SSHD_DROP_IN}" "${backup}"
  fi
  if place_file "${SSHD_DROP_IN}" 644 "$(render_drop_in)"; then placed=true; fi
  if ! check="$("$(sshd_binary)" -t 2>&1)"; then
    if [[ "${placed}" == true ]]; then
      if [[ -n "${backup}" ]]; then mv -f "${backup}" "${SSHD_DROP_IN}"; else rm -f "${SSHD_DROP_IN}"; fi
    fi
    rm -f "${backup}"
    die "sshd rejects its configuration (checked with the member door ${SSHD_DROP_IN}); nothing was changed and sshd was not reloaded. sshd -t said: ${check}"
  fi
  rm -f "${backup}"
  [[ "${placed}" == true ]] || return 0
  reload_sshd
  DOOR_CHANGED=true
  log "wrote ${SSHD_DROP_IN} (sshd -t passed)"
}

install_sudoers() {
  if place_file "${SUDOERS_FILE}" 440 "$(render_sudoers)" visudo -cqf; then
    DOOR_CHANGED=true
    log "wrote ${SUDOERS_FILE}"
  fi
}

# The login user running this step (sudo's caller) must never match the door, or it would lose its shell.
check_login_user() {
  [[ -n "${SUDO_USER:-}" ]] && getent group "${MEMBERS_GROUP}" >/dev/null || return 0
  ! in_group "${SUDO_USER}" "${MEMBERS_GROUP}" \
    || die "the login user ${SUDO_USER} is in the group ${MEMBERS_GROUP}, which sshd confines to BuildKit; take it out (gpasswd -d ${SUDO_USER} ${MEMBERS_GROUP}) before the door is opened"
}

# The drop-in first: when sshd rejects the configuration, the step stops before changing anything else.
open_door() {
  check_login_user
  install_drop_in
  getent group "${MEMBERS_GROUP}" >/dev/null || { groupadd --system "${MEMBERS_GROUP}"; DOOR_CHANGED=true; log "created group ${MEMBERS_GROUP}"; }
  if place_file "${DIAL_HELPER}" 755 "$(render_dial_helper)"; then
    DOOR_CHANGED=true
    log "wrote ${DIAL_HELPER}"
  fi
  install_sudoers
  install -d -m 0755 "$(dirname "${KEYS_DIR}")" "${KEYS_DIR}"
}

# With no members the door goes: sshd first, so that nothing points at what is removed after it.
close_door() {
  if remove_file "${SSHD_DROP_IN}"; then
    "$(sshd_binary)" -t || die "sshd rejects its configuration even without the member door; fix it before the next reload"
    reload_sshd
    DOOR_CHANGED=true
  fi
  if remove_file "${SUDOERS_FILE}"; then DOOR_CHANGED=true; fi
  if remove_file "${DIAL_HELPER}"; then DOOR_CHANGED=true; fi
  if [[ -d "${KEYS_DIR}" ]]; then
    rm -rf "$(dirname "${KEYS_DIR}")"
    DOOR_CHANGED=true
  fi
  if getent group "${MEMBERS_GROUP}" >/dev/null; then
    groupdel "${MEMBERS_GROUP}"
    DOOR_CHANGED=true
  fi
  [[ "${DOOR_CHANGED}" == false ]] || log "closed the member door: no members left"
}

# sshd's privileged monitor of a session ("sshd: <name> [priv]", "sshd-session: …" since OpenSSH
# 9.8) runs as root and holds the connection: it goes too, or the client would not see the cut.
session_monitors() { printf '^sshd(-session)?: %s \\[priv\\]' "$1"; }

# Ends every process of an account and its sessions' monitors, which cuts its open SSH sessions;
# fails when there was none.
end_sessions() {
  local name="$1"
  pgrep -u "${name}" >/dev/null 2>&1 || pgrep -f "$(session_monitors "${name}")" >/dev/null 2>&1 || return 1
  pkill -KILL -u "${name}" || true
  pkill -KILL -f "$(session_monitors "${name}")" || true
  SESSIONS_ENDED+=("${name}")
  log "ended the running processes and open sessions of ${name}"
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

# What an earlier version of this step gave a member (the docker group, a shell, ~/.ssh/authorized_keys)
# goes; a member who was in the docker group has their processes ended, since those keep the group.
# Succeeds when it changed something.
leave_old_door() {
  local name="$1" home touched=1
  if in_group "${name}" "${DOCKER_GROUP}" 2>/dev/null; then
    gpasswd -d "${name}" "${DOCKER_GROUP}" >/dev/null
    end_sessions "${name}" || true
    log "${name} left the ${DOCKER_GROUP} group"
    touched=0
  fi
  home="$(home_of "${name}")"
  if [[ -n "${home}" ]] && remove_file "${home}/.ssh/authorized_keys"; then
    log "removed ${home}/.ssh/authorized_keys (keys live in ${KEYS_DIR}/${name})"
    touched=0
  fi
  return "${touched}"
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
  if [[ "$(shell_of "${name}")" != "${MEMBER_SHELL}" ]]; then
    usermod --shell "${MEMBER_SHELL}" "${name}"
    touched=true
  fi
  if ! in_group "${name}" "${MEMBERS_GROUP}"; then
    usermod -aG "${MEMBERS_GROUP}" "${name}"
    log "added ${name} to the ${MEMBERS_GROUP} group"
    touched=true
  fi
  if leave_old_door "${name}"; then touched=true; fi
  if place_file "${KEYS_DIR}/${name}" 644 "# Managed by buildx-host (team-access.sh); changes here are overwritten."$'\n'"${KEYS_OF[${name}]}"; then
    log "wrote ${KEYS_DIR}/${name}"
    touched=true
  fi
  if [[ "${gained}" == true ]]; then
    ADDED+=("${name}")
  elif [[ "${touched}" == true ]]; then
    UPDATED+=("${name}")
  fi
}

revoke_member() {
  local name="$1" touched=false
  getent passwd "${name}" >/dev/null || return 0
  if remove_file "${KEYS_DIR}/${name}"; then touched=true; fi
  if getent group "${MEMBERS_GROUP}" >/dev/null && in_group "${name}" "${MEMBERS_GROUP}"; then
    gpasswd -d "${name}" "${MEMBERS_GROUP}" >/dev/null
    touched=true
  fi
  if leave_old_door "${name}"; then touched=true; fi
  if [[ "$(shell_of "${name}")" != "${LOCKED_SHELL}" || "$(expiry_of "${name}")" != 1 || "$(password_of "${name}")" != '!'* ]]; then
    usermod --lock --expiredate 1 --shell "${LOCKED_SHELL}" "${name}"
    touched=true
  fi
  if end_sessions "${name}"; then touched=true; fi
  if [[ "${touched}" == true ]]; then
    REMOVED+=("${name}")
    log "${name} lost access: key file removed, out of ${MEMBERS_GROUP}, account locked, processes ended (home kept)"
  fi
}

# The drop-in must really apply to members: an sshd_config without the sshd_config.d Include would
# ignore it (members then have no key file sshd reads, so no way in, but say why).
verify_door() {
  local probe="${MEMBERS[0]}" effective
  effective="$("$(sshd_binary)" -T -C "user=${probe},host=buildx-host-check,addr=127.0.0.1" 2>&1)" \
    || die "sshd -T failed: ${effective}"
  grep -qixF "forcecommand ${FORCED_COMMAND}" <<<"${effective}" \
    || die "sshd does not apply ${SSHD_DROP_IN} to ${probe}: does /etc/ssh/sshd_config include /etc/ssh/sshd_config.d/*.conf (before any Match block)?"
}

# shellcheck disable=SC2016 # $name in the jq program is jq's
print_report() {
  local door=closed
  ((${#ADDED[@]} + ${#UPDATED[@]} + ${#REMOVED[@]} == 0)) && [[ "${DOOR_CHANGED}" == false ]] || CHANGED=true
  [[ ! -f "${SSHD_DROP_IN}" ]] || door=open
  report '{members: $members, added: $added, updated: $updated, removed: $removed, sessionsEnded: $sessionsEnded, door: $door}' \
    --argjson members "$(json_strings "${MEMBERS[@]}")" --argjson added "$(json_strings "${ADDED[@]}")" \
    --argjson updated "$(json_strings "${UPDATED[@]}")" --argjson removed "$(json_strings "${REMOVED[@]}")" \
    --argjson sessionsEnded "$(json_strings "${SESSIONS_ENDED[@]}")" --arg door "${door}"
}

main() {
  begin_step
  local name
  validate_input
  parse_members
  read_state
  check_ownership
  ((${#MEMBERS[@]} == 0)) || open_door
  for name in "${MEMBERS[@]}"; do
    grant_member "${name}"
  done
  for name in "${MANAGED[@]}"; do
    if ! contains "${name}" "${MEMBERS[@]}"; then
      revoke_member "${name}"
    fi
  done
  write_state
  if ((${#MEMBERS[@]} == 0)); then close_door; else verify_door; fi
  log "members: ${MEMBERS[*]:-none}"
  print_report
}

main "$@"
