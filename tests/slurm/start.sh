#!/usr/bin/env bash
# Start a real single-node Slurm (munged + slurmctld + slurmd) on this machine,
# for the end-to-end test of the SLURM profile (tests/e2e/test_slurm.py).
#
#   tests/slurm/start.sh          # progress on stderr; stdout: export SLURM_CONF=...
#   tests/slurm/stop.sh           # ends what this script started, by recorded pid
#
# Idempotent: daemons it started that are still alive are reused; it returns
# once `sinfo` shows the node idle (or fails after AFFECTFLOW_SLURM_TIMEOUT s,
# default 30, printing the daemon logs).
#
# Environment:
#   AFFECTFLOW_SLURM_STATE    state/spool/log/pid dir   (default /tmp/affectflow-slurm)
#   AFFECTFLOW_SLURM_GPUS     stand-in GPUs on the node (default 2; 0 = none)
#   AFFECTFLOW_SLURM_TIMEOUT  seconds to wait for the node to be idle (default 30)
#
# Where the configuration lives: /etc/slurm/slurm.conf (Debian's compiled-in
# default), written only when absent or when an earlier run of this script
# wrote it (first line carries MARK below); a foreign slurm.conf is never
# touched and the script stops. Exporting SLURM_CONF alone is not enough: the
# Snakemake jobstep executor strips every SLURM_* variable before it calls
# `srun` inside a job, so that inner srun finds only the default path.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

MARK="written by affectflow tests/slurm/start.sh"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
STATE=${AFFECTFLOW_SLURM_STATE:-/tmp/affectflow-slurm}
GPUS=${AFFECTFLOW_SLURM_GPUS:-2}
TIMEOUT=${AFFECTFLOW_SLURM_TIMEOUT:-30}
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
GRES=$CONF_DIR/gres.conf
PIDS=$STATE/pids
LOGS=$STATE/log
T0=$(date +%s.%N)

log() { echo "slurm/start.sh: $*" >&2; }
die() { echo "slurm/start.sh: ERROR: $*" >&2; exit 1; }

