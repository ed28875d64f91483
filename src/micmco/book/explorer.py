"""§4's λ/α/K explorer: how the divergence term, the objective and the gradient variance of each
estimator move with λ, α and K, on a small toy (categorical for VIMCO and REINFORCE, Gaussian for
DReG and IWAE). Live with ipywidgets, static with a precomputed plotly grid."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

import torch

from ..estimators import kl_estimate, renyi_estimate
from ..gradients import BaseEstimator, estimator_spec
from ..objectives import Objective, ObjectiveKind
from ..testbed import DTYPE, DiscreteToy, GaussianToy, TableModel
from . import widgets

# §4's choice of estimators; each runs on the toy its latents need (the registry says which): score-function
# estimators on a categorical toy, reparameterised ones on a Gaussian one
EXPLORER_BASES = tuple(
    base.value for base in (BaseEstimator.VIMCO, BaseEstimator.REINFORCE, BaseEstimator.DREG, BaseEstimator.IWAE)
)
EXPLORER_KINDS = ("kl", "renyi", "power")


@dataclass(frozen=True)
class ExplorerSettings:
    base: str = "vimco"  # gradient estimator: vimco, reinforce (categorical toy) or dreg, iwae (Gaussian toy)
    kind: str = "renyi"  # objective: kl, renyi or power
    lam: float = 0.5  # λ (kl, renyi); the power objective ties λ = (α − 1)/α
    alpha: float = 2.0  # α (renyi, power)


def _toy_for(base: str):
    if not estimator_spec(base).reparameterised:
        return DiscreteToy(num_latents=2, num_categories=2, num_symbols=3, hidden=3, x=1, seed=0)
    return GaussianToy(dim=1, x=1.3, seed=0)


def _exact_table(toy, base: str) -> TableModel:
    """The toy as a TableModel: every latent state (categorical) or a fine grid (Gaussian, 1-D)."""
    params = toy.base()
    if isinstance(toy, DiscreteToy):
        z = toy.latent.enumerate()[:, None, :]  # [S, 1, L]
        log_cell = torch.zeros(())
    else:
        grid = torch.linspace(-10, 10, 8001, dtype=DTYPE)
        z = grid[:, None, None]  # [G, 1, 1]
        log_cell = (grid[1] - grid[0]).log()
    with torch.no_grad():
        proposal = toy.proposal(params)
        log_lik = toy.log_likelihood(params, z)[:, 0]
        log_prior = toy.latent.log_prior(z)[:, 0].to(DTYPE) + log_cell
        log_q = toy.latent.log_q(proposal, z)[:, 0] + log_cell
    return TableModel(log_prior, log_lik, log_q)


def _targets(table: TableModel, settings: ExplorerSettings) -> tuple[float, float, float]:
    """(true divergence the term estimates, true KL, true value the objective estimates)."""
    kl = table.true_kl
    if settings.kind == "kl":
        return kl, kl, table.log_marginal + settings.lam * kl
    renyi = table.renyi_divergence(settings.alpha) if settings.alpha != 1 else kl
    if settings.kind == "renyi":
        return renyi, kl, table.log_marginal + settings.lam * renyi
    return renyi, kl, table.log_power_marginal(settings.alpha) / settings.alpha


def _objective(settings: ExplorerSettings, K: int) -> Objective:
    kind = ObjectiveKind(settings.kind)
    lam = settings.lam if kind in (ObjectiveKind.KL, ObjectiveKind.RENYI) else 0.0
    alpha = settings.alpha if kind in (ObjectiveKind.RENYI, ObjectiveKind.POWER) else 1.0
    return Objective(kind, lam, alpha, K, K)


def explorer_curves(settings: ExplorerSettings, sample_counts: list[int], draws: int, seed: int) -> dict[str, Any]:
    """Everything the explorer plots, for one setting and every K.

    On the toy of the chosen estimator (a 2 × 2 categorical latent for vimco/reinforce, a
    1-D Gaussian for dreg/iwae), from ``draws`` independent sets of K samples: the mean and
    standard deviation of the divergence term and of the objective estimate, and the total
    variance of the gradient estimate (trace of its covariance over all parameters); the
    true divergence and objective come from exact enumeration (or a fine 1-D grid).
    VIMCO needs K ≥ 2: its K = 1 entries are None.
    """
    toy = _toy_for(settings.base)
    table = _exact_table(toy, settings.base)
    true_divergence, true_kl, true_objective = _targets(table, settings)
    result: dict[str, Any] = {
        "K": list(sample_counts),
        "true_divergence": true_divergence,
        "true_kl": true_kl,
        "true_objective": true_objective,
        "divergence_mean": [],
        "divergence_std": [],
        "objective_mean": [],
        "objective_std": [],
        "gradient_variance": [],
    }
    for K in sample_counts:
        objective = _objective(settings, K)
        generator = torch.Generator().manual_seed(seed * 1000 + K)
        params = toy.replicate(draws)
        with torch.no_grad():
            proposal = toy.proposal(params)
            z = toy.latent.sample(proposal, K, generator, reparameterize=False)
            log_lik = toy.log_likelihood(params, z)
            log_prior = toy.latent.log_prior(z).to(DTYPE)
            log_q = toy.latent.log_q(proposal, z)
        if settings.kind == "kl":
            divergence = kl_estimate(log_lik, log_prior, log_q)
        else:
            divergence = renyi_estimate(log_lik, log_prior, log_q, settings.alpha)
        value = objective(log_lik + log_prior - log_q, log_lik)
        result["divergence_mean"].append(divergence.mean().item())
        result["divergence_std"].append(divergence.std().item())
        result["objective_mean"].append(value.mean().item())
        result["objective_std"].append(value.std().item())
        if K < estimator_spec(settings.base).min_samples:
            result["gradient_variance"].append(None)
        else:
            gradients = toy.draws(settings.base, objective, draws, seed * 1000 + K + 1)
            result["gradient_variance"].append(gradients.var(0).sum().item())
    return result


def explorer_grid(
    lambdas: list[float],
    alphas: list[float],
    sample_counts: list[int],
    draws: int,
    seed: int,
    bases: tuple[str, ...] = EXPLORER_BASES,
    kinds: tuple[str, ...] = EXPLORER_KINDS,
) -> dict[str, Any]:
    """:func:`explorer_curves` over a grid; keys "base|kind|λ index|α index". Settings an objective
    ignores (α for kl, λ for power) are computed once and shared."""
    curves: dict[str, Any] = {}
    computed: dict[ExplorerSettings, Any] = {}
    for base, kind in itertools.product(bases, kinds):
        for i, lam in enumerate(lambdas):
            for j, alpha in enumerate(alphas):
                settings = ExplorerSettings(base, kind, 0.0 if kind == "power" else lam, 1.0 if kind == "kl" else alpha)
                if settings not in computed:
                    computed[settings] = explorer_curves(settings, sample_counts, draws, seed)
                curves[f"{base}|{kind}|{i}|{j}"] = computed[settings]
    return {
        "lambdas": list(lambdas),
        "alphas": list(alphas),
        "K": list(sample_counts),
        "bases": list(bases),
        "kinds": list(kinds),
        "curves": curves,
    }


# the page script's own part: widgets.static_html adds the div lookup, the listeners, a first redraw
EXPLORER_SCRIPT = """\
  var grid = {grid};
  var state = {base: 0, kind: 1, lam: {lam_index}, alpha: {alpha_index}, k: {k_index}};
  function band(mean, std, sign) { return mean.map(function(m, i) { return m === null ? null : m + sign * std[i]; }); }
  function redraw() {
    var key = grid.bases[state.base] + '|' + grid.kinds[state.kind] + '|' + state.lam + '|' + state.alpha;
    var c = grid.curves[key];
    var K = grid.K, n = K.length, k = K[state.k];
    var flat = function(v) { return K.map(function() { return v; }); };
    var data = {
      y: [band(c.divergence_mean, c.divergence_std, 1), band(c.divergence_mean, c.divergence_std, -1),
          c.divergence_mean, flat(c.true_divergence), flat(c.true_kl),
          band(c.objective_mean, c.objective_std, 1), band(c.objective_mean, c.objective_std, -1),
          c.objective_mean, flat(c.true_objective), c.gradient_variance]
    };
    var g = c.gradient_variance[state.k];
    var title = grid.bases[state.base] + ', ' + grid.kinds[state.kind] + ' objective, λ = ' + grid.lambdas[state.lam] +
      ', α = ' + grid.alphas[state.alpha] + '<br>at K = ' + k + ': divergence term ' +
      c.divergence_mean[state.k].toFixed(3) + ' ± ' + c.divergence_std[state.k].toFixed(3) +
      ' (true ' + c.true_divergence.toFixed(3) + '), objective ' + c.objective_mean[state.k].toFixed(3) +
      ' (true ' + c.true_objective.toFixed(3) + '), gradient variance ' + (g === null ? 'n/a' : g.toPrecision(3));
    var shapes = ['x', 'x2', 'x3'].map(function(ax) {
      return {type: 'line', xref: ax, yref: 'paper', x0: k, x1: k, y0: 0, y1: 1, line: {dash: 'dot', color: 'gray'}};
    });
    Plotly.update(gd, data, {'title.text': title, shapes: shapes});
  }
