#!/bin/bash
# Sentiment analysis on 16 CPUs: the hybrid mapping (stateful PEs pinned, the rest dynamic).
#   sbatch jobscripts/sentiment_16.sh   (from the repository root; the job runs there)
# Results go to runs/<UTC time>-sentiment-hybrid_multi/ (metrics.json, outputs.jsonl, run.log);
# the last line of slurm-<job id>.out names that directory.
#SBATCH --job-name=sentiment-16
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=16
#SBATCH --time=00:10:00
#SBATCH --signal=B:TERM@60
# --signal: SIGTERM 60 s before the walltime, so hpcflow writes a checkpoint and its metrics and
# stops (exit 143); `hpcflow resume RUN_DIR` continues the run (`hpcflow submit --until-done` chains that).

# sbatch passes the submitting shell's environment on, so an activated virtualenv is
# used as is; otherwise load or activate it here, e.g. `source .venv/bin/activate`.
set -e

# exec: hpcflow replaces this shell, so the signal above reaches it.
# --cpus defaults to the CPUs SLURM gave the job (16); add -p key=value to change the workload.
exec hpcflow run sentiment --mapping hybrid_multi
