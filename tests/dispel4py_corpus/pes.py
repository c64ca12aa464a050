"""Processing elements in dispel4py's style, shared by the corpus workflows."""

from collections import defaultdict

from hpcflow import BasePE, ConsumerPE, GenericPE, IterativePE, ProducerPE


class NumberProducer(GenericPE):
    """Writes 1, 2, 3... one number per call; logic in `_process`, returned as a dict."""

    def __init__(self, numOutputs=1):
        GenericPE.__init__(self)
        if numOutputs == 1:
            self._add_output("output", tuple_type=["number"])
        else:
            for i in range(numOutputs):
                self._add_output(f"output{i}", tuple_type=["number"])
        self.counter = 0
        self.outputnames = list(self.outputconnections.keys())

    def _process(self, inputs):
        self.counter += 1
        return {output: self.counter for output in self.outputnames}


class RangeProducer(ProducerPE):
    """Writes every number of [start, limit) in one call."""

    def __init__(self, start, limit):
        ProducerPE.__init__(self)
        self.start = start
        self.limit = limit

    def _process(self, inputs):
        for i in range(self.start, self.limit):
            self.write("output", i)


class Identity(GenericPE):
    """Passes its input on: `process` overridden and returning a dict."""

    def __init__(self):
        GenericPE.__init__(self)
        self._add_input("input")
        self._add_output("output")

    def process(self, inputs):
        return {"output": inputs["input"]}


class IdentityWriter(GenericPE):
    """Passes its input on through `write`."""

    def __init__(self):
        GenericPE.__init__(self)
        self._add_input("input")
        self._add_output("output")

    def process(self, inputs):
        self.write("output", inputs["input"])


class Merge(GenericPE):
    """Two inputs, one output: the text of whichever input an item came on."""

    def __init__(self):
        GenericPE.__init__(self)
        self._add_input("input0")
        self._add_input("input1")
        self._add_output("output")

    def process(self, inputs):
        result = ""
        for name in self.inputconnections:
            if name in inputs:
                result += f"{inputs[name]}"
        if result:
            return {"output": result}


class Scale(IterativePE):
    def __init__(self, factor):
        IterativePE.__init__(self)
        self.factor = factor

    def _process(self, data):
        return data * self.factor


class Offset(IterativePE):
    def __init__(self, offset):
        IterativePE.__init__(self)
        self.offset = offset

    def _process(self, data):
        return data + self.offset


class ReadLines(GenericPE):
    """A root fed by run inputs `{"input": text}` it has no port for, as the paper's
    ReadRaDec is: `_process` reads the dict it is given."""

    def __init__(self):
        GenericPE.__init__(self)
        self._add_output("output")

    def _process(self, inputs):
        for line in inputs["input"].splitlines():
            self.write("output", line)


class SplitWords(IterativePE):
    def __init__(self):
        IterativePE.__init__(self)

    def _process(self, data):
        for word in data.split():
            self.write(self.OUTPUT_NAME, [word])


class RunningCount(GenericPE):
    """dispel4py's WordCounter: grouped by word, writes [word, count so far] per item."""

    def __init__(self):
        GenericPE.__init__(self)
        self._add_input("input", grouping=[0])
        self._add_output("output", tuple_type=["word", "count"])
        self.mywords = defaultdict(int)

    def _process(self, inputs):
        word = inputs["input"][0]
        self.mywords[word] += 1
        return {"output": [word, self.mywords[word]]}


class TotalCount(GenericPE):
    """Grouped by word, writes [word, total] per word at the end (`_postprocess`)."""

    def __init__(self):
        GenericPE.__init__(self)
        self._add_input("input", grouping=[0])
        self._add_output("output")
        self.counts = defaultdict(int)

    def _process(self, inputs):
        self.counts[inputs["input"][0]] += 1

    def _postprocess(self):
        for word, count in self.counts.items():
            self.write("output", [word, count])


class Divides(GenericPE):
    """A sieve stage: the first number it sees is a prime (port `prime`); it passes on
    the numbers that prime does not divide. One instance must see every number, which
    dispel4py code says with a global grouping."""

    def __init__(self):
        GenericPE.__init__(self)
        self._add_input("input", grouping="global")
        self._add_output("prime")
        self._add_output("output")
        self.divisor = None

    def _process(self, inputs):
        number = inputs["input"]
        if not self.divisor:
            self.divisor = number
            return {"prime": number}
        if number % self.divisor != 0:
            return {"output": number}


class Collect(IterativePE):
    def __init__(self):
        IterativePE.__init__(self)

    def _process(self, data):
        return data


class Aggregate(GenericPE):
    """dispel4py's AggregatePE: a value per instance, written by `_postprocess`."""

    def __init__(self, indexes=(0,)):
        GenericPE.__init__(self)
        self._add_input("input")
        self._add_output("output")
        self.indexes = list(indexes)
        self.value = [0 for _ in self.indexes]

    def _postprocess(self):
        self.write("output", self.value)


class CountItems(Aggregate):
    def _process(self, inputs):
        self.value = [self.value[0] + 1]


class SumItems(Aggregate):
    def _process(self, inputs):
        v = inputs["input"]
        self.value = [self.value[i] + v[i] for i in self.indexes]


class MaxItems(Aggregate):
    def _process(self, inputs):
        v = inputs["input"]
        self.value = [max(v[i], self.value[i]) for i in self.indexes]


class Pair(IterativePE):
    """Wraps a number in a one-element list, the tuples the aggregates index."""

    def __init__(self):
        IterativePE.__init__(self)

    def _process(self, data):
        return [data]


class Split(BasePE):
    """BasePE with named ports: even numbers to `even`, odd ones to `odd`."""

    def __init__(self):
        BasePE.__init__(self, inputs=["input"], outputs=["even", "odd"])
        self.seen = 0

    def process(self, inputs):
        n = inputs["input"]
        self.seen += 1
        return {"even": n} if n % 2 == 0 else {"odd": n}


class Discard(ConsumerPE):
    def __init__(self):
        ConsumerPE.__init__(self)
        self.count = 0

    def _process(self, data):
        self.count += 1
