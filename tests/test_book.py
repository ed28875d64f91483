"""The book: every chapter executes (smoke profile), re-runs under nbval, and the built HTML works
in a real browser (headless Chromium): no JavaScript errors, no tracebacks, every image loads,
the math renders and the explorer's slider redraws its figure.

The book is built once per session into a temporary directory (about 1-2 minutes on 2 cores).
"""

from __future__ import annotations

import ast
import functools
import http.server
import importlib.util
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BOOK = REPO / "book"
_spec = importlib.util.spec_from_file_location("micmco_book_build", BOOK / "build.py")
build = importlib.util.module_from_spec(_spec)  # book/build.py, under a name no installed package uses
_spec.loader.exec_module(build)

jupytext = pytest.importorskip("jupytext", reason="the book tests need the book extra: pip install -e '.[book]'")

# Console errors that a stock Jupyter Book 1.0.4 logs on every page and a reader never sees
# (see shared/docs/book-build-notes.md), and the test server's missing favicon.
KNOWN_CONSOLE_ERRORS = (
    "Identifier 'THEBE_JS_URL' has already been declared",  # sphinx-thebe 0.3.1 adds its config script twice
    "Got invalid theme mode",  # pydata-sphinx-theme on a first visit
    "favicon.ico - Failed to load resource",
)
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


# --- structure: no build needed --------------------------------------------------------------------------


def test_toc_mirrors_the_paper():
    files = build.toc_files()
    chapters = [f for f in files if f.startswith("chapters/")]
    numbers = [c.split("/")[1][:2] for c in chapters if not c.endswith("explorer")]
    assert numbers == [f"0{i}" for i in range(1, 8)] + ["07", "08"]  # §7.1 and §7.2 are two chapters of §7
    assert "chapters/07_language_modelling" in files and "appendices/testbed" in files
    assert {"appendices/vqvae", "appendices/power", "appendices/language_modelling", "appendices/optimisation"} <= set(
        files
    )  # A, B.3 (synthetic), B (PTB), C
    for name in files:
        assert (BOOK / f"{name}.md").exists(), name


@pytest.mark.parametrize("chapter", build.notebook_chapters(), ids=lambda p: p.stem)
def test_each_chapter_has_one_parameters_cell_of_typed_commented_scalars(chapter):
    notebook = jupytext.read(chapter)
    cells = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1
    lines = [line for line in cells[0].source.splitlines() if line.strip()]
    statements = ast.parse(cells[0].source).body
    assert len(statements) == len(lines) > 0
    for line, statement in zip(lines, statements):
        assert isinstance(statement, ast.AnnAssign), f"{chapter.name}: untyped parameter: {line}"
        assert statement.annotation.id in ("int", "float", "str", "bool"), line
        assert isinstance(statement.value, ast.Constant), f"{chapter.name}: not a scalar: {line}"
        assert "  # " in line, f"{chapter.name}: parameter without a comment: {line}"


@pytest.mark.parametrize("chapter", build.notebook_chapters(), ids=lambda p: p.stem)
def test_papermill_sees_every_parameter_of_every_chapter(chapter):
    """papermill's own parser (what `papermill -p` and --help-notebook use) must find each declared parameter:
    an '=' inside a parameter's comment made it skip the line ("Unable to parse line 2")."""
    from papermill.translators import PythonTranslator

    cell = next(c for c in jupytext.read(chapter).cells if "parameters" in c.metadata.get("tags", []))
    found = [parameter.name for parameter in PythonTranslator.inspect(cell)]
    assert found == build.declared_parameters(jupytext.read(chapter))


def test_chapters_check_their_parameter_types_first():
    from micmco.book.common import check_parameters

    namespace = {"__annotations__": {"m": float, "k": int, "name": str}, "m": 1, "k": 3, "name": "x"}
    check_parameters(namespace)
    assert namespace["m"] == 1.0 and isinstance(namespace["m"], float)
    for name, value in (("m", "abc"), ("k", 0.5), ("k", True), ("name", 3)):
        with pytest.raises(TypeError, match=f"parameter {name} must be"):
            check_parameters({**namespace, name: value})
    for chapter in build.notebook_chapters():  # every chapter calls it in its first cell after the parameters
        cells = [c for c in jupytext.read(chapter).cells if c.cell_type == "code"]
        first = next(i for i, c in enumerate(cells) if "check_parameters(globals())" in c.source)
        assert first == 1 + next(i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])), chapter


def test_a_parameter_the_chapter_lacks_is_refused_naming_the_chapters_parameters():
    """papermill's -p injects `name = value` after the parameters cell whatever the name: a misspelled one ran the
    chapter on its defaults and exited 0. IPython keeps the injected cell's source in In, which the check reads."""
    from micmco.book.common import check_parameters, injected_names

    declared = {"__annotations__": {"min_usages": str, "threads": int}, "min_usages": "0.5", "threads": 1}
    injected = "# Parameters\nmin_usage = 0.3\nthreads = 2\n"
    assert injected_names({"In": ["", "import x", injected]}) == ["min_usage", "threads"]
    with pytest.raises(NameError, match=r"unknown parameter min_usage; did you mean min_usages\? This chapter's "):
        check_parameters({**declared, "In": ["", injected], "min_usage": 0.3})
    check_parameters({**declared, "In": ["", "# Parameters\nthreads = 2\n"]})  # a declared one: fine
    check_parameters(dict(declared))  # outside IPython: nothing injected


@pytest.mark.slow
def test_plain_papermill_with_a_misspelled_parameter_fails_naming_it(tmp_path):
    chapter = BOOK / "chapters" / "03_conditional_independence.md"
    notebook = tmp_path / "chapter.ipynb"
    jupytext.write(jupytext.read(chapter), notebook, fmt="ipynb")
    command = [sys.executable, "-m", "papermill", str(notebook), str(tmp_path / "out.ipynb"),
               "-p", "random_modelz", "10", "--cwd", str(chapter.parent), "--kernel", "python3"]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert done.returncode != 0
    assert "unknown parameter random_modelz; did you mean random_models?" in done.stdout + done.stderr


@pytest.mark.xdist_group("book")  # beside the book's build: a stray notebook in book/chapters must not reach it
def test_a_notebook_left_beside_a_chapter_is_never_staged_over_the_executed_one(tmp_path):
    stray = BOOK / "chapters" / "03_conditional_independence.ipynb"
    assert not stray.exists()
    source = tmp_path / "source"
    for chapter in build.notebook_chapters():
        executed = (source / chapter.relative_to(BOOK)).with_suffix(".ipynb")
        executed.parent.mkdir(parents=True, exist_ok=True)
        executed.write_text("executed")
    stray.write_text("unexecuted, from jupytext")
    try:
        build.stage_sources(tmp_path)
    finally:
        stray.unlink()
    assert (source / "chapters" / "03_conditional_independence.ipynb").read_text() == "executed"


