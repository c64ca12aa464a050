#!/bin/bash
# The pipeline on the mpi mapping over 2 nodes: one MPI rank per PE instance, 3 ranks a node.
#   sbatch jobscripts/pipeline_mpi_2nodes.sh   (from the repository root; the job runs there)
# Results go to runs/<UTC time>-pipeline-mpi/ (metrics.json, outputs.jsonl, run.log); the
# last line of slurm-<job id>.out names that directory; metrics.json's worker_hosts has
# the ranks on each node.
#SBATCH --job-name=pipeline-mpi
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=3
#SBATCH --time=00:10:00
#SBATCH --signal=TERM@60
# --signal (no B:): SIGTERM to every rank 60 s before the walltime; the ranks drain and
# rank 0 still writes the metrics.

# sbatch passes the submitting shell's environment on, so an activated virtualenv is
# used as is; otherwise load or activate it here, e.g. `source .venv/bin/activate`.
set -e

# --mpi=pmi2: MPICH's ranks find each other through SLURM (its default plugin is often
# `none`); --kill-on-bad-exit=1: a rank that dies ends the step. 6 ranks: the stateful
# pipeline of 2 stages has 6 PE instances; add -p key=value to change the workload.
exec srun --mpi=pmi2 --kill-on-bad-exit=1 hpcflow run pipeline --mapping mpi -p stateful=true -p stages=2
