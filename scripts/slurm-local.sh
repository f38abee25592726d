#!/usr/bin/env bash
# A throwaway single-node Slurm cluster (Debian's slurm-wlm and munge, no
# systemd), for the integration tests of acbench's Slurm backend.
#
#   scripts/slurm-local.sh start [DIR]          start a cluster living in DIR
#   scripts/slurm-local.sh stop [--keep] [DIR]  stop it, delete DIR
#   scripts/slurm-local.sh status [DIR]         is it up? sinfo, squeue
#
# Needs root (the daemons run as root, SlurmUser=root, and jobs run as the
# submitting user). When slurmctld, slurmd, sbatch, munged, mungekey or pgrep
# is missing, start installs slurm-wlm, munge and procps with apt-get.
#
# Everything lives in DIR, nothing is written to /etc: DIR/slurm.conf (the
# daemons get -f, the clients need SLURM_CONF=DIR/slurm.conf: source
# DIR/env.sh), DIR/munge/ (key, socket, seed; the slurm.conf names the socket
# in AuthInfo), DIR/state (StateSaveLocation), DIR/spool (SlurmdSpoolDir),
# DIR/log/*.log, DIR/pids ("NAME PID" per line, for munged, slurmctld and
# slurmd). The node is "localhost" with nproc CPUs in partition "debug";
# slurmctld and slurmd listen on free ports picked at start, so the cluster
# can run beside another one. No accounting (sacct does not work), no
# cgroups; AuthInfo cred_expire=10 (a requeued job starts again after ~11 s);
# the scheduler runs every second (SchedulerParameters), so that dependent
# and requeued jobs start without the default's delay of up to 30-60 s.
#
# start: without DIR, reuses the cluster the pointer file
# ${TMPDIR:-/tmp}/acbench-slurm-local.dir names when it is up, else makes a
# fresh DIR with mktemp -d. Starts munged, slurmctld and slurmd (each in a
# session of its own, in the foreground mode, so that the recorded PID is the
# daemon's), waits until sinfo shows the node idle ($SLURM_LOCAL_TIMEOUT,
# default 30 s; on failure prints the logs' tails, stops what it started and
# exits 1), writes the pointer file (unless it names another cluster that is
# up) and prints DIR on stdout (the only thing start prints there; the
# messages, among them the `export SLURM_CONF=...` line, go to stderr).
# Starting a cluster that is already up says so and exits 0. A DIR kept by
# `stop --keep` can be started again (its key and state are reused).
#
# stop: without DIR, stops the cluster the pointer file names. Cancels every
# job (scancel --full) and waits until squeue is empty (30 s at most), then
# stops slurmd, slurmctld and munged by their recorded PIDs (SIGTERM, 10 s,
# SIGKILL), kills whatever slurmstepd of this cluster (and its job's
# processes) is left, checks that no process of the cluster remains, removes
# the pointer file if it names DIR and deletes DIR unless --keep is given.
# Exits 1, naming the PIDs, when some process survives. Stopping a cluster
# that is not running is not an error. The daemons' parent is PID 1 once
# start returns; stop waits up to 5 s for it to reap them (a container's
# init can be slow at it), so that ps shows no <defunct> daemon after stop.
#
# status: exit 0 and sinfo/squeue when the cluster is up, exit 3 when not.
set -euo pipefail

# The daemons and mungekey live in /usr/sbin, not always on a CI's PATH.
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin
pointer=${TMPDIR:-/tmp}/acbench-slurm-local.dir
# Marks a directory made by this script, so that stop only deletes those.
marker=.acbench-slurm-local

usage() {
    echo "usage: $0 start [DIR] | stop [--keep] [DIR] | status [DIR]" >&2
    exit 2
}

log() {
    echo "slurm-local: $*" >&2
}

die() {
    log "$*"
    exit 1
}

[[ $# -ge 1 ]] || usage
action=$1
shift
keep=0
dir=
for arg in "$@"; do
    case $arg in
    --keep) [[ $action == stop ]] || usage; keep=1 ;;
    -*) usage ;;
    *) [[ -z $dir ]] || usage; dir=$arg ;;
    esac