def test_the_parameters_a_chapter_ran_with_are_the_visible_ones(tmp_path):
    import nbformat

    notebook = nbformat.v4.new_notebook()
    defaults = nbformat.v4.new_code_cell("m: float = 0.5  # smoke", metadata={"tags": ["parameters"]})
    injected = nbformat.v4.new_code_cell("# Parameters\nm = 0.8\n", metadata={"tags": ["injected-parameters"]})
    notebook.cells = [defaults, injected]
    path = tmp_path / "chapter.ipynb"
    nbformat.write(notebook, path)
    for _ in range(2):  # idempotent
        build.show_run_parameters(path)
    cells = nbformat.read(path, as_version=4).cells
    assert "hide-input" in cells[0].metadata["tags"]
    assert "hide-input" not in cells[1].metadata["tags"]
    assert cells[1].source == build.RAN_WITH + "m = 0.8\n"
    alone = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("m: float = 0.5", metadata={"tags": ["parameters"]})]
    )
    nbformat.write(alone, path)
    build.show_run_parameters(path)  # run on its defaults: they stay open
    assert "hide-input" not in nbformat.read(path, as_version=4).cells[0].metadata["tags"]


def test_number_list_parameters_name_the_bad_entry():
    from micmco.book.common import floats

    assert floats("min_usages", "0.2, 0.5,0.8") == [0.2, 0.5, 0.8]
    with pytest.raises(ValueError, match=r"parameter valid_usages: 'x' is not a number; give comma-separated"):
        floats("valid_usages", "0.05, x")
    for chapter in build.notebook_chapters():  # no chapter parses a number list by hand
        assert 'split(",")' not in chapter.read_text(), chapter


def test_build_overrides_a_chapters_parameters_with_one_line_errors(tmp_path):
    chapter = "07_experiments"
    for argv, expected in (
        (["-p", "min_usages", "0.3"], "-p sets parameters of the chapters named with --chapter"),
        (["--chapter", chapter, "-p", "nope", "1"], "has no parameter 'nope'; its parameters: results_profile"),
        (["--chapter", chapter, "-p", "threads", "abc"], "parameter threads must be int, got 'abc'"),
    ):
        result = subprocess.run([sys.executable, str(BOOK / "build.py"), "--out", str(tmp_path), "--no-html", *argv],
                                capture_output=True, text=True, timeout=120)  # fmt: skip
        assert result.returncode == 2 if argv[0] == "-p" else result.returncode == 1, result.stderr
        assert expected in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert build.parse_overrides([["m", "0.5"], ["k", "3"], ["s", "a b"]]) == {"m": 0.5, "k": 3, "s": "a b"}


def test_a_parallel_build_passes_parameters_to_its_chapters_as_written(monkeypatch, tmp_path):
    """0.00001 reads as the float 1e-05, whose text YAML reads back as a string: the children get the text given."""
    import subprocess

    commands = []

    class Finished:
        returncode = 0

        def __init__(self, command, **kwargs):
            commands.append(command)

        def poll(self):
            return 0

    monkeypatch.setattr(subprocess, "Popen", Finished)
    work = [(f"chapters/{name}.md", None, tmp_path / f"{name}.ipynb", {}, tmp_path) for name in ("a", "b", "c")]
    assert build.execute_in_parallel(work, tmp_path, "smoke", [["alpha", "0.00001"]], 2) == [w[2] for w in work]
    assert len(commands) == 3 and all(c[-3:] == ["-p", "alpha", "0.00001"] for c in commands)
    assert [c[c.index("--chapter") + 1] for c in commands] == ["a", "b", "c"]