"""


def static_explorer_html(grid: dict[str, Any], div_id: str = "micmco-explorer") -> str:
    """The explorer for the static book: a plotly figure whose sliders and menus redraw precomputed curves.

    No kernel runs: a small script looks the chosen (estimator, objective, λ, α) up in ``grid``
    (from :func:`explorer_grid`) and restyles the traces; the K slider moves the marker.
    plotly.js is embedded, so the page works offline.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    K = grid["K"]
    first = grid["curves"][f"{grid['bases'][0]}|{grid['kinds'][1]}|0|0"]
    fig = make_subplots(rows=1, cols=3, subplot_titles=("divergence term", "objective", "gradient variance"))
    blue, fill = "rgb(31,119,180)", "rgba(31,119,180,0.2)"

    def band(mean: list, legend: bool) -> list:
        """An estimate over K and its ± 1 sd band (an invisible edge, then one filled to it)."""
        names = ({"name": "± 1 sd"}, {"name": "estimate"}) if legend else ({"showlegend": False},) * 2
        return [
            go.Scatter(x=K, y=mean, mode="lines", line={"width": 0}, showlegend=False),
            go.Scatter(x=K, y=mean, mode="lines", line={"width": 0}, fill="tonexty", fillcolor=fill, **names[0]),
            go.Scatter(x=K, y=mean, mode="lines+markers", line={"color": blue}, **names[1]),
        ]

    def level(value: float, name: str, dash: str = "dash", color: str = "black"):
        """A true value, the same at every K."""
        return go.Scatter(x=K, y=[value] * len(K), mode="lines", line={"dash": dash, "color": color}, name=name)

    variance = go.Scatter(x=K, y=first["gradient_variance"], mode="lines+markers", line={"color": "rgb(44,160,44)"},
                          name="gradient variance")  # fmt: skip
    panels = [  # the page script restyles these ten traces in this order
        band(first["divergence_mean"], legend=True)
        + [level(first["true_divergence"], "true divergence"), level(first["true_kl"], "true KL", "dot", "red")],
        band(first["objective_mean"], legend=False) + [level(first["true_objective"], "true objective O(λ, x)")],
        [variance],
    ]
    for col, traces in enumerate(panels, start=1):
        for trace in traces:
            fig.add_trace(trace, row=1, col=col)
    for col in (1, 2, 3):
        fig.update_xaxes(type="log", title_text="K", tickvals=K, row=1, col=col)
    fig.update_yaxes(type="log", row=1, col=3)

    k_index = min(2, len(K) - 1)
    lam_index = min(1, len(grid["lambdas"]) - 1)
    alpha_index = min(1, len(grid["alphas"]) - 1)
    fig.update_annotations(font_size=12)
    fig.update_layout(
        height=600,
        margin={"t": 180, "b": 150, "l": 50, "r": 20},
        title={"text": "", "font": {"size": 12}, "x": 0.0, "xanchor": "left", "y": 0.985, "yanchor": "top"},
        legend={"orientation": "h", "x": 0.0, "y": 1.12, "yanchor": "bottom", "font": {"size": 11}},
        sliders=[
            widgets.slider("lam", "λ", grid["lambdas"], 0.0, lam_index),
            widgets.slider("alpha", "α", grid["alphas"], 0.35, alpha_index),
            widgets.slider("k", "K", K, 0.7, k_index),
        ],
        updatemenus=[
            widgets.menu("base", grid["bases"], 0.08, 1.3, 0),
            widgets.menu("kind", grid["kinds"], 0.33, 1.3, 1),
        ],
        annotations=list(fig.layout.annotations)
        + [widgets.menu_label("estimator", 0.075, 1.34), widgets.menu_label("objective", 0.325, 1.34)],
    )
    values = {
        "grid": json.dumps(grid),
        "lam_index": str(lam_index),
        "alpha_index": str(alpha_index),
        "k_index": str(k_index),
    }
    return widgets.static_html(fig, div_id, EXPLORER_SCRIPT, values, sliders=True)


