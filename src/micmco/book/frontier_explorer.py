"""§7's frontier explorer: pick a task (synthetic or Penn Treebank), for PTB a split and regulariser, then an
estimator, K and an objective, and see where that curve's frontier lies, ours beside the paper's, over our
other frontiers of the same task and split (live with ipywidgets; static with plotly).

The synthetic curves are drawn on the normalised axes (usage / ln V against NLL − ln V), the PTB curves per
token, never normalised (the figures' convention, :mod:`micmco.book.figures`). The PTB menus hold the curves
at the paper's main setting (batch 256, 40k steps, H = 128), as its figures draw them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from ..naming import PAPER_ESTIMATORS, PTB_CURVE_ID, curve_label, estimator_label, estimator_names, parse_curve_id
from . import widgets
from .figures import has_study, load_curve, lowest_excess, ptb_paper_files, same_objective, synthetic_curve_ids
from .registry import ptb_figures

FRONTIER_TASKS = ("synthetic", "Penn Treebank")
TRAINING_FIT = "training fit"
PTB_SPLITS = {None: TRAINING_FIT, "-valid": "validation, naive dropout",
              "-valid-shared": "validation, shared dropout masks", "-valid-l2": "validation, L2"}  # fmt: skip
FRONTIER_SPLITS = tuple(PTB_SPLITS.values())
VQ_VAE = estimator_label("vqvae")
# the estimators of the paper's figures (those its trial files name), as the registry labels them
FRONTIER_ESTIMATORS = tuple(
    estimator_label(name) for name in estimator_names() if name in PAPER_ESTIMATORS.values() or name == "vqvae"
)
FRONTIER_SAMPLES = ("1", "16", "64", "16/1", "1/16")
FRONTIER_OBJECTIVES = ("KL", "Rényi", "power")
# menu -> the data's list of its choices, in the menus' order (the page script's state is an index into each)
MENUS = {"task": "tasks", "split": "splits", "estimator": "estimators", "samples": "samples", "objective": "objectives"}
SYNTHETIC_AXES = {"x": "latent usage: MI / ln V", "y": "excess NLL: NLL − ln V (nats)",
                  "xrange": [0, 1.05], "yrange": [-0.01, 0.32]}  # fmt: skip


def choice_key(task: str, split: str, estimator: str, samples: str, objective: str) -> str:
    """ "task|split|estimator|K|objective" of the menus' choice (the page script builds the same key). The
    synthetic task has one split (each is the whole vocabulary), and the VQ-VAE neither K nor an objective."""
    if task == "synthetic":
        split = TRAINING_FIT
    if estimator == VQ_VAE:
        samples, objective = "1", "KL"
    return "|".join((task, split, estimator, samples, objective))


def menu_choice(curve_id: str) -> tuple[str, str, str]:
    """(estimator, K, objective) of a curve, as the menus spell them: ptb-vimco1-kl -> REINFORCE, 1, KL."""
    if curve_id == "vqvae":
        return VQ_VAE, "1", "KL"
    name, objective = curve_label(curve_id).split(", ")[:2]
    parts = name.split(" ")
    return parts[0], parts[1] if len(parts) > 1 else "1", objective


def ptb_main_curve_ids() -> list[str]:
    """The paper's PTB curves at its main setting: no batch, hidden-size, length or compute-matched variant."""
    return [curve_id for curve_id in ptb_paper_files() if not PTB_CURVE_ID.match(curve_id)["variant"]]


@dataclass(frozen=True)
class FrontierChoice:
    """What a menu choice draws: the paper's curve, the study of ours standing for it, and why they differ."""

    paper_id: str
    ours_id: str
    note: str = ""


def our_study(curve_id: str, profile: str) -> str:
    """The study whose results stand for a curve: its own, or for a Rényi curve with one divergence sample and
    no study its KL twin (one objective, so the cpu profile runs the KL one only)."""
    twin = curve_id.replace("-renyi", "-kl", 1)
    borrow = twin != curve_id and same_objective(curve_id, twin)
    return twin if borrow and not has_study(curve_id, profile) and has_study(twin, profile) else curve_id


