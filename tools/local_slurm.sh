#!/usr/bin/env bash
# local_slurm.sh - a throw-away single-node SLURM cluster on localhost, for
# developing and testing gradprune with `snakemake --executor slurm`.
#
# Usage: tools/local_slurm.sh {install|start|stop|status|purge|env}
#
#   install  apt-get install slurm-wlm munge slurmdbd mariadb-server (idempotent)
#   start    configure + start munged, MariaDB (private datadir/port), slurmdbd,
#            slurmctld, slurmd; create cluster/account; wait for the node to be
#            idle. A no-op when already running.
#   stop     stop exactly the daemons `start` launched (pid files); no-op if none.
#   status   print the state of every daemon and of the node; exit 0 when the
#            cluster is up, 1 otherwise.
#   purge    stop, then delete the state dir and the /etc/slurm/slurm.conf symlink.
#   env      print the shell variables describing the cluster (for eval).
#
# Exit codes: 0 ok, 1 failure, 2 usage, 3 cannot run SLURM here (not root,
# no apt-get / packages unavailable, packages not installed, conflicting
# foreign slurm.conf). Tests should skip with that reason on exit code 3.
#
# Environment:
#   GRADPRUNE_SLURM_DIR      state dir (default /tmp/gradprune-slurm)
#   GRADPRUNE_SLURM_DB_PORT  MariaDB TCP port on 127.0.0.1 (default 33306)
#   GRADPRUNE_SLURM_PORT     base port: slurmctld=P, slurmd=P+1, slurmdbd=P+2
#                            (default 6817, the SLURM defaults)
#   GRADPRUNE_SLURM_CLUSTER  cluster name (default gradprune)
#   GRADPRUNE_SLURM_ACCOUNT  account created for the submitting user (default gradprune)
#   GRADPRUNE_SLURM_TIMEOUT  seconds to wait for each daemon (default 60)
set -uo pipefail

STATE=${GRADPRUNE_SLURM_DIR:-/tmp/gradprune-slurm}
DB_PORT=${GRADPRUNE_SLURM_DB_PORT:-33306}
BASE_PORT=${GRADPRUNE_SLURM_PORT:-6817}
CLUSTER=${GRADPRUNE_SLURM_CLUSTER:-gradprune}
ACCOUNT=${GRADPRUNE_SLURM_ACCOUNT:-gradprune}
TIMEOUT=${GRADPRUNE_SLURM_TIMEOUT:-60}
PARTITION=debug
PACKAGES=(slurm-wlm munge slurmdbd mariadb-server)
REQUIRED_BINS=(munged munge unmunge mariadbd mariadb-install-db mariadb slurmdbd slurmctld slurmd sacctmgr scontrol sbatch sacct squeue)
ETC_CONF=/etc/slurm/slurm.conf
MUNGE_SOCKET=/run/munge/munge.socket.2
# stop order; start order is the reverse
DAEMONS=(slurmd slurmctld slurmdbd mariadbd munged)

PIDS=$STATE/pids
LOGS=$STATE/log
ETC=$STATE/etc
NODE=$(hostname -s)
export SLURM_CONF=$ETC/slurm.conf   # daemons; clients use the /etc/slurm symlink

