# shellcheck shell=bash
# Samba AD DC for tests and the demo: provision into a directory, run it in the
# foreground (own process group), stop it. Requires common.sh.
#
# Layout of a DC directory DIR (everything Samba writes lives below it):
#   DIR/etc/smb.conf      the provisioned config (SSPR_TEST_SMB_CONF)
#   DIR/private, state, cache, run, ncalrpc ...
#   DIR/admin_password    Administrator password (mode 600, no trailing newline)
#   DIR/service_password  the delegated service account's password (dc_create_service_account)
#   DIR/samba.log         samba's output;  DIR/samba.pid  root process (= process group)
#   DIR/.provisioned      marker written after a complete provision
#   DIR/.service_account  marker written once the service account has its rights
#
# Samba listens on 127.0.0.1/::1 only (interfaces = lo) unless SSPR_DC_INTERFACES says
# otherwise, and runs just the LDAP service (LDAP 389 with StartTLS, LDAPS 636), with our
# own certificate.
# Note: Samba's LDAP ports are fixed, so one DC per machine at a time.

SSPR_DC_REALM=SSPR.TEST
SSPR_DC_DOMAIN=SSPR
SSPR_DC_BASE_DN="DC=sspr,DC=test"
SSPR_DC_ADMIN_DN="CN=Administrator,CN=Users,DC=sspr,DC=test"
# The account sspr-bridge binds as: no group memberships beyond Domain Users, only the rights
# the README's "Least privilege for the service account" lists, granted on the container the
# users live in (CN=Users here; an OU in a real domain). It lives outside that container, so
# the delegation does not cover itself.
SSPR_DC_SERVICE_SAM=svc-sspr
SSPR_DC_SERVICE_OU="OU=Service Accounts,$SSPR_DC_BASE_DN"
# shellcheck disable=SC2034  # used by services.sh, scripts/demo, docker/samba-dc
SSPR_DC_SERVICE_DN="CN=$SSPR_DC_SERVICE_SAM,$SSPR_DC_SERVICE_OU"
SSPR_DC_USERS_DN="CN=Users,$SSPR_DC_BASE_DN"
SSPR_DC_START_TIMEOUT=${SSPR_DC_START_TIMEOUT:-90}
# Where a newly provisioned DC listens: smb.conf `interfaces` (with bind interfaces only), or
# '*' for every address of the machine - for a DC in a container (docker/samba-dc), which
# other containers must reach.
SSPR_DC_INTERFACES=${SSPR_DC_INTERFACES:-lo}

# The demo users (scripts/demo, docker/samba-dc): user password given-name surname mail (- = none).
# helpdesk1 is in "SSPR Helpdesk Tier1", which is a member of "SSPR Helpdesk".
# shellcheck disable=SC2034  # used by scripts/demo and docker/samba-dc/entrypoint.sh
SSPR_DEMO_USERS=(
    "alice     Demo-Pass-1!      Alice  Anderson  alice@sspr.test"
    "bob       Demo-Pass-2!      Bob    Brown     bob@sspr.test"
    "carol     Demo-Pass-3!      Carol  Clark     -"
    "helpdesk1 Helpdesk-Pass-1!  Helen  Desk      helpdesk1@sspr.test"
)

dc_smb_conf() { echo "$1/etc/smb.conf"; }
dc_admin_password() { cat "$1/admin_password"; }
dc_service_password() { cat "$1/service_password"; }
dc_ca_file() { sed -n 's/^[[:space:]]*tls cafile = //p' "$(dc_smb_conf "$1")"; }

# A random password that satisfies AD complexity (upper, lower, digit, symbol; >= 7).
_dc_gen_password() { echo "Sspr-$(openssl rand -hex 8)-Ad1!"; }

