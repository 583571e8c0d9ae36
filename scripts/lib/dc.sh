# shellcheck shell=bash
# Samba AD DC for tests and the demo: provision a domain into a directory (DC1), join a second
# DC of the same domain into another (DC2), run each in the foreground (own process group),
# replicate between them on demand, stop them. Requires common.sh.
#
# Layout of a DC directory DIR (everything Samba writes lives below it):
#   DIR/etc/smb.conf      the provisioned config (SSPR_TEST_SMB_CONF, SSPR_TEST_DC2_SMB_CONF)
#   DIR/private, state, cache, run, ncalrpc ...
#   DIR/address           the address clients reach it at (absent: 127.0.0.1)
#   DIR/admin_password    Administrator password (mode 600, no trailing newline)
#   DIR/service_password  the delegated service account's password (dc_create_service_account)
#   DIR/samba.log         samba's output;  DIR/samba.pid  root process (= process group)
#   DIR/.provisioned      marker written after a complete provision or join
#   DIR/.service_account  marker written once the service account has its rights
#
# Each DC listens on its own address only (smb.conf interfaces + bind interfaces only):
# DC1 on $SSPR_DC1_ADDRESS (and ::1 when that is 127.0.0.1), DC2 on $SSPR_DC2_ADDRESS. Samba's
# ports are fixed (LDAP 389 with StartTLS, LDAPS 636, RPC 135 and 49152+), so two DCs need two
# addresses; dc_start puts an address no interface has on lo. Both run only what the tests and
# a join need: the LDAP server with our own certificate, and the RPC server for DRSUAPI, which
# `domain join` and dc_replicate use. No DNS, Kerberos KDC, CLDAP, smbd, winbindd or
# replication service (drepl): changes reach the other DC only through dc_replicate.

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
# The DCs' addresses. Override them to run a second environment beside one that already uses
# the defaults (certs/make-certs.sh reads the same variables for the certificates' SANs).
SSPR_DC1_ADDRESS=${SSPR_DC1_ADDRESS:-127.0.0.1}
SSPR_DC2_ADDRESS=${SSPR_DC2_ADDRESS:-127.0.0.2}
# Where a newly provisioned DC listens: smb.conf `interfaces` (with bind interfaces only), or
# '*' for every address of the machine - for a DC in a container (docker/samba-dc), which
# other containers must reach. Not `lo`: that would take every address on lo, DC2's too. ::1
# with 127.0.0.1, so ldaps://localhost answers whichever address family a client tries first.
if [[ -z ${SSPR_DC_INTERFACES:-} ]]; then
    SSPR_DC_INTERFACES=$SSPR_DC1_ADDRESS
    if [[ $SSPR_DC1_ADDRESS == 127.0.0.1 ]]; then SSPR_DC_INTERFACES+=" ::1"; fi
fi
# What both DCs run: LDAP for the clients, RPC for DRSUAPI (join, replication). Measured: a join
# needs nothing else once it is told the site (no CLDAP) and uses NTLM (no KDC).
SSPR_DC_SERVICES="ldap rpc"
# The extended attribute Samba keeps the sysvol's NT ACLs in (acl_xattr:security_acl_name). Empty:
# Samba's default, security.NTACL, which only a process with CAP_SYS_ADMIN may write, so
# `domain provision` fails with NT_STATUS_ACCESS_DENIED in setsysvolacl inside a container with
# the default capabilities. docker/samba-dc sets user.NTACL, which any root may write; this DC
# serves no files over SMB, so where the ACLs live changes nothing else.
SSPR_DC_ACL_XATTR=${SSPR_DC_ACL_XATTR:-}

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
dc_address() { cat "$1/address" 2>/dev/null || echo 127.0.0.1; }
dc_ldaps_url() { echo "ldaps://$(_dc_url_host "$(dc_address "$1")"):636"; }
_dc_url_host() { if [[ $1 == *:* ]]; then echo "[$1]"; else echo "$1"; fi; }  # IPv6 in brackets
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
        "server services = $SSPR_DC_SERVICES"
        "pid directory = $dir/run"
        "ncalrpc dir = $dir/ncalrpc"
        "log file = $dir/log.%m"
        "debug hires timestamp = yes"
    )
    [[ -n $SSPR_DC_ACL_XATTR ]] && opts+=("acl_xattr:security_acl_name = $SSPR_DC_ACL_XATTR")
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
    _dc_no_old_password "$dir"
    # Test-friendly password policy: allow immediate re-change, lock after 5 bad
    # passwords for 30 minutes. Complexity on, min length 7, history 24 stay default.
    if ! samba-tool domain passwordsettings set -s "$(dc_smb_conf "$dir")" \
            --min-pwd-age=0 --account-lockout-threshold=5 \
            --account-lockout-duration=30 --reset-account-lockout-after=30 \
            >>"$dir/provision.log" 2>&1; then
        tail -n 30 "$dir/provision.log" >&2
        die "samba-tool domain passwordsettings set failed (log: $dir/provision.log)"
    fi
    # Clients reach it at its first address; with '*' or an interface name (no address), at
    # the default, 127.0.0.1.
    local first=${SSPR_DC_INTERFACES%% *}
    if [[ $first == *[.:]* ]]; then printf '%s\n' "$first" >"$dir/address"; fi
    touch "$dir/.provisioned"
}

