#!/usr/bin/env bash
# issue 12 CI: shellcheck on every shell script in the repository: *.sh,
# *.sbatch and any file whose first line is a sh/bash/dash shebang, outside
# build directories, .deps, .git and node_modules.
# usage: shellcheck_test.sh <source dir>
# Exit 77 (skipped) when shellcheck is not installed (scripts/setup.sh installs it).
set -euo pipefail
src=$1
if ! command -v shellcheck >/dev/null 2>&1; then
  echo "SKIP: shellcheck not installed (Debian package shellcheck)"
  exit 77
fi
cd "$src"
scripts=()
while IFS= read -r -d '' f; do
  case $f in
    *.sh | *.sbatch) scripts+=("$f") ;;
    *) head -c 128 "$f" 2>/dev/null | head -n 1 | grep -qE '^#!.*[/ ](ba|da|k)?sh([[:space:]]|$)' && scripts+=("$f") ;;
  esac
done < <(find . -type d \( -name 'build*' -o -name .deps -o -name .git -o -name node_modules \) -prune -o \
           -type f -size -512k -print0)
((${#scripts[@]})) || { echo "FAIL: found no scripts under $src"; exit 1; }
printf 'checking %s\n' "${scripts[@]}"
shellcheck --external-sources "${scripts[@]}"
echo "PASS: ${#scripts[@]} scripts"