# dc_provision DIR CERT_DIR: provision a fresh domain SSPR.TEST into DIR (no-op when
# DIR already holds a complete provision). CERT_DIR must hold ca.pem, dc.pem, dc.key.
# The admin password is $SSPR_DC_ADMIN_PASSWORD if set, else random.
dc_provision() {
    local dir=$1 certs=$2
    if [[ -f $dir/.provisioned ]]; then
        log "Samba DC already provisioned in $dir"
        return 0
    fi
    local f
    for f in ca.pem dc.pem dc.key; do
        [[ -s $certs/$f ]] || die "dc_provision: missing $certs/$f (run certs/make-certs.sh first)"
    done
    certs=$(cd "$certs" && pwd)
    rm -rf "$dir"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    local pw=${SSPR_DC_ADMIN_PASSWORD:-$(_dc_gen_password)}
    (umask 077 && printf '%s' "$pw" >"$dir/admin_password")

    # Start from an empty config so the host's /etc/samba/smb.conf (Debian's default
    # file-server config) does not leak into the provisioned smb.conf.
    printf '[global]\n' >"$dir/provision-base.conf"
    local listen_opts=("interfaces = $SSPR_DC_INTERFACES" "bind interfaces only = yes")
    [[ $SSPR_DC_INTERFACES == '*' ]] && listen_opts=("bind interfaces only = no")  # wildcard addresses
    local opts=(
        "tls enabled = yes"
        "tls keyfile = $certs/dc.key"
        "tls certfile = $certs/dc.pem"
        "tls cafile = $certs/ca.pem"
        "${listen_opts[@]}"
        # LDAP only: no smbd, kdc, dns, nbt, rpc, winbindd... -> fast start, 2 ports.
        "server services = ldap"
        "pid directory = $dir/run"
        "ncalrpc dir = $dir/ncalrpc"
        "log file = $dir/log.%m"
        "debug hires timestamp = yes"
    )
    local args=(
        domain provision -s "$dir/provision-base.conf"
        --realm="$SSPR_DC_REALM" --domain="$SSPR_DC_DOMAIN" --host-name=dc1
        --server-role=dc --dns-backend=NONE
        --adminpass="$pw" --targetdir="$dir"
    )
    for f in "${opts[@]}"; do args+=(--option="$f"); done
    if ! samba-tool "${args[@]}" >"$dir/provision.log" 2>&1; then
        tail -n 30 "$dir/provision.log" >&2
        die "samba-tool domain provision failed (full log: $dir/provision.log)"
    fi
    # Samba keeps accepting the previous password for 60 minutes after a change or reset
    # (like AD's OldPasswordAllowedPeriod for NTLM), LDAP simple binds included. Tests must
    # see the old password fail at once, and so should the demo. provision drops this
    # option, so it goes into [global] afterwards.
    sed -i 's/^\[global\]$/[global]\n\told password allowed period = 0/' "$(dc_smb_conf "$dir")"
    # Test-friendly password policy: allow immediate re-change, lock after 5 bad
    # passwords for 30 minutes. Complexity on, min length 7, history 24 stay default.
    if ! samba-tool domain passwordsettings set -s "$(dc_smb_conf "$dir")" \
            --min-pwd-age=0 --account-lockout-threshold=5 \
            --account-lockout-duration=30 --reset-account-lockout-after=30 \
            >>"$dir/provision.log" 2>&1; then
        tail -n 30 "$dir/provision.log" >&2
        die "samba-tool domain passwordsettings set failed (log: $dir/provision.log)"
    fi
    touch "$dir/.provisioned"
}

# dc_ldapsearch DIR [ldapsearch args...]: LDAPS as Administrator, verified with our CA only.
dc_ldapsearch() {
    local dir=$1; shift
    LDAPTLS_CACERT="$(dc_ca_file "$dir")" LDAPTLS_REQCERT=demand \
        ldapsearch -H ldaps://127.0.0.1:636 -x -D "$SSPR_DC_ADMIN_DN" -y "$dir/admin_password" "$@"
}
dc_ready() { dc_ldapsearch "$1" -b "$SSPR_DC_BASE_DN" -s base dn >/dev/null 2>&1; }

# dc_ports_free: die unless LDAP ports 389 and 636 are free (Samba cannot use others).
dc_ports_free() {
    local p
    for p in 389 636; do
        if port_in_use "$p"; then
            ss -Hltnp "sport = :$p" >&2 || true
            die "port $p is already in use - another Samba DC (e.g. scripts/env-up or scripts/demo; see the first line of /tmp/sspr-test-env.sh for how to stop env-up) or slapd is running. Stop it, or run the tests against it: source /tmp/sspr-test-env.sh && cargo test"
        fi
    done
}

