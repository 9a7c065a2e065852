#!/usr/bin/env bash
# Removes superseded test and binary executables from a cargo target
# directory: for each name in */deps, only the most recently built executable
# is kept. Each test binary is ~350 MB in debug builds and a new one is linked
# whenever its dependencies change, so a cached CI target directory otherwise
# grows by about a gigabyte per run. Usage: prune-target.sh TARGET_DIR
set -euo pipefail
dir="${1:?usage: prune-target.sh TARGET_DIR}"
freed=0
for deps in "$dir"/*/deps; do
  [ -d "$deps" ] || continue
  # "mtime name path" for executables without an extension, newest first.
  declare -A seen=()
  while read -r _ name path; do
    if [ "${seen[$name]:-}" = 1 ]; then
      freed=$(( freed + $(stat -c %s "$path") ))
      rm -f -- "$path"
    else
      seen[$name]=1
    fi
  done < <(find "$deps" -maxdepth 1 -type f -perm -u+x ! -name '*.*' -printf '%T@ %f %p\n' \
             | sed -E 's/^([^ ]+) (.*)-[0-9a-f]{16} /\1 \2 /' | sort -rn)
  unset seen
done
echo "prune-target: removed $(( freed / 1000000 )) MB of superseded executables from $dir"
