#!/usr/bin/env bash
# Generate a throw-away PKI for the sspr-bridge test harness and demo.
#
#   certs/make-certs.sh [OUT_DIR] [DNS:extra.name | IP:10.0.0.5 ...]
#
# OUT_DIR defaults to certs/generated (ignored by git). Produces:
#   ca.pem / ca.key         test CA ("sspr-bridge Test CA")
#   dc.pem / dc.key         LDAPS/StartTLS certificate for the first Samba DC (dc1), signed by ca
#                           SANs: DNS:dc1.sspr.test DNS:localhost IP:127.0.0.1
#                           + IP:$SSPR_DC1_ADDRESS (when set to another address) + extras
#   dc2.pem / dc2.key       the same for the second DC (dc2, joined to dc1's domain)
#                           SANs: DNS:dc2.sspr.test IP:$SSPR_DC2_ADDRESS (default 127.0.0.2)
#   smtp.pem / smtp.key     STARTTLS certificate for the SMTP sink, signed by ca
#                           SANs: DNS:localhost IP:127.0.0.1
#   other-ca.pem            an unrelated CA (its key is discarded), used by tests that
#                           prove a certificate from the wrong CA is refused
#
# Idempotent: existing files are kept, except a DC certificate that lacks one of the SANs
# asked for now (the addresses changed), which is reissued by the same CA. If the CA itself is
# (re)generated, every leaf certificate is regenerated too, so the set is always consistent.
# FOR TESTS AND DEMOS ONLY - see certs/README.md.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/generated}"
[[ $# -gt 0 ]] && shift

extra_sans=()
for san in "$@"; do
    case "$san" in
        DNS:?*|IP:?*) extra_sans+=("$san") ;;
        *) echo "make-certs.sh: extra SAN must look like DNS:name or IP:addr, got '$san'" >&2; exit 2 ;;
    esac
done

command -v openssl >/dev/null || { echo "make-certs.sh: the openssl CLI is required (apt-get install openssl)" >&2; exit 1; }

mkdir -p "$out"
umask 077
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cat >"$work/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF

new_key() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null; }
serial() { echo "0x$(openssl rand -hex 16)" | sed 's/^0x[89a-f]/0x7/'; }   # positive, 16 bytes

make_ca() { # name key-path cert-path
    new_key "$2"
    openssl req -new -x509 -config "$work/openssl.cnf" -extensions ca_ext \
        -key "$2" -subj "/O=sspr-bridge test/CN=$1" -days 3650 -sha256 \
        -set_serial "$(serial)" -out "$3"
}

make_leaf() { # cn san-list key-path cert-path
    new_key "$3"
    cat >"$work/leaf.ext" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = $2
EOF
    openssl req -new -config "$work/openssl.cnf" -key "$3" \
        -subj "/O=sspr-bridge test/CN=$1" -out "$work/leaf.csr"
    openssl x509 -req -in "$work/leaf.csr" -CA "$out/ca.pem" -CAkey "$out/ca.key" \
        -set_serial "$(serial)" -days 825 -sha256 \
        -extfile "$work/leaf.ext" -out "$4" 2>/dev/null
}

# lacks_sans CERT SANS: true if CERT is missing or lacks one of the comma-separated SANS.
lacks_sans() {
    local have want
    [[ -s $1 ]] || return 0
    have=$(openssl x509 -in "$1" -noout -ext subjectAltName 2>/dev/null \
        | tail -n +2 | tr ',' '\n' | sed -e 's/^[[:space:]]*//' -e 's/^IP Address:/IP:/')
    for want in ${2//,/ }; do
        grep -qxF "$want" <<<"$have" || return 0
    done
    return 1
}

# The DCs' addresses: scripts/lib/dc.sh reads the same variables, with the same defaults.
dc1_address=${SSPR_DC1_ADDRESS:-127.0.0.1}
dc2_address=${SSPR_DC2_ADDRESS:-127.0.0.2}

regen_leaves=0
if [[ ! -s "$out/ca.pem" || ! -s "$out/ca.key" ]]; then
    make_ca "sspr-bridge Test CA" "$out/ca.key" "$out/ca.pem"
    regen_leaves=1
    echo "make-certs.sh: generated test CA in $out"
fi

sans="DNS:dc1.sspr.test,DNS:localhost,IP:127.0.0.1"
[[ $dc1_address != 127.0.0.1 ]] && sans+=",IP:$dc1_address"
for s in "${extra_sans[@]}"; do sans+=",$s"; done
if [[ $regen_leaves == 1 || ! -s "$out/dc.key" ]] || lacks_sans "$out/dc.pem" "$sans"; then
    make_leaf "dc1.sspr.test" "$sans" "$out/dc.key" "$out/dc.pem"
    echo "make-certs.sh: generated DC certificate ($sans)"
fi

sans="DNS:dc2.sspr.test,IP:$dc2_address"
if [[ $regen_leaves == 1 || ! -s "$out/dc2.key" ]] || lacks_sans "$out/dc2.pem" "$sans"; then
    make_leaf "dc2.sspr.test" "$sans" "$out/dc2.key" "$out/dc2.pem"
    echo "make-certs.sh: generated second DC certificate ($sans)"
fi

if [[ $regen_leaves == 1 || ! -s "$out/smtp.pem" || ! -s "$out/smtp.key" ]]; then
    make_leaf "localhost" "DNS:localhost,IP:127.0.0.1" "$out/smtp.key" "$out/smtp.pem"
    echo "make-certs.sh: generated SMTP certificate"
fi

if [[ ! -s "$out/other-ca.pem" ]]; then
    make_ca "sspr-bridge Unrelated CA" "$work/other-ca.key" "$out/other-ca.pem"
    echo "make-certs.sh: generated unrelated CA (other-ca.pem)"
fi

# Samba refuses a TLS key that is readable by anyone but its owner.
chmod 600 "$out/ca.key" "$out/dc.key" "$out/dc2.key" "$out/smtp.key"
chmod 644 "$out/ca.pem" "$out/dc.pem" "$out/dc2.pem" "$out/smtp.pem" "$out/other-ca.pem"
