# shellcheck shell=bash
# SMTP sink: aiosmtpd (Debian's python3-aiosmtpd) on 127.0.0.1:PORT, STARTTLS offered
# with CERT_DIR/smtp.pem (signed by the test CA) but not required, every message
# stored as one file in the Maildir MAILDIR/new/. Requires common.sh.

# smtp_start DIR PORT CERT_DIR [MAILDIR]: smtp_spawn, with smtp_stop registered for script exit.
smtp_start() {
    mkdir -p "$1"
    on_exit smtp_stop "$(cd "$1" && pwd)"   # a no-op until the sink has started
    smtp_spawn "$@"
}

# smtp_spawn DIR PORT CERT_DIR [MAILDIR]: start the sink and wait until it is ready; DIR holds
# smtp.log/smtp.pid; MAILDIR defaults to DIR/maildir. Registers no stop, so scripts/smtp-ctl
# can start a sink that outlives it.
smtp_spawn() {
    local dir=$1 port=$2 certs=$3 maildir=${4:-$1/maildir}
    port_in_use "$port" && die "smtp_spawn: port $port is already in use"
    mkdir -p "$dir" "$maildir"/{new,cur,tmp}
    dir=$(cd "$dir" && pwd)
    maildir=$(cd "$maildir" && pwd)
    certs=$(cd "$certs" && pwd)
    : >"$dir/smtp.log"
    # -n: do not setuid to nobody; -u: SMTPUTF8; --no-requiretls: plain SMTP also works.
    start_bg "$dir/smtp.log" "$dir/smtp.pid" \
        "$SSPR_PYTHON" -m aiosmtpd -n -u -l "127.0.0.1:$port" \
        --tlscert "$certs/smtp.pem" --tlskey "$certs/smtp.key" --no-requiretls \
        -c aiosmtpd.handlers.Mailbox "$maildir"
    local pid
    pid=$(cat "$dir/smtp.pid")
    local deadline=$(( $(now_ms) + 30000 ))
    until _smtp_ready "$port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$dir/smtp.log" >&2
            die "SMTP sink exited during startup (log: $dir/smtp.log)"
        fi
        (( $(now_ms) < deadline )) || { cat "$dir/smtp.log" >&2; die "SMTP sink not ready on port $port"; }
        sleep 0.1
    done
}

# Ready = the server answers EHLO and offers STARTTLS.
_smtp_ready() {
    "$SSPR_PYTHON" - "$1" <<'EOF' >/dev/null 2>&1
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=2)
s.ehlo()
ok = s.has_extn("starttls")
s.quit()
sys.exit(0 if ok else 1)
EOF
}

smtp_stop() {
    local dir=$1
    [[ -f $dir/smtp.pid ]] || return 0
    stop_pid_group "$(cat "$dir/smtp.pid")" 5
    rm -f "$dir/smtp.pid"
}