def frontier_choices(profile: str = "cpu") -> dict[str, FrontierChoice]:
    """Every choice of the menus the paper has a curve for (choice_key -> FrontierChoice): its synthetic
    curves, and its PTB curves at the main setting with the K = 1 curves its figures borrow."""
    choices = {}
    for curve_id in synthetic_curve_ids():
        choices[choice_key("synthetic", TRAINING_FIT, *menu_choice(curve_id))] = FrontierChoice(curve_id, curve_id)
    ptb = {(PTB_SPLITS[PTB_CURVE_ID.match(c)["valid"]], *menu_choice(c)): c for c in ptb_main_curve_ids()}
    shared, naive = FRONTIER_SPLITS[2], FRONTIER_SPLITS[1]
    for (split, estimator, samples, objective), curve_id in list(ptb.items()):
        if split == naive and samples == "1":  # one sample, one mask: Figure 12 draws the naive runs
            ptb.setdefault((shared, estimator, samples, objective), curve_id)
    for (split, estimator, samples, objective), curve_id in list(ptb.items()):
        if samples == "1" and objective == "KL":  # one objective: without a Rényi run, Figure 11 draws KL in both
            ptb.setdefault((split, estimator, samples, "Rényi"), curve_id)
    for (split, *menus), paper_id in ptb.items():
        ours_id = our_study(paper_id, profile)
        notes = ["one objective; our KL study"] if ours_id != paper_id else []
        if menus[2] == "Rényi" and "-kl" in paper_id:
            figure = min((n for n, (_, curves) in ptb_figures().items() if paper_id in curves), default=None)
            notes.append("one objective; the KL curves" + (f", as Figure {figure} draws them" if figure else ""))
        if split == shared and "-shared" not in paper_id:
            notes.append("one sample, one mask: the naive-mask runs, as in Figure 12")
        prefix = "K = 1: " if parse_curve_id(paper_id).k == 1 else "K′ = 1: "
        note = prefix + "; ".join(notes) if notes else ""
        choices[choice_key("Penn Treebank", split, *menus)] = FrontierChoice(paper_id, ours_id, note)
    return choices


def _points(curve, indices=None, digits: int = 4) -> dict[str, list[float]]:
    """Usage and NLL of ``curve``'s trials (``indices``: those) as a frontier chooses and reports them
    (``Curve.selection_mi``, ``Curve.reported_nll``: micmco.pareto.frontier_value)."""
    if curve is None:
        return {"x": [], "y": []}
    indices = slice(None) if indices is None else indices
    x, y = curve.selection_mi[indices], curve.reported_nll[indices]
    return {"x": x.round(digits).tolist(), "y": y.round(digits).tolist()}


def _json_number(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 4)


def _ptb_axes(split: str, fronts: list[dict[str, list[float]]], rights: list[float]) -> dict[str, Any]:
    """Per-token axes around some frontiers (a diverged trial's dot must not squash them)."""
    ys = [y for front in fronts for y in front["y"]] or [0.0, 1.0]
    pad = 0.05 * max(max(ys) - min(ys), 0.1)
    return {"x": "latent usage (nats per token)",
            "y": f"{'training' if split == TRAINING_FIT else 'validation'} NLL (nats per token)",
            "xrange": [0, round(max(rights, default=1.0) * 1.05, 3)],
            "yrange": [round(min(ys) - pad, 3), round(max(ys) + pad, 3)]}  # fmt: skip