def test_every_chapter_sets_itself_up_on_colab_inside_a_clone():
    """A pip-only install has no params/, results/ nor data/, which the chapters read: on a kernel
    without micmco, the first code cell after the parameters clones the repository, installs from it and
    works inside it, also after a kernel restart. One file (book/colab_setup.ipy), no copy in any chapter:
    the build puts it into every executed notebook, which is what Colab opens."""
    from IPython.core.inputtransformer2 import TransformerManager

    for chapter in build.notebook_chapters():
        assert "find_spec" not in chapter.read_text(), f"{chapter.name} keeps its own copy of the setup cell"
        notebook = build.with_colab_setup(jupytext.read(chapter))
        setups = [i for i, c in enumerate(notebook.cells) if c.cell_type == "code" and "find_spec" in c.source]
        parameters = [i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", [])]
        assert setups == [parameters[0] + 1], chapter.name
        assert notebook.cells[setups[0]].metadata["tags"] == ["remove-cell"]
    code = TransformerManager().transform_cell(build.COLAB_SETUP.read_text())
    ast.parse(code)  # the IPython escapes are valid inside the if blocks
    assert "system('git clone" in code and "run_line_magic('pip', 'install --quiet \"./micmco[book]\"')" in code
    assert code.rstrip().endswith("run_line_magic('cd', 'micmco')")
    assert 'REPOSITORY = ""' in code and "system('git clone --quiet --depth 1 {REPOSITORY} micmco')" in code


def test_the_repository_is_one_setting_and_unset_means_no_buttons_and_no_clone(tmp_path):
    """book/_config.yml's repository.url is the only place naming the repository; unset, the staged config has
    no launch or repository button; set, the executed notebooks' clone cell clones it."""
    import nbformat

    assert build.repository_url() == ""  # the project has no public home yet
    for path in [*BOOK.rglob("*.md"), *BOOK.rglob("*.yml")]:
        assert "github.com/micmco" not in path.read_text(), path
    staged = yaml.safe_load(build.staged_config((BOOK / "_config.yml").read_text(), ""))
    assert staged["launch_buttons"]["binderhub_url"] == staged["launch_buttons"]["colab_url"] == ""
    assert staged["html"]["use_repository_button"] is False and "repository" not in staged
    text = (BOOK / "_config.yml").read_text()
    assert build.staged_config(text, "https://github.com/someone/micmco") == text
    notebook = build.with_colab_setup(jupytext.read(BOOK / "chapters" / "06_beta_vae.md"))
    path = tmp_path / "chapter.ipynb"
    nbformat.write(notebook, path)
    build.write_repository(path, "https://github.com/someone/micmco")
    sources = [cell.source for cell in nbformat.read(path, as_version=4).cells]
    assert any("REPOSITORY = 'https://github.com/someone/micmco'" in source for source in sources)


@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_book_profiles_say_what_they_reproduce_and_set_only_declared_parameters(profile):
    settings = yaml.safe_load((REPO / "params" / "book" / f"{profile}.yaml").read_text())
    assert settings["profile"] == profile and settings["reproduces"] and settings["cost"]
    chapters = {c.stem: c for c in build.notebook_chapters()}
    assert set(settings["chapters"]) == set(chapters)
    for name, parameters in settings["chapters"].items():
        declared = build.declared_parameters(jupytext.read(chapters[name]))
        assert set(parameters) <= set(declared), name


def test_smoke_profile_equals_the_chapters_defaults():
    """The parameters cells default to the smoke profile, so "Run all" is the smoke run."""
    settings = yaml.safe_load((REPO / "params" / "book" / "smoke.yaml").read_text())["chapters"]
    for chapter in build.notebook_chapters():
        cell = next(c for c in jupytext.read(chapter).cells if "parameters" in c.metadata.get("tags", []))
        defaults = {s.target.id: s.value.value for s in ast.parse(cell.source).body}
        for key, value in settings[chapter.stem].items():
            assert defaults[key] == value, f"{chapter.stem}.{key}: default {defaults[key]!r}, smoke {value!r}"


def test_a_failing_chapter_is_reported_with_its_name_and_cell(tmp_path):
    source = tmp_path / "broken.md"
    front_matter = (BOOK / "chapters" / "06_beta_vae.md").read_text().split("---", 2)[1]
    source.write_text(
        f"---{front_matter}---\n"
        + "\n```{code-cell} ipython3\n:tags: [parameters]\n\nx: int = 1  # a parameter\n```\n\n"
        + "```{code-cell} ipython3\nvalue = 1 / (x - 1)\n```\n"
    )
    with pytest.raises(SystemExit) as failure:
        build.execute_notebook(jupytext.read(source), tmp_path / "broken.ipynb", {}, tmp_path, "chapters/broken.md")
    message = str(failure.value)
    assert "chapters/broken.md" in message and "cell 2" in message and "ZeroDivisionError" in message  # after setup
    assert "value = 1 / (x - 1)" in message


# --- the computations behind the chapters (fast, without notebooks) -------------------------------------


def test_proposition1_both_directions_on_small_joints():
    import torch

    from micmco.book import propositions

    prior = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    joint = propositions.joint_distribution
    factorising = propositions.check_proposition1(joint([[0.18, 0.12], [0.42, 0.28]]), prior, 200)
    dependent = propositions.check_proposition1(joint([[0.4, 0.1], [0.1, 0.4]]), prior, 200)
    assert factorising.data_factorises and factorising.some_model_satisfies_all_three
    assert not dependent.data_factorises and not dependent.some_model_satisfies_all_three
    assert dependent.collapsed_cia_gap > 0.1 and dependent.random_search_min_gap >= dependent.collapsed_cia_gap


def test_counterexamples_contradict_proposition2_and_are_smallest():
    from micmco.book import propositions

    for found in (propositions.find_prop2ii_counterexample(), propositions.find_prop2iii_counterexample()):
        assert found is not None and found.contradicts_claim
        assert found.num_states == 2  # nothing smaller exists: one state has KL = 0 and a constant Û
        assert found.describe_model().count("\n") == 1 + found.num_states  # header, rule, one row per state
    multi = propositions.find_prop2ii_counterexample(proposals=("random",), min_samples=2)
    assert multi.num_samples >= 2 and multi.premise_margin >= 0 and multi.expected_value < multi.reference


def test_single_sample_identities_and_beta_vae_equivalence_hold_exactly():
    from micmco.book import propositions
    from micmco.testbed import TableModel

    model = TableModel.random(5, 2)
    check = propositions.check_single_sample_identities(model, [0.5, 2.0, 8.0])
    assert check.max_kl_error < 1e-12 and max(check.max_renyi_error.values()) < 1e-12
    rows = propositions.check_proposition6(model, [0.25, 1.0, 2.0], [0.5, 3.0])
    assert max(abs(row[-1]) for row in rows) < 1e-12


# --- the explorer's live callback ------------------------------------------------------------------------


def test_live_explorer_callback_recomputes_and_redraws():
    pytest.importorskip("ipywidgets")
    import matplotlib

    matplotlib.use("Agg")
    from micmco.book import explorer

    live = explorer.LiveExplorer(
        [1, 2, 4],
        draws=20,
        seed=0,
        lambdas=[0.0, 0.5],
        alphas=[0.5, 2.0],
        settings=explorer.ExplorerSettings("vimco", "renyi", 0.5, 2.0),
    )
    objective_line = live.axes[1].lines[0]
    before_curves, before_y = live.curves, list(objective_line.get_ydata())
    live.controls["lam"].value = 0.0  # the widget's observer calls update()
    after_y = list(live.axes[1].lines[0].get_ydata())
    assert live.curves["objective_mean"] != before_curves["objective_mean"]
    assert after_y != before_y
    live.controls["kind"].value = "kl"
    assert live.curves["true_divergence"] == pytest.approx(live.curves["true_kl"])
    assert live.axes[0].figure.texts[-1].get_text().startswith("vimco, kl objective")


# --- the built book ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> Path:
    """The smoke-profile book: executed notebooks in <out>/source, HTML in <out>/html.

    MICMCO_BOOK_DIR reuses an existing build (for working on the tests)."""
    if os.environ.get("MICMCO_BOOK_DIR"):
        return Path(os.environ["MICMCO_BOOK_DIR"])
    out = tmp_path_factory.mktemp("book")
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(BOOK / "build.py"), "--profile", "smoke", "--out", str(out), "--jobs", "2"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    if result.returncode != 0:
        pytest.fail(f"building the book failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    print(f"\nbook built (smoke) in {time.perf_counter() - started:.0f} s:\n{result.stdout}")
    return out


def executed_notebooks(out: Path) -> list[Path]:
    return [(out / "source" / c.relative_to(BOOK)).with_suffix(".ipynb") for c in build.notebook_chapters()]


def test_nbval_reruns_every_chapter_and_checked_outputs_match(built_book):
    notebooks = executed_notebooks(built_book)
    assert all(n.exists() for n in notebooks)
    for notebook in notebooks:  # every chapter checks something exactly
        assert '"nbval-check-output"' in notebook.read_text(), notebook.name  # a tag: no marker on the page
    # two halves of the chapters at once, one core each (CI has two): nbval re-executes every chapter
    halves = [notebooks[0::2], notebooks[1::2]]
    runs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pytest",
                "--nbval-lax",
                "--nbval-current-env",
                "-p",
                "no:cacheprovider",
                "-q",
                *map(str, half),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=built_book,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )  # fmt: skip
        for half in halves
    ]
    outcomes = [run.communicate() for run in runs]  # both finish before either is judged
    for run, (output, errors) in zip(runs, outcomes):
        assert run.returncode == 0, output[-6000:] + errors[-3000:]


