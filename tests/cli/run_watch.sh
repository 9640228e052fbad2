# Helpers of the CLI tests that watch a run: sourced by the scripts, not run.

# Waits (up to 60 s) until the metrics file $1 holds at least $2 logged steps.
wait_for_steps() {
  for _ in $(seq 600); do
    [ -f "$1" ] && [ "$(grep -c '"step"' "$1")" -ge "$2" ] && return 0
    sleep 0.1
  done
  echo "no $2 steps in $1 after 60 s"; exit 1
}
last_step() { tail -n 1 "$1" | grep -oE '"step":[0-9]+' | cut -d: -f2; }
first_step() { head -n 1 "$1" | grep -oE '"step":[0-9]+' | cut -d: -f2; }
# The iteration in "stopped after iteration N ..." of log $1.
stop_iteration() { grep -oE '^stopped after iteration [0-9]+' "$1" | grep -oE '[0-9]+$'; }