log() { printf '[local_slurm] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
cannot() { log "CANNOT RUN SLURM HERE: $*"; exit 3; }

need_root() {
    [ "$(id -u)" -eq 0 ] || cannot "must run as root (uid $(id -u)); use sudo"
}

missing_bins() {
    local b out=()
    for b in "${REQUIRED_BINS[@]}"; do
        command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || out+=("$b")
    done
    echo "${out[*]}"
}

# ---------------------------------------------------------------- pid handling
# pid file content: "<pid> <starttime>"; starttime = field 22 of /proc/pid/stat,
# which protects against pid reuse.
proc_starttime() { awk '{ sub(/^.*\) /, ""); print $20 }' "/proc/$1/stat" 2>/dev/null; }
proc_state() { awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null; }

record_pid() { # name pid
    local st; st=$(proc_starttime "$2")
    echo "$2 ${st:-0}" >"$PIDS/$1.pid"
}

# prints pid if the daemon recorded for NAME is alive (not zombie), same comm, same start time
our_pid() { # name
    local f=$PIDS/$1.pid pid st comm
    [ -s "$f" ] || return 1
    read -r pid st <"$f" || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    [ "$comm" = "$1" ] || [ "$comm" = "$1-wlm" ] || return 1
    [ "$(proc_state "$pid")" != Z ] || return 1
    [ "${st:-0}" = 0 ] || [ "$(proc_starttime "$pid")" = "$st" ] || return 1
    echo "$pid"
}

# the daemons write their own pid files; wait until one names a live process with COMM
adopt_pid() { # name daemon_pidfile
    local name=$1 f=$2 pid i comm
    for ((i = 0; i < TIMEOUT * 10; i++)); do
        if [ -s "$f" ]; then
            pid=$(tr -dc '0-9' <"$f")
            comm=$(cat "/proc/$pid/comm" 2>/dev/null)
            if [ -n "$pid" ] && { [ "$comm" = "$name" ] || [ "$comm" = "$name-wlm" ]; }; then
                record_pid "$name" "$pid"
                return 0
            fi
        fi
        sleep 0.1
    done
    return 1
}

stop_one() { # name
    local name=$1 pid i
    if ! pid=$(our_pid "$name"); then
        rm -f "$PIDS/$name.pid"
        return 0
    fi
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 150; i++)); do
        our_pid "$name" >/dev/null || break
        sleep 0.1
    done
    if pid=$(our_pid "$name"); then
        log "$name (pid $pid) ignored SIGTERM for 15 s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null
        for ((i = 0; i < 50; i++)); do
            our_pid "$name" >/dev/null || break
            sleep 0.1
        done
    fi
    if pid=$(our_pid "$name"); then
        log "WARNING: $name (pid $pid) is still running"
        return 1
    fi
    rm -f "$PIDS/$name.pid"
}

all_running() {
    local d
    for d in "${DAEMONS[@]}"; do
        if [ "$d" = munged ] && [ -e "$PIDS/munged.external" ]; then
            munge -n -S "$MUNGE_SOCKET" 2>/dev/null | unmunge -S "$MUNGE_SOCKET" >/dev/null 2>&1 || return 1
            continue
        fi
        our_pid "$d" >/dev/null || return 1
    done
}

any_running() {
    local d
    for d in "${DAEMONS[@]}"; do our_pid "$d" >/dev/null && return 0; done
    return 1
}

