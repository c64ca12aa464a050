#!/bin/bash
# Sentiment analysis on 16 CPUs for longer than one walltime: SLURM's early signal makes
# hpcflow write a checkpoint, and the job requeues itself (same job id, same run directory)
# until the run is finished, at most max_attempts times.
#   sbatch jobscripts/sentiment_until_done.sh   (from the repository root; the job runs there)
# Results go to runs/sentiment-until-done-<job id>/; `hpcflow status` on it shows the progress.
# `hpcflow submit sentiment --mapping hybrid_multi --until-done ...` writes such a script for
# you; it submits a dependent job instead of requeueing (no requeue delay; PBS too).
#SBATCH --job-name=sentiment-until-done
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=16
#SBATCH --time=01:00:00
#SBATCH --signal=B:USR1@60
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=sentiment-until-done-%j.out
# --signal: SIGUSR1 to this shell 60 s before the walltime (SLURM may send it up to ~30 s earlier),
#   passed on to hpcflow as SIGTERM (a TERM from SLURM would be logged as CANCELLED in the output).
# --requeue: the job may be put back in the queue; SLURM holds a requeued job for about
#   two minutes (AuthInfo cred_expire) before it starts again.
# --open-mode=append: every attempt writes to the same output file.

set -e
max_attempts=10
run_dir=runs/sentiment-until-done-$SLURM_JOB_ID # a requeued job keeps its id
attempt=$((${SLURM_RESTART_COUNT:-0} + 1))
if [ -f "$run_dir/checkpoint/run.json" ]; then
    set -- hpcflow resume "$run_dir"
else
    # --checkpoint-interval: a checkpoint every 10 minutes too, for a node that fails.
    set -- hpcflow run sentiment --mapping hybrid_multi --run-dir "$run_dir" --checkpoint-interval 600
fi
echo "attempt $attempt of $max_attempts: $*"

# hpcflow in the background: bash runs a trap while it waits, not while a command runs in
# the foreground, so SLURM's SIGTERM is passed on at once.
trap 'kill -TERM "$launcher" 2>/dev/null' TERM USR1
"$@" &
launcher=$!
while kill -0 "$launcher" 2>/dev/null; do wait "$launcher" || :; done
status=0
wait "$launcher" || status=$?

# 143: stopped by SIGTERM with a checkpoint. A scancel also sends SIGTERM: then the job
# is no longer RUNNING, and it is not requeued. A requeued attempt exits 0 (it stopped as
# planned); any other keeps hpcflow's exit code, so a failure shows as FAILED.
if [ "$status" -eq 143 ] && [ "$attempt" -lt "$max_attempts" ] &&
    scontrol show job -o "$SLURM_JOB_ID" | grep -q " JobState=RUNNING "; then
    echo "attempt $attempt: stopped with a checkpoint; requeued (a planned stop: this attempt exits 0)"
    scontrol requeue "$SLURM_JOB_ID"
    status=0
elif [ "$status" -eq 143 ]; then
    echo "attempt $attempt: stopped with a checkpoint; not requeued (cancelled or the last attempt): hpcflow resume $run_dir"
else
    echo "attempt $attempt: hpcflow exited $status (0: finished); not requeued"
fi
exit "$status"