@dataclass
class ExplorerFacts:
    kl_error_first: float  # |E[Û − Ŝ] − KL| at the smallest K (KL objective)
    kl_error_last: float  # the same at the largest K
    vimco_falls: bool  # VIMCO's gradient variance at the largest K is below its first defined value
    reinforce_grows: bool  # REINFORCE's gradient variance at the largest K is above its K = 1 value
    dreg_below_iwae_at_last: bool  # DReG's gradient variance below IWAE's at the largest K
    lines: list[str]


def explorer_facts(grid: dict[str, Any]) -> ExplorerFacts:
    """What the explorer chapter's prose says, read off the grid at the first λ index 1 and α index 1."""
    i, j = min(1, len(grid["lambdas"]) - 1), min(1, len(grid["alphas"]) - 1)
    curves = lambda base, kind: grid["curves"][f"{base}|{kind}|{i}|{j}"]  # noqa: E731
    K = grid["K"]
    kl = curves("vimco", "kl")
    first, last = abs(kl["divergence_mean"][0] - kl["true_kl"]), abs(kl["divergence_mean"][-1] - kl["true_kl"])
    vimco = [v for v in curves("vimco", "renyi")["gradient_variance"] if v is not None]
    reinforce = curves("reinforce", "renyi")["gradient_variance"]
    dreg, iwae = curves("dreg", "renyi")["gradient_variance"], curves("iwae", "renyi")["gradient_variance"]
    facts = ExplorerFacts(first, last, vimco[-1] < vimco[0], reinforce[-1] > reinforce[0], dreg[-1] < iwae[-1], [])
    lam, alpha = grid["lambdas"][i], grid["alphas"][j]
    facts.lines = [
        f"KL objective: |E[Û − Ŝ] − KL| = {first:.3f} at K = {K[0]}, {last:.3f} at K = {K[-1]}",
        f"Rényi objective, λ = {lam:g}, α = {alpha:g}, gradient variance from K = {K[0]} to {K[-1]}:",
        f"  VIMCO {vimco[0]:.3g} -> {vimco[-1]:.3g} (falls: {facts.vimco_falls})",
        f"  REINFORCE {reinforce[0]:.3g} -> {reinforce[-1]:.3g} (grows: {facts.reinforce_grows})",
        f"  at K = {K[-1]}: DReG {dreg[-1]:.3g}, IWAE {iwae[-1]:.3g} (DReG below: {facts.dreg_below_iwae_at_last})",
    ]
    return facts


