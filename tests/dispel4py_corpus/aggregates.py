"""dispel4py's parallel aggregates: composites of a per-instance aggregate (written in
_postprocess) and a global reduce of the same kind, one for count, sum and max."""

from hpcflow import WorkflowGraph
from tests.dispel4py_corpus.pes import CountItems, MaxItems, NumberProducer, Pair, SumItems


def parallel_aggregate(instance_pe, reduce_pe):
    composite = WorkflowGraph()
    reduce_pe.inputconnections["input"]["grouping"] = "global"
    reduce_pe.numprocesses = 1
    composite.connect(instance_pe, "output", reduce_pe, "input")
    composite.inputmappings = {"input": (instance_pe, "input")}
    composite.outputmappings = {"output": (reduce_pe, "output")}
    return composite


count_reduce = SumItems([0])
count_reduce.name = "CountReduce"
count = parallel_aggregate(CountItems(), count_reduce)
total = parallel_aggregate(SumItems([0]), SumItems([0]))
largest = parallel_aggregate(MaxItems([0]), MaxItems([0]))

producer = NumberProducer()
pair = Pair()
graph = WorkflowGraph()
graph.connect(producer, "output", pair, "input")
for aggregate in (count, total, largest):
    graph.connect(pair, "output", aggregate, "input")
