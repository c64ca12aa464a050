"""SLURM's compressed host and count lists."""

import pytest

from hpcflow.batch.hostlist import expand_counts, expand_hostlist


@pytest.mark.parametrize(
    "text, hosts",
    [
        ("", []),
        ("vm", ["vm"]),
        ("a,b", ["a", "b"]),
        ("node[01-03,07]", ["node01", "node02", "node03", "node07"]),
        ("node[8-11]", ["node8", "node9", "node10", "node11"]),
        ("node[098-101]", ["node098", "node099", "node100", "node101"]),
        ("gpu1,node[1-2],login", ["gpu1", "node1", "node2", "login"]),
        ("rack[1-2]-n[1-2]", ["rack1-n1", "rack1-n2", "rack2-n1", "rack2-n2"]),
        ("n[1-2].cluster", ["n1.cluster", "n2.cluster"]),
        ("node[5]", ["node5"]),
    ],
)
def test_hostlist_expands_slurm_forms(text, hosts):
    assert expand_hostlist(text) == hosts


@pytest.mark.parametrize("text", ["node[1-3", "node1-3]", "node[a-c]", "node[3-1]", "node[[1]]", "node[1-]"])
def test_malformed_hostlist_is_an_error(text):
    with pytest.raises(ValueError):
        expand_hostlist(text)


@pytest.mark.parametrize(
    "text, counts",
    [
        ("", []),
        ("64", [64]),
        ("32(x2)", [32, 32]),
        ("2,4(x3)", [2, 4, 4, 4]),
        ("16(x2),8", [16, 16, 8]),
    ],
)
def test_counts_expand_the_repeat_form(text, counts):
    assert expand_counts(text) == counts


@pytest.mark.parametrize("text", ["x", "32(2)", "32(x)", "4,(x2)", "-1"])
def test_malformed_counts_are_an_error(text):
    with pytest.raises(ValueError):
        expand_counts(text)
