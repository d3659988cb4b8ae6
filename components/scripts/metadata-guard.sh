#!/usr/bin/env bash
# metadata-guard.sh — host step 2 of 7: keeps build containers and non-root processes away from the
# cloud's instance metadata service (IMDS), whose answers include the instance's credentials.
#
# create: one nftables table of our own, "inet buildx_host_metadata_guard", from
# /etc/buildx-host/metadata-guard.nft: its output chain drops packets to METADATA_ADDRESSES from
# sockets not owned by root (members' sessions, services); its forward chain, ahead of Docker's
# rules, drops every forwarded packet to them (build containers, BuildKit's RUN steps). The unit
# buildx-host-metadata-guard.service loads the file at boot and whenever nftables.service
# (re)loads, whose "flush ruleset" would drop the table. Docker never touches a table it did not
# create. Not covered: root in the host's network namespace (root's --network host containers,
# BuildKit where the daemon has no bridge); the docker group is root on the host anyway.
# delete: removes the unit, the table and the file; absent things are fine.
#
# Runs as root, script on stdin: sudo -n env NAME='value' ... bash -s
#
# Environment (default in brackets):
#   GUARD_ACTION        create | delete [create]
#   METADATA_ADDRESSES  space-separated IPv4/IPv6 addresses of the metadata service
#                       [169.254.169.254 fd00:ec2::254]
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

GUARD_ACTION="${GUARD_ACTION:-create}"
METADATA_ADDRESSES="${METADATA_ADDRESSES:-169.254.169.254 fd00:ec2::254}"

readonly STEP=metadata-guard
readonly CONFIG_DIR=/etc/buildx-host
readonly RULESET_FILE="${CONFIG_DIR}/metadata-guard.nft"
readonly TABLE_FAMILY=inet
readonly TABLE_NAME=buildx_host_metadata_guard
readonly TABLE="${TABLE_FAMILY} ${TABLE_NAME}"
readonly UNIT=buildx-host-metadata-guard.service
readonly UNIT_FILE="/etc/systemd/system/${UNIT}"

CHANGED=false
ACTION=""
ADDRESSES=()
NFT_BIN=""
RULESET_WRITTEN=false
UNIT_WRITTEN=false

