#!/usr/bin/env bash
# A whole cluster on this machine: PostgreSQL, Redis, three nodes and HAProxy in front of them.
# Prints the dashboard link and stops everything on Ctrl-C. Nothing is kept (a temporary directory).
# Ports: CLUSTER_PORT (HAProxy, default 8000), nodes at CLUSTER_PORT+1..+3, PostgreSQL at
# CLUSTER_PG_PORT (5433), Redis at CLUSTER_REDIS_PORT (6380). CLUSTER_NODES changes the count.
set -euo pipefail
cd "$(dirname "$0")/.."

port="${CLUSTER_PORT:-8000}"
pg_port="${CLUSTER_PG_PORT:-5433}"
redis_port="${CLUSTER_REDIS_PORT:-6380}"
count="${CLUSTER_NODES:-3}"
work="$(mktemp -d -t immune-cluster-XXXXXX)"
pids=()

pg_bin="$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")"
as_pg=()
if [[ "$(id -u)" == 0 ]]; then
  as_pg=(runuser -u postgres --)
  chown postgres "$work"
fi

stop_all() {
  trap - INT TERM EXIT
  echo "cluster: stopping"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap 'stop_all; exit 0' INT TERM
trap stop_all EXIT

wait_http() {  # wait_http URL NAME
  for _ in $(seq 1 200); do
    if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "cluster: $2 did not become ready ($1); its log: $work/$2.log" >&2
  tail -5 "$work/$2.log" >&2 || true
  exit 1
}

echo "cluster: PostgreSQL on 127.0.0.1:$pg_port"
"${as_pg[@]}" "$pg_bin/initdb" -D "$work/pg" -U immune --auth=trust -E UTF8 >"$work/initdb.log"
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/postgres.log" -w \
  -o "-p $pg_port -k $work -c listen_addresses=127.0.0.1" start >/dev/null
"${as_pg[@]}" "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U immune immune

echo "cluster: Redis on 127.0.0.1:$redis_port"
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >"$work/redis.log" &
pids+=($!)

export IMMUNE_DATABASE_URL="postgresql+asyncpg://immune@127.0.0.1:$pg_port/immune"
export IMMUNE_REDIS_URL="redis://127.0.0.1:$redis_port/0"
export IMMUNE_TRUSTED_PROXIES='["127.0.0.1"]'
IMMUNE_JWT_SECRET="$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(48))')"
export IMMUNE_JWT_SECRET

nodes=()
for i in $(seq 1 "$count"); do
  node_port=$((port + i))
  mkdir -p "$work/node$i"
  IMMUNE_NODE_ID="node-$i" .venv/bin/python -m server.cli serve --port "$node_port" --data-dir "$work/node$i" \
    >"$work/node-$i.log" 2>&1 &
  pids+=($!)
  nodes+=("127.0.0.1:$node_port")
done
for i in $(seq 1 "$count"); do
  wait_http "http://127.0.0.1:$((port + i))/ready" "node-$i"
  echo "cluster: node-$i on 127.0.0.1:$((port + i))"
done

.venv/bin/python scripts/haproxy_cfg.py --port "$port" "${nodes[@]}" >"$work/haproxy.cfg"
haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$port/ready" haproxy

token="$(.venv/bin/python -m server.cli token --role admin --sub admin --ttl 12h)"
echo "cluster: HAProxy on 127.0.0.1:$port in front of ${nodes[*]} (logs in $work)"
echo "Dashboard: http://127.0.0.1:$port/#token=$token"
echo "Ctrl-C stops everything."
wait -n "${pids[@]}" || true
echo "cluster: a process ended on its own (logs in $work); stopping the others"
exit 1
