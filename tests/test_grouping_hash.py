"""Group-by hashes keys stably: the same key reaches the same instance in every process,
whatever its PYTHONHASHSEED, and keys equal in Python hash equally."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hpcflow.grouping import stable_bytes, stable_hash

ROOT = Path(__file__).resolve().parents[1]

# Routes many keys of many types through the real Router of a static plan (a group-by PE
# with 5 instances) and prints the instance each key goes to, with Python's own salted
# hash() of a few strings to show that the seed really changed.
ROUTE_KEYS = """
import json
from hpcflow import GenericPE, ProducerPE, WorkflowGraph
from hpcflow.grouping import stable_hash
from hpcflow.plan import STATIC, make_plan
from hpcflow.routing import Router

class Source(ProducerPE):
    pass

class Count(GenericPE):
    numprocesses = 5
    def __init__(self):
        super().__init__()
        self._add_input("input", grouping=[0])

def keys():
    for i in range(300):
        yield f"word{i}"
        yield f"na\\u00efve-\\u6f22{i}"
        yield i
        yield -i * 7919
        yield 2**70 + i
        yield float(i)
        yield i + 0.5
        yield (i, f"s{i}")
        yield (i, (f"a{i}", [i, {"k": i, "j": [None, True]}]))
        yield {"b": i, "a": str(i)}
        yield frozenset({f"x{i}", f"y{i}", f"z{i}"})
        yield b"bytes%d" % i
    yield None
    yield True

graph = WorkflowGraph()
graph.connect(Source(), "output", Count(), "input")
router = Router(graph, make_plan(graph, STATIC, 6, "multi"))
routes = [[stable_hash(k), router.route("Source", "output", (k, 0))[0].instance] for k in keys()]
print(json.dumps({"routes": routes, "salted": [hash(f"word{i}") for i in range(5)]}))
"""


def route_keys_with_seed(seed: str) -> dict:
    env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", ROUTE_KEYS], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_the_same_key_reaches_the_same_instance_whatever_the_hash_seed():
    runs = [route_keys_with_seed(seed) for seed in ("0", "1", "4242")]
    assert runs[0]["salted"] != runs[1]["salted"] or runs[1]["salted"] != runs[2]["salted"]
    assert runs[0]["routes"] == runs[1]["routes"] == runs[2]["routes"]
    instances = [instance for _, instance in runs[0]["routes"]]
    assert len(instances) == 12 * 300 + 2
    assert set(instances) == {0, 1, 2, 3, 4}  # and the keys spread over every instance
    assert all(instance == h % 5 for h, instance in runs[0]["routes"])


@pytest.mark.parametrize(
    "equal_keys",
    [
        (1, 1.0, True, np.int64(1), np.float32(1.0), np.bool_(True)),
        (0, 0.0, -0.0, False),
        (2**64, float(2**64)),
        ("word", np.str_("word")),
        ((1, "a"), (1.0, "a"), (True, np.str_("a"))),
        ({"a": 1, "b": 2}, {"b": 2.0, "a": True}),
        (frozenset({"x", "y", "z"}), {"z", "y", "x"}),
        (2.5, np.float64(2.5)),
    ],
)
def test_keys_equal_in_python_hash_equally(equal_keys):
    assert all(k == equal_keys[0] for k in equal_keys)  # the premise
    assert len({stable_hash(k) for k in equal_keys}) == 1


@pytest.mark.parametrize(
    "a, b",
    [
        ("1", 1),
        ("", None),
        ((1, 2), (2, 1)),
        (("a", ("b",)), (("a", "b"),)),
        (("ab", "c"), ("a", "bc")),
        ({"a": "bc"}, {"ab": "c"}),
        (b"x", "x"),
        (1.5, 1),
    ],
)
def test_different_keys_encode_differently(a, b):
    assert stable_bytes(a) != stable_bytes(b)


def test_a_key_with_no_stable_encoding_is_a_type_error():
    with pytest.raises(TypeError, match="no stable encoding"):
        stable_hash(object())


def test_objects_with_a_stable_repr_are_keys():
    class Colour:
        def __init__(self, name):
            self.name = name

        def __repr__(self):
            return f"Colour({self.name!r})"

    assert stable_hash(Colour("red")) == stable_hash(Colour("red")) != stable_hash(Colour("blue"))


def test_stable_hash_is_64_bits():
    assert all(0 <= stable_hash(k) < 2**64 for k in ("a", 1, (1, 2), None))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=12,
)


@given(json_values)
def test_a_copy_of_a_key_hashes_like_the_key(value):
    assert stable_hash(copy.deepcopy(value)) == stable_hash(value)


@given(st.dictionaries(st.text(max_size=5), st.integers(), min_size=2, max_size=6))
def test_dict_key_order_does_not_matter(d):
    assert stable_hash(dict(reversed(list(d.items())))) == stable_hash(d)


@given(st.integers(min_value=-(2**80), max_value=2**80))
def test_an_int_hashes_like_the_equal_float(n):
    if float(n) == n:
        assert stable_hash(float(n)) == stable_hash(n)