validate_input() {
  local addr seen=" " given=()
  case "${GUARD_ACTION}" in
    create | delete) ;;
    *) die "GUARD_ACTION must be create or delete, not '${GUARD_ACTION}'" ;;
  esac
  read -ra given <<<"${METADATA_ADDRESSES}"
  for addr in "${given[@]}"; do
    # The shape only: nft itself checks the ruleset (nft -c) before it is written.
    [[ "${addr}" =~ ^[0-9.]+$ || "${addr}" =~ ^[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*$ ]] \
      || die "METADATA_ADDRESSES: '${addr}' is not an IPv4 or IPv6 address (no prefix length, no zone)"
    [[ "${seen}" != *" ${addr} "* ]] || continue
    seen+="${addr} "
    ADDRESSES+=("${addr}")
  done
  ((${#ADDRESSES[@]} > 0)) || die "METADATA_ADDRESSES is empty; give the metadata service's address(es)"
}

# "ip daddr A" or "ip6 daddr A": the match for one address.
daddr_match() {
  if [[ "$1" == *:* ]]; then
    printf 'ip6 daddr %s' "$1"
  else
    printf 'ip daddr %s' "$1"
  fi
}

render_ruleset() {
  local addr
  cat <<NFT
# Metadata guard of buildx-host, written by metadata-guard.sh; changes here are overwritten.
# Loaded by ${UNIT} (nft -f this file).
# One file is one transaction: "add" then "delete" makes the table absent, the block then creates
# it whole — loading again replaces the table, never duplicates it, and touches no other table.
add table ${TABLE}
delete table ${TABLE}
table ${TABLE} {
	# Processes of the host not running as root (sockets owned by another uid).
	chain output {
		type filter hook output priority filter; policy accept;
NFT
  for addr in "${ADDRESSES[@]}"; do
    printf '\t\tmeta skuid != 0 %s counter drop\n' "$(daddr_match "${addr}")"
  done
  cat <<NFT
	}
	# Containers on Docker's bridges: their packets are routed through the host. Ahead of Docker.
	chain forward {
		type filter hook forward priority filter - 10; policy accept;
NFT
  for addr in "${ADDRESSES[@]}"; do
    printf '\t\t%s counter drop\n' "$(daddr_match "${addr}")"
  done
  printf '\t}\n}\n'
}

render_unit() {
  cat <<UNIT
# Written by buildx-host (metadata-guard.sh); changes here are overwritten.
[Unit]
Description=buildx-host: keep containers and non-root processes away from the instance metadata service
Documentation=file://${RULESET_FILE}
DefaultDependencies=no
After=local-fs.target nftables.service
Before=network-pre.target docker.service shutdown.target
Wants=network-pre.target
Conflicts=shutdown.target
# nftables.service's configuration flushes the whole ruleset: when it is restarted or reloaded,
# load ours again after it.
PartOf=nftables.service
ReloadPropagatedFrom=nftables.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=${NFT_BIN} -f ${RULESET_FILE}
ExecReload=${NFT_BIN} -f ${RULESET_FILE}
ExecStop=-${NFT_BIN} delete table ${TABLE}

[Install]
WantedBy=multi-user.target
UNIT
}

ensure_nft() {
  command -v nft >/dev/null 2>&1 || apt_install nftables
  NFT_BIN="$(command -v nft)" || die "nft is still missing after installing nftables"
}

table_present() { nft list table "${TABLE_FAMILY}" "${TABLE_NAME}" >/dev/null 2>&1; }

# nft checks the ruleset before it is written: a bad address or a kernel without nf_tables' inet
# family fails the step here.
write_ruleset() {
  if place_file "${RULESET_FILE}" 644 "$(render_ruleset)" nft -c -f; then
    RULESET_WRITTEN=true
    changed "wrote ${RULESET_FILE}"
  fi
}

write_unit() {
  if place_file "${UNIT_FILE}" 644 "$(render_unit)"; then
    UNIT_WRITTEN=true
    changed "wrote ${UNIT_FILE}"
    systemctl daemon-reload >&2 2>&1
  fi
}

enable_unit() {
  systemctl is-enabled --quiet "${UNIT}" 2>/dev/null && return 0
  systemctl enable "${UNIT}" >&2 2>&1
  changed "enabled ${UNIT}"
}

# The table as the file makes it, listed without counter values, from a throwaway network
# namespace: compared with the live table without reloading it (which would reset its counters).
file_listing() {
  # shellcheck disable=SC2016 # expanded by that sh, from its arguments
  unshare --net -- sh -c '"$1" -f "$2" && "$1" -s list table "$3" "$4"' sh \
    "${NFT_BIN}" "${RULESET_FILE}" "${TABLE_FAMILY}" "${TABLE_NAME}" 2>/dev/null
}

# Makes the live table equal to the file when the file or the unit changed, the unit is not
# active, the table is missing or differs from the file: an inactive unit is started; an active
# one is reloaded (nft -f replaces the table in one transaction, no moment without it).
apply_live() {
  local reason="" expected verb=reload
  if [[ "${RULESET_WRITTEN}" == true || "${UNIT_WRITTEN}" == true ]]; then
    reason="the configuration changed"
  elif ! systemctl is-active --quiet "${UNIT}"; then
    reason="${UNIT} was not active"
    verb=start
  elif ! table_present; then
    reason="table ${TABLE} was missing"
  elif ! expected="$(file_listing)" || [[ "$(nft -s list table "${TABLE_FAMILY}" "${TABLE_NAME}")" != "${expected}" ]]; then
    reason="table ${TABLE} differed from ${RULESET_FILE}"
  fi
  [[ -n "${reason}" ]] || return 0
  systemctl is-active --quiet "${UNIT}" || verb=start
  systemctl reset-failed "${UNIT}" >/dev/null 2>&1 || true
  systemctl "${verb}" "${UNIT}" >&2 2>&1 || die "could not ${verb} ${UNIT}; see 'journalctl -u ${UNIT}'"
  table_present || die "${UNIT} started but table ${TABLE} is not loaded; see 'journalctl -u ${UNIT}'"
  changed "loaded table ${TABLE} (${reason})"
}

create_guard() {
  local existed=false
  [[ ! -e "${RULESET_FILE}" && ! -e "${UNIT_FILE}" ]] || existed=true
  ensure_nft
  write_ruleset
  write_unit
  enable_unit
  apply_live
  if [[ "${CHANGED}" == false ]]; then
    ACTION=unchanged
  elif [[ "${existed}" == true ]]; then
    ACTION=updated
  else
    ACTION=created
  fi
  log "guarding ${ADDRESSES[*]}: forwarded packets and non-root sockets are dropped"
}

delete_guard() {
  if [[ -e "${UNIT_FILE}" ]]; then
    if systemctl is-active --quiet "${UNIT}"; then
      systemctl stop "${UNIT}" >&2 2>&1
      changed "stopped ${UNIT}"
    fi
    if systemctl is-enabled --quiet "${UNIT}" 2>/dev/null; then
      systemctl disable "${UNIT}" >&2 2>&1
      changed "disabled ${UNIT}"
    fi
  fi
  if command -v nft >/dev/null 2>&1 && table_present; then
    nft delete table "${TABLE_FAMILY}" "${TABLE_NAME}"
    changed "deleted table ${TABLE}"
  fi
  if [[ -e "${RULESET_FILE}" ]]; then
    rm -f "${RULESET_FILE}"
    changed "removed ${RULESET_FILE}"
  fi
  if [[ -e "${UNIT_FILE}" ]]; then
    rm -f "${UNIT_FILE}"
    systemctl daemon-reload >&2 2>&1
    changed "removed ${UNIT_FILE}"
  fi
  if [[ "${CHANGED}" == true ]]; then
    ACTION=deleted
  else
    ACTION=absent
  fi
}

# shellcheck disable=SC2016 # $name in the jq program is jq's
print_report() {
  report '{action: $action, addresses: $addresses, table: $table}' \
    --arg action "${ACTION}" --argjson addresses "$(json_strings "${ADDRESSES[@]}")" --arg table "${TABLE}"
}

main() {
  begin_step
  validate_input
  if [[ "${GUARD_ACTION}" == delete ]]; then
    delete_guard
  else
    create_guard
  fi
  print_report
}

main "$@"
