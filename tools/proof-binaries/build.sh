#!/usr/bin/env bash
# Builds the tiny foreign-architecture ELF executables that qemu-binfmt.sh runs inside a container
# to prove emulation works, and embeds them (base64) in that script between the marker lines
#   # BEGIN proof-binaries
#   # END proof-binaries
#
# Usage:
#   build.sh           rebuild and rewrite the block in the target script (no write if unchanged)
#   build.sh --print   print the block on stdout, touch nothing
#   build.sh --check   exit 1 if the block in the target script differs from a fresh build (CI)
#
# Environment (defaults in brackets):
#   PROOF_TARGET_SCRIPT  script holding the block [<repo>/components/scripts/qemu-binfmt.sh]
#   PROOF_OUT_DIR        also keep the built executables here, one per name [unset: not kept]
#   PROOF_VERIFY         run each executable with Debian's qemu-user (called directly by path, so no
#                        binfmt_misc registration is read or changed): auto = when qemu-user is
#                        installed, yes = install it if missing, no = skip [auto]
#
# Each executable writes `uname -m` of its architecture plus a newline and exits 0. Cross binutils
# come from Debian (installed when missing; needs root). The output is byte-for-byte reproducible.
set -euo pipefail

SELF_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "${SELF_DIR}/../.." && pwd)"
readonly SELF_DIR REPO_DIR
PROOF_TARGET_SCRIPT="${PROOF_TARGET_SCRIPT:-${REPO_DIR}/components/scripts/qemu-binfmt.sh}"
PROOF_OUT_DIR="${PROOF_OUT_DIR:-}"
PROOF_VERIFY="${PROOF_VERIFY:-auto}"

readonly BEGIN_MARKER='# BEGIN proof-binaries'
readonly END_MARKER='# END proof-binaries'
# uname -m name -> binutils target triplet, Debian package, qemu-user emulator.
readonly NAMES=(aarch64 armv7l ppc64le s390x riscv64 x86_64)
declare -rA TRIPLET=(
  [aarch64]=aarch64-linux-gnu [armv7l]=arm-linux-gnueabihf [ppc64le]=powerpc64le-linux-gnu
  [s390x]=s390x-linux-gnu [riscv64]=riscv64-linux-gnu [x86_64]=x86_64-linux-gnu
)
declare -rA EMULATOR=(
  [aarch64]=qemu-aarch64 [armv7l]=qemu-arm [ppc64le]=qemu-ppc64le
  [s390x]=qemu-s390x [riscv64]=qemu-riscv64 [x86_64]=qemu-x86_64
)

export LC_ALL=C

log() { echo "build.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
  sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

require_root_for() {
  [[ "$(id -u)" -eq 0 ]] || die "$1 needs root (or install it yourself: apt-get install -y $2)"
}

apt_install() {
  require_root_for "installing packages" "$*"
  log "installing: $*"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2; then
    DEBIAN_FRONTEND=noninteractive apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2
  fi
}

ensure_binutils() {
  local name triplet missing=()
  for name in "${NAMES[@]}"; do
    triplet="${TRIPLET[${name}]}"
    command -v "${triplet}-as" >/dev/null && command -v "${triplet}-ld" >/dev/null \
      || missing+=("binutils-${triplet//_/-}")  # Debian spells x86_64 as x86-64
  done
  if ((${#missing[@]})); then
    apt_install "${missing[@]}"
  fi
}

# qemu-user only: its Recommends (qemu-user-binfmt) would register emulators machine-wide.
ensure_qemu_user() {
  local name
  for name in "${NAMES[@]}"; do
    command -v "${EMULATOR[${name}]}" >/dev/null || { apt_install qemu-user; return; }
  done
}

build_one() {
  local name="$1" work="$2"
  local tool="${TRIPLET[${name}]}"
  "${tool}-as" -o "${work}/${name}.o" "${SELF_DIR}/${name}.S"
  # Attribute sections would otherwise leave an empty PT_RISCV_ATTRIBUTES / .ARM.attributes behind.
  "${tool}-objcopy" -R .ARM.attributes -R .riscv.attributes "${work}/${name}.o"
  # -n: one unaligned read+execute segment instead of page-padded ones; no build-id keeps it small.
  "${tool}-ld" -static -n -s --build-id=none -z noexecstack -z noseparate-code \
    -o "${work}/${name}" "${work}/${name}.o"
  "${tool}-strip" --strip-all -R .comment -R .eh_frame -R .note.gnu.property "${work}/${name}"
}

verify_one() {
  local name="$1" work="$2" output
  output="$("${EMULATOR[${name}]}" "${work}/${name}")" \
    || die "${name}: ${EMULATOR[${name}]} exited non-zero"
  [[ "${output}" == "${name}" ]] || die "${name}: printed '${output}', expected '${name}'"
  log "verified ${name} with ${EMULATOR[${name}]}: prints '${output}', exits 0"
}

verify_all() {
  local work="$1" name
  case "${PROOF_VERIFY}" in
    no) return ;;
    yes) ensure_qemu_user ;;
    auto)
      for name in "${NAMES[@]}"; do
        command -v "${EMULATOR[${name}]}" >/dev/null \
          || { log "qemu-user not installed: not running the executables (PROOF_VERIFY=yes to)"; return; }
      done
      ;;
    *) die "PROOF_VERIFY must be auto, yes or no, not '${PROOF_VERIFY}'" ;;
  esac
  for name in "${NAMES[@]}"; do
    verify_one "${name}" "${work}"
  done
}

