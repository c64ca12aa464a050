"""Allocation detection from SLURM, PBS and local environments, with no scheduler: the
environment and the files are given to `detect_allocation` directly."""

import json

import pytest

from hpcflow.batch.allocation import detect_allocation
from hpcflow.batch.cgroup import cgroup_cpu_quota
from hpcflow.errors import UsageError


def no_files(path):
    return None


def v2_quota(cpu_max: str) -> dict:
    return {"/proc/self/cgroup": "0::/\n", "/proc/self/mountinfo": V2_MOUNTS, "/sys/fs/cgroup/cpu.max": cpu_max}


def detect(env, files=None, affinity=2):
    read = (files or {}).get
    return detect_allocation(env, read=read, affinity=lambda: affinity)


# -- SLURM ---------------------------------------------------------------------------


def test_slurm_batch_script_gets_the_cpus_on_its_node():
    env = {
        "SLURM_JOB_ID": "42",
        "SLURM_CPUS_ON_NODE": "64",
        "SLURM_CPUS_PER_TASK": "64",
        "SLURM_JOB_CPUS_PER_NODE": "64",
        "SLURM_JOB_NODELIST": "node07",
        "SLURM_JOB_NUM_NODES": "1",
        "SLURM_NTASKS": "1",
    }
    alloc = detect(env)
    assert (alloc.scheduler, alloc.cpus, alloc.nodes, alloc.job_id) == ("slurm", 64, 1, "42")
    assert alloc.source == "SLURM_CPUS_ON_NODE"
    assert alloc.nodelist == ("node07",)
    assert alloc.tasks == 1
    assert alloc.total_cpus == 64


def test_slurm_repeat_form_and_bracket_nodelist_give_nodes_and_total():
    env = {
        "SLURM_JOB_ID": "7",
        "SLURM_CPUS_ON_NODE": "32",
        "SLURM_JOB_CPUS_PER_NODE": "32(x2)",
        "SLURM_JOB_NODELIST": "cn[01-02]",
        "SLURM_JOB_NUM_NODES": "2",
        "SLURM_NTASKS": "64",
    }
    alloc = detect(env)
    assert (alloc.cpus, alloc.nodes, alloc.total_cpus) == (32, 2, 64)
    assert alloc.cpus_per_node == (32, 32)
    assert alloc.nodelist == ("cn01", "cn02")
    assert alloc.tasks == 64


def test_slurm_uneven_nodes_from_the_mixed_count_form():
    env = {
        "SLURM_JOB_ID": "8",
        "SLURM_JOB_CPUS_PER_NODE": "2,4(x3)",
        "SLURM_JOB_NODELIST": "a1,b[1-3]",
    }
    alloc = detect(env)
    assert alloc.cpus == 2  # this (first) node's, without SLURM_CPUS_ON_NODE
    assert alloc.source == "SLURM_JOB_CPUS_PER_NODE"
    assert (alloc.nodes, alloc.total_cpus) == (4, 14)
    assert alloc.nodelist == ("a1", "b1", "b2", "b3")


def test_slurm_cpus_per_task_alone():
    alloc = detect({"SLURM_JOB_ID": "9", "SLURM_CPUS_PER_TASK": "8"})
    assert (alloc.cpus, alloc.source, alloc.nodes) == (8, "SLURM_CPUS_PER_TASK", 1)


def test_slurm_without_cpu_variables_falls_back_to_the_affinity_mask():
    alloc = detect({"SLURM_JOB_ID": "9"}, affinity=3)
    assert (alloc.scheduler, alloc.cpus, alloc.source) == ("slurm", 3, "affinity")


def test_a_task_of_an_srun_step_gets_its_cpus_per_task():
    # `srun -n 2 -c 2` inside a 4-CPU job: the step has 4 CPUs on the node, a task 2.
    env = {
        "SLURM_JOB_ID": "10",
        "SLURM_STEP_ID": "0",
        "SLURM_CPUS_ON_NODE": "4",
        "SLURM_CPUS_PER_TASK": "2",
        "SLURM_STEP_TASKS_PER_NODE": "2",
    }
    assert detect(env).cpus == 2


def test_a_task_of_an_srun_step_without_cpus_per_task_gets_an_even_share():
    env = {
        "SLURM_JOB_ID": "10",
        "SLURM_STEP_ID": "0",
        "SLURM_NODEID": "1",
        "SLURM_CPUS_ON_NODE": "8",
        "SLURM_STEP_TASKS_PER_NODE": "2,4",
    }
    assert detect(env).cpus == 2


@pytest.mark.parametrize(
    "name, value",
    [
        ("SLURM_CPUS_ON_NODE", "many"),
        ("SLURM_CPUS_ON_NODE", "0"),
        ("SLURM_JOB_CPUS_PER_NODE", "32(x)"),
        ("SLURM_JOB_NODELIST", "node[1-"),
    ],
)
def test_malformed_slurm_variable_is_a_usage_error_naming_it(name, value):
    with pytest.raises(UsageError, match=name):
        detect({"SLURM_JOB_ID": "1", name: value})


# -- PBS -----------------------------------------------------------------------------


