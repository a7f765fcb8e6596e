"""What a sparse model costs to store and to run, and which sparsity wins for a budget.

The paper's RQ3 and RQ4: :mod:`.formats` (storage formats written to disk), :mod:`.storage`
(a run's ``footprint.json``: bytes per format, metric with int8 weights), :mod:`.execution` and
:mod:`.latency` (dense vs ``torch.sparse_csr`` inference on one CPU thread, ``latency.json``),
:mod:`.frontier` and :mod:`.report` (Pareto frontier, best configuration for a budget, crossover
sparsity), :mod:`.paths` (file names).
"""
