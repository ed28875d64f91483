"""What the book's chapters share: each chapter is a few short calls into these modules.

Every number a chapter shows is computed here (or by the rest of :mod:`micmco`); import the
module a chapter needs, e.g. ``from micmco.book import common, propositions``.

- :mod:`~micmco.book.common`: the chapters' setup, paths inside the checkout, Markdown tables, wrapped lines.
- :mod:`~micmco.book.collapse`: §2, the posterior-collapse demo on the synthetic task.
- :mod:`~micmco.book.propositions`: §3-§6, Propositions 1-6, the estimates' bias and variance, the counterexamples.
- :mod:`~micmco.book.widgets`: what the two explorers share (plotly menus and page script, live ipywidgets).
- :mod:`~micmco.book.explorer`: §4, the λ/α/K explorer.
- :mod:`~micmco.book.registry`: the paper's experiment figures of both tasks and the curves each draws.
- :mod:`~micmco.book.figures`: §7 and Appendices A, B, every figure from committed results beside the paper's
  (synthetic on normalised axes, Penn Treebank per token), its table and notes.
- :mod:`~micmco.book.orderings`: the curves of a figure ordered pair by pair, ours against the paper's.
- :mod:`~micmco.book.language`: §7.2, the PTB profiles set against the paper's, Table 1 side by side.
- :mod:`~micmco.book.claims`: §7-§8, the paper's claims (both tasks) decided on both sides, pairs across figures.
- :mod:`~micmco.book.costs`: Appendix C, Table 2, the profiles and the measured cost of our trials.
- :mod:`~micmco.book.frontier_explorer`: §7, the frontier explorer (synthetic and Penn Treebank curves).
- :mod:`~micmco.book.__main__`: ``python -m micmco.book studies PROFILE [FIGURE]``, for ``make reproduce``.
"""
