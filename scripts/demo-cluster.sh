#!/usr/bin/env bash
# Sets up and starts a local 3-node ferroni cluster with its own etcd on a fresh Debian 12 machine,
# then shows `ferronictl list`. Run as root. `scripts/demo-cluster.sh stop` stops everything.
#
# Ports: etcd 127.0.0.1:23790, PostgreSQL 5433-5435, REST API 8008-8010. State in $FERRONI_DEMO_DIR
# (default /tmp/ferroni-demo); logs in <dir>/<node>/ferroni.log.
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO=${FERRONI_DEMO_DIR:-/tmp/ferroni-demo}
NODES=(pg1 pg2 pg3)

# Daemons first (each stops its Postgres and releases its keys), then etcd.
stop_demo() {
  for pidfile in "$DEMO"/*/ferroni.pid "$DEMO"/etcd.pid; do
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$pidfile"
  done
  for n in "${NODES[@]}"; do
    pm="$DEMO/$n/data/postmaster.pid"
    [ -f "$pm" ] && kill -QUIT "$(head -1 "$pm")" 2>/dev/null || true
  done
  echo "demo stopped"
}

if [ "${1:-}" = "stop" ]; then stop_demo; exit 0; fi

scripts/setup.sh
BIN=$(scripts/build-release.sh)
[ -d "$DEMO" ] && stop_demo >/dev/null 2>&1 || true
rm -rf "$DEMO"
mkdir -p "$DEMO/bin"
cp "$BIN/ferroni" "$BIN/ferronictl" "$BIN/ferroni-fence" "$DEMO/bin/"
chmod 755 "$DEMO" "$DEMO/bin" "$DEMO/bin/"*

# Each process's own shell writes its pid and execs into it (setsid may fork, so $! would not do).
start_bg() {
  local pidfile=$1 log=$2
  shift 2
  setsid sh -c 'echo $$ > "$1"; shift; exec "$@"' sh "$pidfile" "$@" >"$log" 2>&1 < /dev/null &
}

start_bg "$DEMO/etcd.pid" "$DEMO/etcd.log" /usr/bin/etcd --name demo --data-dir "$DEMO/etcd" \
  --listen-client-urls http://127.0.0.1:23790 --advertise-client-urls http://127.0.0.1:23790 \
  --listen-peer-urls http://127.0.0.1:23800 --initial-advertise-peer-urls http://127.0.0.1:23800 \
  --initial-cluster demo=http://127.0.0.1:23800

i=0
for n in "${NODES[@]}"; do
  dir="$DEMO/$n"
  mkdir -p "$dir"
  cat > "$dir/ferroni.yml" <<YAML
name: $n
scope: demo
restapi:
  listen: 127.0.0.1:$((8008 + i))
etcd3:
  hosts: 127.0.0.1:23790
bootstrap:
  dcs:
    ttl: 20
    loop_wait: ${FERRONI_LOOP_WAIT:-2}
    retry_timeout: 5
    postgresql:
      use_pg_rewind: true
  initdb:
    - encoding: UTF8
    - data-checksums
postgresql:
  listen: 127.0.0.1:$((5433 + i))
  data_dir: $dir/data
  pgpass: $dir/pgpass
  authentication:
    superuser:
      username: postgres
      password: demo-superuser
    replication:
      username: replicator
      password: demo-replicator
YAML
  chown -R postgres:postgres "$dir"
  (cd "$dir" && start_bg "$dir/ferroni.pid" "$dir/ferroni.log" \
    setpriv --reuid=postgres --regid=postgres --init-groups env HOME="$dir" "$DEMO/bin/ferroni" "$dir/ferroni.yml")
  i=$((i + 1))
done

cat > "$DEMO/ctl.yml" <<YAML
scope: demo
etcd3:
  hosts: 127.0.0.1:23790
YAML

echo "waiting for a leader and two streaming replicas..."
for _ in $(seq 1 120); do
  streaming=$("$DEMO/bin/ferronictl" -c "$DEMO/ctl.yml" list -f json 2>/dev/null | grep -o '"streaming"' | wc -l || true)
  [ "$streaming" -ge 2 ] && break
  sleep 1
done
"$DEMO/bin/ferronictl" -c "$DEMO/ctl.yml" list
echo
echo "REST API: curl -s http://127.0.0.1:8008/patroni ; stop with: scripts/demo-cluster.sh stop"
