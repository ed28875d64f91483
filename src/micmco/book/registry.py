"""The paper's figures, in one place: which curves each draws, for both tasks.

A curve is a study id (``params/studies/<profile>/<id>.yaml``, :mod:`micmco.naming`): ``dreg16-kl`` on the
synthetic task, ``ptb-dreg16-kl-valid-shared`` on Penn Treebank. The synthetic figures are §7.1's and
Appendices A and B.3's; the PTB figures are §7.2's and Appendix B's, whose curves the README of
data/paper-frontiers/ptb/ reads from the thesis's plotting code (written here as brace patterns over the
paper's file names, without their latent prefix, as that README does).
"""

from __future__ import annotations

import functools

from ..naming import ptb_curve_id

__all__ = ["SYNTHETIC_FIGURES", "PTB_FIGURE_FILES", "ptb_figures", "figure_task", "figure_curves", "all_figures",
           "expand_braces"]  # fmt: skip

SYNTHETIC_FIGURES: dict[int, tuple[str, tuple[str, ...]]] = {
    2: ("ELBO and IWAE with K samples", ("elbo-kl", "elbo-renyi", "iwae1-kl", "iwae1-renyi", "iwae16-kl",
                                          "iwae16-renyi", "iwae64-kl", "iwae64-renyi")),
    3: ("ELBO and DReG with K samples", ("elbo-kl", "elbo-renyi", "dreg1-kl", "dreg1-renyi", "dreg16-kl",
                                          "dreg16-renyi", "dreg64-kl", "dreg64-renyi")),
    4: ("DReG with asymmetric samples (K for ln p(x) / K′ for the divergence)",
        ("dreg1-kl", "dreg1-renyi", "dreg16-kl1", "dreg16-renyi1", "dreg1-kl16", "dreg1-renyi16", "dreg16-kl",
         "dreg16-renyi")),
    5: ("REINFORCE with K samples", ("reinforce1-kl", "reinforce1-renyi", "reinforce16-kl", "reinforce16-renyi",
                                      "reinforce64-kl", "reinforce64-renyi")),
    6: ("VIMCO with K samples (VIMCO 1 is REINFORCE 1)", ("reinforce1-kl", "reinforce1-renyi", "vimco16-kl",
                                                          "vimco16-renyi", "vimco64-kl", "vimco64-renyi")),
    7: ("VIMCO with asymmetric samples", ("reinforce1-kl", "reinforce1-renyi", "vimco16-kl1", "vimco16-renyi1",
                                          "vimco1-kl16", "vimco1-renyi16", "vimco16-kl", "vimco16-renyi")),
    15: ("the VQ-VAE against VIMCO and REINFORCE", ("vqvae", "reinforce1-renyi", "vimco16-kl", "vimco16-renyi")),
    26: ("the power objective with DReG 16", ("dreg16-power", "dreg16-kl", "dreg16-renyi")),
    27: ("the power objective with VIMCO 16", ("vimco16-power", "vimco16-kl", "vimco16-renyi")),
}  # fmt: skip

