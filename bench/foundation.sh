#!/usr/bin/env bash
# Benchmark for the foundation targets (not a test): start to writable primary against initdb +
# pg_ctl start by hand, idle daemon RSS and CPU, and GET /primary throughput with wrk.
# Run as root on Debian 12: bench/foundation.sh [runs]. Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
scripts/setup.sh >/dev/null
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null; }
REL=$(scripts/build-release.sh 2>/dev/null)
BIN=/usr/lib/postgresql/15/bin
W=$(mktemp -d /tmp/ferroni-bench-XXXX); chmod 755 "$W"; cp "$REL/ferroni" "$REL/ferroni-fence" "$W/"; chown postgres "$W"
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
cleanup() { pkill -f "$W/ferroni" 2>/dev/null || true; pkill -f "$W/etcd" 2>/dev/null || true
  for p in "$W"/*/data/postmaster.pid; do [ -f "$p" ] && kill -QUIT "$(head -1 "$p")" 2>/dev/null || true; done; }
trap cleanup EXIT

by_hand=(); ferroni=()
for r in $(seq 1 "$RUNS"); do
  d="$W/hand$r"; mkdir -p "$d"; chown postgres "$d"
  t0=$(now)
  as_pg $BIN/initdb -D "$d/data" -A trust -U postgres -E UTF8 --data-checksums >/dev/null
  as_pg $BIN/pg_ctl start -w -D "$d/data" -l "$d/log" -o "-c port=$((16000 + r)) -c listen_addresses=127.0.0.1 -c unix_socket_directories=$d" >/dev/null
  t1=$(now); by_hand+=("$(echo "$t1 - $t0" | bc)")
  as_pg $BIN/pg_ctl stop -D "$d/data" -m immediate >/dev/null
done

mkdir -p "$W/etcd"
/usr/bin/etcd --data-dir "$W/etcd/data" --listen-client-urls http://127.0.0.1:24790 --advertise-client-urls http://127.0.0.1:24790 \
  --listen-peer-urls http://127.0.0.1:24800 >"$W/etcd/log" 2>&1 &
sleep 2
for r in $(seq 1 "$RUNS"); do
  d="$W/node$r"; mkdir -p "$d"; chown postgres "$d"
  cat > "$d/f.yml" <<YAML
name: n$r
scope: bench$r
restapi: {listen: 127.0.0.1:$((18100 + r))}
etcd3: {hosts: 127.0.0.1:24790}
bootstrap:
  dcs: {ttl: 20, loop_wait: 1, retry_timeout: 4}
  initdb: [{encoding: UTF8}, data-checksums]
postgresql:
  listen: 127.0.0.1:$((16100 + r))
  data_dir: $d/data
  pgpass: $d/pgpass
  authentication: {superuser: {password: bench}, replication: {password: bench}}
YAML
  chown postgres "$d/f.yml"
  t0=$(now)
  (cd "$d" && as_pg env HOME="$d" "$W/ferroni" "$d/f.yml" >"$d/log" 2>&1 &)
  until PGPASSWORD=bench psql -X -h 127.0.0.1 -p $((16100 + r)) -U postgres -Atc "CREATE TABLE IF NOT EXISTS w(x int)" >/dev/null 2>&1 \
        && curl -sf -o /dev/null http://127.0.0.1:$((18100 + r))/primary; do sleep 0.02; done
  t1=$(now); ferroni+=("$(echo "$t1 - $t0" | bc)")
done
hand_med=$(printf '%s\n' "${by_hand[@]}" | median); fer_med=$(printf '%s\n' "${ferroni[@]}" | median)

pid=$(pgrep -f "$W/ferroni $W/node1/f.yml" | head -1)
cpu0=$(awk '{print $14 + $15}' /proc/$pid/stat); sleep 60; cpu1=$(awk '{print $14 + $15}' /proc/$pid/stat)
rss_kb=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
cpu_s=$(echo "scale=2; ($cpu1 - $cpu0) / $(getconf CLK_TCK)" | bc)
rps=$(wrk -t2 -c4 -d10s http://127.0.0.1:18101/primary | awk '/Requests\/sec/ {print $2}')

echo "| figure | value |"
echo "|---|---|"
echo "| initdb + pg_ctl start -w by hand (median of $RUNS, s) | $hand_med |"
echo "| ferroni start to writable primary (median of $RUNS, s) | $fer_med |"
echo "| ratio ferroni / by hand | $(echo "scale=2; $fer_med / $hand_med" | bc) |"
echo "| idle daemon RSS (MB) | $(echo "scale=1; $rss_kb / 1024" | bc) |"
echo "| idle daemon CPU over 60 s (s) | $cpu_s |"
echo "| GET /primary (wrk, 2 threads, 4 connections, 10 s; req/s) | $rps |"
echo "| cores | $(nproc) |"
