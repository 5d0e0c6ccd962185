# syntax=docker/dockerfile:1
# The reference service, zdd-demo: a static (musl) binary in an empty image, run as a non-root user.
#
#   docker build -t zdd-demo:dev .
#   minikube image build -t zdd-demo:dev .      # what deploy/kubernetes uses (imagePullPolicy: Never)
#   docker run --rm -p 8080:8080 -e APP_VERSION=v2 zdd-demo:dev
#
# Not built or checked by the project's CI: its machines have no container engine, and the musl
# target cannot be installed there (rustup has no network). The static musl build was checked by
# hand once, when this file was written; `scripts/e2e-minikube.sh` builds the image against a
# cluster (it has not been run here: no cluster either).
# Configuration is by environment: see docs/reference-service.md.

# The toolchain the project is tested with (rust-version in Cargo.toml is the minimum).
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-alpine AS build
# musl-dev: the C runtime objects for static linking; binutils: readelf for the check below.
RUN apk add --no-cache musl-dev binutils
WORKDIR /src
COPY . .
# On Alpine, Rust targets musl; crt-static makes the binary need no shared library at all.
# No debug info in the image: the binary shrinks from ~24 MB to ~4 MB.
ENV RUSTFLAGS="-C target-feature=+crt-static" \
    CARGO_PROFILE_RELEASE_DEBUG=false \
    CARGO_PROFILE_RELEASE_STRIP=true
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p zdd-demo --bin zdd-demo \
    && cp target/release/zdd-demo /zdd-demo
# Fail the build rather than ship a binary that needs a dynamic loader `scratch` does not have.
RUN if readelf -l /zdd-demo | grep -q 'program interpreter'; then \
        echo "zdd-demo is dynamically linked" >&2; exit 1; \
    fi

FROM scratch
COPY --from=build /zdd-demo /zdd-demo
# Numeric user and group (matching the manifests' runAsUser/runAsGroup), so the kubelet can check
# runAsNonRoot; `scratch` has no /etc/passwd and the service needs no home or writable files.
USER 10001:10001
ENV PORT=8080 \
    BIND=0.0.0.0 \
    APP_VERSION=v1 \
    LOG_FORMAT=json
EXPOSE 8080
# The default, stated: SIGTERM starts the drain (a second one stops at once).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/zdd-demo"]