done

# The cluster's directory from the pointer file, or nothing.
pointed_dir() {
    if [[ -f $pointer ]]; then
        cat "$pointer" 2>/dev/null || true
    fi
}

# Whether PID $2 is alive and runs program $1 (not a reused PID). A zombie
# counts as dead: the daemons' parent is PID 1, which may reap them late.
runs() {
    local stat
    stat=$(cat "/proc/$2/stat" 2>/dev/null) || return 1
    # "PID (COMM) STATE ..."
    [[ ${stat#*\(} == "$1) "* && ${stat##*\) } != Z* ]]
}

# The recorded PID of daemon $1, or nothing.
recorded_pid() {
    [[ -f $dir/pids ]] || return 0
    awk -v n="$1" '$1 == n { print $2 }' "$dir/pids"
}

daemon_alive() {
    local pid
    pid=$(recorded_pid "$1")
    [[ -n $pid ]] && runs "$1" "$pid"
}

# Run a Slurm client against this cluster.
client() {
    SLURM_CONF=$dir/slurm.conf timeout 10 "$@"
}

# Whether all three daemons are alive and slurmctld answers.
is_up() {
    [[ -f $dir/slurm.conf ]] &&
        daemon_alive munged && daemon_alive slurmctld && daemon_alive slurmd &&
        ctld_up 2>/dev/null
}

# Whether the cluster in $1 is up.
is_up_in() {
    local dir=$1
    is_up
}

# Whether PID $1 is a zombie.
is_zombie() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    [[ ${stat##*) } == Z* ]]
}

# The PIDs of the slurmstepd processes of this cluster: a slurmstepd holds
# its step's socket in this cluster's SlurmdSpoolDir (DIR/spool/NODE_JOB.STEP)
# and was started with this cluster's configuration.
cluster_stepds() {
    local pid
    for pid in $(pgrep -x slurmstepd 2>/dev/null || true); do
        runs slurmstepd "$pid" || continue
        if stepd_owns_spool_socket "$pid" ||
            [[ $(readlink "/proc/$pid/cwd" 2>/dev/null) == "$dir"/* ]]; then
            echo "$pid"
        fi
    done
}

# Whether PID $1 holds an open Unix socket bound to a path under DIR/spool.
stepd_owns_spool_socket() {
    local inodes
    inodes=$(find "/proc/$1/fd" -mindepth 1 -printf '%l\n' 2>/dev/null | sed -n 's/^socket:\[\([0-9]*\)\]$/\1/p')
    [[ -n $inodes ]] || return 1
    awk -v spool="$dir/spool/" -v inodes="$inodes" '
        BEGIN { n = split(inodes, a, "\n"); for (i = 1; i <= n; i++) want[a[i]] = 1 }
        NR > 1 && index($8, spool) == 1 && ($7 in want) { found = 1 }
        END { exit !found }' "/proc/$1/net/unix"
}

# PID $1 and all its descendants.
tree() {
    local pid=$1 child
    echo "$pid"
    for child in $(pgrep -P "$pid" 2>/dev/null || true); do
        tree "$child"
    done
}

# The processes of this cluster still alive: the recorded daemons, its
# slurmstepds, and any slurmctld/slurmd/munged/slurmstepd whose command line
# names DIR.
leftovers() {
    local name pid
    for name in munged slurmctld slurmd; do
        pid=$(recorded_pid "$name")
        [[ -n $pid ]] && runs "$name" "$pid" && echo "$pid"
    done
    cluster_stepds
    for name in munged slurmctld slurmd slurmstepd; do
        for pid in $(pgrep -x "$name" 2>/dev/null || true); do
            if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$dir/"; then
                echo "$pid"
            fi
        done
    done
    return 0
}

# SIGTERM to daemon $1, SIGKILL after 10 s.
stop_daemon() {
    local name=$1 pid
    pid=$(recorded_pid "$name")
    [[ -n $pid ]] && runs "$name" "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
        runs "$name" "$pid" || return 0
        sleep 0.1
    done
    log "$name (PID $pid) still running 10 s after SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        runs "$name" "$pid" || return 0
        sleep 0.1
    done
}

# Cancel every job and wait until squeue is empty.
drain_jobs() {
    daemon_alive slurmctld || return 0
    local jobs
    jobs=$(client squeue -h -o %A 2>/dev/null | sort -u) || return 0
    [[ -n $jobs ]] || return 0
    log "cancelling $(echo "$jobs" | wc -l) job(s)"
    # shellcheck disable=SC2086 # one argument per job ID
    client scancel --full $jobs 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while ((SECONDS < deadline)); do
        jobs=$(client squeue -h -o %A 2>/dev/null) || return 0
        [[ -n $jobs ]] || return 0
        if ! daemon_alive slurmd; then
            # No slurmd to end the jobs: their slurmstepds are killed below.
            log "slurmd is not running; not waiting for the jobs to end"
            return 0
        fi
        sleep 0.5
    done
    log "jobs still in squeue after 30 s: $(echo "$jobs" | tr '\n' ' ')"
}

stop() {
    if [[ -z $dir ]]; then
        dir=$(pointed_dir)
        if [[ -z $dir ]]; then
            log "no DIR given and no cluster in $pointer; nothing to stop"
            return 0
        fi
    fi
    if [[ ! -d $dir ]]; then
        log "$dir does not exist; nothing to stop"
        [[ $(pointed_dir) != "$dir" ]] || rm -f "$pointer"
        return 0
    fi
    dir=$(cd "$dir" && pwd -P)
    drain_jobs
    local name
    for name in slurmd slurmctld munged; do
        stop_daemon "$name"
    done
    # Steps left over (a job that did not end in time, a slurmd killed
    # under a job): the slurmstepd and its job's processes.
    local stepd stray=()
    for stepd in $(cluster_stepds); do
        mapfile -t -O "${#stray[@]}" stray < <(tree "$stepd")
    done
    if ((${#stray[@]})); then
        log "killing leftover slurmstepd processes and their jobs: ${stray[*]}"
        kill -KILL "${stray[@]}" 2>/dev/null || true
        sleep 0.5
    fi
    local left
    left=$(leftovers | sort -un | tr '\n' ' ')
    left=${left% }
    if [[ -n $left ]]; then
        log "processes of the cluster in $dir still alive: $left"
        ps -o pid,ppid,stat,args -p "${left// /,}" >&2 || true
        exit 1
    fi
    # The dead daemons are zombies until PID 1 reaps them (a container's
    # init may take a few seconds): wait up to 5 s, so that ps is clean.
    local pid zombies
    for _ in $(seq 50); do
        zombies=0
        for pid in $(awk '{ print $2 }' "$dir/pids" 2>/dev/null) "${stray[@]}"; do
            is_zombie "$pid" && zombies=1
        done
        ((zombies)) || break
        sleep 0.1
    done
    [[ $(pointed_dir) != "$dir" ]] || rm -f "$pointer"
    rm -f "$dir/pids"
    if ((keep)); then
        log "stopped; kept $dir"
    elif [[ -f $dir/$marker ]]; then
        rm -rf "$dir"
        log "stopped; deleted $dir"
    else
        log "stopped; $dir was not made by this script, not deleting it"
    fi
}

status() {
    if [[ -z $dir ]]; then
        dir=$(pointed_dir)
        [[ -n $dir ]] || { log "no DIR given and no cluster in $pointer: down"; exit 3; }
    fi
    [[ -d $dir ]] || { log "$dir does not exist: down"; exit 3; }
    dir=$(cd "$dir" && pwd -P)
    if ! is_up; then
        local name
        for name in munged slurmctld slurmd; do
            if daemon_alive "$name"; then
                log "$name is running (PID $(recorded_pid "$name"))"
            else
                log "$name is not running"
            fi
        done
        log "the cluster in $dir is down"
        exit 3
    fi
    log "the cluster in $dir is up (SLURM_CONF=$dir/slurm.conf)"
    client sinfo
    client squeue
}

ensure_installed() {
    local cmd missing=0
    for cmd in slurmctld slurmd sbatch munged mungekey pgrep; do
        command -v "$cmd" >/dev/null || missing=1
    done
    ((missing)) || return 0
    ((EUID == 0)) || die "slurm-wlm, munge or procps is not installed and we are not root"
    log "installing slurm-wlm, munge and procps with apt-get"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y slurm-wlm munge procps >&2; then
        apt-get update >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y slurm-wlm munge procps >&2
    fi
}

# A TCP port nothing on this machine uses (listening or connected, IPv4 or
# IPv6: the local ports in /proc/net/tcp*, in hex), other than $1.
free_port() {
    local used port
    used=$(awk 'FNR > 1 { split($2, a, ":"); print a[2] }' /proc/net/tcp /proc/net/tcp6 2>/dev/null | sort -u)
    for _ in $(seq 200); do
        port=$((20000 + RANDOM % 30000))
        [[ $port != "${1:-}" ]] || continue
        grep -qx "$(printf %04X "$port")" <<<"$used" || { echo "$port"; return; }
    done
    die "found no free TCP port"
}

# The last lines of the daemons' logs, on stderr.
show_logs() {
    local name f
    for name in munged slurmctld slurmd; do
        # The daemons' own log files; what they wrote on stderr (the same,
        # and the only log of munged -F) when there is none.
        f=$dir/log/$name.log
        [[ -s $f ]] || f=$dir/log/$name.out
        [[ -s $f ]] || continue
        echo "--- the end of $f:" >&2
        tail -n 15 "$f" >&2
    done
    if daemon_alive slurmctld; then
        echo "--- sinfo -R:" >&2
        client sinfo -R >&2 2>/dev/null || true
    fi
}

# Start daemon $1 (the command line after it) in a session of its own.
spawn() {
    local name=$1
    shift
    # In a non-interactive shell the background job is no process group
    # leader, so setsid execs in place: $! is the daemon's PID.
    # The daemons' working directory is DIR (slurmstepd inherits slurmd's).
    (cd "$dir" && exec setsid "$@" </dev/null >>"$dir/log/$name.out" 2>&1) &
    local pid=$!
    echo "$name $pid" >>"$dir/pids"
    sleep 0.1
    runs "$name" "$pid" || {
        sleep 0.5
        runs "$name" "$pid" || fail "$name exited at once"
    }
}

fail() {
    log "$*"
    show_logs
    log "stopping what was started"
    keep=1
    (stop) || true
    log "the logs are in $dir/log; \`$0 stop $dir\` deletes $dir"
    exit 1
}

# Wait up to $1 s until command $2... succeeds; fail with message $msg.
wait_for() {
    local timeout=$1 what=$2
    shift 2
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || fail "timed out after ${timeout}s waiting for $what"
        local name
        for name in munged slurmctld slurmd; do
            local pid
            pid=$(recorded_pid "$name")
            [[ -z $pid ]] || runs "$name" "$pid" || fail "$name (PID $pid) died while waiting for $what"
        done
        sleep 0.2
    done
}

munge_works() {
    munge -n -S "$dir/munge/munge.socket.2" | unmunge -S "$dir/munge/munge.socket.2"
}

ctld_up() {
    client scontrol ping | grep -q 'is UP'
}

node_idle() {
    [[ $(client sinfo -h -n localhost -o %t) == idle ]]
}

write_conf() {
    local ctld_port d_port cpus mem
    ctld_port=$(free_port)
    d_port=$(free_port "$ctld_port")
    cpus=$(nproc)
    # 90% of the memory; SlurmdParameters=config_overrides keeps the node
    # usable whatever slurmd detects.
    mem=$(awk '/^MemTotal:/ { print int($2 / 1024 * 0.9) }' /proc/meminfo)
    cat >"$dir/slurm.conf" <<EOF
# Written by scripts/slurm-local.sh: a single-node cluster living in $dir.
ClusterName=acbench
SlurmctldHost=localhost
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket.2,cred_expire=10
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$dir/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SwitchType=switch/none
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MailProg=/bin/true
SlurmdParameters=config_overrides
ReturnToService=2
MaxArraySize=1001
KillWait=2
JobRequeue=1
# Schedule at once: the main loop every second and backfill too (the
# defaults, 60 s and 30 s, delay a requeued or dependent job by up to 30 s).
SchedulerParameters=sched_interval=1,bf_interval=1
NodeName=localhost CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    : >"$dir/plugstack.conf"
    echo "export SLURM_CONF=$dir/slurm.conf" >"$dir/env.sh"
}

start() {
    ((EUID == 0)) || die "must run as root (the Slurm daemons run as root)"
    ensure_installed
    if [[ -z $dir ]]; then
        local pointed
        pointed=$(pointed_dir)
        if [[ -n $pointed && -d $pointed ]] && is_up_in "$pointed"; then
            dir=$pointed
        else
            dir=$(mktemp -d "${TMPDIR:-/tmp}/acbench-slurm.XXXXXX")
            touch "$dir/$marker"
        fi
    fi
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd -P)
    if is_up; then
        log "already running in $dir"
        log "export SLURM_CONF=$dir/slurm.conf   (or: source $dir/env.sh)"
        echo "$dir"
        return 0
    fi
    if [[ -n $(leftovers) ]]; then
        log "some processes of a cluster in $dir are alive but it is not up; stopping them first"
        (keep=1 && stop) || die "could not stop the old processes in $dir"
    fi
    # Unix socket paths are limited to 107 bytes; slurmd's step sockets are
    # DIR/spool/localhost_JOBID.STEPID.
    ((${#dir} <= 60)) || die "$dir is too long for Unix socket paths (at most 60 characters)"
    [[ -n $(ls -A "$dir") && ! -f $dir/slurm.conf && ! -f $dir/$marker ]] &&
        die "$dir is not empty and holds no cluster; give an empty or new directory"
    touch "$dir/$marker"
    # munged insists on safe permissions: no group/other write on the key,
    # socket, log and seed directories, a key readable by its owner only.
    chmod 755 "$dir"
    mkdir -p "$dir/munge" "$dir/log" "$dir/run" "$dir/state" "$dir/spool"
    chmod 755 "$dir/munge" "$dir/log" "$dir/run"
    chmod 700 "$dir/state" "$dir/spool"
    rm -f "$dir/pids" "$dir/munge/munge.socket.2" "$dir/munge/munge.socket.2.lock"
    if [[ ! -s $dir/munge/munge.key ]]; then
        rm -f "$dir/munge/munge.key"
        mungekey -c -k "$dir/munge/munge.key"
    fi
    chmod 600 "$dir/munge/munge.key"
    write_conf
    local t0=${EPOCHREALTIME//[.,]/} timeout=${SLURM_LOCAL_TIMEOUT:-30}

    spawn munged munged -F \
        --key-file="$dir/munge/munge.key" \
        --socket="$dir/munge/munge.socket.2" \
        --pid-file="$dir/munge/munged.pid" \
        --log-file="$dir/log/munged.log" \
        --seed-file="$dir/munge/munged.seed"
    wait_for "$timeout" "munged to answer" munge_works

    spawn slurmctld slurmctld -D -f "$dir/slurm.conf"
    wait_for "$timeout" "slurmctld to answer" ctld_up

    spawn slurmd slurmd -D -N localhost -f "$dir/slurm.conf"
    wait_for "$timeout" "the node to be idle" node_idle

    local pointed
    pointed=$(pointed_dir)
    if [[ -n $pointed && $pointed != "$dir" && -d $pointed ]] && is_up_in "$pointed"; then
        log "leaving $pointer alone: it names $pointed, which is up"
    else
        echo "$dir" >"$pointer"
    fi
    local ms=$(((${EPOCHREALTIME//[.,]/} - t0) / 1000))
    log "up in $((ms / 1000)).$(printf %03d $((ms % 1000))) s: $dir ($(tr '\n' ' ' <"$dir/pids"))"
    log "export SLURM_CONF=$dir/slurm.conf   (or: source $dir/env.sh)"
    echo "$dir"
}

case $action in
start) start ;;
stop) stop ;;
status) status ;;
*) usage ;;
esac
