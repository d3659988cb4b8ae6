#!/usr/bin/env bash
# Save and restore this machine's binfmt_misc registrations around the host lab.
#
# binfmt_misc belongs to the kernel, so the lab host's registrations (and their removal when
# its systemd stops systemd-binfmt) reach every process on this machine. `save` records
# every entry (mounting binfmt_misc here if needed; an unrestored earlier snapshot is kept);
# `restore` removes entries that were not there, re-registers those that changed or vanished,
# and unmounts binfmt_misc if `save` mounted it.
#
# Usage: binfmt-state.sh save|restore FILE
set -euo pipefail

BINFMT_DIR=/proc/sys/fs/binfmt_misc

log() { echo "binfmt-state: $*" >&2; }

is_mounted() { grep -q " ${BINFMT_DIR} binfmt_misc " /proc/mounts; }

entries() {
  local f
  for f in "${BINFMT_DIR}"/*; do
    case "${f##*/}" in register | status) continue ;; esac
    [[ -f "${f}" ]] && echo "${f##*/}"
  done
}

# "name<TAB>registration line" for one entry; the line is what `register` takes.
describe_entry() {
  local name="$1" file="${BINFMT_DIR}/$1" enabled interpreter flags offset magic mask extension
  enabled="$(head -n1 "${file}")"
  interpreter="$(sed -n 's/^interpreter //p' "${file}")"
  flags="$(sed -n 's/^flags: //p' "${file}")"
  offset="$(sed -n 's/^offset //p' "${file}")"
  magic="$(sed -n 's/^magic //p' "${file}")"
  mask="$(sed -n 's/^mask //p' "${file}")"
  extension="$(sed -n 's/^extension \.//p' "${file}")"
  local line
  if [[ -n "${extension}" ]]; then
    line=":${name}:E::${extension}::${interpreter}:${flags}"
  else
    line=":${name}:M:${offset}:$(hex_escape "${magic}"):$(hex_escape "${mask}"):${interpreter}:${flags}"
  fi
  printf '%s\t%s\t%s\n' "${name}" "${enabled}" "${line}"
}

# "7f454c46" -> "\x7f\x45\x4c\x46", the form `register` takes.
hex_escape() {
  local hex="$1" out="" i
  for ((i = 0; i < ${#hex}; i += 2)); do out+="\\x${hex:i:2}"; done
  printf '%s' "${out}"
}

save() {
  local file="$1" mounted_now=0 name
  if [[ -f "${file}" ]]; then
    # An earlier run did not restore (HOSTLAB_KEEP=1 or a crash): its snapshot is the state
    # from before any lab host, so it is the one to keep.
    log "keeping the earlier snapshot ${file} (not restored yet)"
    return 0
  fi
  if ! is_mounted; then
    mount -t binfmt_misc binfmt_misc "${BINFMT_DIR}"
    mounted_now=1
  fi
  {
    echo "mounted_by_save=${mounted_now}"
    while read -r name; do describe_entry "${name}"; done < <(entries)
  } >"${file}.tmp"
  mv "${file}.tmp" "${file}"
  log "saved $(($(wc -l <"${file}") - 1)) registration(s) to ${file}"
}

restore() {
  local file="$1" name enabled line current
  [[ -f "${file}" ]] || { log "no saved state at ${file}; nothing to restore"; return 0; }
  is_mounted || mount -t binfmt_misc binfmt_misc "${BINFMT_DIR}"
  declare -A saved=()
  while IFS=$'\t' read -r name enabled line; do
    saved["${name}"]="${enabled}"$'\t'"${line}"
  done < <(tail -n +2 "${file}")
  while read -r name; do
    current="$(describe_entry "${name}" | cut -f2-)"
    if [[ "${saved[${name}]:-}" != "${current}" ]]; then
      echo -1 >"${BINFMT_DIR}/${name}"
      log "removed ${name} (not as saved)"
    fi
  done < <(entries)
  local unrestorable=()
  for name in "${!saved[@]}"; do
    [[ -e "${BINFMT_DIR}/${name}" ]] && continue
    enabled="${saved[${name}]%%$'\t'*}"
    line="${saved[${name}]#*$'\t'}"
    if printf '%s' "${line}" >"${BINFMT_DIR}/register" 2>/dev/null; then
      [[ "${enabled}" == enabled ]] || echo 0 >"${BINFMT_DIR}/${name}"
      log "re-registered ${name}"
    else
      unrestorable+=("${name}")
    fi
  done
  if ((${#unrestorable[@]} > 0)); then
    # With flag F the kernel opens the interpreter when registering: entries made from inside a
    # container (another lab host) name files this machine does not have.
    log "could not re-register ${#unrestorable[@]} entr(ies) whose interpreter is not on this machine: ${unrestorable[*]}"
  fi
  if grep -qx 'mounted_by_save=1' "${file}"; then
    umount "${BINFMT_DIR}"
    log "unmounted ${BINFMT_DIR} (save had mounted it)"
  fi
  rm -f "${file}"
}

main() {
  case "${1:-}" in
    save) save "${2:?usage: $0 save FILE}" ;;
    restore) restore "${2:?usage: $0 restore FILE}" ;;
    *)
      echo "usage: $0 save|restore FILE" >&2
      return 2
      ;;
  esac
}

main "$@"