@pytest.fixture(scope="session")
def browser():
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        if os.environ.get("CI") == "true":
            pytest.fail("CI must provide chromium and chromium-driver (.ci/run installs them)")
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def book_url(built_book):
    """The HTML served over local HTTP (as a reader's browser would get it), no network needed."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=built_book / "html"))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def book_pages(built_book: Path) -> list[str]:
    html = built_book / "html"
    pages = (p.relative_to(html) for p in html.rglob("*.html"))
    return sorted(p.as_posix() for p in pages if not any(part.startswith("_") for part in p.parts))


def test_every_page_loads_without_errors_tracebacks_or_broken_images(built_book, browser, book_url):
    screenshots = os.environ.get("MICMCO_SCREENSHOTS")
    pages = book_pages(built_book)
    expected = {f"{name}.html" for name in build.toc_files()}
    assert expected <= set(pages)
    problems = []
    for page in pages:
        browser.get(book_url + page)
        raw_math = "return document.querySelectorAll('.math:not(:has(mjx-container))').length"
        loading = "return Array.from(document.images).filter(i => !i.complete).length"
        for _ in range(80):  # MathJax typesets asynchronously, images load: up to 20 s on a loaded machine
            if browser.execute_script(raw_math) == 0 and browser.execute_script(loading) == 0:
                break
            time.sleep(0.25)
        errors = [
            entry["message"]
            for entry in browser.get_log("browser")
            if entry["level"] == "SEVERE" and not any(known in entry["message"] for known in KNOWN_CONSOLE_ERRORS)
        ]
        text = browser.find_element("tag name", "body").text
        broken = browser.execute_script(
            "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
        )
        unrendered = browser.execute_script(raw_math)
        for what, found in (("console errors", errors), ("broken images", broken), ("unrendered math", unrendered)):
            if found:
                problems.append(f"{page}: {what}: {found}")
        for marker in ("Traceback (most recent call last)", "-" * 75):  # Python's and IPython's tracebacks
            if marker in text:
                problems.append(f"{page}: shows a traceback")
        if screenshots:
            Path(screenshots).mkdir(parents=True, exist_ok=True)
            browser.save_screenshot(str(Path(screenshots) / (page.replace("/", "_") + ".png")))
    assert not problems, "\n".join(problems)
    # the chapters with figures show them
    with_figures = {
        "chapters/02_posterior_collapse.html": 1,
        "chapters/04_mutual_information_objectives.html": 2,
        "chapters/05_representational_kl.html": 1,
        "chapters/07_experiments.html": 6,  # Figures 2-7
        "appendices/vqvae.html": 1,  # Figure 15
        "appendices/power.html": 2,  # Figures 26-27
    }
    for page, figures in with_figures.items():
        browser.get(book_url + page)
        assert browser.execute_script("return document.images.length") >= figures, page


def test_explorer_slider_redraws_the_figure_in_the_static_book(built_book, browser, book_url):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    browser.get(book_url + "chapters/04_explorer.html")
    time.sleep(1)
    figure = browser.find_element(By.ID, "micmco-explorer")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", figure)
    state = "var g = document.getElementById('micmco-explorer'); return [g.layout.title.text, JSON.stringify(g.data)];"
    title, data = browser.execute_script(state)
    assert "λ = 0.5" in title and "K = 4" in title
    rails = browser.find_elements(By.CSS_SELECTOR, "#micmco-explorer .slider-rail-touch-rect")
    assert len(rails) == 3  # λ, α, K
    lam_rail = rails[0]
    ActionChains(browser).move_to_element_with_offset(lam_rail, int(lam_rail.size["width"] * 0.45), 0).click().perform()
    time.sleep(0.5)
    moved_title, moved_data = browser.execute_script(state)
    assert moved_title != title and "λ = 0.5" not in moved_title
    assert moved_data != data  # the objective's curves were redrawn for the new λ
    k_rail = rails[2]
    ActionChains(browser).move_to_element_with_offset(k_rail, -int(k_rail.size["width"] * 0.45), 0).click().perform()
    time.sleep(0.5)
    assert "K = 1:" in browser.execute_script(state)[0]
    errors = [
        e["message"]
        for e in browser.get_log("browser")
        if e["level"] == "SEVERE" and not any(known in e["message"] for known in KNOWN_CONSOLE_ERRORS)
    ]
    assert not errors
    if os.environ.get("MICMCO_SCREENSHOTS"):
        browser.save_screenshot(str(Path(os.environ["MICMCO_SCREENSHOTS"]) / "explorer-after-moving-sliders.png"))


FRONTIER_STATE = (
    "var g = document.getElementById('micmco-frontiers'); var n = g.data.length;"
    "return [g.layout.title.text, g.layout.xaxis.title.text, g.layout.yaxis.title.text,"
    " JSON.stringify(g.data.slice(n - 3).map(function(t) { return [t.x, t.y]; }))];"
)


def choose_frontier_menu(browser, menu: int, option: str) -> list[str]:
    """Pick ``option`` on the static frontier explorer's menu number ``menu`` (task, split and regulariser,
    estimator, K, objective): the caption, the axes' titles and the chosen curve's points after the redraw."""
    from selenium.webdriver.common.by import By

    headers = browser.find_elements(By.CSS_SELECTOR, "#micmco-frontiers .updatemenu-header")
    assert len(headers) == 5  # task, split and regulariser, estimator, K, objective
    headers[menu].click()  # open the menu
    time.sleep(0.3)
    options = browser.find_elements(By.CSS_SELECTOR, "#micmco-frontiers .updatemenu-dropdown-button")
    next(choice for choice in options if choice.text == option).click()
    time.sleep(0.5)
    return browser.execute_script(FRONTIER_STATE)


def check_frontier_menus_redraw(browser) -> None:
    """From the default start (synthetic, VIMCO 16 Rényi): another estimator, then Penn Treebank (per-token
    axes, 3 decimals, a choice the paper has no curve for named with its task), then a validation split and
    back to the synthetic task; each redraws the caption and the chosen curve, without console errors."""
    title, x_title, y_title, data = browser.execute_script(FRONTIER_STATE)
    assert title.startswith("VIMCO 16, Rényi") and "ln V" in title and x_title == "latent usage: MI / ln V"
    title, _, _, moved = choose_frontier_menu(browser, 2, "REINFORCE")
    assert title.startswith("REINFORCE 16, Rényi"), title
    assert moved != data  # the paper's frontier of REINFORCE 16 differs from VIMCO 16's
    title, x_title, y_title, _ = choose_frontier_menu(browser, 0, "Penn Treebank")
    assert title == "REINFORCE 16 Rényi, training fit: not a curve of the paper's Penn Treebank figures", title
    assert (x_title, y_title) == ("latent usage (nats per token)", "training NLL (nats per token)")
    title, _, _, ptb = choose_frontier_menu(browser, 2, "VIMCO")
    assert title.startswith("VIMCO 16, Rényi — Penn Treebank, training fit"), title
    assert "nats per token" in title and re.search(r"paper \d+\.\d{3}$", title), title
    assert ptb != data  # per token: the paper's PTB frontier, not the synthetic one
    title, _, y_title, valid = choose_frontier_menu(browser, 1, "validation, shared dropout masks")
    assert "Penn Treebank, validation, shared dropout masks" in title and y_title == "validation NLL (nats per token)"
    assert valid != ptb
    title, x_title, _, back = choose_frontier_menu(browser, 0, "synthetic")
    assert title.startswith("VIMCO 16, Rényi — ours") and x_title == "latent usage: MI / ln V" and back == data
    errors = [
        e["message"]
        for e in browser.get_log("browser")
        if e["level"] == "SEVERE" and not any(known in e["message"] for known in KNOWN_CONSOLE_ERRORS)
    ]
    assert not errors


def test_frontier_explorer_menu_redraws_the_figure_in_the_static_book(built_book, browser, book_url):
    """Pick another estimator, the task and the split in the static frontier explorer: the caption, the axes
    and the drawn curve change."""
    from selenium.webdriver.common.by import By

    browser.get(book_url + "chapters/07_frontier_explorer.html")
    time.sleep(1)
    figure = browser.find_element(By.ID, "micmco-frontiers")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", figure)
    check_frontier_menus_redraw(browser)
    if os.environ.get("MICMCO_SCREENSHOTS"):
        browser.save_screenshot(str(Path(os.environ["MICMCO_SCREENSHOTS"]) / "frontier-explorer-after-menu.png"))


def test_frontier_explorer_static_html_redraws_its_menus_in_a_browser(browser, tmp_path):
    """The same choices on the explorer's HTML alone (no book build): plotly.js is embedded, so a file works."""
    from micmco.book import frontier_explorer

    data = frontier_explorer.frontier_explorer_data("cpu", 0.8, 0.5)
    page = tmp_path / "frontier-explorer.html"
    page.write_text(f"<html><body>{frontier_explorer.static_frontier_explorer_html(data)}</body></html>")
    browser.get(page.as_uri())
    time.sleep(1)
    check_frontier_menus_redraw(browser)


