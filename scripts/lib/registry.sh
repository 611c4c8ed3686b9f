# shellcheck shell=bash
# Sourced by the demo and the benchmark scripts: a docker-registry (the CNCF distribution
# registry) on 127.0.0.1, on a port the kernel picks, deletes enabled.

# start_registry DIR ACCESSLOG [USER PASSWORD]
#   Starts a registry whose storage, config and log live in DIR; htpasswd (bcrypt) auth when USER
#   and PASSWORD are given; the access log when ACCESSLOG is `on`. Sets REGISTRY_HOST
#   (127.0.0.1:PORT), REGISTRY_PID and REGISTRY_LOG. Stop it with stop_registry.
start_registry() {
  local dir=$1 accesslog=$2 user=${3:-} password=${4:-} port="" auth="" disabled=true
  mkdir -p "$dir/data"
  if [ -n "$user" ]; then
    htpasswd -Bbn "$user" "$password" > "$dir/htpasswd"
    auth="auth: {htpasswd: {realm: dockhand, path: $dir/htpasswd}}"
  fi
  [ "$accesslog" = on ] && disabled=false
  printf '%s\n' "version: 0.1" "log: {level: info, accesslog: {disabled: $disabled}}" \
    "storage: {filesystem: {rootdirectory: $dir/data}, delete: {enabled: true}}" \
    "http: {addr: \"127.0.0.1:0\", secret: not-a-secret}" "$auth" > "$dir/config.yml"
  REGISTRY_LOG=$dir/registry.log
  docker-registry serve "$dir/config.yml" > "$REGISTRY_LOG" 2>&1 &
  REGISTRY_PID=$!
  for _ in $(seq 100); do
    port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$REGISTRY_LOG" | head -1 | sed 's/.*://' || true)
    [ -n "$port" ] && break
    sleep 0.1
  done
  if [ -z "$port" ]; then
    cat "$REGISTRY_LOG" >&2
    echo "the registry did not start" >&2
    return 1
  fi
  # shellcheck disable=SC2034 # read by the scripts that source this file
  REGISTRY_HOST=127.0.0.1:$port
}

# stop_registry: stops the registry start_registry started, if it still runs.
stop_registry() {
  if [ -n "${REGISTRY_PID:-}" ]; then
    kill "$REGISTRY_PID" 2>/dev/null || true
    wait "$REGISTRY_PID" 2>/dev/null || true
    REGISTRY_PID=""
  fi
}