def frontier_explorer_data(profile: str = "cpu", min_usage: float = 0.8, ptb_min_usage: float = 0.5) -> dict[str, Any]:
    """Every curve of the menus keyed by choice_key: the paper's frontier, our frontier and all our trials,
    our counts and compute, the lowest (excess) NLL at usage >= m (``min_usage`` ln V on the synthetic task,
    ``ptb_min_usage`` nats per token on PTB), the axes; our frontiers of each task and split in grey."""
    curves, background = {}, {}
    for key, choice in frontier_choices(profile).items():
        task, split, estimator, samples, objective = key.split("|")
        paper = load_curve(choice.paper_id, profile)
        ours = paper if choice.ours_id == choice.paper_id else load_curve(choice.ours_id, profile)
        m = min_usage if task == "synthetic" else ptb_min_usage
        # on PTB the choice's own name: a K = 1 Rényi choice may draw KL curves
        label = curve_label(choice.paper_id) if task == "synthetic" else f"{estimator} {samples}, {objective}"
        entry = {
            "label": label, "task": task, "split": split, "note": choice.note, "curve": choice.paper_id,
            "study": f"params/studies/{profile}/{choice.ours_id}.yaml", "has_study": has_study(choice.ours_id, profile),
            "paper": _points(paper.paper, paper.paper.frontier()), "paper_trials": len(paper.paper.mi),
            "paper_lowest": _json_number(lowest_excess(paper.paper, m)),
            "paper_setting": f"the paper's frontier ({paper.paper.setting_label})",
            "complete": ours.complete, "rows": ours.rows, "wall_s": round(ours.wall_s, 1),
            "ours": _points(ours.ours, None if ours.ours is None else ours.ours.frontier()),
            "ours_all": _points(ours.ours), "ours_lowest": _json_number(lowest_excess(ours.ours, m)),
            "ours_setting": f"our trials ({profile}, {ours.ours.setting_label if ours.ours else 'no results'})",
        }  # fmt: skip
        if task == "synthetic":
            entry["axes"] = SYNTHETIC_AXES
        else:
            rights = [max(entry[side]["x"], default=0.0) for side in ("paper", "ours_all")]
            entry["axes"] = _ptb_axes(split, [entry["paper"], entry["ours"]], rights)
        curves[key] = entry
        if entry["ours"]["x"]:
            background.setdefault(f"{task}|{split}|{choice.ours_id}", {"group": f"{task}|{split}", **entry["ours"]})
    groups = {"synthetic|" + TRAINING_FIT: SYNTHETIC_AXES}
    for split in FRONTIER_SPLITS:  # a choice the paper has no curve for: the split's axes around all its frontiers
        entries = [e for e in curves.values() if e["task"] != "synthetic" and e["split"] == split]
        rights = [max(e["paper"]["x"] + e["ours"]["x"], default=0.0) for e in entries]
        groups["Penn Treebank|" + split] = _ptb_axes(split, [e[s] for e in entries for s in ("paper", "ours")], rights)
    return {"profile": profile, "min_usage": min_usage, "ptb_min_usage": ptb_min_usage, "curves": curves,
            "background": list(background.values()), "axes": groups, "tasks": list(FRONTIER_TASKS),
            "splits": list(FRONTIER_SPLITS), "estimators": list(FRONTIER_ESTIMATORS),
            "samples": list(FRONTIER_SAMPLES), "objectives": list(FRONTIER_OBJECTIVES)}  # fmt: skip


def not_a_curve(key: str) -> str:
    """The caption of a choice the paper has no curve for, naming the task (the page script says the same)."""
    task, split, estimator, samples, objective = key.split("|")
    where = "" if task == "synthetic" else f", {split}"
    hint = " (VIMCO 1 is REINFORCE 1)" if (estimator, samples) == ("VIMCO", "1") else ""
    return f"{estimator} {samples} {objective}{where}: not a curve of the paper's {task} figures{hint}"


def frontier_title(data: dict[str, Any], key: str) -> str:
    """The explorer's caption for a choice: what it is, how many trials, where the frontier is at m."""
    entry = data["curves"].get(key)
    if entry is None:
        return not_a_curve(key)
    synthetic = entry["task"] == "synthetic"
    digits = 4 if synthetic else 3

    def number(value: float | None) -> str:
        return "–" if value is None else f"{value:.{digits}f}"

    if entry["complete"]:
        ours = number(entry["ours_lowest"])
        line = f"ours: {entry['complete']} complete of {entry['rows']} trials, {entry['wall_s'] / 60:.1f} min"
    elif entry["has_study"]:
        ours, line = "no results", f"ours: no results yet ({entry['study']})"
    else:
        ours, line = "no results", f"ours: no {data['profile']} study of this curve"
    counts = f"{line}; paper: {entry['paper_trials']} trials"
    if synthetic:
        return (f"{entry['label']} — {counts}<br>lowest excess NLL at usage ≥ {data['min_usage']:g} ln V: "
                f"ours {ours}, paper {number(entry['paper_lowest'])}")  # fmt: skip
    what = "training" if entry["split"] == TRAINING_FIT else "validation"
    note = f"<br>{entry['note']}" if entry["note"] else ""
    m = data["ptb_min_usage"]
    return (f"{entry['label']} — Penn Treebank, {entry['split']}{note}<br>{counts}<br>lowest {what} NLL per token "
            f"at usage ≥ {m:g} nats per token: ours {ours}, paper {number(entry['paper_lowest'])}")  # fmt: skip