# ---- 1. packages ---------------------------------------------------------
need=()
for t in slurmctld slurmd sinfo squeue sbatch srun scontrol; do command -v "$t" >/dev/null || need=(slurm-wlm); done
for t in munged munge unmunge; do command -v "$t" >/dev/null || need+=(munge); done
if ((${#need[@]})); then
    if [[ $(id -u) != 0 ]]; then
        echo "slurm/start.sh: Slurm/munge are not installed. Run:" >&2
        echo "  sudo apt-get update && sudo apt-get install -y slurm-wlm munge" >&2
        exit 1
    fi
    log "installing slurm-wlm munge with apt"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq slurm-wlm munge >&2 </dev/null
fi
[[ $(id -u) == 0 ]] || die "must run as root (slurmd runs jobs as any user, munged needs /run/munge)"

# ---- helpers: our daemons, by recorded pid ---------------------------------
mkdir -p "$STATE"/{state,spool,run} "$PIDS" "$LOGS"

# alive NAME -> 0 when the pid recorded for NAME is a live process named NAME
alive() {
    local f=$PIDS/$1.pid pid
    [[ -s $f ]] || return 1
    pid=$(<"$f")
    [[ -r /proc/$pid/comm && $(<"/proc/$pid/comm") == "$1" ]]
}

stop_one() {
    local name=$1 pid i
    alive "$name" || { rm -f "$PIDS/$name.pid"; return 0; }
    pid=$(<"$PIDS/$name.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    rm -f "$PIDS/$name.pid"
}

# start NAME CMD...: run CMD in its own session, in the background, logs to $LOGS
start_bg() {
    local name=$1 pid; shift
    setsid "$@" </dev/null >>"$LOGS/$name.out" 2>&1 &
    pid=$!
    echo "$pid" >"$PIDS/$name.pid"
    # the pid is ours at once, but it is named $name only after setsid (and
    # setpriv) have exec'd it: wait for that, so alive() cannot race it
    for _ in $(seq 50); do
        [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]] && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    show_logs
    die "$name did not start (logs above)"
}

show_logs() {
    local f
    for f in "$LOGS"/munged.out "$LOGS"/slurmctld.out "$LOGS"/slurmctld.log "$LOGS"/slurmd.out "$LOGS"/slurmd.log; do
        [[ -s $f ]] || continue
        echo "----- last lines of $f" >&2
        tail -n 25 "$f" >&2
    done
}

# ---- 2. configuration -------------------------------------------------------
HOST=$(hostname -s)
CPUS=$(nproc)
MEM_TOTAL=$(free -m | awk '/^Mem:/ {print $2}')
# leave a little to the OS, so slurmd never sees less than configured
MEM_MB=$((MEM_TOTAL - MEM_TOTAL / 20))
GRES_FIELD=""
((GPUS > 0)) && GRES_FIELD=" Gres=gpu:$GPUS"

render() {  # render TEMPLATE -> stdout
    sed -e "s|@HEADER@|$MARK|" -e "s|@HOST@|$HOST|g" -e "s|@STATE@|$STATE|g" \
        -e "s|@CPUS@|$CPUS|" -e "s|@MEM_MB@|$MEM_MB|" -e "s|@GPUS@|$GPUS|" \
        -e "s|@GRES@|$GRES_FIELD|" -e "s|@LAST_GPU@|$((GPUS - 1))|" \
        -e "s|@CTLD_PORT@|${AFFECTFLOW_SLURM_CTLD_PORT:-6817}|" \
        -e "s|@SLURMD_PORT@|${AFFECTFLOW_SLURMD_PORT:-6818}|" "$1"
}

ours() { [[ ! -e $1 ]] || head -n 1 "$1" | grep -qF "$MARK"; }
for f in "$CONF" "$GRES"; do
    ours "$f" || die "$f exists and was not written by this script: this machine looks like a real Slurm node; not touching it"
done

mkdir -p "$CONF_DIR"
new_conf=$(render "$HERE/slurm.conf.in")
new_gres=""
((GPUS > 0)) && new_gres=$(render "$HERE/gres.conf.in")
changed=0
[[ -e $CONF && $(<"$CONF") == "$new_conf" ]] || changed=1
[[ $(cat "$GRES" 2>/dev/null) == "$new_gres" ]] || changed=1
if ((changed)); then
    log "writing $CONF (node $HOST: $CPUS CPUs, $MEM_MB MB, $GPUS stand-in GPUs; state in $STATE)"
    printf '%s\n' "$new_conf" >"$CONF"
    if [[ -n $new_gres ]]; then printf '%s\n' "$new_gres" >"$GRES"; else rm -f "$GRES"; fi
    # daemons of ours still running on an old configuration: restart them
    stop_one slurmd
    stop_one slurmctld
fi
# stand-in GPU device files named in gres.conf
for ((i = 0; i < GPUS; i++)); do
    mkdir -p "$STATE/dev"
    [[ -c $STATE/dev/gpu$i ]] || mknod -m 0666 "$STATE/dev/gpu$i" c 1 3
done

# ---- 3. munge -----------------------------------------------------------------
munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
install -d -o munge -g munge -m 0755 /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating /etc/munge/munge.key"
    install -d -o munge -g munge -m 0700 /etc/munge
    if command -v mungekey >/dev/null; then
        mungekey --create --keyfile=/etc/munge/munge.key --force
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
fi
if munge_ok; then
    alive munged || log "using the munged that is already running"
else
    stop_one munged
    log "starting munged (as user munge)"
    install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
    start_bg munged setpriv --reuid=munge --regid=munge --init-groups munged --foreground
    for _ in $(seq 50); do munge_ok && break; sleep 0.1; done
    munge_ok || { show_logs; die "munged does not answer (see above)"; }
fi

# ---- 4. slurmctld, slurmd ---------------------------------------------------------
if ! alive slurmctld; then
    log "starting slurmctld"
    start_bg slurmctld slurmctld -D -f "$CONF"
    for _ in $(seq 50); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.1; done
fi
if ! alive slurmd; then
    log "starting slurmd"
    start_bg slurmd slurmd -D -f "$CONF" -N "$HOST"
fi

# ---- 5. wait for the node -------------------------------------------------------------
deadline=$(( $(date +%s) + TIMEOUT ))
state=""
while :; do
    for name in slurmctld slurmd; do
        alive "$name" || { show_logs; die "$name exited during start-up (logs above)"; }
    done
    state=$(sinfo -h -n "$HOST" -o %T 2>/dev/null | head -n 1 || true)
    [[ $state == idle || $state == mixed || $state == allocated ]] && break
    if [[ $state == *drain* || $state == down* ]]; then
        # a restart can leave the node down from a previous run: bring it back
        scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true
    fi
    if (( $(date +%s) >= deadline )); then
        show_logs
        sinfo -N -l >&2 || true
        die "node $HOST is not idle after ${TIMEOUT}s (state: '${state:-none}'); logs above. Stop with tests/slurm/stop.sh"
    fi
    sleep 0.3
done

log "ready: node $HOST is $state, partition debug ($(awk -v t0="$T0" -v t1="$(date +%s.%N)" 'BEGIN {printf "%.1f", t1 - t0}')s)"
echo "export SLURM_CONF=$CONF"
