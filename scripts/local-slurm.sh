#!/usr/bin/env bash
# A SLURM on this machine, for the batch integration tests (and for trying `hpcflow submit` /
# `sbatch jobscripts/*.sh` without a cluster). Debian/Ubuntu, as root.
#
#   bash scripts/local-slurm.sh                          one node, this host (partition `local`);
#                                                        a cluster of more is kept as it is
#   HPCFLOW_SLURM_NODES=3 bash scripts/local-slurm.sh    and 3 more nodes (partition `nodes`)
#   bash scripts/local-slurm.sh --down                   back to one node (removes the others)
#
# With N > 1, this host's node stays as it is (the default partition `local`, what the
# single-node tests use) and N further nodes hfnode1..N make the partition `nodes`: each
# is a network namespace on the bridge hfbr0 (10.201.26.0/24 by default, HPCFLOW_SLURM_NET;
# the controller is .254, node k is .k; no route off that subnet), where its slurmd runs
# with its own hostname (a UTS namespace) and its own spool, pid and log files (%n).
# Their names are added to /etc/hosts, marked, and removed by --down. Switching between 1
# and N restarts slurmctld (running jobs survive it). Without HPCFLOW_SLURM_NODES the
# nodes there are stay (a session that only makes sure SLURM runs must not take away the
# nodes another one's jobs run on); nodes with jobs on them are never removed (the jobs
# would end NODE_FAIL): the script refuses, naming the jobs.
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
# Idempotent: a cluster as asked for, its daemons alive and its nodes up, is left alone;
# missing daemons are started (a killed slurmd too), a cut node link is brought back up;
# the script ends when `sinfo` shows every node usable, or fails after
# HPCFLOW_SLURM_WAIT seconds with the daemons' logs.
set -euo pipefail

CPUS=${HPCFLOW_SLURM_CPUS:-64}
NODES=${HPCFLOW_SLURM_NODES:-}
NODE_CPUS=${HPCFLOW_SLURM_NODE_CPUS:-8}  # CPUs each further node declares
NET=${HPCFLOW_SLURM_NET:-10.201.26}      # the first three octets of the nodes' /24
WAIT_S=${HPCFLOW_SLURM_WAIT:-60}
HOST=$(hostname -s)
CONF=/etc/slurm/slurm.conf
LOGS=/var/log/slurm
SPOOL=/var/spool/slurmd
MARK="# written by hpcflow scripts/local-slurm.sh"
HOSTS_MARK="# hpcflow local-slurm node"
BRIDGE=hfbr0
CTL_ADDR=$NET.254

say() { echo "local-slurm: $*"; }
die() { echo "local-slurm: error: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (it installs packages and starts daemons)"
if [ "${1:-}" = "--down" ]; then
    NODES=1
elif [ -n "${1:-}" ]; then
    die "unknown argument ${1}: the only one is --down (back to one node)"
fi
# Not asked for a number: the nodes this script configured before (one the first time).
if [ -z "$NODES" ]; then
    NODES=$(grep -c '^NodeName=hfnode' "$CONF" 2>/dev/null || true)
    [ "${NODES:-0}" -gt 1 ] || NODES=1
fi
case "$NODES" in
[1-9] | 1[0-9] | 20) ;;
*) die "HPCFLOW_SLURM_NODES must be 1 to 20, not '$NODES'" ;;
esac
EXTRA=$((NODES > 1 ? NODES : 0)) # the further nodes: none with 1 (this host is the node)

node_names() { for k in $(seq "$EXTRA"); do echo "hfnode$k"; done; }
all_nodes() {
    echo "$HOST"
    node_names
}
node_state() { sinfo -h -N -n "$1" -o %T 2>/dev/null | head -n1; }
is_usable() { case "$1" in *"*") return 1 ;; idle* | mixed* | allocated* | completing*) return 0 ;; *) return 1 ;; esac }
all_usable() {
    for n in $(all_nodes); do is_usable "$(node_state "$n")" || return 1; done
}
live() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
# Every daemon alive: a killed slurmd's node still looks usable until slurmctld's next ping.
daemons_live() {
    for f in /run/slurmdbd.pid /run/slurmctld.pid $(all_nodes | sed 's|.*|/run/slurmd.&.pid|'); do
        live "$f" || return 1
    done
}

# Every node's link up (a test may have cut one: `ip -n NODE link set eth0 down`).
links_up() {
    for n in $(node_names); do
        ip -n "$n" -o link show eth0 2>/dev/null | grep -q '<[^>]*,UP[,>]' || return 1
    done
}

# slurmctld records jobs in slurmdbd (where sacct reads them): it has registered its host there.
accounting() { [ -n "$(sacctmgr -n -P show cluster hpcflow-local format=controlhost 2>/dev/null)" ]; }

