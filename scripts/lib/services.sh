# shellcheck shell=bash
# Bring up the full integration-test environment below one root directory:
#   ROOT/certs  test PKI          ROOT/dc    Samba AD DC1 (LDAP 389 + LDAPS 636 at $SSPR_DC1_ADDRESS)
#   ROOT/dc2    DC2, joined to DC1's domain (at $SSPR_DC2_ADDRESS; see dc.sh, scripts/dc-ctl)
#   ROOT/pg     PostgreSQL        ROOT/smtp  SMTP sink (Maildir ROOT/smtp/maildir)
# and describe it with the SSPR_TEST_* variables (the contract with tests/).
# Requires common.sh, dc.sh, pg.sh, smtp.sh.

# services_up ROOT: start everything (each piece is stopped again on script exit)
# and fill SSPR_TEST_ENV (an array of NAME=value).
services_up() {
    local root=$1
    timed "certificates" "$SSPR_REPO_ROOT/certs/make-certs.sh" "$root/certs" >/dev/null
    timed "samba provision" dc_provision "$root/dc" "$root/certs"
    timed "service account" dc_create_service_account "$root/dc"
    timed "samba start (to LDAPS ready)" dc_start "$root/dc"
    timed "samba dc2 join" dc_join "$root/dc2" "$root/certs" "$root/dc"
    timed "samba dc2 start (to LDAPS ready)" dc_start "$root/dc2"
    timed "dc2: service account rights" dc2_service_account_check "$root/dc2"
    local pg_port smtp_port
    pg_port=$(free_port "${SSPR_TEST_PG_PORT:-55432}")
    timed "postgres start" pg_start "$root/pg" "$pg_port"
    smtp_port=$(free_port "${SSPR_TEST_SMTP_PORT:-2525}")
    timed "smtp sink start" smtp_start "$root/smtp" "$smtp_port" "$root/certs"

    local dc1 dc2
    dc1=$(_dc_url_host "$(dc_address "$root/dc")")
    dc2=$(_dc_url_host "$(dc_address "$root/dc2")")
    SSPR_TEST_ENV=(
        "SSPR_TEST_LDAPS_URL=ldaps://$dc1:636"
        "SSPR_TEST_LDAP_URL=ldap://$dc1:389"
        "SSPR_TEST_LDAPS_HOSTNAME_URL=ldaps://localhost:636"
        "SSPR_TEST_DC1_LDAPS_URL=ldaps://$dc1:636"
        "SSPR_TEST_DC1_DIR=$root/dc"
        "SSPR_TEST_DC2_LDAPS_URL=ldaps://$dc2:636"
        "SSPR_TEST_DC2_LDAP_URL=ldap://$dc2:389"
        "SSPR_TEST_DC2_DIR=$root/dc2"
        "SSPR_TEST_DC2_SMB_CONF=$(dc_smb_conf "$root/dc2")"
        "SSPR_TEST_DC_CTL=$SSPR_REPO_ROOT/scripts/dc-ctl"
        "SSPR_TEST_CA_FILE=$root/certs/ca.pem"
        "SSPR_TEST_OTHER_CA_FILE=$root/certs/other-ca.pem"
        "SSPR_TEST_BASE_DN=$SSPR_DC_BASE_DN"
        "SSPR_TEST_ADMIN_DN=$SSPR_DC_ADMIN_DN"
        "SSPR_TEST_ADMIN_PASSWORD=$(dc_admin_password "$root/dc")"
        "SSPR_TEST_SERVICE_DN=$SSPR_DC_SERVICE_DN"
        "SSPR_TEST_SERVICE_PASSWORD=$(dc_service_password "$root/dc")"
        "SSPR_TEST_SMB_CONF=$(dc_smb_conf "$root/dc")"
        "SSPR_TEST_POSTGRES_URL=postgres://sspr@127.0.0.1:$pg_port/sspr"
        "SSPR_TEST_SMTP_HOST=127.0.0.1"
        "SSPR_TEST_SMTP_PORT=$smtp_port"
        "SSPR_TEST_MAILDIR=$root/smtp/maildir"
    )
}

# dc2_service_account_check DIR: the joined DC has the service account and its delegation
# (replicated by the join, not created again): it binds there and reads, and CN=Users carries
# its ACEs.
dc2_service_account_check() {
    local dir=$1 sid acl ace
    LDAPTLS_CACERT="$(dc_ca_file "$dir")" LDAPTLS_REQCERT=demand ldapsearch -H "$(dc_ldaps_url "$dir")" \
        -x -D "$SSPR_DC_SERVICE_DN" -y "$dir/service_password" -b "$SSPR_DC_USERS_DN" -s base dn \
        >/dev/null || die "the service account cannot bind and read on DC2 ($dir)"
    sid=$(dc_samba_tool "$dir" user show "$SSPR_DC_SERVICE_SAM" --attributes=objectSid \
        | sed -n 's/^objectSid: //p')
    acl=$(dc_samba_tool "$dir" dsacl get --objectdn="$SSPR_DC_USERS_DN")
    [[ -n $sid ]] || die "no $SSPR_DC_SERVICE_SAM on DC2 ($dir)"
    for ace in $(dc_service_account_aces "$sid" | grep -o '([^)]*)'); do
        [[ $acl == *"$ace"* ]] \
            || die "the service account's right $ace on $SSPR_DC_USERS_DN did not reach DC2 ($dir)"
    done
}

# export_test_env: export every SSPR_TEST_ENV entry into this shell.
export_test_env() {
    local kv
    for kv in "${SSPR_TEST_ENV[@]}"; do export "${kv?}"; done
}

# print_test_env: `export NAME='value'` lines, suitable for `source`.
print_test_env() {
    local kv
    for kv in "${SSPR_TEST_ENV[@]}"; do
        printf "export %s='%s'\n" "${kv%%=*}" "${kv#*=}"
    done
}
