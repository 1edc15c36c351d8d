#!/usr/bin/env bash
# Everything the test suite needs: Debian packages (as root, when missing) and Python extras.
set -euo pipefail
PYTHON="${1:-python3}"
VENV="${2:-.venv}"

need=()
command -v pebble-challtestsrv >/dev/null || need+=(pebble)
command -v softhsm2-util >/dev/null || need+=(softhsm2)
command -v openssl >/dev/null || need+=(openssl)
[[ -x /usr/sbin/nginx ]] || need+=(nginx-light)   # the agent's deployment tests drive nginx
if ((${#need[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "missing Debian packages: ${need[*]} (install them as root: apt-get install ${need[*]})" >&2
        exit 1
    fi
    echo "installing Debian packages: ${need[*]}"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null
    # the package starts a system nginx on port 80; tests start their own on free ports
    if [[ " ${need[*]} " == *" nginx-light "* ]]; then
        service nginx stop >/dev/null 2>&1 || true
    fi
fi

"$PYTHON" scripts/check_python.py
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q -e '.[test]'
