# shellcheck shell=bash
# Bring up the full integration-test environment below one root directory:
#   ROOT/certs  test PKI          ROOT/dc    Samba AD DC (LDAP 389 + LDAPS 636)
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
    local pg_port smtp_port
    pg_port=$(free_port "${SSPR_TEST_PG_PORT:-55432}")
    timed "postgres start" pg_start "$root/pg" "$pg_port"
    smtp_port=$(free_port "${SSPR_TEST_SMTP_PORT:-2525}")
    timed "smtp sink start" smtp_start "$root/smtp" "$smtp_port" "$root/certs"

    SSPR_TEST_ENV=(
        "SSPR_TEST_LDAPS_URL=ldaps://127.0.0.1:636"
        "SSPR_TEST_LDAP_URL=ldap://127.0.0.1:389"
        "SSPR_TEST_LDAPS_HOSTNAME_URL=ldaps://localhost:636"
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
