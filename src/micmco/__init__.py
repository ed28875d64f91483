"""micmco: Mutual Information Constraints for Monte-Carlo Objectives (Melis, György, Blunsom).

The generic core (estimators, objectives, gradients, latents, runtime, trainer, config) knows nothing of
any task; a task module owns its data, model, evaluation and units; one run hub, one results
schema, one frontier and one sweep tool serve every task. One line per module:

- ``config``: strict YAML → ``@dataclass`` configs, ``--set`` overrides, one-line errors naming the key.
- ``estimators``: Ŝ^K, Ŝ_α^K, Û^K and the KL and Rényi estimates on ``[K, B]`` log weights (§4).
- ``objectives``: the KL, Rényi and power mutual-information objectives with K and K′ (§5, eqs. 11-18).
- ``gradients``: one surrogate per base estimator (ELBO, IWAE, STL, DReG, REINFORCE, VIMCO) and objective.
- ``latents``: Gaussian and categorical latent spaces: sampling, log densities, KL to the prior.
- ``runtime``: how a step is seeded (streams by seed, stream and step) and where tensors live; the numerics.
- ``trainer``: Adam over a loss and a data stream; checkpoints, signals at step boundaries, divergence.
- ``evaluation``: NLL by IWAE and latent usage Û − Ŝ (K = 100) over a split, per unit (symbol, token); the
  precise evaluation (independent repeats, standard errors).
- ``memory``: peak-memory arithmetic from a task's sizes, and the memory a device has.
- ``runconfig``: a run config read from YAML into its task's dataclass tree; identity, fingerprint, run directory.
- ``tasks``: the task registry; ``tasks.base`` the interface and the run config every task extends (``RunConfig``);
  ``tasks.synthetic`` the §7.1 task, ``tasks.ptb`` the §7.2 one.
- ``models``: the single-symbol VAE, the VQ-VAE and the fused softmax head they share.
- ``experiment``: the run hub: preflight, lock, train, evaluate, plausibility, the result record; a finished
  run re-scored precisely (``evaluate_run``, ``micmco evaluate``).
- ``results``: the results-table schema (common columns + the task's), its rows and strict reading.
- ``naming``: estimator and objective names, curve ids, the paper's curve labels and trial-file names.
- ``pareto``: frontiers of latent usage against NLL, ours and the paper's (chosen on one half of each trial's
  precise evaluation, reported on the other); summaries.
- ``verdicts``: differences decided by their standard errors: holds, fails or inconclusive.
- ``rerun``: a results table's row retrained from its journal and checked (``micmco rerun``).
- ``pareto_cli``: ``micmco pareto``, its command line.
- ``frontier_plot``: the frontiers drawn in the paper's style (normalised, or per token for text).
- ``best_trials``: the best trial of curves, and the paper's Table 1 (``micmco table1``).
- ``study``: study files: a base config, tuned parameters (Table 2), grid points, a trial budget.
- ``sweep``: ``micmco sweep``, the study runner (Optuna; journal or PostgreSQL; workers; resumable).
- ``testbed``: tractable models with exact expectations over K samples, for the tests and the book.
- ``util``: exit codes, the source commit, signal handlers that respect ignored signals, atomic writes.
- ``book``: what the book's chapters call: propositions, figures, claims, explorers, costs.
- ``cli``: ``micmco train|check|evaluate|sweep|pareto|table1|rerun`` (``python -m micmco`` too: ``__main__``).
"""

__version__ = "0.1.0"