def test_static_explorer_embeds_plotly_so_it_works_offline():
    from micmco.book import explorer

    grid = explorer.explorer_grid([0.0, 0.5], [2.0], [2, 4], draws=10, seed=0, bases=("vimco",), kinds=("kl", "renyi"))
    html = explorer.static_explorer_html(grid)
    assert "plotly_sliderchange" in html
    assert len(html) > 1_000_000  # plotly.js itself is inside
    assert '<script src="http' not in html


def test_launch_buttons_open_files_that_exist(built_book):
    """Binder opens the MyST source in the repository; Colab the executed notebook published on gh-pages.
    While book/_config.yml names no repository, no page has a launch button."""

    page = (built_book / "html" / "chapters" / "02_posterior_collapse.html").read_text()
    if not build.repository_url():
        for html in (built_book / "html").rglob("*.html"):
            assert "mybinder.org" not in html.read_text() and "colab.research" not in html.read_text(), html
        return
    binder = re.search(r'href="https://mybinder\.org/v2/gh/[^"]*urlpath=lab/tree/([^"]+)"', page)
    colab = re.search(r'href="https://colab\.research\.google\.com/github/[^"]*/blob/gh-pages/([^"]+)"', page)
    assert binder and (REPO / binder.group(1)).exists(), binder
    assert colab and (built_book / "html" / colab.group(1)).exists(), colab
    assert (REPO / "binder" / "postBuild").exists() and (REPO / "binder" / "environment.yml").exists()


# --- §7.1 and the appendices: figures from committed results --------------------------------------------

RESULT_HEADER = (
    "trial estimator k k_mi objective learning_rate lam alpha vocab_size steps batch_size mi nll optimal_nll "
    "seed status reason wall_s threads device commit run"
).split()


def orderings_noise(single: float):
    from micmco.book.orderings import Noise

    return Noise(single, 200.0)


NOISE = orderings_noise(0.001)  # one evaluation's noise the verdicts assume for these tables (measured: ~0.03)


def write_results(directory: Path, curve_id: str, points: list[tuple[float, float]], status: str = "complete"):
    """A results table like the sweep's export: (usage / ln V, excess NLL) points at V = 200."""
    import math

    match = re.match(r"^([a-z]+)(\d*)-(kl|renyi|power)(\d*)$", curve_id)
    estimator, k, objective, k_mi = match.group(1), match.group(2) or "1", match.group(3), match.group(4)
    log_v = math.log(200)
    lines = ["\t".join(RESULT_HEADER)]
    for trial, (usage, excess) in enumerate(points):
        row = dict.fromkeys(RESULT_HEADER, "")
        row.update(
            trial=trial,
            estimator=estimator,
            k=k,
            k_mi=k_mi or k,
            objective=objective,
            learning_rate=0.001,
            lam=0.5,
            vocab_size=200,
            steps=2500,
            batch_size=128,
            mi=usage * log_v,
            nll=log_v + excess,
            optimal_nll=log_v,
            seed=0,
            status=status,
            wall_s=10.0,
            threads=1,
            device="cpu",
            commit="x",
            run="r",
        )
        lines.append("\t".join(str(row[c]) for c in RESULT_HEADER))
    (directory / f"cpu-{curve_id}.tsv").write_text("\n".join(lines) + "\n")


