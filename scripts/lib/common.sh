# shellcheck shell=bash
# Shared helpers for scripts/test, scripts/env-up, scripts/demo and scripts/mail.
# Sourced, never executed. Requires bash >= 4.4 and root (Debian/Ubuntu).

# shellcheck disable=SC2034  # used by the scripts that source this file
SSPR_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck disable=SC2034
SSPR_PYTHON=/usr/bin/python3   # Debian's python: has python3-aiosmtpd (pyenv's may not)

# ---------------------------------------------------------------- logging
if [[ -t 2 ]]; then _c_on=$'\e[1;34m' _c_err=$'\e[1;31m' _c_off=$'\e[0m'; else _c_on='' _c_err='' _c_off=''; fi
log()  { printf '%s==>%s %s\n' "$_c_on" "$_c_off" "$*" >&2; }
warn() { printf '%swarning:%s %s\n' "$_c_err" "$_c_off" "$*" >&2; }
die()  { printf '%serror:%s %s\n' "$_c_err" "$_c_off" "$*" >&2; exit 1; }

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# timed LABEL CMD...  - run CMD, then log how long it took; records "LABEL Nms" in SSPR_TIMINGS.
# Deliberately no `CMD || ...` here: that would switch off `set -e` inside shell functions.
# Under set -e a failing CMD ends the script; in `timed ... || die` its status is returned.
SSPR_TIMINGS=()
timed() {
    local label=$1 t0 rc dt; shift
    t0=$(now_ms)
    "$@"
    rc=$?
    dt=$(( $(now_ms) - t0 ))
    SSPR_TIMINGS+=("$(printf '%-30s %7d ms' "$label" "$dt")")
    log "$label: ${dt} ms"
    return "$rc"
}
print_timings() {
    [[ ${#SSPR_TIMINGS[@]} -gt 0 ]] || return 0
    log "timings:"
    printf '    %s\n' "${SSPR_TIMINGS[@]}" >&2
}

require_root() {
    [[ $(id -u) == 0 ]] || die "this script must run as root (it installs packages and runs Samba); try: sudo $0"
}

# ---------------------------------------------------------------- cleanup stack
# on_exit CMD... pushes a command; they run in reverse order when the script exits
# (normally, on error, or on SIGINT/SIGTERM).
_SSPR_CLEANUP=()
on_exit() {
    local q
    printf -v q '%q ' "$@"
    _SSPR_CLEANUP+=("$q")
}
_sspr_run_cleanup() {
    local rc=$? i
    trap - EXIT
    trap "" INT TERM HUP   # finish cleaning up even if signalled again
    for (( i=${#_SSPR_CLEANUP[@]}-1; i>=0; i-- )); do
        eval "${_SSPR_CLEANUP[i]}" || true
    done
    exit "$rc"
}
trap _sspr_run_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# make_temp_dir VAR: create a temp dir, store its path in VAR (not via $(...): the
# cleanup must be registered in this shell). Removed on exit unless SSPR_KEEP_TEST_DIR=1.
make_temp_dir() {
    local -n _out=$1
    _out=$(mktemp -d "${TMPDIR:-/tmp}/sspr-test.XXXXXX")
    chmod 711 "$_out"   # the postgres user must be able to traverse into it
    if [[ ${SSPR_KEEP_TEST_DIR:-0} == 1 ]]; then
        on_exit log "kept test dir (SSPR_KEEP_TEST_DIR=1): $_out"
    else
        on_exit rm -rf "$_out"
    fi
}

# ---------------------------------------------------------------- dependencies
# What a Samba AD DC needs, natively and in docker/samba-dc/Dockerfile (scripts/check-docker
# holds the two to the same list).
SSPR_DC_APT_PACKAGES=(
    samba samba-dsdb-modules samba-vfs-modules samba-ad-provision  # AD DC, samba-tool
    ldap-utils                                    # ldapsearch for readiness checks / debugging
    openssl ca-certificates                       # test PKI
    procps iproute2 util-linux                    # pgrep, ss, setsid/runuser, ip
)
SSPR_APT_PACKAGES=(
    "${SSPR_DC_APT_PACKAGES[@]}"
    postgresql                                    # initdb/pg_ctl/psql under /usr/lib/postgresql/*/bin
    python3 python3-aiosmtpd                      # SMTP sink
    python3-yaml                                  # docker-compose.yml syntax check (no Docker engine here)
    chromium chromium-driver                      # browser tests (tests/it/browser.rs), headless
    libssl-dev pkg-config                         # webauthn-rs's signature checks link OpenSSL
)
_pkg_installed() { [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]; }

# install_deps [extra packages...]: apt-get install whatever is missing (fast no-op otherwise).
install_deps() {
    local missing=() p
    command -v dpkg-query >/dev/null || die "install_deps: this harness needs a Debian/Ubuntu system (dpkg/apt)"
    for p in "${SSPR_APT_PACKAGES[@]}" "$@"; do
        _pkg_installed "$p" || missing+=("$p")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    require_root
    log "installing missing packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    local out
    out=$(apt-get update -q 2>&1) || { printf '%s\n' "$out" >&2; die "apt-get update failed"; }
    out=$(apt-get install -y -q --no-install-recommends "${missing[@]}" 2>&1) \
        || { printf '%s\n' "$out" | tail -n 40 >&2; die "apt-get install ${missing[*]} failed"; }
}

# install_browser_test_deps: the npm packages the browser tests inject into Chromium (axe-core,
# pinned by tests/axe/package-lock.json) into tests/axe/node_modules; a no-op when the pinned
# version is there. Node.js and npm from apt where the machine has none.
install_browser_test_deps() {
    local dir=$SSPR_REPO_ROOT/tests/axe want have
    command -v npm >/dev/null || install_deps nodejs npm
    want=$(node -p "require('$dir/package-lock.json').packages['node_modules/axe-core'].version")
    have=$(node -p "require('$dir/node_modules/axe-core/package.json').version" 2>/dev/null || true)
    [[ $have == "$want" ]] && return 0
    log "installing axe-core $want from the npm registry into $dir/node_modules"
    local out
    out=$(npm ci --prefix "$dir" --no-audit --no-fund 2>&1) \
        || { printf '%s\n' "$out" | tail -n 40 >&2; die "npm ci --prefix $dir failed"; }
}

# ---------------------------------------------------------------- ports / waiting
port_in_use() { # PORT - true if anything listens on TCP PORT (any address)
    [[ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]]
}
# free_port PREFERRED: print PREFERRED if free on 127.0.0.1, else the next free port above it.
free_port() {
    local p=$1
    while port_in_use "$p"; do p=$((p + 1)); done
    echo "$p"
}

# wait_until TIMEOUT_S DESCRIPTION CMD...: poll CMD every 0.1 s until it succeeds.
wait_until() {
    local timeout=$1 what=$2; shift 2
    local deadline=$(( $(now_ms) + timeout * 1000 ))
    until "$@" >/dev/null 2>&1; do
        (( $(now_ms) < deadline )) || { warn "timed out after ${timeout}s waiting for $what"; return 1; }
        sleep 0.1
    done
}

# stop_pid_group PGID [GRACE_S]: SIGTERM a process group we started, SIGKILL after grace.
stop_pid_group() {
    local pgid=$1 grace=${2:-10} i
    [[ -n $pgid ]] || return 0
    kill -TERM -- "-$pgid" 2>/dev/null || return 0
    for (( i=0; i<grace*10; i++ )); do
        pgrep -g "$pgid" >/dev/null 2>&1 || return 0
        sleep 0.1
    done
    warn "process group $pgid did not stop within ${grace}s; sending SIGKILL"
    kill -KILL -- "-$pgid" 2>/dev/null || true
}

# start_bg LOGFILE PIDFILE CMD...: start CMD in its own session/process group (so the
# whole tree can be stopped), stdin from /dev/null, output to LOGFILE.
start_bg() {
    local logfile=$1 pidfile=$2; shift 2
    setsid "$@" </dev/null >>"$logfile" 2>&1 &
    echo $! >"$pidfile"
}
