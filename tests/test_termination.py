"""Exact termination by counting, without processes: a PE is finalized only when every
upstream PE is done and nothing is pending for it; done after its instances' postprocess."""

from __future__ import annotations

from hpcflow.engines.termination import Termination


def chain3(finalizers=None):
    return Termination(["A", "B", "C"], {"B": ["A"], "C": ["B"]}, finalizers or {})


def test_nothing_is_ready_while_a_root_has_pending_items():
    t = chain3({"A": 1})
    t.created("A", 2)
    assert t.ready_to_finalize() == []
    t.completed("A", 2)
    assert t.ready_to_finalize() == ["A"]
    assert t.ready_to_finalize() == []  # each PE is returned once


def test_downstream_waits_for_upstream_postprocess_output():
    t = chain3({"A": 1, "B": 2})
    t.created("A", 1)
    t.created("B", 1)
    t.completed("A", 1)  # A's task made a B task, counted in the same report
    assert t.ready_to_finalize() == ["A"]
    t.finalized("A", 0)
    assert t.ready_to_finalize() == []  # B still has a pending task
    t.completed("B", 1)
    assert t.ready_to_finalize() == ["B"]
    t.created("C", 3)  # B's postprocess() writes to C before B instance 0 reports
    t.finalized("B", 0)
    assert not t.is_done("B")  # instance 1 has not run postprocess() yet
    t.finalized("B", 1)
    assert t.is_done("B") and t.ready_to_finalize() == []  # C has 3 pending
    t.completed("C", 3)
    assert t.ready_to_finalize() == [] and t.all_done  # C has no finalizers: done at once


def test_a_transient_negative_count_never_finishes_a_pe_early():
    """A child's completion may be reported before the report that created it."""
    t = chain3({"A": 1})
    t.created("A", 1)
    t.completed("B", 1)  # B's task done before A's report (which created it) arrived
    assert t.ready_to_finalize() == []
    t.created("B", 1)
    t.completed("A", 1)
    assert t.ready_to_finalize() == ["A"]
    t.finalized("A", 0)
    assert t.ready_to_finalize() == [] and t.all_done


def test_cancelled_feed_lets_the_run_end():
    t = chain3({"A": 1})
    t.created("A", 100)
    t.completed("A", 10)
    t.cancel_pending("A", 90)
    assert t.holding_work() == {}
    assert t.ready_to_finalize() == ["A"]


def test_fan_in_waits_for_every_upstream():
    t = Termination(["A1", "A2", "M"], {"M": ["A1", "A2"]}, {"A1": 1, "A2": 1, "M": 1})
    assert sorted(t.ready_to_finalize()) == ["A1", "A2"]
    t.finalized("A1", 0)
    assert t.ready_to_finalize() == []
    t.finalized("A2", 0)
    assert t.ready_to_finalize() == ["M"]
