# shellcheck shell=bash
# The long-running processes of scripts/cluster.sh and scripts/node.sh: sourced by both, never
# run. The sourcing script defines log() and python_bin() (prints the Python to run) and sets
# PROCESS_DIR (each process NAME writes PROCESS_DIR/NAME.pid and PROCESS_DIR/logs/NAME.log) and
# WAIT_INTERVAL (seconds between two readiness checks of wait_for).

# Print the last lines of a log file and fail.
fail_with_log() {
  local what=$1 file=$2
  log "$what failed; last lines of $file:"
  tail -n 40 "$file" >&2 || true
  exit 1
}

# True while the process whose PID the file holds runs.
pid_alive() {
  local file=$1
  [[ -f $file ]] && kill -0 "$(cat "$file")" 2>/dev/null
}

# Print N free TCP ports of 127.0.0.1, separated by spaces.
free_ports() {
  "$(python_bin)" - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# spawn NAME COMMAND...: start a long-running process in its own session.
spawn() {
  local name=$1
  shift
  setsid "$@" >"$PROCESS_DIR/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$PROCESS_DIR/$name.pid"
}

# wait_for WHAT TIMEOUT NAME COMMAND...: run COMMAND until it succeeds; fail with the log of
# the process NAME when that process exits or after TIMEOUT seconds.
wait_for() {
  local what=$1 timeout=$2 name=$3
  shift 3
  local deadline=$((SECONDS + timeout)) pidfile=$PROCESS_DIR/$name.pid
  local logfile=$PROCESS_DIR/logs/$name.log
  until "$@" >/dev/null 2>&1; do
    pid_alive "$pidfile" || fail_with_log "$what (exited)" "$logfile"
    ((SECONDS < deadline)) || fail_with_log "$what (not ready after ${timeout}s)" "$logfile"
    sleep "$WAIT_INTERVAL"
  done
}

# Stop the process whose PID the file holds (TERM, KILL after 5 s) and remove the file.
stop_pidfile() {
  local file=$1 pid
  [[ -f $file ]] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}