# dc_start DIR: start the provisioned DC and wait until an authenticated LDAPS search,
# verified against our CA, succeeds. Registers dc_stop for script exit.
dc_start() {
    local dir=$1
    [[ -f $dir/.provisioned ]] || die "dc_start: $dir is not a provisioned DC"
    dc_ports_free
    : >"$dir/samba.log"
    # -F: foreground without the stdin-EOF handling of -i; own process group via setsid.
    start_bg "$dir/samba.log" "$dir/samba.pid" samba -F --debug-stdout -s "$(dc_smb_conf "$dir")"
    on_exit dc_stop "$dir"
    local pid deadline
    pid=$(cat "$dir/samba.pid")
    deadline=$(( $(now_ms) + SSPR_DC_START_TIMEOUT * 1000 ))
    until dc_ready "$dir"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 40 "$dir/samba.log" >&2
            die "samba exited during startup (log: $dir/samba.log)"
        fi
        if (( $(now_ms) > deadline )); then
            tail -n 40 "$dir/samba.log" >&2
            dc_ldapsearch "$dir" -b "$SSPR_DC_BASE_DN" -s base dn >&2 || true
            die "Samba DC not ready over LDAPS after ${SSPR_DC_START_TIMEOUT}s (log: $dir/samba.log)"
        fi
        sleep 0.1
    done
}

dc_stop() {
    local dir=$1
    [[ -f $dir/samba.pid ]] || return 0
    stop_pid_group "$(cat "$dir/samba.pid")" 15
    rm -f "$dir/samba.pid"
}

# dc_samba_tool DIR ARGS...: samba-tool against the DC's database (works while it runs).
dc_samba_tool() {
    local dir=$1; shift
    samba-tool "$@" -s "$(dc_smb_conf "$dir")"
}

# dc_create_demo_objects DIR: the SSPR_DEMO_USERS and their groups (nested: helpdesk1 ->
# SSPR Helpdesk Tier1 -> SSPR Helpdesk), skipping what exists. Works whether samba runs or not.
dc_create_demo_objects() {
    local dir=$1 users groups line sam pw given sn mail g
    users=$(dc_samba_tool "$dir" user list)
    groups=$(dc_samba_tool "$dir" group list)
    for line in "${SSPR_DEMO_USERS[@]}"; do
        read -r sam pw given sn mail <<<"$line"
        grep -qx "$sam" <<<"$users" && continue
        local args=(user create "$sam" "$pw" --given-name="$given" --surname="$sn")
        [[ $mail != - ]] && args+=(--mail-address="$mail")
        dc_samba_tool "$dir" "${args[@]}" >/dev/null
        log "created user $sam"
    done
    for g in "SSPR Helpdesk" "SSPR Helpdesk Tier1"; do
        grep -qx "$g" <<<"$groups" && continue
        dc_samba_tool "$dir" group add "$g" >/dev/null
        log "created group $g"
    done
    _dc_ensure_member "$dir" "SSPR Helpdesk" "SSPR Helpdesk Tier1"
    _dc_ensure_member "$dir" "SSPR Helpdesk Tier1" helpdesk1
}
_dc_ensure_member() { # DIR GROUP MEMBER
    # Not `samba-tool ... | grep -q`: grep exiting early could fail samba-tool with SIGPIPE.
    if ! grep -qx "$3" <<<"$(dc_samba_tool "$1" group listmembers "$2")"; then
        dc_samba_tool "$1" group addmembers "$2" "$3" >/dev/null
        log "added $3 to group $2"
    fi
}

# The delegation, as SDDL ACEs (MS-ADTS 5.1.3.2 control access rights, schemaIDGUIDs):
_DC_RIGHT_RESET_PASSWORD=00299570-246d-11d0-a768-00aa006e0529    # User-Force-Change-Password
_DC_RIGHT_UNEXPIRE_PASSWORD=ccc2dc7d-a6ad-4a7a-8846-c04e3cc53501 # Unexpire-Password
_DC_ATTR_LOCKOUT_TIME=28630ebf-41d5-11d1-a9c1-0000f80367c1
_DC_ATTR_PWD_LAST_SET=bf967a0a-0de6-11d0-a285-00aa003049e2
_DC_CLASS_USER=bf967aba-0de6-11d0-a285-00aa003049e2