def test_every_synthetic_curve_has_a_study_per_profile_and_a_paper_file():
    from micmco import naming
    from micmco.book import figures

    curves = figures.synthetic_curve_ids()
    assert len(curves) == 35  # Figures 2-7, 15, 26, 27, each curve once
    for curve in curves:
        assert (figures.paper_frontiers_dir() / naming.paper_file_name(curve)).exists(), curve
        for profile in ("cpu", "paper"):
            assert (REPO / "params" / "studies" / profile / f"{curve}.yaml").exists(), (profile, curve)
    # the paper's VIMCO 1
    assert naming.paper_file_name("reinforce1-renyi") == "l8x10-bs256-hs128-t40-vimco1-renyi.tsv"
    assert naming.paper_file_name("vimco1-kl16") == "l8x10-bs256-hs128-t40-vimco1-kl16.tsv"
    assert naming.paper_file_name("elbo-kl") == "l40x0-bs256-hs128-t40-vae-kl.tsv"
    assert naming.paper_file_name("dreg16-power") == "l40x0-bs256-hs128-t40-dreg16-alpha.tsv"
    assert naming.curve_label("dreg16-kl1") == "DReG 16/1, KL"
    studies = figures.figure_studies(4, "cpu")
    assert [Path(s).stem for s in studies[:2]] == ["dreg1-kl", "dreg1-renyi"]  # cheapest first (one draw a step)
    assert len(studies) == 8 and all(s.startswith("params/studies/cpu/") for s in studies)
    with pytest.raises(ValueError, match="no figure 1 among"):
        figures.figure_studies(1, "cpu")


def test_make_reproduce_lists_a_figures_studies_and_rejects_unknown_ones():
    """``python -m micmco.book studies PROFILE [FIGURE]``, what ``make reproduce`` runs: the study files,
    cheapest first; exit status 2 with a message for a wrong call, profile or figure."""

    def run(*argv):
        result = subprocess.run([sys.executable, "-m", "micmco.book", *argv], capture_output=True, text=True, cwd=REPO)
        return result.returncode, result.stdout.split(), result.stderr

    code, studies, _ = run("studies", "cpu", "26")
    assert code == 0 and studies == ["params/studies/cpu/dreg16-power.yaml", "params/studies/cpu/dreg16-kl.yaml",
                                     "params/studies/cpu/dreg16-renyi.yaml"]  # fmt: skip
    code, studies, _ = run("studies", "paper", "")  # make reproduce without FIGURE: every curve
    assert code == 0 and len(studies) == 35
    assert run("studies", "cpu", "1")[0] == 2 and "no figure 1 among" in run("studies", "cpu", "1")[2]
    code, studies, _ = run("studies", "cpu", "8")  # a PTB figure: its cpu studies, cheapest first
    assert code == 0 and studies[0] == "params/studies/cpu/ptb-dreg1-kl.yaml"
    code, _, error = run("studies", "cpu", "18")  # no cpu studies: the paper profile's command instead
    assert code == 2 and "make reproduce PROFILE=paper FIGURE=18" in error
    assert run("studies", "gpu")[0] == 2 and run("figures")[0] == 2


def test_a_figure_without_results_says_so_and_orderings_are_compared_pairwise(tmp_path):
    from micmco import naming
    from micmco.book import figures, orderings

    empty = figures.load_figure(26, results_dir=tmp_path)
    assert len(empty.missing) == 3 and empty.wall_s == 0
    assert "no results" in figures.figure_table(empty, [0.5])
    assert orderings.compare_ordering(empty, 0.5).reproduced is None
    # ours in the paper's order at usage >= 0.5 ln V, then reversed
    paper = {c.curve_id: orderings.lowest_excess(c.paper, 0.5) for c in empty.curves}
    ranked = sorted(paper, key=paper.get)
    for order, expect in ((ranked, True), (ranked[::-1], False)):
        for rank, curve in enumerate(order):
            points = [(0.6, 0.01 + 0.05 * rank), (0.7, 0.02 + 0.05 * rank), (0.2, 0.001)] + [(0.3, 0.5)] * 5
            write_results(tmp_path, curve, points)
        figure = figures.load_figure(26, results_dir=tmp_path)
        assert [c.complete for c in figure.curves] == [8, 8, 8] and figure.wall_s == 240
        comparison = orderings.compare_ordering(figure, 0.5, NOISE)
        assert comparison.reproduced is expect and comparison.pairs == 3
        # the same figure with one evaluation's noise at 0.1 nats: no pair of ours is decided
        noisy = orderings.compare_ordering(figure, 0.5, orderings.Noise(0.1, 200.0))
        assert noisy.reproduced is None and len(noisy.inconclusive) + len(noisy.paper_undecided) == 3
        assert comparison.ours_best == naming.curve_label(order[0])
    # too few trials are flagged with their count; a curve that never reaches m is listed
    write_results(tmp_path, "dreg16-kl", [(0.3, 0.02), (0.4, 0.03)])
    figure = figures.load_figure(26, results_dir=tmp_path)
    notes = figures.figure_notes(figure)
    assert any("DReG 16, KL: only 2 complete trials" in line for line in notes)
    assert notes[-1].startswith("Re-run here: `make reproduce PROFILE=cpu FIGURE=26`")
    assert orderings.compare_ordering(figure, 0.5, NOISE).unreached == ["DReG 16, KL"]
    assert orderings.ordering_table(figure, [0.5], NOISE).endswith("| DReG 16, KL |")
    # trials evaluated as retrained here (recorded on another machine) are counted and said
    table = tmp_path / "cpu-dreg16-kl.tsv"
    header, *lines = table.read_text().splitlines()
    extra = "\t".join(["eval_repeats", "nll_precise", "nll_se", "mi_precise", "mi_se", "retrain_nll", "retrain_mi"])
    values = "\t".join(["8", "5.3", "0.001", "1.0", "0.001", "5.31", "1.01"])
    table.write_text("\n".join([f"{header}\t{extra}", f"{lines[0]}\t{values}", f"{lines[1]}\t" + "\t" * 6]) + "\n")
    figure = figures.load_figure(26, results_dir=tmp_path)
    assert [c.retrained for c in figure.curves if c.curve_id == "dreg16-kl"] == [1]
    assert any("DReG 16, KL: 1 of 2 trials were recorded on another machine" in line
               for line in figures.figure_notes(figure))  # fmt: skip


