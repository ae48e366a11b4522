#!/usr/bin/env bash
# shellcheck shell=bash
# A throwaway moto S3 server for the tests.
#
# Sourced (by scripts/test):
#     kt_moto_install      pip install moto[server] into target/test-env/venv (skipped when present)
#     kt_moto_start        start moto_server on a free 127.0.0.1 port, wait until it answers,
#                          create the bucket, export KUBETAPE_TEST_S3_* / AWS_* for the tests
#     kt_moto_stop         stop it (idempotent; call it from an EXIT trap)
# Run directly, it wraps one command, e.g. to run a single test against S3:
#     scripts/lib/moto.sh cargo test -p storage-schema s3
# The server log is target/test-env/moto.log.

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

KT_MOTO_SPEC='moto[server]>=5,<6'
KT_MOTO_BUCKET=kubetape-test
KT_MOTO_LOG="$KT_TEST_ENV/moto.log"
KT_MOTO_READY_TIMEOUT=${KT_MOTO_READY_TIMEOUT:-30}
KT_MOTO_PID=""
KT_MOTO_PORT=""

kt_moto_install() {
    kt_venv_install moto_server "$KT_MOTO_SPEC"
}

_kt_moto_log_tail() {
    kt_log "---- last lines of ${KT_MOTO_LOG#"$KT_ROOT"/} ----"
    tail -n 30 "$KT_MOTO_LOG" >&2 2>/dev/null || true
    kt_log "----"
}

# _kt_moto_http METHOD PATH: print the HTTP status code (000 when nothing answered).
_kt_moto_http() {
    curl -s -o /dev/null -w '%{http_code}' --max-time 2 -X "$1" "http://127.0.0.1:$KT_MOTO_PORT$2" || true
}

# Poll until moto answers any HTTP request. Returns 0 when ready, 1 when the
# process died, 2 when it is still alive but silent after the timeout.
_kt_moto_wait_ready() {
    local deadline=$((SECONDS + KT_MOTO_READY_TIMEOUT)) code
    while ((SECONDS < deadline)); do
        kill -0 "$KT_MOTO_PID" 2>/dev/null || return 1
        code=$(_kt_moto_http GET /)
        [[ $code != 000 ]] && return 0
        sleep 0.2
    done
    return 2
}

kt_moto_start() {
    local attempt status code
    kt_require_cmd curl
    [[ -x "$KT_VENV/bin/moto_server" ]] || kt_moto_install || kt_die "could not install moto"
    mkdir -p "$KT_TEST_ENV"
    # The free port is found by binding :0 and closing it, so another process can
    # take it before moto binds it: retry a few times when that happens.
    for attempt in 1 2 3; do
        KT_MOTO_PORT=$(kt_free_port)
        "$KT_VENV/bin/moto_server" -H 127.0.0.1 -p "$KT_MOTO_PORT" </dev/null >"$KT_MOTO_LOG" 2>&1 &
        KT_MOTO_PID=$!
        status=0
        _kt_moto_wait_ready || status=$?
        case $status in
            0) break ;;
            1)
                wait "$KT_MOTO_PID" 2>/dev/null || true
                KT_MOTO_PID=""
                if grep -q 'Address already in use' "$KT_MOTO_LOG" 2>/dev/null && ((attempt < 3)); then
                    kt_log "moto: port $KT_MOTO_PORT was taken meanwhile; retrying on another port"
                    continue
                fi
                _kt_moto_log_tail
                kt_die "moto_server exited before it answered on 127.0.0.1:$KT_MOTO_PORT"
                ;;
            *)
                _kt_moto_log_tail
                kt_moto_stop
                kt_die "moto_server did not answer on 127.0.0.1:$KT_MOTO_PORT within ${KT_MOTO_READY_TIMEOUT}s"
                ;;
        esac
    done

    code=$(_kt_moto_http PUT "/$KT_MOTO_BUCKET")
    if [[ $code != 200 ]]; then
        _kt_moto_log_tail
        kt_die "creating bucket $KT_MOTO_BUCKET on moto failed (HTTP $code)"
    fi

    export KUBETAPE_TEST_S3_URL="s3://$KT_MOTO_BUCKET"
    export KUBETAPE_TEST_S3_ENDPOINT="http://127.0.0.1:$KT_MOTO_PORT"
    export AWS_ACCESS_KEY_ID=test
    export AWS_SECRET_ACCESS_KEY=test
    export AWS_REGION=us-east-1
    export AWS_DEFAULT_REGION=us-east-1
    export AWS_ALLOW_HTTP=true
    export KUBETAPE_REQUIRE_S3=1
    # A developer's own AWS session must not leak into requests signed for moto.
    unset AWS_SESSION_TOKEN AWS_PROFILE
    kt_log "moto $("$KT_VENV/bin/python" -c 'import moto; print(moto.__version__)' 2>/dev/null) (pid $KT_MOTO_PID) on $KUBETAPE_TEST_S3_ENDPOINT, bucket $KT_MOTO_BUCKET"
}

kt_moto_stop() {
    local pid=$KT_MOTO_PID i
    [[ -n $pid ]] || return 0
    KT_MOTO_PID=""
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    set -euo pipefail
    (($# > 0)) || { kt_log "usage: $0 COMMAND [ARGS...]  (runs COMMAND with moto up and the S3 test env exported)"; exit 2; }
    _kt_moto_exit() {
        local rc=$?
        trap - EXIT
        kt_moto_stop
        exit "$rc"
    }
    trap _kt_moto_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
    kt_moto_install || kt_die "could not install moto"
    kt_moto_start
    "$@"
fi
