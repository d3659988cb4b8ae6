#!/usr/bin/env bash
# The shared builder's state on one build host, for when "the builder is slow": whether BuildKit
# answers and its version, its cache against the GC limits it runs with, free disk where the cache
# lives, the builds running now and the last few with their duration and cache-hit share (BuildKit's
# own build history). Sizes in binary units, as BuildKit reads its GC limits ("80GB" is 80GiB).
# Read-only. The stack's statusCommand output sends it over SSH to run as root (docker and the cache
# volume's filesystem); jq is on every host (the wait-for-host step installs it).
#
# Usage: node-status.sh NODE BUILDER [LAST]   NODE names the host in the output; LAST builds [5]
set -euo pipefail

NODE="$1"
BUILDER="$2"
LAST="${3:-5}"
CONTAINER="buildx_buildkit_${BUILDER}0"
# A stuck BuildKit must not hang the view.
readonly ANSWER_SECONDS=20

buildctl_json() { timeout "${ANSWER_SECONDS}" docker exec "${CONTAINER}" buildctl "$@" --format '{{json .}}' </dev/null; }

# {"state","startedAt"} of the BuildKit container; state "absent" when there is none.
container_json() {
  docker inspect -f '{{json .State}}' "${CONTAINER}" 2>/dev/null | jq -c '{state: .Status, startedAt: .StartedAt}' ||
    jq -nc '{state: "absent"}'
}

# {"size","free","mount"} in bytes of the filesystem that holds the cache volume (Docker's data root before it exists).
disk_json() {
  local dir
  dir="$(docker volume inspect -f '{{.Mountpoint}}' "${CONTAINER}_state" 2>/dev/null || docker info -f '{{.DockerRootDir}}')"
  df -B1 --output=size,avail,target "${dir}" | tail -n 1 |
    jq -Rc 'split(" ") | map(select(. != "")) | {size: (.[0] | tonumber), free: (.[1] | tonumber), mount: .[2]}'
}

# What BuildKit says, or {"error"} with its first line when it does not answer.
buildkit_json() {
  local workers usage histories error
  if ! workers="$(buildctl_json debug workers 2>&1)"; then
    error="${workers%%$'\n'*}"
    jq -nc --arg error "${error:-no answer within ${ANSWER_SECONDS}s}" '{error: $error}'
    return
  fi
  usage="$(buildctl_json du)"
  histories="$(buildctl_json debug histories | jq -sc .)"
  jq -nc --argjson workers "${workers}" --argjson usage "${usage}" --argjson histories "${histories}" \
    '{workers: $workers, usage: $usage, histories: $histories}'
}

# The view, from everything gathered (one JSON object) on stdin.
# shellcheck disable=SC2016 # jq's program: its $ are jq's
readonly FORMAT='
def size: if . >= 1073741824 then "\(. / 107374182.4 | round / 10)GiB" elif . >= 1048576 then "\(. / 104857.6 | round / 10)MiB"
  else "\(. / 102.4 | round / 10)KiB" end;
def seconds: "\(. * 10 | round / 10)s";
def time: .seconds + (.nanos // 0) / 1e9;
def utc: floor | strftime("%Y-%m-%dT%H:%M:%SZ");
def cached: if (.numTotalSteps // 0) == 0 then "-"
  else "\(.numCachedSteps // 0)/\(.numTotalSteps) steps (\((.numCachedSteps // 0) * 100 / .numTotalSteps | round)%)" end;
def platform: .FrontendAttrs.platform // "-";
. as $s
| ($s.buildkit.histories // [] | map(select((.type // 0) != 2) | .record)) as $records
| ($records | map(select(.CompletedAt == null))) as $running
| ($records | map(select(.CompletedAt != null)) | sort_by(.CompletedAt | time) | reverse | .[:$s.last]) as $done
| "node \($s.node): builder \($s.builder) (\($s.container.state == "running" | if . then "BuildKit container running since \($s.container.startedAt | sub("\\.[0-9]+"; ""))" else "BuildKit container \($s.container.state)" end))",
  if $s.buildkit.error then "  BuildKit:  NOT ANSWERING: \($s.buildkit.error)"
  else
    ($s.buildkit.workers[0]) as $worker
    | ($worker.gcPolicy | (map(select(.all)) | last) // last) as $gc
    | ($s.buildkit.usage | map(.size) | add // 0) as $used
    | "  BuildKit:  \($worker.buildkitVersion.version), answering",
      "  cache:     \($used | size) used; GC limits: maxUsedSpace \($gc.maxUsedSpace | size), reservedSpace \($gc.reservedSpace | size), minFreeSpace \($gc.minFreeSpace | size)\(if $used > $gc.maxUsedSpace then " (ABOVE maxUsedSpace)" else "" end)",
      "  disk:      \($s.disk.free | size) free of \($s.disk.size | size) on \($s.disk.mount)\(if $s.disk.free < $gc.minFreeSpace then " (BELOW minFreeSpace: GC frees cache)" else "" end)"
  end,
  if $s.buildkit.error then empty
  else
    "  running:   \($running | length) build(s)",
    ($running[] | "    \(.Ref)  \(platform)  started \(.CreatedAt | time | utc), running for \($s.now - (.CreatedAt | time) | seconds)"),
    "  last \($done | length) build(s), newest first:",
    ($done[] | "    \(.Ref)  \(platform)  \(if .error then "FAILED" else "ok" end)  started \(.CreatedAt | time | utc)  took \((.CompletedAt | time) - (.CreatedAt | time) | seconds)  cached \(cached)")
  end'

main() {
  local container disk buildkit='{"error": "BuildKit container not running"}'
  container="$(container_json)"
  disk="$(disk_json)"
  if [[ "$(jq -r .state <<<"${container}")" == running ]]; then
    buildkit="$(buildkit_json)"
  fi
  jq -nr --arg node "${NODE}" --arg builder "${BUILDER}" --argjson last "${LAST}" --argjson now "$(date +%s)" \
    --argjson container "${container}" --argjson disk "${disk}" --argjson buildkit "${buildkit}" \
    '{node: $node, builder: $builder, last: $last, now: $now, container: $container, disk: $disk, buildkit: $buildkit}' |
    jq -r "${FORMAT}"
}

main "$@"
