"""What the book's chapters share: each chapter is a few short calls into these modules.

Every number a chapter shows is computed here (or by the rest of :mod:`micmco`); import the
module a chapter needs, e.g. ``from micmco.book import common, propositions``.

- :mod:`~micmco.book.common`: the chapters' setup, paths inside the checkout, Markdown tables, wrapped lines.
- :mod:`~micmco.book.collapse`: §2, the posterior-collapse demo on the synthetic task.
- :mod:`~micmco.book.propositions`: §3-§6, Propositions 1-6, the estimates' bias and variance, the counterexamples.
- :mod:`~micmco.book.widgets`: what the two explorers share (plotly menus and page script, live ipywidgets).
- :mod:`~micmco.book.explorer`: §4, the λ/α/K explorer.
- :mod:`~micmco.book.figures`: §7.1 and Appendices A, B.3, the synthetic figures from committed results.
- :mod:`~micmco.book.language`: §7.2, the Penn Treebank figures (8, 9, 10, 12) from committed results, per token.
- :mod:`~micmco.book.claims`: §7-§8, the paper's claims decided on both sides, the curves' orderings pair by pair.
- :mod:`~micmco.book.costs`: Appendix C, Table 2, the profiles and the measured cost of our trials.
- :mod:`~micmco.book.frontier_explorer`: §7, the frontier explorer (synthetic and Penn Treebank curves).
- :mod:`~micmco.book.__main__`: ``python -m micmco.book studies PROFILE [FIGURE]``, for ``make reproduce``.
"""