def test_pbs_pro_ncpus_and_nodefile():
    env = {"PBS_JOBID": "123.pbs01", "NCPUS": "64", "PBS_NODEFILE": "/var/spool/pbs/aux/123"}
    files = {"/var/spool/pbs/aux/123": "cn01\ncn02\n"}
    alloc = detect(env, files)
    assert (alloc.scheduler, alloc.cpus, alloc.nodes, alloc.job_id) == ("pbs", 64, 2, "123.pbs01")
    assert alloc.source == "NCPUS"
    assert alloc.nodelist == ("cn01", "cn02")
    assert alloc.total_cpus == 128


def test_pbs_ncpus_variable_wins():
    alloc = detect({"PBS_JOBID": "1", "PBS_NCPUS": "16", "NCPUS": "4"})
    assert (alloc.cpus, alloc.source) == (16, "PBS_NCPUS")


def test_torque_pbs_np_over_nodefile_hosts():
    env = {"PBS_JOBID": "5.torque", "PBS_NP": "8", "PBS_NODEFILE": "/nf"}
    files = {"/nf": "n1\nn1\nn1\nn1\nn2\nn2\nn2\nn2\n"}
    alloc = detect(env, files)
    assert (alloc.cpus, alloc.nodes, alloc.total_cpus, alloc.source) == (4, 2, 8, "PBS_NP")


def test_pbs_nodefile_alone_counts_the_first_hosts_slots():
    alloc = detect({"PBS_JOBID": "6", "PBS_NODEFILE": "/nf"}, {"/nf": "n1\nn1\nn1\nn2\nn2\nn2\n"})
    assert (alloc.cpus, alloc.nodes, alloc.source) == (3, 2, "PBS_NODEFILE")


def test_pbs_without_counts_uses_the_affinity_mask():
    alloc = detect({"PBS_JOBID": "6"}, affinity=5)
    assert (alloc.scheduler, alloc.cpus, alloc.source) == ("pbs", 5, "affinity")


# -- local: affinity and cgroup quota ------------------------------------------------

V2_MOUNTS = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n"
V1_MOUNTS = (
    "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
    "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
)


def test_no_scheduler_and_no_quota_is_the_affinity_mask():
    alloc = detect({}, affinity=6)
    assert (alloc.scheduler, alloc.cpus, alloc.nodes, alloc.source) == ("local", 6, 1, "affinity")
    assert alloc.job_id is None


def test_cgroup_v2_quota_caps_the_affinity_mask():
    files = {
        "/proc/self/cgroup": "0::/user.slice/job\n",
        "/proc/self/mountinfo": V2_MOUNTS,
        "/sys/fs/cgroup/user.slice/job/cpu.max": "max 100000\n",
        "/sys/fs/cgroup/user.slice/cpu.max": "250000 100000\n",  # an ancestor's limit counts
    }
    alloc = detect({}, files, affinity=8)
    assert (alloc.cpus, alloc.source) == (2, "cgroup cpu quota")


def test_cgroup_v2_unlimited():
    assert detect({}, v2_quota("max 100000"), affinity=8).cpus == 8


def test_cgroup_v1_quota_in_a_container_that_sees_its_own_subtree():
    files = {
        "/proc/self/cgroup": "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n",
        "/proc/self/mountinfo": V1_MOUNTS.replace("0:29 / ", "0:29 /docker/abc "),
        "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "400000\n",
        "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
    }
    assert detect({}, files, affinity=16).cpus == 4


def test_cgroup_v1_unlimited_quota():
    files = {
        "/proc/self/cgroup": "3:cpu,cpuacct:/\n",
        "/proc/self/mountinfo": V1_MOUNTS,
        "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
        "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
    }
    assert cgroup_cpu_quota(files.get) is None


def test_fractional_quota_rounds_down_but_never_below_one():
    assert cgroup_cpu_quota(v2_quota("50000 100000").get) == 0.5
    assert detect({}, v2_quota("50000 100000"), affinity=4).cpus == 1


def test_quota_above_the_affinity_mask_does_not_raise_it():
    assert detect({}, v2_quota("800000 100000"), affinity=2).cpus == 2


def test_unreadable_cgroup_files_mean_no_quota():
    assert cgroup_cpu_quota(no_files) is None


def test_detection_on_this_machine_works():
    alloc = detect_allocation({})
    assert alloc.scheduler == "local" and alloc.cpus >= 1


# -- `hpcflow info` shows it ---------------------------------------------------------


def test_info_shows_a_slurm_allocation(cli):
    env = {"SLURM_JOB_ID": "77", "SLURM_CPUS_ON_NODE": "32", "SLURM_JOB_CPUS_PER_NODE": "32(x2)"}
    env["SLURM_JOB_NODELIST"] = "node[1-2]"
    done = cli("info", "--json", env=env)
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["allocation_scheduler"] == "slurm"
    assert info["allocation_cpus"] == 32
    assert info["allocation_total_cpus"] == 64
    assert info["allocation_nodelist"] == ["node1", "node2"]
    text = cli("info", env=env).stdout
    assert "node1,node2" in text


def test_info_with_a_malformed_variable_is_one_line_and_exit_2(cli):
    done = cli("info", env={"SLURM_JOB_ID": "1", "SLURM_JOB_CPUS_PER_NODE": "lots"})
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "SLURM_JOB_CPUS_PER_NODE" in done.stderr