def test_agreement_is_binned_by_the_papers_margin_and_strong_reversals_are_named(tmp_path):
    from micmco.book import claims, figures, orderings

    empty = figures.load_figure(27, results_dir=tmp_path)
    paper = {c.curve_id: orderings.lowest_excess(c.paper, 0.5) for c in empty.curves}
    ranked = sorted(paper, key=paper.get)  # VIMCO 16: KL, Rényi, power (0.0002, 0.0015, 0.0109)
    assert claims.compare_pairs(0.5, figures=(27,), results_dir=tmp_path, noise=NOISE) == []  # no results: no pairs
    for order, same in ((ranked, 1), (ranked[::-1], 0)):
        for rank, curve in enumerate(order):
            write_results(tmp_path, curve, [(0.6, 0.01 + 0.05 * rank)] * 8)
        pairs = claims.compare_pairs(0.5, figures=(27,), results_dir=tmp_path, noise=NOISE)
        assert len(pairs) == 3 and all(p.margin > 0 for p in pairs)
        rows = orderings.agreement_by_margin(pairs, bins=(0.005, 0.02))
        # KL ~ Rényi are 0.0013 apart in the paper; each against power about 0.01: all beyond its assumed noise
        assert [r[:6] for r in rows] == [["0 to 0.005 nats", 1, 1, same, 1 - same, 0],
                                         ["0.005 to 0.02 nats", 2, 2, 2 * same, 2 - 2 * same, 0],
                                         ["0.02 nats or more", 0, 0, 0, 0, 0]]  # fmt: skip
        reversals = "\n".join(orderings.strong_reversals(pairs, min_margin=0.005))
        if same:
            assert reversals.startswith("none")
        else:
            assert reversals.count(" below ") == 2 and "VIMCO 16, KL below VIMCO 16, power" in reversals
            assert "(8 and 8 trials)" in reversals


def test_slope_statement_counts_rising_flat_and_unreached_curves_on_both_sides(tmp_path):
    from micmco.book import claims

    write_results(tmp_path, "vimco16-kl", [(0.6, 0.01), (0.97, 0.2)] + [(0.1, 0.0)] * 6)  # rises
    write_results(tmp_path, "vimco16-renyi", [(0.97, 0.01)] + [(0.1, 0.0)] * 7)  # one trial best at both
    write_results(tmp_path, "vimco16-power", [(0.6, 0.01)] * 8)  # never reaches 0.95
    text = " ".join(claims.slope_statement(0.5, 0.95, results_dir=tmp_path, noise=NOISE).split())
    assert text.startswith("Of our 3 curves with results, 1 rise by more than their noise")
    assert "1 do not (VIMCO 16, Rényi) and 1 never reach 0.95 ln V" in text
    assert "the paper's 3 curves of the same settings: 3 rise" in text


def test_vqvae_rows_without_k_are_read(tmp_path):
    import math

    from micmco.book import figures, orderings

    write_results(tmp_path, "dreg16-kl", [(0.5, 0.1), (1.2, 0.3)])  # then make it a VQ-VAE table: no K, objective none
    text = (tmp_path / "cpu-dreg16-kl.tsv").read_text().replace("\tdreg\t16\t16\tkl\t", "\tvqvae\t\t\tnone\t")
    (tmp_path / "cpu-vqvae.tsv").write_text(text)
    curve = figures.load_curve("vqvae", results_dir=tmp_path)
    assert curve.complete == 2 and curve.ours is not None
    assert orderings.lowest_excess(curve.ours, 1.0) == pytest.approx(0.3)
    assert math.isnan(orderings.lowest_excess(curve.ours, 1.3))


def test_claims_are_decided_on_both_sides(tmp_path):
    from micmco.book import claims

    rows = claims.check_claims(0.8, figures=(26,), results_dir=tmp_path, noise=NOISE)
    assert [row["ours"] for row in rows] == ["no results yet", "no results yet"]
    assert rows[0]["paper"] == "holds"  # the paper's DReG 16 power beats its KL at 0.8 ln V (0.0148 vs 0.0227)
    write_results(tmp_path, "dreg16-power", [(0.9, 0.02)])
    write_results(tmp_path, "dreg16-kl", [(0.9, 0.01)])
    write_results(tmp_path, "dreg16-renyi", [(0.9, 0.05)])
    rows = claims.check_claims(0.8, figures=(26,), results_dir=tmp_path, noise=NOISE)
    assert [row["ours"] for row in rows] == ["inconclusive", "inconclusive"]  # one trial each: no frontier
    assert (
        "fewer than 2 trials reach m"
        in claims.check_claims(0.8, figures=(26,), results_dir=tmp_path)[0]["ours_at"][0]["reason"]
    )
    write_results(tmp_path, "dreg16-power", [(0.9, 0.02), (0.95, 0.03)])
    write_results(tmp_path, "dreg16-kl", [(0.9, 0.01), (0.95, 0.02)])
    write_results(tmp_path, "dreg16-renyi", [(0.9, 0.05), (0.95, 0.06)])
    rows = claims.check_claims(0.8, figures=(26,), results_dir=tmp_path, noise=NOISE)
    assert [row["ours"] for row in rows] == ["fails", "fails"]
    assert not any(row["supported"] for row in rows)
    assert "fails: 2" in "\n".join(claims.claims_summary(rows))
    # within one evaluation's noise of 0.1 nats the same numbers decide nothing
    noisy = claims.check_claims(0.8, figures=(26,), results_dir=tmp_path, noise=orderings_noise(0.1))
    assert [row["ours"] for row in noisy] == ["inconclusive", "inconclusive"]


