# Shared by tests/run and deploy/local/serve: installs the Debian packages the
# build needs when they are missing. Sourced, not run.

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=0
need_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    if [ "$apt_updated" -eq 0 ]; then
      as_root apt-get update -qq
      apt_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# The Rust build links the system OpenSSL (JOSE signing and sealing).
need_build_packages() {
  need_packages pkg-config libssl-dev
}

# A throwaway PostgreSQL and Redis on free loopback ports, files in a temp
# folder, no persistence; exports ZAPINI_TEST_POSTGRES_URL and
# ZAPINI_TEST_REDIS_URL. PostgreSQL refuses root, so as root it runs as the
# `postgres` user. Stop both with stop_test_stores (trap it on EXIT).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

pg_bin_dir() {
  if command -v initdb >/dev/null; then dirname "$(command -v initdb)"; return; fi
  ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1
}

as_pg_user() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_test_stores() {
  test_stores_dir=$(mktemp -d)
  local bin pg_port redis_port
  bin=$(pg_bin_dir)
  pg_port=$(free_port)
  redis_port=$(free_port)
  [ "$(id -u)" -eq 0 ] && chown postgres: "$test_stores_dir"
  as_pg_user "$bin/initdb" -D "$test_stores_dir/pg" -U postgres --auth=trust -E UTF8 >/dev/null
  as_pg_user "$bin/pg_ctl" -D "$test_stores_dir/pg" -l "$test_stores_dir/pg.log" -w \
    -o "-p $pg_port -k $test_stores_dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
  redis-server --port "$redis_port" --bind 127.0.0.1 --daemonize yes \
    --pidfile "$test_stores_dir/redis.pid" --save '' --appendonly no >/dev/null
  export ZAPINI_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
  export ZAPINI_TEST_REDIS_URL="redis://127.0.0.1:$redis_port/"
  echo "test stores: PostgreSQL on $pg_port, Redis on $redis_port"
}

stop_test_stores() {
  [ -n "${test_stores_dir:-}" ] || return 0
  as_pg_user "$(pg_bin_dir)/pg_ctl" -D "$test_stores_dir/pg" -m fast -w stop >/dev/null 2>&1 || true
  if [ -f "$test_stores_dir/redis.pid" ]; then
    kill "$(cat "$test_stores_dir/redis.pid")" 2>/dev/null || true
  fi
  rm -rf "$test_stores_dir"
}
