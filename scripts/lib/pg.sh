# shellcheck shell=bash
# Throw-away PostgreSQL cluster: DIR/data, unix socket in DIR/run, TCP 127.0.0.1:PORT,
# trust auth (local + 127.0.0.1/32 only), role and database "sspr". Requires common.sh.

pg_bindir() {
    local d
    d=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    [[ -n $d && -x $d/initdb ]] || die "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (apt-get install postgresql)"
    echo "$d"
}

_pg_as() { (cd / && runuser -u postgres -- "$@"); }

# pg_start DIR PORT: pg_spawn, with pg_stop registered for script exit.
# URL: postgres://sspr@127.0.0.1:PORT/sspr
pg_start() {
    mkdir -p "$1"
    on_exit pg_stop "$(cd "$1" && pwd)"   # a no-op until the server has started
    pg_spawn "$1" "$2"
}

# pg_spawn DIR PORT [durable]: initdb (first time only), start, wait, create role+db sspr;
# registers no stop, so scripts/pg-ctl can start a server that outlives it. With "durable" the
# new cluster commits as production does (fsync, synchronous_commit, full_page_writes on), so a
# crash loses nothing that was committed.
pg_spawn() {
    local dir=$1 port=$2 durable=${3:-} bin
    bin=$(pg_bindir)
    id -u postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    port_in_use "$port" && die "pg_spawn: port $port is already in use"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    mkdir -p "$dir/run"
    chown postgres: "$dir" "$dir/run"
    if [[ ! -f $dir/data/PG_VERSION ]]; then
        _pg_as "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync \
            >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
        cat >"$dir/data/pg_hba.conf" <<'EOF'
# sspr-bridge test cluster: trust, but only over the unix socket and 127.0.0.1
local all all              trust
host  all all 127.0.0.1/32 trust
EOF
        cat >>"$dir/data/postgresql.conf" <<EOF
# sspr-bridge test cluster
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir/run'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
EOF
        if [[ $durable == durable ]]; then
            cat >>"$dir/data/postgresql.conf" <<'EOF'
# durable: committed means on disk, as in production (the last setting of a name wins)
fsync = on
synchronous_commit = on
full_page_writes = on
EOF
        fi
    fi
    _pg_as "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -o "-p $port" -w -t 60 start >/dev/null \
        || { tail -n 30 "$dir/postgres.log" >&2; die "PostgreSQL failed to start (log: $dir/postgres.log)"; }
    wait_until 30 "PostgreSQL on 127.0.0.1:$port" "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" \
        || die "PostgreSQL not ready (log: $dir/postgres.log)"
    local psql=("$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir/run" -p "$port" -U postgres -d postgres)
    if [[ -z $(_pg_as "${psql[@]}" -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'sspr'") ]]; then
        _pg_as "${psql[@]}" -c "CREATE ROLE sspr LOGIN CREATEDB" \
            -c "CREATE DATABASE sspr OWNER sspr" >/dev/null || die "creating role/database sspr failed"
    fi
}

# pg_stop DIR: stop at once (-m immediate: no shutdown checkpoint, clients cut off, as in a
# crash; the next start recovers from the WAL).
pg_stop() {
    local dir=$1 bin
    [[ -f $dir/data/postmaster.pid ]] || return 0
    bin=$(pg_bindir)
    _pg_as "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
}