# Samba keeps accepting the previous password for 60 minutes after a change or reset
# (like AD's OldPasswordAllowedPeriod for NTLM), LDAP simple binds included. Tests must
# see the old password fail at once, and so should the demo. provision and join drop this
# option, so it goes into [global] afterwards.
_dc_no_old_password() {
    sed -i 's/^\[global\]$/[global]\n\told password allowed period = 0/' "$(dc_smb_conf "$1")"
}

# dc_join DIR CERT_DIR DC1_DIR: make DIR a second DC, dc2 at $SSPR_DC2_ADDRESS, of the domain of
# the running DC1, as an administrator adds one: `samba-tool domain join ... DC` creates its
# accounts on DC1 and replicates schema, configuration and domain from it over DRSUAPI (3 to
# 8 s). No-op when DIR already holds a complete join. CERT_DIR must hold ca.pem, dc2.pem,
# dc2.key; DIR gets DC1's admin_password and service_password (same domain, same accounts).
dc_join() {
    local dir=$1 certs=$2 dc1=$3 f
    if [[ -f $dir/.provisioned ]]; then
        log "Samba DC2 already joined in $dir"
        return 0
    fi
    for f in ca.pem dc2.pem dc2.key; do
        [[ -s $certs/$f ]] || die "dc_join: missing $certs/$f (run certs/make-certs.sh first)"
    done
    certs=$(cd "$certs" && pwd)
    rm -rf "$dir"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    (umask 077 && cp "$dc1/admin_password" "$dc1/service_password" "$dir/")
    # As for provision: not the host's smb.conf. But the client's workgroup must be the domain:
    # under Debian's default (WORKGROUP) DC1 passes the Administrator's NTLM logon on to winbind,
    # which it does not run, and refuses it.
    printf '[global]\n\tworkgroup = %s\n\trealm = %s\n' "$SSPR_DC_DOMAIN" "$SSPR_DC_REALM" \
        >"$dir/join-base.conf"
    local opts=(
        "netbios name = DC2"
        "tls enabled = yes"
        "tls keyfile = $certs/dc2.key"
        "tls certfile = $certs/dc2.pem"
        "tls cafile = $certs/ca.pem"
        "interfaces = $SSPR_DC2_ADDRESS"
        "bind interfaces only = yes"
        "server services = $SSPR_DC_SERVICES"
        "pid directory = $dir/run"
        "ncalrpc dir = $dir/ncalrpc"
        "log file = $dir/log.%m"
        "debug hires timestamp = yes"
    )
    # --site: else join asks DC1 for it over CLDAP; --use-kerberos=off: there is no KDC.
    local args=(
        domain join "$SSPR_DC_REALM" DC -s "$dir/join-base.conf"
        --server="$(dc_address "$dc1")" --site=Default-First-Site-Name
        -U Administrator --use-kerberos=off --dns-backend=NONE --targetdir="$dir"
    )
    for f in "${opts[@]}"; do args+=(--option="$f"); done
    # The password from the environment (samba-tool reads PASSWD), not the command line.
    if ! PASSWD=$(dc_admin_password "$dc1") samba-tool "${args[@]}" >"$dir/join.log" 2>&1; then
        tail -n 30 "$dir/join.log" >&2
        die "samba-tool domain join failed (full log: $dir/join.log)"
    fi
    _dc_no_old_password "$dir"
    printf '%s\n' "$SSPR_DC2_ADDRESS" >"$dir/address"
    touch "$dir/.provisioned"
}

# dc_ldapsearch DIR [ldapsearch args...]: LDAPS as Administrator, verified with our CA only.
dc_ldapsearch() {
    local dir=$1; shift
    LDAPTLS_CACERT="$(dc_ca_file "$dir")" LDAPTLS_REQCERT=demand \
        ldapsearch -H "$(dc_ldaps_url "$dir")" -x -D "$SSPR_DC_ADMIN_DN" -y "$dir/admin_password" "$@"
}
dc_ready() { dc_ldapsearch "$1" -b "$SSPR_DC_BASE_DN" -s base dn >/dev/null 2>&1; }

# dc_listen_addresses DIR: where the DC binds, from its smb.conf ('*': every address).
dc_listen_addresses() {
    local conf addrs
    conf=$(dc_smb_conf "$1")
    addrs=$(sed -n 's/^[[:space:]]*interfaces = //p' "$conf" | tr ',' ' ')
    if [[ -z $addrs ]] || grep -qix '[[:space:]]*bind interfaces only = no' "$conf"; then addrs='*'; fi
    echo "$addrs"
}

