#!/usr/bin/env bash
# A single-node SLURM on this machine, for the batch integration tests (and for trying
# `hpcflow submit` / `sbatch jobscripts/*.sh` without a cluster). Debian/Ubuntu, as root.
#
# The node declares HPCFLOW_SLURM_CPUS CPUs (64 by default) whatever the hardware has
# (SlurmdParameters=config_overrides), so the 64-CPU job scripts are accepted on a small
# machine; jobs then run oversubscribed, which is fine for correctness tests. No cgroups
# (proctrack/linuxproc, task/none), so it also runs inside containers. Accounting goes to
# slurmdbd over a local MariaDB (root through its unix socket), so `sacct` answers: the
# --until-done test reads each attempt of a job from it.
# Jobs run as the submitting user (root here) with the submitting environment
# (sbatch's default --export=ALL), so an activated virtualenv is what the job uses.
#
# Idempotent: a cluster that already answers with its node up is left alone; missing
# daemons are started; the script ends when `sinfo` shows the node usable, or fails
# after HPCFLOW_SLURM_WAIT seconds with the daemons' logs.
set -euo pipefail

CPUS=${HPCFLOW_SLURM_CPUS:-64}
WAIT_S=${HPCFLOW_SLURM_WAIT:-60}
HOST=$(hostname -s)
CONF=/etc/slurm/slurm.conf
LOGS=/var/log/slurm
MARK="# written by hpcflow scripts/local-slurm.sh"

say() { echo "local-slurm: $*"; }
die() { echo "local-slurm: error: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (it installs packages and starts daemons)"

node_state() { sinfo -h -N -n "$HOST" -o %T 2>/dev/null | head -n1; }
usable() { case "$(node_state)" in idle* | mixed* | allocated* | completing*) return 0 ;; *) return 1 ;; esac; }

# slurmctld records jobs in slurmdbd (where sacct reads them): it has registered its host there.
accounting() { [ -n "$(sacctmgr -n -P show cluster hpcflow-local format=controlhost 2>/dev/null)" ]; }

if command -v sinfo >/dev/null && usable && accounting; then
    say "already running: node $HOST is $(node_state), with accounting"
    exit 0
fi

install_packages() {
    local pkgs=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server)
    dpkg -s "${pkgs[@]}" >/dev/null 2>&1 && return 0
    say "installing ${pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${pkgs[@]}" >/dev/null || {
        apt-get update -q >/dev/null
        apt-get install -y -q "${pkgs[@]}" >/dev/null
    }
}

write_config() {
    if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
        die "$CONF exists and was not written by this script; not touching it"
    fi
    local mem_mb
    mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
    mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd "$LOGS"
    cat >"$CONF" <<EOF
$MARK
ClusterName=hpcflow-local
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
MpiDefault=none
SelectType=select/cons_tres
# CPUs only: jobs that ask for no memory do not take the whole node's memory.
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
# Keep finished jobs visible to \`scontrol show job\` for 10 minutes.
MinJobAge=600
NodeName=$HOST CPUs=$CPUS RealMemory=$mem_mb State=UNKNOWN
PartitionName=local Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
    cat >/etc/slurm/slurmdbd.conf <<EOF
$MARK
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=/run/slurmdbd.pid
LogFile=$LOGS/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=slurm_acct_db
EOF
    chmod 600 /etc/slurm/slurmdbd.conf
}

# The database behind slurmdbd: MariaDB as Debian installs it (root logs in by its unix socket).
start_mariadb() {
    mariadb -e 'SELECT 1' >/dev/null 2>&1 && return 0
    say "starting mariadbd"
    mkdir -p /run/mysqld
    chown mysql:mysql /run/mysqld
    setsid /usr/sbin/mariadbd --user=mysql >>"$LOGS/mariadbd.stdout" 2>&1 </dev/null &
    for _ in $(seq 60); do
        mariadb -e 'SELECT 1' >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    die "mariadbd did not start (see $LOGS/mariadbd.stdout)"
}

# slurmdbd must answer before slurmctld starts, or slurmctld runs without accounting.
wait_for_slurmdbd() {
    for _ in $(seq 60); do
        sacctmgr -n show cluster >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    die "slurmdbd did not answer (see $LOGS/slurmdbd.log)"
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        return 0
    fi
    [ -s /etc/munge/munge.key ] || mungekey --create --force
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge
    chown munge:munge /run/munge
    say "starting munged"
    runuser -u munge -- /usr/sbin/munged
    for _ in $(seq 20); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
        sleep 0.25
    done
    die "munged did not start (see /var/log/munge/munged.log)"
}

# start DAEMON: run it in the foreground (-D) of its own session, so it outlives this
# script and the shell that ran it; skipped when its pid file names a live process.
start() {
    local daemon=$1 pidfile=/run/$1.pid
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        return 0
    fi
    say "starting $daemon"
    setsid "/usr/sbin/$daemon" -D >>"$LOGS/$daemon.stdout" 2>&1 </dev/null &
    echo $! >"$pidfile"
}

install_packages
write_config
start_munge
start_mariadb
start slurmdbd
wait_for_slurmdbd
sacctmgr -n -P show cluster format=cluster | grep -x hpcflow-local >/dev/null || sacctmgr -i add cluster hpcflow-local >/dev/null
if usable && ! accounting; then  # `scontrol reconfigure` does not start accounting; a restart does
    say "warning: slurmctld was started without accounting; for sacct, restart it:" \
        "scontrol shutdown slurmctld, then run this script again"
fi
start slurmctld
start slurmd

for _ in $(seq "$WAIT_S"); do
    state=$(node_state || true)
    case "$state" in
    idle* | mixed* | allocated* | completing*)
        say "node $HOST is $state with $CPUS CPUs"
        exit 0
        ;;
    down* | drain*)
        scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true
        ;;
    esac
    sleep 1
done
echo "local-slurm: error: node $HOST not usable after ${WAIT_S}s (state: ${state:-no answer})" >&2
tail -n 20 "$LOGS/slurmctld.log" "$LOGS/slurmd.log" >&2 || true
exit 1
