#!/usr/bin/env bash
# docker/samba-dc/entrypoint.sh - the demo Samba AD DC in a container (docker-compose.yml).
# FOR DEMOS AND TESTS ONLY.
#
# Reuses the repository's harness, copied into the image below /opt/sspr:
#   certs/make-certs.sh   the demo PKI in $SSPR_CERT_DIR; the DC certificate gets the extra
#                         subjectAltNames $SSPR_DC_CERT_SANS (the name clients use: `dc`)
#   scripts/lib/dc.sh     dc_provision: domain SSPR.TEST in $SSPR_DC_STATE/dc, on first start only;
#                         dc_create_service_account: svc-sspr with the README's delegated rights
# then, on every start: makes samba listen on the container's addresses (dc.sh provisions a DC
# for 127.0.0.1 only), creates the demo users and groups of scripts/demo if missing, writes the
# files the sspr-bridge container reads to $SSPR_SECRETS_DIR, and runs samba in the foreground.
#
# Environment (the defaults fit docker-compose.yml):
#   SSPR_DC_STATE=/var/lib/sspr-dc  volume: DC state. The DC directory (see dc.sh) is ./dc:
#                                   dc/etc/smb.conf, dc/admin_password, ...
#   SSPR_CERT_DIR=/certs            volume, mounted read-only by sspr-bridge: ca.pem, dc.pem, ...
#                                   (keys are 0600 root, unreadable there)
#   SSPR_SECRETS_DIR=/secrets       volume, mounted read-only by sspr-bridge (directory 0750):
#                                     bind_password  svc-sspr's password, copied on every start
#                                     secret_key     security.secret_key, generated once
#   SSPR_SERVICE_UID=10001          owner of those two files: the uid of the sspr-bridge image
#   SSPR_DC_CERT_SANS="DNS:dc"      extra subjectAltNames of the DC certificate (space-separated
#                                   DNS:name / IP:addr). An existing certificate that lacks one is
#                                   reissued by the same CA.
#   SSPR_DC_ADMIN_PASSWORD          Administrator password at provisioning (default: random)
#   SSPR_DC_ACL_XATTR=user.NTACL    where provisioning keeps the sysvol's NT ACLs (set in the
#                                   image; empty needs CAP_SYS_ADMIN, see scripts/lib/dc.sh)
#   SSPR_DC_DEMO_OBJECTS=1          create the demo users and groups (0: leave the domain empty)
#   SSPR_DC_DEBUG_LEVEL             samba's debug level (-d), e.g. 3
# Arguments, if any, are run instead of samba once everything is set up (e.g. `bash`).
set -euo pipefail

# Where a newly provisioned DC listens (read by scripts/lib/dc.sh): every address of the
# container, so the service container can reach it.
export SSPR_DC_INTERFACES='*'

# shellcheck source=../../scripts/lib/common.sh
source "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../../scripts/lib/common.sh"
# shellcheck source=../../scripts/lib/dc.sh
source "$SSPR_REPO_ROOT/scripts/lib/dc.sh"

state=${SSPR_DC_STATE:-/var/lib/sspr-dc}
certs=${SSPR_CERT_DIR:-/certs}
secrets=${SSPR_SECRETS_DIR:-/secrets}
service_uid=${SSPR_SERVICE_UID:-10001}
read -r -a cert_sans <<<"${SSPR_DC_CERT_SANS:-DNS:dc}"
dc=$state/dc

[[ $(id -u) == 0 ]] || die "the DC container must run as root (samba needs it)"

# ------------------------------------------------------------------ certificates
# make-certs.sh keeps existing files and only issues the DC certificate when it is missing, so
# a certificate from an earlier run with other SANs would be kept: reissue it then.
san_missing() { # CERT SAN...: true if CERT lacks one of the SANs
    local have want
    have=$(openssl x509 -in "$1" -noout -ext subjectAltName 2>/dev/null \
        | tail -n +2 | tr ',' '\n' | sed -e 's/^[[:space:]]*//' -e 's/^IP Address:/IP:/')
    shift
    for want in "$@"; do
        grep -qxF "$want" <<<"$have" || return 0
    done
    return 1
}
make_certs() {
    mkdir -p "$certs"
    chmod 0755 "$certs"
    if [[ -s $certs/dc.pem && ${#cert_sans[@]} -gt 0 ]] && san_missing "$certs/dc.pem" "${cert_sans[@]}"; then
        log "$certs/dc.pem lacks one of ${cert_sans[*]}: reissuing it"
        rm -f "$certs/dc.pem" "$certs/dc.key"
    fi
    "$SSPR_REPO_ROOT/certs/make-certs.sh" "$certs" "${cert_sans[@]}"
}

# ------------------------------------------------------------------ secrets for sspr-bridge
write_secrets() {
    mkdir -p "$secrets"
    chown "0:$service_uid" "$secrets"
    chmod 0750 "$secrets"
    # The service binds as the delegated account svc-sspr, as scripts/demo does. Copied on every
    # start: the DC volume may be new.
    # Written aside and renamed: the service container may be waiting for this file
    # (server.startup_wait) and must never read it half-written.
    install -m 0400 -o "$service_uid" -g "$service_uid" "$dc/service_password" "$secrets/bind_password.tmp"
    mv -f "$secrets/bind_password.tmp" "$secrets/bind_password"
    if [[ ! -s $secrets/secret_key ]]; then
        # 32 random bytes in standard base64, exactly what `sspr-bridge gen-key` prints.
        (umask 077 && openssl rand -base64 32 >"$secrets/secret_key.tmp")
        chown "$service_uid:$service_uid" "$secrets/secret_key.tmp"
        chmod 0400 "$secrets/secret_key.tmp"
        mv -f "$secrets/secret_key.tmp" "$secrets/secret_key"
        log "generated $secrets/secret_key (security.secret_key of sspr-bridge)"
    fi
}

# ------------------------------------------------------------------ main
mkdir -p "$state"
timed "certificates" make_certs
timed "samba provision" dc_provision "$dc" "$certs"
timed "service account" dc_create_service_account "$dc"
conf=$(dc_smb_conf "$dc")
if [[ ${SSPR_DC_DEMO_OBJECTS:-1} == 1 ]]; then
    timed "demo users and groups" dc_create_demo_objects "$dc"
fi
write_secrets
# A pid file left by a container that was killed would only confuse samba.
rm -f "$dc"/run/*.pid
print_timings

if [[ ${SSPR_DC_DEMO_OBJECTS:-1} == 1 ]]; then
    log "demo users (domain SSPR.TEST, sign in as e.g. alice or alice@sspr.test):"
    for line in "${SSPR_DEMO_USERS[@]}"; do
        read -r sam pw given sn mail <<<"$line"
        [[ $mail == - ]] && mail="(no mail address)"
        printf '    %-10s %-18s %-16s %s\n' "$sam" "$pw" "$given $sn" "$mail" >&2
    done
fi
log "Administrator password: $dc/admin_password"
log "the service binds as $SSPR_DC_SERVICE_DN (password: $dc/service_password, $secrets/bind_password)"

if [[ $# -gt 0 ]]; then
    exec "$@"
fi
samba_args=(-F --debug-stdout -s "$conf")
[[ -n ${SSPR_DC_DEBUG_LEVEL:-} ]] && samba_args+=(-d "$SSPR_DC_DEBUG_LEVEL")
log "starting samba: LDAP 389 (StartTLS), LDAPS 636"
exec samba "${samba_args[@]}"