# _dc_port_taken PORT ADDR: true if something listens on TCP PORT at ADDR or at a wildcard
# address, which would keep samba from binding it there too. An ADDR that is not an IP address
# ('*', an interface name like lo) is taken if PORT is in use anywhere.
_dc_port_taken() {
    local port=$1 want=$2 local_addr host
    [[ $want == *[.:]* ]] || want='*'
    while read -r local_addr; do
        host=${local_addr%:*} && host=${host#[} && host=${host%]}
        case $host in "$want"|0.0.0.0|'*'|::) return 0 ;; esac
        [[ $want == '*' ]] && return 0
    done < <(ss -Hltn "sport = :$port" 2>/dev/null | awk '{print $4}')
    return 1
}

# dc_ports_free [ADDR...]: die unless samba can bind LDAP 389 and LDAPS 636 (it cannot use
# others) at each ADDR; by default where DC1 and DC2 of this configuration listen.
dc_ports_free() {
    local addrs=("$@") a p
    [[ $# -gt 0 ]] || read -r -a addrs <<<"$SSPR_DC_INTERFACES $SSPR_DC2_ADDRESS"
    for a in "${addrs[@]}"; do
        for p in 389 636; do
            _dc_port_taken "$p" "$a" || continue
            ss -Hltnp "sport = :$p" >&2 || true
            die "port $p is already in use at $a - another Samba DC (e.g. scripts/env-up or scripts/demo; see the first line of /tmp/sspr-test-env.sh for how to stop env-up) or slapd is running. Stop it, run the tests against it (source /tmp/sspr-test-env.sh && cargo test), or give the DCs other addresses (e.g. SSPR_DC1_ADDRESS=127.0.0.11 SSPR_DC2_ADDRESS=127.0.0.12)"
        done
    done
}

# _dc_add_address DIR: put the DC's address on lo if it is an IPv4 address no interface has;
# true if it did. Samba binds only to interface addresses: 127.0.0.2 reaches lo through
# 127.0.0.0/8, but samba will not take it.
_dc_add_address() {
    local addr
    addr=$(dc_address "$1")
    [[ $addr =~ ^[0-9]+(\.[0-9]+){3}$ && -z $(ip -o addr show to "$addr/32" 2>/dev/null) ]] \
        || return 1
    ip addr add "$addr/32" dev lo || die "cannot add $addr to lo (needed by the DC in $1)"
}

# dc_start DIR: start the provisioned (or joined) DC and wait until it is ready (dc_wait_ready).
# Registers dc_stop for script exit, and the removal of its address if this put it on lo.
dc_start() {
    local dir=$1
    [[ -f $dir/.provisioned ]] || die "dc_start: $dir is not a provisioned DC"
    if _dc_add_address "$dir"; then
        on_exit ip addr del "$(dc_address "$dir")/32" dev lo
    fi
    : >"$dir/samba.log"
    dc_spawn "$dir"
    on_exit dc_stop "$dir"
    dc_wait_ready "$dir"
}

# dc_spawn DIR: start samba for the DC in DIR in its own process group (pid in DIR/samba.pid),
# without waiting and without registering a stop: scripts/dc-ctl restarts a DC that must
# outlive it. Puts a missing address on lo and leaves it there. Appends to DIR/samba.log.
dc_spawn() {
    local dir=$1
    [[ -f $dir/.provisioned ]] || die "dc_spawn: $dir is not a provisioned DC"
    _dc_add_address "$dir" || true
    # shellcheck disable=SC2046  # one word per address
    dc_ports_free $(dc_listen_addresses "$dir")
    # -F: foreground without the stdin-EOF handling of -i; own process group via setsid.
    start_bg "$dir/samba.log" "$dir/samba.pid" samba -F --debug-stdout -s "$(dc_smb_conf "$dir")"
}

# dc_running DIR: true if the process group in DIR/samba.pid is alive.
dc_running() { [[ -s $1/samba.pid ]] && kill -0 "$(cat "$1/samba.pid")" 2>/dev/null; }

# dc_wait_ready DIR: wait until an authenticated LDAPS search on the started DC, verified
# against our CA, succeeds; die if samba exits or SSPR_DC_START_TIMEOUT passes.
dc_wait_ready() {
    local dir=$1 pid deadline
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

# dc_stop DIR: stop the DC's whole process group; returns once every process is gone and its
# ports are free again.
dc_stop() {
    local dir=$1
    [[ -f $dir/samba.pid ]] || return 0
    stop_pid_group "$(cat "$dir/samba.pid")" 15
    rm -f "$dir/samba.pid"
}

# dc_replicate FROM_DIR TO_DIR [NC]: pull what changed in naming context NC (default: the
# domain) from the running DC in FROM_DIR into the database of the DC in TO_DIR, now. Nothing
# else replicates here (no drepl, see the top), so this is how a test lets time pass.
# --local: samba-tool writes TO's database itself, connecting to FROM over DRSUAPI as TO's
# machine account (-P); it works whether TO runs or not (about 0.4 s).
dc_replicate() {
    local from=$1 to=$2 nc=${3:-$SSPR_DC_BASE_DN} out
    # The first argument, the destination DC, is ignored with --local.
    if ! out=$(samba-tool drs replicate local "$(dc_address "$from")" "$nc" --local -P \
            -s "$(dc_smb_conf "$to")" 2>&1); then
        printf '%s\n' "$out" >&2
        return 1
    fi
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