def test_frontier_explorer_menus_redraw_live_and_static_html_works_offline():
    pytest.importorskip("ipywidgets")
    import matplotlib

    matplotlib.use("Agg")
    from micmco.book import frontier_explorer

    data = frontier_explorer.frontier_explorer_data("cpu", 0.8, 0.5)
    entries = data["curves"].values()
    assert sum(entry["task"] == "synthetic" for entry in entries) == 35
    ptb = {entry["curve"] for entry in entries if entry["task"] == "Penn Treebank"}
    assert ptb == set(frontier_explorer.ptb_main_curve_ids()) and len(ptb) == 40  # the main setting's, no variants
    assert {"ptb-dreg16-kl1", "ptb-vimco1-renyi16", "ptb-dreg16-alpha", "ptb-vimco16-kl-valid-l2"} <= ptb
    assert not any(suffix in curve for curve in ptb for suffix in ("-batch", "-hidden", "-steps", "-t16", "-bs16"))
    explorer = frontier_explorer.FrontierExplorer(data, "VIMCO|16|Rényi")
    assert explorer.controls["split"].disabled  # one split on the synthetic task

    def drawn() -> list[list[float]]:
        return [list(line.get_ydata()) for line in explorer.ax.lines]

    before = drawn()
    explorer.controls["estimator"].value = "REINFORCE"  # the observer calls update()
    assert explorer.shown == "synthetic|training fit|REINFORCE|16|Rényi"
    assert drawn() != before
    explorer.controls["estimator"].value = "ELBO"  # there is no ELBO 16
    assert explorer.ax.get_title() == "ELBO 16 Rényi: not a curve of the paper's synthetic figures"
    explorer.controls["estimator"].value = "VIMCO"
    synthetic, synthetic_title = drawn(), explorer.ax.get_title()
    assert re.search(r"ln V: ours \d\.\d{4}, paper \d\.\d{4}$", synthetic_title), synthetic_title
    # the task menu: Penn Treebank's curve per token, never normalised, its caption with 3 decimals
    explorer.controls["task"].value = "Penn Treebank"
    assert explorer.shown == "Penn Treebank|training fit|VIMCO|16|Rényi" and not explorer.controls["split"].disabled
    assert explorer.ax.get_xlabel() == "latent usage (nats per token)"
    assert explorer.ax.get_ylabel() == "training NLL (nats per token)"
    title = explorer.ax.get_title()
    assert title.startswith("VIMCO 16, Rényi — Penn Treebank, training fit") and drawn() != synthetic
    assert re.search(r"≥ 0\.5 nats per token: ours \d\.\d{3}, paper \d\.\d{3}$", title), title
    # the split and regulariser menu
    training = drawn()
    explorer.controls["split"].value = "validation, shared dropout masks"
    assert explorer.ax.get_ylabel() == "validation NLL (nats per token)"
    assert "Penn Treebank, validation, shared dropout masks" in explorer.ax.get_title() and drawn() != training
    explorer.controls["split"].value = "validation, L2"
    explorer.controls["samples"].value = "1/16"  # the paper ran the asymmetric curves for the training fit only
    assert explorer.ax.get_title() == (
        "VIMCO 1/16 Rényi, validation, L2: not a curve of the paper's Penn Treebank figures"
    )
    explorer.controls["split"].value = "training fit"
    assert explorer.ax.get_title().startswith("VIMCO 1/16, Rényi — Penn Treebank, training fit")
    # K = 1: one objective, so a Rényi choice shows our KL study and says so
    explorer.controls["estimator"].value = "REINFORCE"
    explorer.controls["samples"].value = "1"
    renyi, renyi_title = drawn(), explorer.ax.get_title()
    assert "K = 1: one objective; our KL study" in renyi_title
    explorer.controls["objective"].value = "KL"
    kl = data["curves"]["Penn Treebank|training fit|REINFORCE|1|KL"]
    assert kl["ours"]["x"] and "our KL study" not in explorer.ax.get_title()
    assert renyi[-1] == drawn()[-1] == kl["ours"]["y"]  # our frontier: the KL study's, for both choices
    explorer.controls["task"].value = "synthetic"
    assert explorer.controls["split"].disabled and explorer.shown == "synthetic|training fit|REINFORCE|1|KL"
    html = frontier_explorer.static_frontier_explorer_html(data)
    assert "plotly_buttonclicked" in html and '<script src="http' not in html
    ptb_html = frontier_explorer.static_frontier_explorer_html(
        data, start="DReG|16|KL", task="Penn Treebank", split="validation, L2"
    )
    assert ptb_html != html and "nats per token" in ptb_html
    with pytest.raises(ValueError, match="task 'PTB' is not a choice"):
        frontier_explorer.FrontierExplorer(data, "VIMCO|16|Rényi", task="PTB")
    with pytest.raises(ValueError, match="estimator|K|objective"):
        frontier_explorer.FrontierExplorer(data, "VIMCO 16 Rényi")


def test_totals_and_costs_count_one_task_each(tmp_path):
    """The synthetic chapters' totals and Appendix C's cost table mixed PTB and synthetic trials."""
    from micmco.book import costs, figures

    write_results(tmp_path, "dreg16-kl", [(0.5, 0.1), (0.9, 0.2)])
    header = ["trial", "task", "split", "estimator", "k", "k_mi", "steps", "wall_s", "status"]
    ptb = [header, ["0", "ptb", "train", "dreg", "16", "16", "1500", "600", "complete"]]
    (tmp_path / "cpu-ptb-dreg16-kl.tsv").write_text("\n".join("\t".join(row) for row in ptb) + "\n")
    assert figures.compute_summary("cpu", tmp_path)[:2] == (1, 2)  # the synthetic task's, by default
    assert figures.compute_summary("cpu", tmp_path, task="ptb") == (1, 1, 600.0)
    assert figures.compute_summary("cpu", tmp_path, task=None)[:2] == (2, 3)
    rows = costs.trial_costs("cpu", tmp_path)
    assert [row[:5] for row in rows] == [["synthetic", "dreg", 16, 2500, 2], ["ptb", "dreg", 16, 1500, 1]]


def test_appendix_c_reads_the_gpu_step_times_that_gpu_check_wrote(tmp_path):
    import json

    from micmco.book import costs

    report = {"sections": {"versions": {"device_name": "NVIDIA H200"},
                           "step_time": {"ms_per_step": {"ptb K=16 state dropout tf32": 47.0}}}}  # fmt: skip
    (tmp_path / "gpu-check-h200-2026-12-04.json").write_text(json.dumps(report))
    (tmp_path / "bf16-h200-2026-12-04.json").write_text("{}")  # another benchmark's file: not read
    assert costs.gpu_step_costs(tmp_path) == [["NVIDIA H200", "ptb", "K=16", "state dropout tf32", 47.0, 31.0 + 1 / 3]]
    assert costs.gpu_step_costs()[0][:4] == ["NVIDIA H200", "synthetic", "K=1", "float32"]  # the committed check


def test_synthetic_figures_fill_the_page_with_one_legend_outside_the_axes():
    """The two-panel figures rendered ~450 px a panel with legends in a few-pixel font over the curves."""
    import matplotlib

    matplotlib.use("Agg")
    from micmco.book import figures

    for number in (3, 26):  # two objectives; three (two panels a row)
        fig = figures.plot_figure(figures.load_figure(number, "cpu"))
        fig.canvas.draw()
        axes = [ax for ax in fig.axes if ax.get_visible()]
        assert fig.get_figwidth() == 8.0 and all(ax.get_legend() is None for ax in axes)
        (legend,) = fig.legends
        box = legend.get_window_extent()
        assert all(box.y1 <= ax.get_tightbbox().y0 + 1 for ax in axes)  # below every panel
        assert min(text.get_fontsize() for text in legend.get_texts()) >= 9
        assert len(axes) == (2 if number == 3 else 3) and all(ax.bbox.width > 250 for ax in axes)
        matplotlib.pyplot.close(fig)
