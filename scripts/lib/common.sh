# shellcheck shell=bash
# Shared helpers for scripts/test, scripts/bench-record and scripts/lib/moto.sh.
# Source it; it defines functions and a few variables and runs nothing else.
#
#   KT_ROOT      repository root (parent of scripts/)
#   KT_TEST_ENV  target/test-env: venv, logs and other throwaway test state
#   KT_VENV      target/test-env/venv: the Python venv holding moto and asciinema

KT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KT_TEST_ENV="$KT_ROOT/target/test-env"
KT_VENV="$KT_TEST_ENV/venv"

kt_log() { printf '%s\n' "$*" >&2; }
kt_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# kt_section NAME: a header that stands out in a CI log.
kt_section() { printf '\n== %s\n' "$*"; }

# kt_require_cmd CMD [DEBIAN_PACKAGE]: make sure CMD is on PATH, installing the
# Debian package (default: CMD) with apt-get when it is missing.
kt_require_cmd() {
    local cmd=$1 pkg=${2:-$1} sudo=()
    command -v "$cmd" >/dev/null 2>&1 && return 0
    kt_log "$cmd not found; installing Debian package $pkg"
    command -v apt-get >/dev/null 2>&1 || kt_die "$cmd is missing and apt-get is not available: install $pkg yourself"
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null 2>&1 || kt_die "$cmd is missing; installing $pkg needs root (or sudo)"
        sudo=(sudo)
    fi
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "$pkg" >/dev/null
    command -v "$cmd" >/dev/null 2>&1 || kt_die "installed $pkg but $cmd is still not on PATH"
}

# kt_ensure_venv: create target/test-env/venv unless a working one is there.
kt_ensure_venv() {
    if [[ -x "$KT_VENV/bin/python" ]] && "$KT_VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
        return 0
    fi
    kt_require_cmd python3
    mkdir -p "$KT_TEST_ENV"
    kt_log "creating Python venv in ${KT_VENV#"$KT_ROOT"/}"
    # --clear: a half-made or stale venv (e.g. its Python was removed) is rebuilt.
    python3 -m venv --clear "$KT_VENV"
}

# kt_venv_install EXE SPEC...: pip install SPEC... into the venv unless the
# venv already has bin/EXE. Idempotent and quiet when nothing needs doing.
# Returns 1 (with a message) when the install fails, so callers may go on.
kt_venv_install() {
    local exe=$1; shift
    kt_ensure_venv
    [[ -x "$KT_VENV/bin/$exe" ]] && return 0
    kt_log "installing $* into ${KT_VENV#"$KT_ROOT"/}"
    if ! "$KT_VENV/bin/python" -m pip install -q --disable-pip-version-check "$@"; then
        kt_log "error: pip install $* into $KT_VENV failed"
        return 1
    fi
    if [[ ! -x "$KT_VENV/bin/$exe" ]]; then
        kt_log "error: pip installed $* but $KT_VENV/bin/$exe is missing"
        return 1
    fi
}

# kt_free_port: print a TCP port that is free on 127.0.0.1 right now.
kt_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