# dc_service_account_aces SID: the ACEs for the users' container. CIIO + inherited object type
# user: they apply to every user object below it, not to the container itself.
dc_service_account_aces() {
    local sid=$1
    printf '(OA;CIIO;CR;%s;%s;%s)' "$_DC_RIGHT_RESET_PASSWORD" "$_DC_CLASS_USER" "$sid"
    printf '(OA;CIIO;WP;%s;%s;%s)' "$_DC_ATTR_LOCKOUT_TIME" "$_DC_CLASS_USER" "$sid"
    printf '(OA;CIIO;WP;%s;%s;%s)' "$_DC_ATTR_PWD_LAST_SET" "$_DC_CLASS_USER" "$sid"
}
# dc_service_account_domain_ace SID: the ACE for the domain head.
dc_service_account_domain_ace() {
    printf '(OA;;CR;%s;;%s)' "$_DC_RIGHT_UNEXPIRE_PASSWORD" "$1"
}
# dc_service_account_pso_ace SID: read every fine-grained password policy (by default only
# Domain Admins may), so the service can check new passwords against them in advance.
dc_service_account_pso_ace() {
    printf '(A;CIIO;RP;;;%s)' "$1"
}

# dc_create_service_account DIR: the delegated service account $SSPR_DC_SERVICE_DN with a
# random password in DIR/service_password (0600), and its rights on $SSPR_DC_USERS_DN, the
# domain head and the Password Settings Container. No-op once done. Works whether samba runs
# or not.
dc_create_service_account() {
    local dir=$1 sid
    [[ -f $dir/.service_account && -s $dir/service_password ]] && return 0
    local pw out
    pw=$(_dc_gen_password)
    (umask 077 && printf '%s' "$pw" >"$dir/service_password.tmp")
    # Create first, look only if that fails: every samba-tool call costs a quarter second.
    if ! out=$(dc_samba_tool "$dir" ou create "$SSPR_DC_SERVICE_OU" 2>&1) \
            && ! grep -qxF "$SSPR_DC_SERVICE_OU" <<<"$(dc_samba_tool "$dir" ou list --full-dn)"; then
        die "dc_create_service_account: cannot create $SSPR_DC_SERVICE_OU: $out"
    fi
    if ! out=$(dc_samba_tool "$dir" user create "$SSPR_DC_SERVICE_SAM" "$pw" \
            --userou="${SSPR_DC_SERVICE_OU%,"$SSPR_DC_BASE_DN"}" \
            --description="sspr-bridge service account (delegated rights, see README)" 2>&1); then
        # An earlier attempt stopped half-way: give the account the password written now.
        grep -qxF "$SSPR_DC_SERVICE_SAM" <<<"$(dc_samba_tool "$dir" user list)" \
            || die "dc_create_service_account: cannot create $SSPR_DC_SERVICE_SAM: $out"
        dc_samba_tool "$dir" user setpassword "$SSPR_DC_SERVICE_SAM" --newpassword="$pw" >/dev/null
    fi
    dc_samba_tool "$dir" user setexpiry "$SSPR_DC_SERVICE_SAM" --noexpiry >/dev/null
    mv -f "$dir/service_password.tmp" "$dir/service_password"
    sid=$(dc_samba_tool "$dir" user show "$SSPR_DC_SERVICE_SAM" --attributes=objectSid \
        | sed -n 's/^objectSid: //p')
    [[ $sid == S-1-5-21-* ]] || die "dc_create_service_account: no objectSid for $SSPR_DC_SERVICE_SAM"
    # dsacl set skips an ACE the object already has, so a repeated run adds nothing.
    dc_samba_tool "$dir" dsacl set --objectdn="$SSPR_DC_USERS_DN" \
        --sddl="$(dc_service_account_aces "$sid")" >/dev/null
    dc_samba_tool "$dir" dsacl set --objectdn="$SSPR_DC_BASE_DN" \
        --sddl="$(dc_service_account_domain_ace "$sid")" >/dev/null
    dc_samba_tool "$dir" dsacl set --objectdn="CN=Password Settings Container,CN=System,$SSPR_DC_BASE_DN" \
        --sddl="$(dc_service_account_pso_ace "$sid")" >/dev/null
    touch "$dir/.service_account"
    log "created service account $SSPR_DC_SERVICE_SAM with delegated rights on $SSPR_DC_USERS_DN"
}
