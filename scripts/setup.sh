#!/usr/bin/env bash
# Installs what building and testing ferroni needs on Debian 12: protoc and Google's protos
# (etcd-client compiles etcd's), etcd (tests and the demo start their own), PostgreSQL 15 (if
# absent), pgbackrest, cargo-nextest.
# Run as root (or with sudo available). Idempotent: installs only what is missing.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
# etcd's protos import Google's well-known types, which protoc finds only in libprotobuf-dev (a
# recommendation of protobuf-compiler that --no-install-recommends leaves out).
[ -f /usr/include/google/protobuf/descriptor.proto ] || missing+=(libprotobuf-dev)
[ -x /usr/bin/etcd ] || missing+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || missing+=(etcd-client)
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql-15)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client-15)
command -v pgbackrest >/dev/null 2>&1 || missing+=(pgbackrest)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Debian's postgresql package may start a cluster of its own on 5432; ferroni never uses it.
if ! command -v cargo-nextest >/dev/null 2>&1 && ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest"
  cargo install cargo-nextest --locked
fi
id postgres >/dev/null 2>&1 || { echo "setup: the postgres OS user is missing (install postgresql-15)" >&2; exit 1; }
