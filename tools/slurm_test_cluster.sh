#!/usr/bin/env bash
# A single-node Slurm on this machine, for the workflow's cluster tests: root, Debian's slurmctld slurmd
# slurm-client munge, no accounting, two stand-in GPUs declared as generic resources (character devices, since
# the machine may have no GPU), and a node that declares more CPUs and memory than it has (config_overrides) so
# the slurm profile's per-rule requests are schedulable. Nothing enforces those limits: it tests scheduling and
# submission, not isolation.
#
#   tools/slurm_test_cluster.sh start   # writes $SLURM_TEST_DIR (default /tmp/latent-interp-slurm), starts daemons
#   tools/slurm_test_cluster.sh status  # sinfo
#   tools/slurm_test_cluster.sh stop    # stops the daemons it started
#
# Install first (Debian): apt-get install slurmctld slurmd slurm-client munge
set -euo pipefail
DIR=${SLURM_TEST_DIR:-/tmp/latent-interp-slurm}
HOST=$(hostname -s)
CONF=/etc/slurm/slurm.conf

start() {
  for tool in slurmctld slurmd munged sinfo; do
    command -v "$tool" >/dev/null || { echo "$tool not found: apt-get install slurmctld slurmd slurm-client munge" >&2; exit 1; }
  done
  mkdir -p "$DIR"/{state,spool,log} /etc/slurm /run/munge /var/log/munge /var/lib/munge /etc/munge
  [ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
  chmod 400 /etc/munge/munge.key
  pgrep -x munged >/dev/null || su -s /bin/sh munge -c munged 2>/dev/null || munged --force
  for gpu in 0 1; do [ -e "$DIR/gpu$gpu" ] || mknod "$DIR/gpu$gpu" c 1 3; done
  cat > "$CONF" <<CONF
ClusterName=latent-interp-test
SlurmctldHost=$HOST
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=2000
MinJobAge=300
ReturnToService=2
SlurmdParameters=config_overrides
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmUser=root
GresTypes=gpu
NodeName=$HOST CPUs=8 RealMemory=64000 Gres=gpu:2 State=UNKNOWN
PartitionName=main Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
  echo "NodeName=$HOST Name=gpu File=$DIR/gpu[0-1]" > /etc/slurm/gres.conf
  slurmctld -c
  slurmd
  for _ in $(seq 1 30); do
    if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then sinfo; exit 0; fi
    sleep 1
  done
  echo "the node did not come up; see $DIR/log" >&2
  sinfo >&2 || true
  exit 1
}

stop() {
  for pidfile in "$DIR/slurmd.pid" "$DIR/slurmctld.pid"; do
    [ -s "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) sinfo ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