class LiveExplorer(widgets.LiveFigure):
    """The explorer in a live kernel: ipywidgets controls that recompute with micmco and redraw.

    ``controls`` holds the widgets; ``update()`` is their callback (tests call it directly);
    ``curves`` is what was last plotted.
    """

    def __init__(
        self,
        sample_counts: list[int],
        draws: int,
        seed: int,
        settings: ExplorerSettings = ExplorerSettings(),
        lambdas: list[float] = (0.0, 0.25, 0.5, 0.75, 0.9),
        alphas: list[float] = (0.5, 2.0, 4.0, 8.0),
    ):
        import ipywidgets

        self.sample_counts, self.draws, self.seed = list(sample_counts), draws, seed
        controls = {
            "base": ipywidgets.Dropdown(options=list(EXPLORER_BASES), value=settings.base, description="estimator"),
            "kind": ipywidgets.Dropdown(options=list(EXPLORER_KINDS), value=settings.kind, description="objective"),
            "lam": ipywidgets.SelectionSlider(options=list(lambdas), value=settings.lam, description="λ"),
            "alpha": ipywidgets.SelectionSlider(options=list(alphas), value=settings.alpha, description="α"),
            "k": ipywidgets.SelectionSlider(
                options=self.sample_counts,
                value=self.sample_counts[min(2, len(self.sample_counts) - 1)],
                description="K",
            ),
        }
        self.curves: dict[str, Any] = {}
        super().__init__(controls, [["base", "kind"], ["lam", "alpha", "k"]], figsize=(13, 3.6), panels=3)

    @property
    def settings(self) -> ExplorerSettings:
        c = self.controls
        return ExplorerSettings(c["base"].value, c["kind"].value, float(c["lam"].value), float(c["alpha"].value))

    def draw(self) -> None:
        """Recompute the curves for the controls' values and draw them."""
        settings = self.settings
        self.curves = explorer_curves(settings, self.sample_counts, self.draws, self.seed)
        draw_explorer(self.axes, self.curves, settings, self.controls["k"].value)


