"""Many trials of one study in one process: N runs trained as one batched computation.

The trials of a study share their seed, data and shapes and differ in learning rate, λ and α (dropout rates
and L2 belong to PTB, which trains one trial per process): :func:`micmco.batched.run.run_batch` trains them
together, each with its own run directory, lock, checkpoint and
``result.json`` in the format of :func:`micmco.experiment.run`, so that any trial resumes alone or in
another batch. Tasks without a batched model train their trials one after another.
"""

# The modules are imported where used (micmco.batched.run needs the run hub, which needs the models, which use
# micmco.models.batched): importing them here would make a circle.
