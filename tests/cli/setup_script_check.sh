#!/usr/bin/env bash
# Checks that setup.sh never removes or downgrades a package: every apt-get install line carries
# --no-remove and none carries --allow-downgrades / --allow-remove-essential / --allow-change-held-packages.
set -euo pipefail
script="${1:?usage: $0 setup.sh}"
lines="$(grep -n 'apt-get install' "$script" || true)"
[ -n "$lines" ] || { echo "FAIL: no apt-get install line in $script"; exit 1; }
status=0
while IFS= read -r line; do
  case "$line" in
    *--no-remove*) ;;
    *) echo "FAIL: apt-get install without --no-remove: $line"; status=1 ;;
  esac
  case "$line" in
    *--allow-downgrades*|*--allow-remove-essential*|*--allow-change-held-packages*|*--force-yes*)
      echo "FAIL: apt-get install may downgrade or remove: $line"; status=1 ;;
  esac
done <<< "$lines"
if grep -nE 'apt(-get)? +(remove|purge|autoremove)|dpkg +(-r|--remove|-P|--purge)' "$script"; then
  echo "FAIL: $script removes packages"; status=1
fi
[ "$status" -eq 0 ] && echo "ok: $(printf '%s\n' "$lines" | wc -l) apt-get install line(s), all with --no-remove"
exit "$status"
