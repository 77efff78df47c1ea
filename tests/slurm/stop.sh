#!/usr/bin/env bash
# Stop the single-node Slurm that tests/slurm/start.sh started: cancel the jobs
# still in it, then end slurmd, slurmctld and munged by the pids start.sh
# recorded (a daemon that start.sh found already running is left alone), and
# remove the /etc/slurm/{slurm,gres}.conf it wrote. Never kills by name.
set -uo pipefail

MARK="written by affectflow tests/slurm/start.sh"
STATE=${AFFECTFLOW_SLURM_STATE:-/tmp/affectflow-slurm}
PIDS=$STATE/pids

log() { echo "slurm/stop.sh: $*" >&2; }

alive() {
    local f=$PIDS/$1.pid pid
    [[ -s $f ]] || return 1
    pid=$(<"$f")
    [[ -r /proc/$pid/comm && $(<"/proc/$pid/comm") == "$1" ]]
}

# jobs left by an interrupted test: cancel them through Slurm while it still runs
if alive slurmctld && command -v squeue >/dev/null; then
    jobs=$(squeue -h -o %i 2>/dev/null | tr '\n' ' ')
    if [[ -n ${jobs// /} ]]; then
        log "cancelling jobs: $jobs"
        # shellcheck disable=SC2086
        scancel $jobs 2>/dev/null || true
        for _ in $(seq 50); do
            [[ -z $(squeue -h -t running,completing -o %i 2>/dev/null) ]] && break
            sleep 0.2
        done
    fi
fi

for name in slurmd slurmctld munged; do
    f=$PIDS/$name.pid
    if ! alive "$name"; then
        rm -f "$f"
        continue
    fi
    pid=$(<"$f")
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name did not stop after 10 s; sending KILL"
        kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$f"
done

for f in /etc/slurm/slurm.conf /etc/slurm/gres.conf; do
    if [[ -e $f ]] && head -n 1 "$f" | grep -qF "$MARK"; then
        rm -f "$f"
    fi
done
exit 0
