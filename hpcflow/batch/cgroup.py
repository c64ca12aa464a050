"""The CPU quota of this process's cgroup: what a container or a batch system without
CPU binding really lets us use, which the affinity mask does not show.

A quota may be set on any ancestor of our cgroup, so every level up to the mount point is
read and the smallest limit wins. Both cgroup v2 (`cpu.max`) and v1
(`cpu.cfs_quota_us` / `cpu.cfs_period_us`) are understood, including hybrid hosts.
Every file is read through `read`, so tests pass a dict's `get`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePosixPath

Reader = Callable[[str], str | None]


def read_text(path: str) -> str | None:
    """The text of a file, or None when it cannot be read."""
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def cgroup_cpu_quota(read: Reader = read_text) -> float | None:
    """CPUs' worth of time our cgroups allow (quota / period), or None when unlimited."""
    membership = read("/proc/self/cgroup") or ""
    mounts = read("/proc/self/mountinfo") or ""
    limits = (_limit(read, directory, version) for directory, version in _cpu_cgroup_dirs(membership, mounts))
    return min((limit for limit in limits if limit is not None), default=None)


def _cpu_cgroup_dirs(membership: str, mounts: str) -> list[tuple[str, int]]:
    """Every directory from our CPU cgroup up to its mount point, with its cgroup version."""
    paths: dict[int, str] = {}
    for line in membership.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            paths[2] = path
        elif "cpu" in controllers.split(","):
            paths[1] = path
    dirs: list[tuple[str, int]] = []
    for line in mounts.splitlines():
        fields = line.split()
        if "-" not in fields or len(fields) < fields.index("-") + 4:
            continue
        sep = fields.index("-")
        root, mount_point = fields[3], fields[4]
        fstype, super_opts = fields[sep + 1], fields[sep + 3].split(",")
        version = 2 if fstype == "cgroup2" else 1 if fstype == "cgroup" and "cpu" in super_opts else None
        if version is None or version not in paths:
            continue
        relative = _relative(paths[version], root)
        levels = [relative, *relative.parents]  # a/b, a, .
        dirs.extend((str(PurePosixPath(mount_point) / level), version) for level in levels)
    return dirs


def _relative(path: str, mount_root: str) -> PurePosixPath:
    """Our cgroup path below the mount's root (a container often sees only its own subtree)."""
    full, root = PurePosixPath(path), PurePosixPath(mount_root)
    if root == PurePosixPath("/"):
        return full.relative_to("/")
    if full == root or root in full.parents:
        return full.relative_to(root)
    return PurePosixPath()


def _limit(read: Reader, directory: str, version: int) -> float | None:
    try:
        if version == 2:
            quota, period = (read(f"{directory}/cpu.max") or "max 100000").split()
            return None if quota == "max" else int(quota) / int(period)
        quota = int(read(f"{directory}/cpu.cfs_quota_us") or -1)
        period = int(read(f"{directory}/cpu.cfs_period_us") or 100000)
        return None if quota <= 0 else quota / period
    except ValueError:  # a kernel we do not understand: no limit known
        return None