keep_binaries() {
  local work="$1" name
  [[ -n "${PROOF_OUT_DIR}" ]] || return 0
  mkdir -p "${PROOF_OUT_DIR}"
  for name in "${NAMES[@]}"; do
    install -m 0755 "${work}/${name}" "${PROOF_OUT_DIR}/${name}"
  done
  log "kept the executables in ${PROOF_OUT_DIR}"
}

render_block() {
  local work="$1" name encoded
  echo "${BEGIN_MARKER}"
  echo "# Generated by tools/proof-binaries/build.sh from tools/proof-binaries/*.S; do not edit."
  for name in "${NAMES[@]}"; do
    encoded="$(base64 -w0 "${work}/${name}")"
    echo "PROOF_ELF_${name}='${encoded}'"
  done
  echo "${END_MARKER}"
}

# Fails unless the target holds exactly one BEGIN marker followed by exactly one END marker.
check_markers() {
  local target="$1" begins ends
  [[ -f "${target}" ]] || die "${target} does not exist (use --print to get the block alone)"
  begins="$(grep -cxF "${BEGIN_MARKER}" "${target}" || true)"
  ends="$(grep -cxF "${END_MARKER}" "${target}" || true)"
  [[ "${begins}" == 1 && "${ends}" == 1 ]] \
    || die "${target} needs exactly one '${BEGIN_MARKER}' line and one '${END_MARKER}' line (found ${begins} and ${ends})"
  [[ "$(grep -nxF "${BEGIN_MARKER}" "${target}" | cut -d: -f1)" \
    -lt "$(grep -nxF "${END_MARKER}" "${target}" | cut -d: -f1)" ]] \
    || die "${target}: '${END_MARKER}' comes before '${BEGIN_MARKER}'"
}

extract_block() {
  awk -v b="${BEGIN_MARKER}" -v e="${END_MARKER}" '$0 == b {on = 1} on {print} $0 == e {on = 0}' "$1"
}

# Writes the target with its block replaced to stdout.
splice_block() {
  local target="$1" block_file="$2"
  awk -v b="${BEGIN_MARKER}" -v e="${END_MARKER}" -v f="${block_file}" '
    $0 == b { while ((getline line < f) > 0) print line; skip = 1; next }
    $0 == e { skip = 0; next }
    !skip { print }' "${target}"
}

write_block() {
  local target="$1" block_file="$2" tmp
  check_markers "${target}"
  if [[ "$(extract_block "${target}")" == "$(cat "${block_file}")" ]]; then
    log "${target}: block already up to date, unchanged"
    return
  fi
  tmp="$(mktemp "${target}.XXXXXX")"
  splice_block "${target}" "${block_file}" >"${tmp}"
  chmod --reference="${target}" "${tmp}"
  mv -f "${tmp}" "${target}"
  log "${target}: block rewritten"
}

check_block() {
  local target="$1" block_file="$2"
  check_markers "${target}"
  if ! diff -u <(extract_block "${target}") "${block_file}" >&2; then
    die "${target}: embedded proof binaries differ from a fresh build; run tools/proof-binaries/build.sh"
  fi
  log "${target}: block matches a fresh build"
}

main() {
  local mode="${1:-write}" work name
  case "${mode}" in
    write | --print | --check) ;;
    -h | --help) usage; return ;;
    *) usage >&2; die "unknown argument '${mode}'" ;;
  esac
  (($# <= 1)) || die "one argument at most"

  ensure_binutils
  work="$(mktemp -d)"
  # shellcheck disable=SC2064 # expand now: work is local to main
  trap "rm -rf '${work}'" EXIT
  for name in "${NAMES[@]}"; do
    build_one "${name}" "${work}"
    log "built ${name}: $(stat -c %s "${work}/${name}") bytes, sha256 $(sha256sum "${work}/${name}" | cut -d' ' -f1)"
  done
  verify_all "${work}"
  keep_binaries "${work}"
  render_block "${work}" >"${work}/block"

  case "${mode}" in
    --print) cat "${work}/block" ;;
    --check) check_block "${PROOF_TARGET_SCRIPT}" "${work}/block" ;;
    write) write_block "${PROOF_TARGET_SCRIPT}" "${work}/block" ;;
  esac
}

main "$@"