def start_state(data: dict[str, Any], start: str, task: str, split: str) -> dict[str, str]:
    """The menus' first values from ``start`` (estimator|K|objective), ``task`` and ``split``; a ValueError
    naming the choices of a menu for a value it does not have."""
    if start.count("|") != 2:
        raise ValueError(f"start {start!r} is not estimator|K|objective, e.g. VIMCO|16|Rényi")
    estimator, samples, objective = start.split("|")
    state = {"task": task, "split": split, "estimator": estimator, "samples": samples, "objective": objective}
    for menu, value in state.items():
        choices = data[MENUS[menu]]
        if value not in choices:
            raise ValueError(f"{menu} {value!r} is not a choice of the frontier explorer; choose one of {choices}")
    return state


# the page script's own part: widgets.static_html adds the div lookup, the listener, a first redraw
FRONTIER_SCRIPT = """\
  var data = {data};
  var state = {start};
  var background = data.background.map(function(_, i) { return i; });
  function redraw() {
    var task = data.tasks[state.task], split = data.splits[task === 'synthetic' ? 0 : state.split];
    var estimator = data.estimators[state.estimator], samples = data.samples[state.samples];
    var objective = data.objectives[state.objective];
    if (estimator === 'VQ-VAE') { samples = '1'; objective = 'KL'; }
    var key = [task, split, estimator, samples, objective].join('|');
    var c = data.curves[key], empty = {x: [], y: []}, axes = c ? c.axes : data.axes[task + '|' + split];
    var title = c ? c.title : estimator + ' ' + samples + ' ' + objective
      + (task === 'synthetic' ? '' : ', ' + split) + ': not a curve of the paper\\'s ' + task + ' figures'
      + (estimator === 'VIMCO' && samples === '1' ? ' (VIMCO 1 is REINFORCE 1)' : '');
    var paper = c ? c.paper : empty, ours = c ? c.ours : empty, all = c ? c.ours_all : empty;
    if (background.length) Plotly.restyle(gd, {visible: data.background.map(function(b) {
      return b.group === task + '|' + split; })}, background);
    Plotly.update(gd, {x: [paper.x, all.x, ours.x], y: [paper.y, all.y, ours.y],
                       name: [c ? c.paper_setting : 'the paper\\'s frontier', c ? c.ours_setting : 'our trials',
                              'our frontier']},
                  {'title.text': title, 'xaxis.title.text': axes.x, 'yaxis.title.text': axes.y,
                   'xaxis.range': axes.xrange, 'yaxis.range': axes.yrange}, {traces});
  }
"""


def static_frontier_explorer_html(data: dict[str, Any], div_id: str = "micmco-frontiers", start: str = "VIMCO|16|Rényi",
                                  task: str = "synthetic", split: str = TRAINING_FIT) -> str:  # fmt: skip
    """The frontier explorer for the static book: our frontiers of the chosen task and split in grey, the
    chosen curve (five menus: task, split and regulariser, estimator, K, objective) in colour beside the
    paper's; plotly.js embedded, no kernel."""
    import plotly.graph_objects as go

    chosen = start_state(data, start, task, split)
    fig = go.Figure()
    for line in data["background"]:
        fig.add_trace(go.Scatter(x=line["x"], y=line["y"], mode="lines", hoverinfo="skip", showlegend=False,
                                 line={"color": "rgba(150,150,150,0.35)", "width": 1}))  # fmt: skip
    background = len(fig.data)
    fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name="the paper's frontier",
                             line={"dash": "dash", "color": "rgba(31,119,180,0.6)"}, marker={"size": 4}))  # fmt: skip
    fig.add_trace(go.Scatter(x=[], y=[], mode="markers", name="our trials", marker={"color": "rgba(214,39,40,0.3)",
                                                                                    "size": 6}))  # fmt: skip
    fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name="our frontier",
                             line={"color": "rgb(214,39,40)", "width": 2.5}))  # fmt: skip
    state = {menu: data[values].index(chosen[menu]) for menu, values in MENUS.items()}
    places = {"task": (0.1, 1.19), "split": (0.5, 1.19), "estimator": (0.1, 1.03), "samples": (0.5, 1.03),
              "objective": (0.78, 1.03)}  # fmt: skip
    labels = {"task": "task", "split": "split, regulariser", "estimator": "estimator", "samples": "K (or K/K′)",
              "objective": "objective"}  # fmt: skip
    fig.update_layout(
        height=660, margin={"t": 190, "b": 130, "l": 60, "r": 20},
        title={"text": "", "font": {"size": 12}, "x": 0.0, "xanchor": "left", "y": 0.985, "yanchor": "top"},
        xaxis={"title": SYNTHETIC_AXES["x"], "range": SYNTHETIC_AXES["xrange"]},
        yaxis={"title": SYNTHETIC_AXES["y"], "range": SYNTHETIC_AXES["yrange"]},
        legend={"orientation": "h", "x": 0.0, "y": -0.16, "yanchor": "top", "font": {"size": 11}},
        updatemenus=[widgets.menu(menu, data[MENUS[menu]], x, y, state[menu]) for menu, (x, y) in places.items()],
        annotations=[widgets.menu_label(labels[menu], x - 0.005, y + 0.03) for menu, (x, y) in places.items()],
    )  # fmt: skip
    payload = {**data, "curves": {k: {**v, "title": frontier_title(data, k)} for k, v in data["curves"].items()}}
    values = {
        "data": json.dumps(payload),
        "start": json.dumps(state),
        "traces": json.dumps([background, background + 1, background + 2]),
    }
    return widgets.static_html(fig, div_id, FRONTIER_SCRIPT, values)


