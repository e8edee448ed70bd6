#!/usr/bin/env bash
# Install bubblewrap (bwrap), the sandbox wall of tabcoder's strict isolation, with the system's package
# manager. Without it tabcoder still runs, behind a reduced wall (Landlock + namespaces), and says so.
#   bash scripts/install-bubblewrap.sh             # try; warn and exit 0 when it cannot be installed here
#   bash scripts/install-bubblewrap.sh --required  # exit 1 when bwrap is still missing (CI, the tests)
set -u
required=0
[ "${1:-}" = "--required" ] && required=1
if command -v bwrap >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; else sudo="none"; fi
if [ "$sudo" != "none" ]; then
    if command -v apt-get >/dev/null 2>&1; then
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null 2>&1 ||
            { $sudo apt-get update -qq >/dev/null 2>&1 && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null 2>&1; }
    elif command -v dnf >/dev/null 2>&1; then
        $sudo dnf install -y -q bubblewrap >/dev/null 2>&1
    elif command -v pacman >/dev/null 2>&1; then
        $sudo pacman -S --noconfirm --needed bubblewrap >/dev/null 2>&1
    fi
fi
if command -v bwrap >/dev/null 2>&1; then
    exit 0
fi
echo "bubblewrap (bwrap) could not be installed here (no root or sudo, or no known package manager)." >&2
echo "tabcoder will run behind its reduced wall; for strict isolation install the 'bubblewrap' package." >&2
exit $required