render_config() {
    local mem_mb ctl=$HOST
    mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
    # The nodes reach the controller on the bridge (this host's name may be loopback in /etc/hosts).
    [ "$EXTRA" -eq 0 ] || ctl="$HOST($CTL_ADDR)"
    cat <<EOF
$MARK
ClusterName=hpcflow-local
SlurmctldHost=$ctl
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
# Per node (%n); $SPOOL/$HOST is a link to $SPOOL itself.
SlurmdSpoolDir=$SPOOL/%n
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.%n.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.%n.log
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
    [ "$EXTRA" -gt 0 ] || return 0
    for k in $(seq "$EXTRA"); do
        echo "NodeName=hfnode$k NodeAddr=$NET.$k NodeHostname=hfnode$k CPUs=$NODE_CPUS RealMemory=$mem_mb State=UNKNOWN"
    done
    echo "PartitionName=nodes Nodes=hfnode[1-$EXTRA] MaxTime=INFINITE State=UP"
}

if command -v sinfo >/dev/null && [ -f "$CONF" ] && [ "$(render_config)" = "$(cat "$CONF")" ] &&
    daemons_live && links_up && all_usable && accounting; then
    say "already running: $(all_nodes | wc -l) node(s) usable, with accounting"
    exit 0
fi

install_packages() {
    local pkgs=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server iproute2)
    dpkg -s "${pkgs[@]}" >/dev/null 2>&1 && return 0
    say "installing ${pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${pkgs[@]}" >/dev/null || {
        apt-get update -q >/dev/null
        apt-get install -y -q "${pkgs[@]}" >/dev/null
    }
}

# write_config: true when slurm.conf changed (slurmctld must then restart).
write_config() {
    if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
        die "$CONF exists and was not written by this script; not touching it"
    fi
    mkdir -p /etc/slurm /var/spool/slurmctld "$SPOOL" "$LOGS"
    [ -e "$SPOOL/$HOST" ] || ln -s . "$SPOOL/$HOST" # this host's node keeps $SPOOL itself
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
    [ -f "$CONF" ] && [ "$(render_config)" = "$(cat "$CONF")" ] && return 1
    render_config >"$CONF"
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

# start DAEMON PIDFILE [PREFIX...]: run it in the foreground (-D) of its own session, so it
# outlives this script and the shell that ran it; skipped when its pid file names a live
# process. PREFIX runs it elsewhere (a node's namespaces); each program in it execs the next.
start() {
    local daemon=$1 pidfile=$2 name
    shift 2
    live "$pidfile" && return 0
    name=$(basename "$pidfile" .pid)
    say "starting $name"
    setsid "$@" "/usr/sbin/$daemon" -D >>"$LOGS/$name.stdout" 2>&1 </dev/null &
    echo $! >"$pidfile"
}

stop() { # stop PIDFILE: SIGTERM, then wait for the process to go (SIGKILL after 30 s)
    local pid
    if live "$1"; then
        pid=$(cat "$1")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 60); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$1"
}

# A node: a network namespace with eth0 (its end of a veth pair on the bridge) and lo.
node_up() {
    local k=$1 n=hfnode$1
    [ -e "/var/run/netns/$n" ] || ip netns add "$n"
    if ! ip -n "$n" link show eth0 >/dev/null 2>&1; then
        ip link del "hfveth$k" 2>/dev/null || true
        ip link add "hfveth$k" type veth peer name "hfpeer$k"
        ip link set "hfpeer$k" netns "$n"
        ip -n "$n" link set "hfpeer$k" name eth0
    fi
    ip -n "$n" addr replace "$NET.$k/24" dev eth0
    ip -n "$n" link set eth0 up # also brings back a link a test cut
    ip -n "$n" link set lo up
    ip link set "hfveth$k" master "$BRIDGE"
    ip link set "hfveth$k" up
    mkdir -p "$SPOOL/$n"
}

# Its slurmd: only the network namespace is entered (nsenter --net), not `ip netns exec`,
# which mounts a /sys without the cgroups slurmd looks for; a UTS namespace gives it its
# hostname.
start_node() {
    local n=$1
    # shellcheck disable=SC2016
    start slurmd "/run/slurmd.$n.pid" nsenter --net="/var/run/netns/$n" \
        unshare --uts sh -c 'hostname "$0" && exec "$@" -N "$0"' "$n"
}