wait_for() { # description command...
    local what=$1 i; shift
    for ((i = 0; i < TIMEOUT * 5; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    log "timed out after ${TIMEOUT}s waiting for $what"
    return 1
}

show_log() { # file
    [ -f "$1" ] && { log "last lines of $1:"; tail -n 20 "$1" >&2; }
}

# ---------------------------------------------------------------- install
cmd_install() {
    need_root
    local missing; missing=$(missing_bins)
    if [ -z "$missing" ]; then
        log "packages already installed ($(slurmctld -V 2>/dev/null))"
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 || cannot "apt-get not found (needs Debian/Ubuntu); missing: $missing"
    log "installing ${PACKAGES[*]} (missing: $missing)"
    export DEBIAN_FRONTEND=noninteractive
    # try without updating the lists first (fast when they are fresh)
    if ! apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >"/tmp/local_slurm_apt.log" 2>&1; then
        apt-get update -q >>"/tmp/local_slurm_apt.log" 2>&1 \
            || { tail -n 20 /tmp/local_slurm_apt.log >&2; cannot "apt-get update failed (no package archive reachable?)"; }
        apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >>"/tmp/local_slurm_apt.log" 2>&1 \
            || { tail -n 20 /tmp/local_slurm_apt.log >&2; cannot "apt-get install ${PACKAGES[*]} failed (packages unavailable?)"; }
    fi
    missing=$(missing_bins)
    [ -z "$missing" ] || cannot "still missing after install: $missing"
    log "installed $(slurmctld -V 2>/dev/null)"
}

# ---------------------------------------------------------------- config
write_configs() {
    local cpus mem line
    line=$(slurmd -C 2>/dev/null | head -n 1)
    cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$line")
    mem=$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$line")
    [ -n "$cpus" ] && [ -n "$mem" ] || die "cannot parse 'slurmd -C': $line"
    # topology exactly as slurmd reports it (Boards/Sockets/Cores/Threads), else the node drains
    local topo; topo=$(sed -n 's/^NodeName=[^ ]* \(CPUs=.*\) RealMemory=.*/\1/p' <<<"$line")

    cat >"$ETC/slurm.conf.new" <<EOF
# generated by tools/local_slurm.sh - do not edit (rewritten on every start)
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$BASE_PORT
SlurmdPort=$((BASE_PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
ReturnToService=2
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
Waittime=0
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool/slurmd-%n
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$ETC/plugstack.conf
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$((BASE_PORT + 2))
AccountingStoreFlags=job_comment
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE $topo RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    mv -f "$ETC/slurm.conf.new" "$ETC/slurm.conf"
    chmod 0644 "$ETC/slurm.conf"
    : >"$ETC/plugstack.conf"
    chmod 0644 "$ETC/plugstack.conf"

    # slurmdbd.conf must be 0600 and owned by SlurmUser (root)
    (
        umask 077
        cat >"$ETC/slurmdbd.conf" <<EOF
# generated by tools/local_slurm.sh
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$((BASE_PORT + 2))
SlurmUser=root
PidFile=$STATE/run/slurmdbd.pid
LogFile=$LOGS/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$(cat "$STATE/db.pass")
StorageLoc=slurm_acct_db
EOF
    )
    chown root:root "$ETC/slurmdbd.conf"
    chmod 0600 "$ETC/slurmdbd.conf"
}

link_etc_conf() {
    mkdir -p /etc/slurm
    if [ -L "$ETC_CONF" ] || [ ! -e "$ETC_CONF" ]; then
        ln -sfn "$ETC/slurm.conf" "$ETC_CONF"
    elif ! grep -q '^# generated by tools/local_slurm.sh' "$ETC_CONF" 2>/dev/null; then
        cannot "$ETC_CONF is a regular file not written by this script (a real SLURM install?); refusing to replace it"
    else
        ln -sfn "$ETC/slurm.conf" "$ETC_CONF"
    fi
}

# ---------------------------------------------------------------- daemons
start_munge() {
    if our_pid munged >/dev/null; then return 0; fi
    rm -f "$PIDS/munged.external"
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/log/munge /etc/munge
    install -d -o munge -g munge -m 0711 /var/lib/munge
    if munge -n -S "$MUNGE_SOCKET" 2>/dev/null | unmunge -S "$MUNGE_SOCKET" >/dev/null 2>&1; then
        log "a munged not started by this script is already serving $MUNGE_SOCKET; using it (will not stop it)"
        touch "$PIDS/munged.external"
        return 0
    fi
    if [ ! -s /etc/munge/munge.key ]; then
        log "creating /etc/munge/munge.key"
        if command -v mungekey >/dev/null 2>&1; then
            runuser -u munge -- mungekey --create --keyfile=/etc/munge/munge.key
        else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 2>/dev/null
        fi
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    rm -f /run/munge/munged.pid
    # --force: remove a stale socket left by a killed munged
    runuser -u munge -- munged --force --num-threads=2 --pid-file=/run/munge/munged.pid \
        || { show_log /var/log/munge/munged.log; die "munged failed to start"; }
    adopt_pid munged /run/munge/munged.pid || die "munged did not write its pid file"
    wait_for "munge to answer" bash -c "munge -n -S $MUNGE_SOCKET | unmunge -S $MUNGE_SOCKET" \
        || { show_log /var/log/munge/munged.log; die "munge does not work"; }
}

db_client() { mariadb --no-defaults -uroot --socket="$STATE/db/mysqld.sock" "$@"; }

start_mariadb() {
    if our_pid mariadbd >/dev/null; then return 0; fi
    local fresh=0
    if [ ! -d "$STATE/db/data/mysql" ]; then
        fresh=1
        rm -rf "$STATE/db/data"
        install -d -o mysql -g mysql -m 0750 "$STATE/db/data"
        log "initialising private MariaDB datadir $STATE/db/data"
        mariadb-install-db --no-defaults --user=mysql --datadir="$STATE/db/data" \
            --auth-root-authentication-method=socket --skip-test-db \
            >"$LOGS/mariadb-install.log" 2>&1 \
            || { show_log "$LOGS/mariadb-install.log"; die "mariadb-install-db failed"; }
    fi
    chown mysql:mysql "$STATE/db" "$STATE/db/data"
    rm -f "$STATE/db/mysqld.pid" "$STATE/db/mysqld.sock"
    # mariadbd stays in the foreground; detach it from this shell
    setsid mariadbd --no-defaults --user=mysql --datadir="$STATE/db/data" \
        --socket="$STATE/db/mysqld.sock" --pid-file="$STATE/db/mysqld.pid" \
        --port="$DB_PORT" --bind-address=127.0.0.1 --skip-name-resolve \
        --log-error="$LOGS/mariadb.log" --skip-log-bin \
        --innodb-buffer-pool-size=32M --innodb-log-file-size=16M \
        --max-connections=50 --performance-schema=OFF \
        </dev/null >/dev/null 2>&1 &
    adopt_pid mariadbd "$STATE/db/mysqld.pid" \
        || { show_log "$LOGS/mariadb.log"; die "mariadbd did not start"; }
    wait_for "MariaDB to accept connections" db_client -e 'SELECT 1' \
        || { show_log "$LOGS/mariadb.log"; die "MariaDB does not accept connections"; }
    if [ "$fresh" = 1 ] || ! db_client -N -e "SELECT 1 FROM mysql.user WHERE user='slurm'" | grep -q 1; then
        local pass; pass=$(cat "$STATE/db.pass")
        db_client <<EOF || die "cannot create the MariaDB user for slurmdbd"
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$pass';
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$pass';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
EOF
    fi
}

start_slurmdbd() {
    if ! our_pid slurmdbd >/dev/null; then
        rm -f "$STATE/run/slurmdbd.pid"
        slurmdbd >>"$LOGS/slurmdbd.out" 2>&1 || { show_log "$LOGS/slurmdbd.log"; die "slurmdbd failed to start"; }
        adopt_pid slurmdbd "$STATE/run/slurmdbd.pid" || { show_log "$LOGS/slurmdbd.log"; die "slurmdbd did not start"; }
    fi
    wait_for "slurmdbd to answer" sacctmgr -n list cluster \
        || { show_log "$LOGS/slurmdbd.log"; die "slurmdbd does not answer"; }
    if ! sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
        sacctmgr -i add cluster "$CLUSTER" >/dev/null || die "sacctmgr add cluster failed"
    fi
    if ! sacctmgr -n -P list account format=account | grep -qx "$ACCOUNT"; then
        sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" Description="gradprune test account" \
            Organization=gradprune >/dev/null || die "sacctmgr add account failed"
    fi
    local u users=(root)
    [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ] && users+=("$SUDO_USER")
    for u in "${users[@]}"; do
        if ! sacctmgr -n -P list assoc user="$u" account="$ACCOUNT" format=user | grep -qx "$u"; then
            sacctmgr -i add user "$u" Account="$ACCOUNT" Cluster="$CLUSTER" >/dev/null \
                || die "sacctmgr add user $u failed"
        fi
    done
}

node_field() { # field ; from scontrol show node -o
    scontrol show node "$NODE" -o 2>/dev/null | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1
}

start_slurm() {
    if ! our_pid slurmctld >/dev/null; then
        rm -f "$STATE/run/slurmctld.pid"
        slurmctld >>"$LOGS/slurmctld.out" 2>&1 || { show_log "$LOGS/slurmctld.log"; die "slurmctld failed to start"; }
        adopt_pid slurmctld "$STATE/run/slurmctld.pid" || { show_log "$LOGS/slurmctld.log"; die "slurmctld did not start"; }
    fi
    wait_for "slurmctld to answer" scontrol ping \
        || { show_log "$LOGS/slurmctld.log"; die "slurmctld does not answer"; }
    local launch; launch=$(date +%s)
    if ! our_pid slurmd >/dev/null; then
        rm -f "$STATE/run/slurmd.pid"
        slurmd >>"$LOGS/slurmd.out" 2>&1 || { show_log "$LOGS/slurmd.log"; die "slurmd failed to start"; }
        adopt_pid slurmd "$STATE/run/slurmd.pid" || { show_log "$LOGS/slurmd.log"; die "slurmd did not start"; }
    else
        launch=0
    fi
    # slurmctld can report the node idle from its saved state before slurmd registered:
    # wait for SlurmdStartTime >= launch and an IDLE (or MIXED/ALLOCATED) state
    local i state started st_epoch
    for ((i = 0; i < TIMEOUT * 4; i++)); do
        state=$(node_field State)
        started=$(node_field SlurmdStartTime)
        st_epoch=$(date -d "$started" +%s 2>/dev/null || echo 0)
        if [ "$st_epoch" -ge "$launch" ]; then
            case $state in
            IDLE | MIXED | ALLOCATED | IDLE+* | MIXED+* | ALLOCATED+*)
                case $state in *DRAIN* | *DOWN* | *NOT_RESPONDING* | *INVALID* | *FAIL*) ;; *) return 0 ;; esac
                ;;
            esac
        fi
        sleep 0.25
    done
    show_log "$LOGS/slurmd.log"
    scontrol show node "$NODE" >&2
    die "node $NODE did not become idle (state=$state, SlurmdStartTime=$started)"
}

cmd_start() {
    need_root
    local missing; missing=$(missing_bins)
    [ -z "$missing" ] || cannot "SLURM packages not installed (missing: $missing); run '$0 install' first"
    mkdir -p "$STATE" "$PIDS" "$LOGS" "$ETC" "$STATE/run" "$STATE/ctld" "$STATE/spool" "$STATE/db"
    chmod 0755 "$STATE" "$ETC"
    chmod 0700 "$PIDS"
    if all_running && scontrol ping >/dev/null 2>&1; then
        log "already running (state dir $STATE)"
        return 0
    fi
    if any_running; then
        log "cluster partially running; restarting the daemons that are missing"
    fi
    local t0=${EPOCHREALTIME/./}
    [ -s "$STATE/db.pass" ] || (umask 077 && head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$STATE/db.pass")
    write_configs
    link_etc_conf
    # a stale slurmctld state from another ClusterName blocks slurmctld; ours is private
    start_munge
    start_mariadb
    start_slurmdbd
    start_slurm
    log "SLURM $(slurmctld -V | awk '{print $2}') up in $(( (${EPOCHREALTIME/./} - t0) / 1000000 )) s: node $NODE ($(node_field CPUTot) CPUs, $(node_field RealMemory) MB), partition $PARTITION, account $ACCOUNT, state dir $STATE"
}

cmd_stop() {
    need_root
    if [ ! -d "$PIDS" ] || ! any_running; then
        rm -f "$PIDS"/*.pid 2>/dev/null
        log "not running (nothing to stop)"
        return 0
    fi
    # cancel jobs left in the queue so their slurmstepd processes end with the cluster
    if our_pid slurmctld >/dev/null && scontrol ping >/dev/null 2>&1; then
        local jobs
        jobs=$(squeue -h -o %i 2>/dev/null | tr '\n' ' ')
        if [ -n "${jobs// /}" ]; then
            log "cancelling jobs still queued/running: $jobs"
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null
            wait_for "cancelled jobs to end" bash -c '[ -z "$(squeue -h -o %i)" ]' || true
        fi
    fi
    local d rc=0
    for d in "${DAEMONS[@]}"; do stop_one "$d" || rc=1; done
    rm -f "$PIDS/munged.external"
    [ "$rc" = 0 ] && log "stopped" || log "some daemons could not be stopped"
    return "$rc"
}

cmd_status() {
    local d pid up=0
    echo "state dir: $STATE"
    for d in munged mariadbd slurmdbd slurmctld slurmd; do
        if [ "$d" = munged ] && [ -e "$PIDS/munged.external" ]; then
            echo "  $d: external (not started by this script)"
        elif pid=$(our_pid "$d"); then
            echo "  $d: running (pid $pid)"
        else
            echo "  $d: stopped"
        fi
    done
    if all_running && scontrol ping >/dev/null 2>&1; then
        echo "  node $NODE: $(node_field State) (SlurmdStartTime=$(node_field SlurmdStartTime))"
        up=1
    fi
    [ "$up" = 1 ] && echo "cluster: UP" || echo "cluster: DOWN"
    [ "$up" = 1 ]
}

cmd_purge() {
    need_root
    cmd_stop || die "cannot purge while daemons are running"
    if [ -L "$ETC_CONF" ] && [ "$(readlink "$ETC_CONF")" = "$ETC/slurm.conf" ]; then
        rm -f "$ETC_CONF"
    fi
    case $STATE in /tmp/* | /var/tmp/*) ;; *) [ -e "$STATE/pids" ] || die "refusing to delete $STATE (not a state dir)" ;; esac
    rm -rf "$STATE"
    log "purged $STATE"
}

cmd_env() {
    cat <<EOF
GRADPRUNE_SLURM_DIR=$STATE
SLURM_PARTITION=$PARTITION
SBATCH_PARTITION=$PARTITION
SBATCH_ACCOUNT=$ACCOUNT
SLURM_ACCOUNT=$ACCOUNT
EOF
}

case ${1:-} in
install) cmd_install ;;
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
purge) cmd_purge ;;
env) cmd_env ;;
*)
    sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
