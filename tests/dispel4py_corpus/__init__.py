"""dispel4py-style workflows of every shape dispel4py's examples use, written as one
writes them for dispel4py (the `GenericPE.__init__(self)` calls, `_process` overrides,
`_postprocess` hooks, composites, `create_iterative_chain`) with only the imports changed
to hpcflow. Each module exposes a top-level `graph`, as dispel4py's examples do, so it
runs from the API, from `hpcflow run` and from `hpcflow-dispel4py`.
`tests/test_dispel4py_corpus.py` runs each on every mapping against results it computes
independently."""