# node_down NAME: its slurmd, whatever still runs in its namespace (only jobs' processes), and
# the namespace (its veth pair goes with it).
node_down() {
    local n=$1 pid
    say "removing node $n"
    stop "/run/slurmd.$n.pid"
    if [ -e "/var/run/netns/$n" ]; then
        for pid in $(ip netns pids "$n" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns del "$n" || true
    fi
    ip link del "hfveth${n#hfnode}" 2>/dev/null || true
    rm -rf "${SPOOL:?}/$n"
}

network_up() {
    ip link show "$BRIDGE" >/dev/null 2>&1 || ip link add "$BRIDGE" type bridge
    ip addr replace "$CTL_ADDR/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    for k in $(seq "$EXTRA"); do node_up "$k"; done
}

# The nodes' names in /etc/hosts, each line marked (rewritten in place: it may be a mount).
write_hosts() {
    local want
    want=$(
        grep -vF "$HOSTS_MARK" /etc/hosts
        for k in $(seq "$EXTRA"); do echo "$NET.$k hfnode$k $HOSTS_MARK"; done
    )
    [ "$want" = "$(cat /etc/hosts)" ] || echo "$want" >/etc/hosts
}

# The nodes beyond $EXTRA (all of them with one node), and with one node the bridge.
remove_other_nodes() {
    local n f
    for n in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^hfnode[0-9]+$'); do
        [ "${n#hfnode}" -le "$EXTRA" ] || node_down "$n"
    done
    for f in /run/slurmd.hfnode*.pid; do
        [ -e "$f" ] || continue
        n=$(basename "$f" .pid)
        n=${n#slurmd.}
        [ "${n#hfnode}" -le "$EXTRA" ] || node_down "$n"
    done
    if [ "$EXTRA" -eq 0 ] && ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link del "$BRIDGE"
    fi
}

# The nodes beyond $EXTRA (configured or with a namespace) that have jobs: "NAME (jobs ID...)".
busy_nodes() {
    local n jobs
    for n in $({
        grep -o '^NodeName=hfnode[0-9]*' "$CONF" 2>/dev/null | cut -d= -f2
        ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^hfnode[0-9]+$'
    } | sort -u); do
        [ "${n#hfnode}" -le "$EXTRA" ] && continue
        jobs=$(squeue -h -w "$n" -o %i 2>/dev/null | sort -u | tr '\n' ' ')
        [ -z "$jobs" ] || echo "$n (jobs ${jobs% })"
    done
}

install_packages
busy=$(busy_nodes | tr '\n' ' ')
[ -z "$busy" ] || die "not removing nodes that jobs run on: ${busy% }; scancel those jobs or wait for their end"
[ "$EXTRA" -eq 0 ] || network_up
write_hosts
changed=false
write_config && changed=true
start_munge
start_mariadb
start slurmdbd /run/slurmdbd.pid
wait_for_slurmdbd
sacctmgr -n -P show cluster format=cluster | grep -x hpcflow-local >/dev/null || sacctmgr -i add cluster hpcflow-local >/dev/null
if $changed && live /run/slurmctld.pid; then
    say "restarting slurmctld for the new slurm.conf ($NODES node(s))"
    stop /run/slurmctld.pid
elif live /run/slurmctld.pid && ! accounting; then # `scontrol reconfigure` does not start accounting; a restart does
    say "warning: slurmctld was started without accounting; for sacct, restart it:" \
        "scontrol shutdown slurmctld, then run this script again"
fi
start slurmctld /run/slurmctld.pid
# This host's slurmd keeps running under the pid file it had before the %n files, if it has one.
if [ ! -f "/run/slurmd.$HOST.pid" ] && live /run/slurmd.pid; then
    cp /run/slurmd.pid "/run/slurmd.$HOST.pid"
fi
start slurmd "/run/slurmd.$HOST.pid"
for n in $(node_names); do start_node "$n"; done
if $changed; then
    for _ in $(seq 30); do
        scontrol ping >/dev/null 2>&1 && break
        sleep 0.5
    done
    scontrol reconfigure >/dev/null 2>&1 || true # the slurmds that kept running read the new slurm.conf
fi
remove_other_nodes

for _ in $(seq "$WAIT_S"); do
    waiting=""
    for n in $(all_nodes); do
        state=$(node_state "$n" || true)
        is_usable "$state" && continue
        waiting="$waiting $n:${state:-no answer}"
        case "$state" in
        down* | drain*) scontrol update NodeName="$n" State=RESUME >/dev/null 2>&1 || true ;;
        esac
    done
    if [ -z "$waiting" ]; then
        say "node $HOST usable with $CPUS CPUs (partition local)"
        [ "$EXTRA" -eq 0 ] || say "nodes hfnode[1-$EXTRA] usable with $NODE_CPUS CPUs each (partition nodes)"
        exit 0
    fi
    sleep 1
done
echo "local-slurm: error: not usable after ${WAIT_S}s:$waiting" >&2
tail -n 20 "$LOGS/slurmctld.log" "$LOGS"/slurmd*.log >&2 || true
exit 1
