"""SLURM's compressed lists, as found in a job's environment.

Host lists (`SLURM_JOB_NODELIST`): `node[01-03,07],gpu1` names node01, node02, node03,
node07 and gpu1; zero padding is kept and a name may have several bracket groups
(`rack[1-2]-n[1-2]`). Count lists (`SLURM_JOB_CPUS_PER_NODE`, `SLURM_TASKS_PER_NODE`):
`2,4(x3)` is 2, 4, 4, 4. A malformed list raises ValueError.
"""

from __future__ import annotations

import re

_COUNT = re.compile(r"(\d+)(?:\(x(\d+)\))?")


def expand_counts(text: str) -> list[int]:
    """`32(x2)` -> [32, 32]; `2,4(x3)` -> [2, 4, 4, 4]; `` -> []."""
    counts: list[int] = []
    for item in filter(None, text.strip().split(",")):
        match = _COUNT.fullmatch(item.strip())
        if match is None:
            raise ValueError(f"malformed count list {text!r}")
        counts.extend([int(match[1])] * int(match[2] or 1))
    return counts


def expand_hostlist(text: str) -> list[str]:
    """`node[01-03,07],gpu1` -> [node01, node02, node03, node07, gpu1]; `` -> []."""
    hosts: list[str] = []
    for item in _split_outside_brackets(text.strip()):
        hosts.extend(_expand(item))
    return hosts


def _split_outside_brackets(text: str) -> list[str]:
    items, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        if depth not in (0, 1):
            raise ValueError(f"malformed host list {text!r}")
        if char == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    if depth:
        raise ValueError(f"malformed host list {text!r}")
    items.append(text[start:])
    return [item for item in items if item]


def _expand(item: str) -> list[str]:
    """Expand the first bracket group of one host pattern, then the rest recursively."""
    open_at = item.find("[")
    if open_at < 0:
        if "]" in item:
            raise ValueError(f"malformed host name {item!r}")
        return [item]
    close_at = item.index("]", open_at)
    prefix, body, rest = item[:open_at], item[open_at + 1 : close_at], item[close_at + 1 :]
    suffixes = _expand(rest)
    return [prefix + number + suffix for number in _range_list(body, item) for suffix in suffixes]


def _range_list(body: str, item: str) -> list[str]:
    numbers: list[str] = []
    for part in body.split(","):
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise ValueError(f"malformed host range [{body}] in {item!r}")
        if not dash:
            numbers.append(low)
            continue
        if int(high) < int(low):
            raise ValueError(f"descending host range [{body}] in {item!r}")
        numbers.extend(f"{n:0{len(low)}d}" for n in range(int(low), int(high) + 1))
    return numbers
