# sspr-bridge service image.
#
#   docker build -t sspr-bridge .
#   docker run --rm sspr-bridge gen-key
#   docker run -p 8080:8080 -e SSPR__DIRECTORY__URLS=ldaps://dc1.example.com:636 ... sspr-bridge
#
# Configuration: SSPR__SECTION__KEY environment variables and/or a file given with
# SSPR_CONFIG=/path (mount it), layered over config/default.toml, which is compiled in.
# Secrets belong in files (`*_file` keys), e.g. Docker/Compose secrets under /run/secrets.
# The default SQLite database lives in /var/lib/sspr-bridge: mount a volume there (or set
# database.url to PostgreSQL). docker-compose.yml at the repository root runs a complete demo.
#
# TLS is rustls; OpenSSL (libssl3) is linked only for the passkeys' signature checks
# (webauthn-rs). The rust:bookworm builder already has libssl-dev and pkg-config.

############################################################################ build
FROM rust:1-bookworm AS build
WORKDIR /build

# 1. Dependencies only, in their own layer: rebuilt when Cargo.toml/Cargo.lock/build.rs change,
#    not on every source edit. Stub targets stand in for the crate (a library and the binary;
#    the [[test]] target is not needed by `cargo build`).
COPY Cargo.toml Cargo.lock build.rs ./
RUN mkdir src \
 && echo 'fn main() {}' >src/main.rs \
 && : >src/lib.rs \
 && cargo build --release --locked \
 && rm -rf src

# 2. The crate. Everything that is compiled in has to be here: templates/, locales/, static/
#    and config/default.toml (include_str!), migrations/ (sqlx::migrate!, watched by build.rs).
COPY config ./config
COPY migrations ./migrations
COPY templates ./templates
COPY locales ./locales
COPY static ./static
COPY src ./src
# COPY keeps the files' modification times, which are older than the stub build above, so
# cargo would consider the stub crate up to date: touch the crate roots to force a rebuild.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked \
 && install -D -m 0755 target/release/sspr-bridge /out/sspr-bridge \
 && /out/sspr-bridge --version | grep -q '^sspr-bridge '

############################################################################ base
# Everything of the runtime image but the binary, shared by the two targets below.
FROM debian:bookworm-slim AS base

LABEL org.opencontainers.image.title="sspr-bridge" \
      org.opencontainers.image.description="Self-service password reset for on-premises Active Directory" \
      org.opencontainers.image.licenses="Apache-2.0"

# ca-certificates: the system trust store, used when directory.ca_file / smtp.ca_file are empty
# and for PostgreSQL over TLS. libssl3: webauthn-rs's signature checks (passkeys), not TLS.
# Nothing else: no curl (see HEALTHCHECK below).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/*

# A fixed, non-root uid/gid (10001) so volume and secret ownership can be set from outside
# (docker/samba-dc/entrypoint.sh writes the demo secrets for this uid).
# /var/lib/sspr-bridge is database.data_dir's default (the SQLite file); a named volume mounted
# there starts out with this ownership.
RUN groupadd --system --gid 10001 sspr \
 && useradd --system --uid 10001 --gid sspr --no-create-home \
        --home-dir /var/lib/sspr-bridge --shell /usr/sbin/nologin sspr \
 && install -d -o sspr -g sspr -m 0750 /var/lib/sspr-bridge

# Inside a container the service must listen on every interface. This environment variable is
# the top configuration layer, so it also wins over server.listen in a --config file: change the
# address or port here (-e SSPR__SERVER__LISTEN=...), not in the file.
ENV SSPR__SERVER__LISTEN=0.0.0.0:8080
EXPOSE 8080
# Plain log lines for `docker logs` and log collectors (no ANSI colours); or SSPR__LOG__FORMAT=json.
ENV NO_COLOR=1
# In Compose, the DC container writes the files this one reads (CA, bind password, secret key)
# and takes up to a few minutes to provision; not every engine holds this one back until the DC
# is healthy. `serve` waits up to this long for missing files and for a DC to answer, with a log
# line every few seconds, instead of exiting and being restarted (server.startup_wait).
ENV SSPR__SERVER__STARTUP_WAIT=180s

USER 10001:10001
WORKDIR /var/lib/sspr-bridge

# Liveness: GET /healthz on the port of SSPR__SERVER__LISTEN, by the binary itself
# (`sspr-bridge healthcheck`: exit 0 on HTTP 200), so the image needs no HTTP client or shell.
# Deliberately not `sspr-bridge check`: it opens an LDAPS connection to every DC and an SMTP
# session on every run and fails whenever one of them is down, which would mark this container
# unhealthy (and get it restarted by orchestrators that act on health) for an outage elsewhere.
# Not /readyz either, for the same reason: it is for load balancers, which should stop sending
# traffic while no DC answers, not restart the service. Run `check` once at deployment instead.
# (Podman keeps HEALTHCHECK only in images built with --format docker.)
HEALTHCHECK --interval=30s --timeout=10s --start-period=200s --retries=3 \
    CMD ["sspr-bridge", "healthcheck"]

ENTRYPOINT ["sspr-bridge"]
CMD ["serve"]

############################################################################ prebuilt
# The runtime image around a binary built outside, to save the build stage's minutes
# (scripts/test-containers stages its binary as target/container/sspr-bridge):
#   cargo build --release --locked
#   docker build --target prebuilt -t sspr-bridge .
# The binary must be built on Debian 12 (glibc, libssl3) and be in the build context, which
# .dockerignore limits to target/release/sspr-bridge and target/container/sspr-bridge.
FROM base AS prebuilt
ARG SSPR_BINARY=target/release/sspr-bridge
COPY ${SSPR_BINARY} /usr/local/bin/sspr-bridge
RUN ["/usr/local/bin/sspr-bridge", "--version"]

############################################################################ runtime
# The default target (the last one): the binary from the build stage above.
FROM base AS runtime
COPY --from=build /out/sspr-bridge /usr/local/bin/sspr-bridge