_SIX = "{dreg1-kl,vimco1-kl,dreg16-kl,dreg16-renyi,vimco16-kl,vimco16-renyi}"
_VIMCO_MATCHED = "{bs256-hs128-t40,bs256-hs128-t40x16,bs4096-hs128-t40}-vimco1-{kl,renyi}"
_DREG_MATCHED = "{bs256-hs128-t40,bs256-hs128-t40x16,bs4096-hs128-t40}-dreg1-{kl,renyi}"
# Paper figure -> (title, the brace pattern of its files). The data README's table, in the paper's order.
PTB_FIGURE_FILES: dict[int, tuple[str, str]] = {
    8: ("DReG with K samples, training fit", "bs256-hs128-t40-dreg{1,16,64}-{kl,renyi}"),
    9: ("VIMCO with K samples, training fit (VIMCO 1 is REINFORCE 1)", "bs256-hs128-t40-vimco{1,16,64}-{kl,renyi}"),
    10: ("validation fit with dropout, naive masks", f"bs256-hs128-t40-{_SIX}-valid"),
    11: ("validation fit with an L2 penalty instead of dropout", f"bs256-hs128-t40-{_SIX}-valid-l2"),
    12: ("validation fit with dropout, shared masks",
         "bs256-hs128-t40-{dreg1-kl-valid,vimco1-kl-valid,dreg16-kl-valid-nsd,dreg16-renyi-valid-nsd,"
         "vimco16-kl-valid-nsd,vimco16-renyi-valid-nsd}"),
    13: ("VIMCO 16 against compute-matched REINFORCE 1 (T×16, bs×16), training fit",
         f"{{{_VIMCO_MATCHED},bs256-hs128-t40-vimco16-{{kl,renyi}}}}"),
    14: ("VIMCO 16 against compute-matched REINFORCE 1 (T×16, bs×16), validation fit",
         f"{{{_VIMCO_MATCHED}-valid,bs256-hs128-t40-vimco16-{{kl,renyi}}-valid-nsd}}"),
    16: ("batch size, DReG, training fit", "{bs64,bs256,bs1024}-hs128-t40-{dreg1-kl,dreg16-kl,dreg16-renyi}"),
    17: ("optimisation length, DReG, H = 128", "bs256-hs128-{t40,t80}-{dreg1-kl,dreg16-kl,dreg16-renyi}"),
    18: ("optimisation length, DReG, H = 256", "bs256-hs256-{t40,t80}-{dreg1-kl,dreg16-kl,dreg16-renyi}"),
    19: ("batch size, VIMCO, training fit", "{bs64,bs256,bs1024}-hs128-t40-{vimco1-kl,vimco16-kl,vimco16-renyi}"),
    20: ("optimisation length, VIMCO, H = 128", "bs256-hs128-{t40,t80}-{vimco1-kl,vimco16-kl,vimco16-renyi}"),
    21: ("optimisation length, VIMCO, H = 256", "bs256-hs256-{t40,t80}-{vimco1-kl,vimco16-kl,vimco16-renyi}"),
    22: ("DReG with asymmetric samples, training fit",
         "bs256-hs128-t40-{dreg1-kl,dreg1-renyi,dreg1-kl16,dreg1-renyi16,dreg16-kl1,dreg16-renyi1,dreg16-kl,"
         "dreg16-renyi}"),
    23: ("VIMCO with asymmetric samples, training fit",
         "bs256-hs128-t40-{vimco1-kl,vimco1-renyi,vimco1-kl16,vimco1-renyi16,vimco16-kl1,vimco16-renyi1,vimco16-kl,"
         "vimco16-renyi}"),
    24: ("DReG 16 against compute-matched DReG 1 (T×16, bs×16), training fit",
         f"{{{_DREG_MATCHED},bs256-hs128-t40-dreg16-{{kl,renyi}}}}"),
    25: ("DReG 16 against compute-matched DReG 1 (T×16, bs×16), validation fit",
         f"{{{_DREG_MATCHED}-valid,bs256-hs128-t40-dreg16-{{kl,renyi}}-valid-nsd}}"),
    28: ("the power objective with DReG 16", "bs256-hs128-t40-dreg16-{kl,renyi,alpha}"),
    29: ("the power objective with VIMCO 16", "bs256-hs128-t40-vimco16-{kl,renyi,alpha}"),
}  # fmt: skip


def expand_braces(pattern: str) -> list[str]:
    """Brace expansion as in a shell, nested braces too: ``a{b,c{d,e}}`` -> ab, acd, ace."""
    start = pattern.find("{")
    if start < 0:
        return [pattern]
    depth, end = 0, start
    for end in range(start, len(pattern)):
        depth += {"{": 1, "}": -1}.get(pattern[end], 0)
        if depth == 0:
            break
    options, depth, current = [], 0, ""
    for char in pattern[start + 1 : end]:
        if char == "," and depth == 0:
            options.append(current)
            current = ""
            continue
        depth += {"{": 1, "}": -1}.get(char, 0)
        current += char
    options.append(current)
    heads = [head for option in options for head in expand_braces(pattern[:start] + option)]
    return [head + tail for head in heads for tail in expand_braces(pattern[end + 1 :])]


def _paper_stem(short: str) -> str:
    """The full file stem: 40 Gaussian latents with DReG, 8 categorical latents of 10 with VIMCO."""
    return ("l40x0-" if "-dreg" in short else "l8x10-") + short


@functools.cache
def ptb_figures() -> dict[int, tuple[str, tuple[str, ...]]]:
    """PTB figure -> (title, its curve ids in the paper's order), from PTB_FIGURE_FILES."""
    return {
        number: (title, tuple(dict.fromkeys(ptb_curve_id(_paper_stem(s)) for s in expand_braces(pattern))))
        for number, (title, pattern) in PTB_FIGURE_FILES.items()
    }


def all_figures() -> dict[str, dict[int, tuple[str, tuple[str, ...]]]]:
    """Task -> its figures (number -> title and curves)."""
    return {"synthetic": SYNTHETIC_FIGURES, "ptb": ptb_figures()}


def figure_task(number: int) -> str:
    """The task a paper figure belongs to; a ValueError naming every figure for another number."""
    for task, figures in all_figures().items():
        if number in figures:
            return task
    choices = "; ".join(f"{task}: {', '.join(map(str, sorted(f)))}" for task, f in all_figures().items())
    raise ValueError(f"no figure {number} among the paper's experiment figures ({choices})")


def figure_curves(number: int) -> tuple[str, tuple[str, ...]]:
    """(title, curve ids) of a paper figure of either task."""
    return all_figures()[figure_task(number)][number]