class FrontierExplorer(widgets.LiveFigure):
    """The frontier explorer in a live kernel: five ipywidgets menus redraw the chosen curve over the others
    (``controls``; ``update()`` is their callback; ``shown`` is the key last drawn)."""

    def __init__(self, data: dict[str, Any], start: str = "VIMCO|16|Rényi", task: str = "synthetic",
                 split: str = TRAINING_FIT):  # fmt: skip
        import ipywidgets

        self.data = data
        chosen = start_state(data, start, task, split)
        wide = {"style": {"description_width": "initial"}}
        controls = {
            "task": ipywidgets.Dropdown(options=data["tasks"], value=chosen["task"], description="task"),
            "split": ipywidgets.Dropdown(
                options=data["splits"], value=chosen["split"], description="split, regulariser", **wide
            ),  # fmt: skip
            "estimator": ipywidgets.Dropdown(
                options=data["estimators"], value=chosen["estimator"], description="estimator"
            ),  # fmt: skip
            "samples": ipywidgets.Dropdown(options=data["samples"], value=chosen["samples"], description="K (or K/K′)"),
            "objective": ipywidgets.Dropdown(
                options=data["objectives"], value=chosen["objective"], description="objective"
            ),  # fmt: skip
        }
        self.shown = ""
        super().__init__(controls, [["task", "split"], ["estimator", "samples", "objective"]], figsize=(7.5, 4.6))

    @property
    def ax(self):
        """The figure's one panel."""
        return self.axes

    @property
    def key(self) -> str:
        return choice_key(*(control.value for control in self.controls.values()))

    def draw(self) -> None:
        """Draw the chosen curve over the others; the split menu is off on the synthetic task (one split)."""
        self.shown = self.key
        self.controls["split"].disabled = self.controls["task"].value == "synthetic"
        draw_frontier_choice(self.ax, self.data, self.shown)


def draw_frontier_choice(ax, data: dict[str, Any], key: str) -> None:
    """The explorer's plot on matplotlib axes: our frontiers of the task and split in grey, the chosen one in
    colour."""
    ax.clear()
    group = "|".join(key.split("|")[:2])
    for line in data["background"]:
        if line["group"] == group:
            ax.plot(line["x"], line["y"], color="0.75", lw=0.8)
    entry = data["curves"].get(key)
    axes = data["axes"][group] if entry is None else entry["axes"]
    if entry is not None:
        ax.plot(entry["paper"]["x"], entry["paper"]["y"], "--", marker=".", color="tab:blue", alpha=0.6,
                label=entry["paper_setting"])  # fmt: skip
        ax.plot(entry["ours_all"]["x"], entry["ours_all"]["y"], "o", color="tab:red", alpha=0.3, ms=4,
                label=entry["ours_setting"])  # fmt: skip
        ax.plot(entry["ours"]["x"], entry["ours"]["y"], "-o", color="tab:red", ms=4, label="our frontier")
        ax.legend(fontsize=8, frameon=False)
    ax.set(xlim=axes["xrange"], ylim=axes["yrange"], xlabel=axes["x"], ylabel=axes["y"])
    ax.grid(alpha=0.3)
    ax.set_title(frontier_title(data, key).replace("<br>", "\n"), fontsize=9)
