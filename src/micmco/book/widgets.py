"""What the two explorers share (the λ/α/K explorer of §4, the frontier explorer of §7).

In the static book: the plotly menus, sliders and their labels, and the page script that looks
the reader's choice up in precomputed data and redraws the figure (no kernel). In a live kernel:
ipywidgets controls above a matplotlib figure that is redrawn whenever one of them changes.
"""

from __future__ import annotations

from typing import Any

SCRIPT_HEAD = """
(function() {
  var gd = document.getElementById('{div_id}');
"""
ON_SLIDER = (
    "  gd.on('plotly_sliderchange', function(e) "
    "{ state[e.slider.name] = e.slider.steps.indexOf(e.step); redraw(); });\n"
)
ON_MENU = (
    "  gd.on('plotly_buttonclicked', function(e) "
    "{ state[e.menu.name] = e.menu.buttons.indexOf(e.button); redraw(); });\n"
)
SCRIPT_TAIL = """  redraw();
})();
"""


def slider(name: str, label: str, values: list, x: float, active: int) -> dict:
    """A plotly slider over ``values`` below the figure; moving it only tells the page's script."""
    return {
        "name": name,
        "active": active,
        "x": x,
        "y": -0.12,
        "len": 0.3,
        "yanchor": "top",
        "pad": {"t": 30, "r": 10},
        "currentvalue": {"prefix": f"{label} = ", "font": {"size": 13}},
        "font": {"size": 10},
        "steps": [{"label": f"{v:g}", "method": "skip", "args": [None]} for v in values],
    }


def menu(name: str, values: list[str], x: float, y: float, active: int) -> dict:
    """A plotly dropdown of ``values`` at (x, y) in paper coordinates; choosing only tells the page's script."""
    return {
        "name": name,
        "active": active,
        "x": x,
        "y": y,
        "xanchor": "left",
        "yanchor": "bottom",
        "type": "dropdown",
        "buttons": [{"label": v, "method": "skip", "args": [None]} for v in values],
    }


def menu_label(text: str, x: float, y: float) -> dict:
    """The caption of a menu: an annotation ending at (x, y) in paper coordinates."""
    return {
        "text": text,
        "x": x,
        "y": y,
        "xref": "paper",
        "yref": "paper",
        "showarrow": False,
        "xanchor": "right",
        "yanchor": "bottom",
    }


def static_html(fig, div_id: str, script: str, values: dict[str, str], sliders: bool = False) -> str:
    """A plotly figure as an HTML fragment that redraws itself in the page: plotly.js embedded, no kernel.

    ``script`` defines ``state`` (the index chosen on each menu and slider, by name) and ``redraw()``;
    around it go the lookup of the figure's div, the listeners that set ``state`` and redraw when a
    menu (and, with ``sliders``, a slider) changes, and a first redraw. Each ``{name}`` in the script
    becomes ``values[name]``, and ``{div_id}`` the div's id.
    """
    import plotly.io as pio

    text = SCRIPT_HEAD + script + (ON_SLIDER if sliders else "") + ON_MENU + SCRIPT_TAIL
    for name, value in {"div_id": div_id, **values}.items():
        text = text.replace("{" + name + "}", value)
    return pio.to_html(
        fig,
        full_html=False,
        include_plotlyjs=True,
        div_id=div_id,
        post_script=text,
        config={"displayModeBar": False, "responsive": True},
    )


class LiveFigure:
    """An explorer in a live kernel: ipywidgets ``controls`` above a matplotlib figure they redraw.

    A subclass builds its controls and passes them with their layout (``rows`` of control names) and
    the figure's size and number of panels; it implements :meth:`draw`, which draws the controls'
    choice on ``self.axes``. :meth:`update` is the controls' callback (tests call it directly).
    """

    def __init__(self, controls: dict[str, Any], rows: list[list[str]], figsize: tuple[float, float], panels: int = 1):
        import ipywidgets
        import matplotlib.pyplot as plt

        self.controls = controls
        self.output = ipywidgets.Output()
        with plt.ioff():
            self.figure, self.axes = plt.subplots(1, panels, figsize=figsize)
        for control in controls.values():
            control.observe(lambda _change: self.update(), names="value")
        boxes = [ipywidgets.HBox([controls[name] for name in row]) for row in rows]
        self.widget = ipywidgets.VBox([*boxes, self.output])
        self.update()

    def draw(self) -> None:
        """Draw the controls' current choice on ``self.axes`` (a subclass's own part)."""
        raise NotImplementedError

    def update(self) -> None:
        """Redraw the figure for the controls' values and show it below them."""
        self.draw()
        self.figure.tight_layout()
        self.output.clear_output(wait=True)
        with self.output:
            from IPython.display import display

            display(self.figure)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
