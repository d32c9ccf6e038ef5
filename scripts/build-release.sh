#!/usr/bin/env bash
# Builds the release binaries (ferroni, ferronictl, ferroni-fence), statically linked against glibc,
# and prints the directory they are in (target/<host triple>/release).
#
# Static because a node's memory is mostly code pages: a dynamically linked daemon and fence each
# map most of libc, libm and the loader besides their own code (8.3 + 2.0 MB resident, measured in
# bench/run.sh's idle scenario); statically linked they map only what they use (7.1 + 1.2 MB).
# glibc's name service (getaddrinfo for etcd host names) still loads its modules at run time, so
# run the binaries on the glibc they were built with, as any Debian package would.
set -euo pipefail
cd "$(dirname "$0")/.."
host=$(rustc -vV | sed -n 's/^host: //p')
# --target keeps the flag off build scripts and proc-macros, which cannot be static.
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
  cargo build --release --target "$host" --bin ferroni --bin ferronictl --bin ferroni-fence >&2
echo "target/$host/release"