def draw_explorer(axes, curves: dict[str, Any], settings: ExplorerSettings, k: int) -> None:
    """The explorer's three panels on matplotlib axes."""
    K = curves["K"]
    divergence_ax, objective_ax, gradient_ax = axes
    for ax in axes:
        ax.clear()
    for ax, name, truth, truth_label in (
        (divergence_ax, "divergence", curves["true_divergence"], "true divergence"),
        (objective_ax, "objective", curves["true_objective"], "true O(λ, x)"),
    ):
        mean, std = curves[f"{name}_mean"], curves[f"{name}_std"]
        ax.plot(K, mean, marker="o", label="estimate")
        ax.fill_between(K, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)], alpha=0.2)
        ax.axhline(truth, color="black", linestyle="--", label=truth_label)
    divergence_ax.axhline(curves["true_kl"], color="red", linestyle=":", label="true KL")
    variance = [(k_, v) for k_, v in zip(K, curves["gradient_variance"]) if v is not None]
    gradient_ax.plot([a for a, _ in variance], [b for _, b in variance], marker="o", color="tab:green")
    gradient_ax.set_yscale("log")
    for ax, title in zip(axes, ("divergence term (± 1 sd)", "objective (± 1 sd)", "gradient variance")):
        ax.axvline(k, color="gray", linestyle=":")
        ax.set(xscale="log", xlabel="K", title=title)
        ax.set_xticks(K, [str(v) for v in K])
    divergence_ax.legend(fontsize=8)
    objective_ax.legend(fontsize=8)
    axes[0].figure.suptitle(
        f"{settings.base}, {settings.kind} objective, λ = {settings.lam:g}, α = {settings.alpha:g}", fontsize=10
    )
