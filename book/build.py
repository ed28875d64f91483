"""Build the book: execute every chapter with papermill, then build the HTML with Jupyter Book.

    python book/build.py --profile cpu          # what `make book` runs (PROFILE=smoke for seconds per chapter)
    python book/build.py --profile smoke --out /tmp/book --no-html
    python book/build.py --chapter 07_experiments -p min_usages "0.3, 0.6" --no-html   # a reader's own parameters

1. Each chapter in ``book/_toc.yml`` that is a MyST-markdown notebook (a ``kernelspec`` in its
   front matter) is converted with jupytext and executed with papermill, its ``parameters``
   cell overridden by ``params/book/<profile>.yaml`` (keys the chapter does not declare are an
   error). A chapter that fails stops the build with its name and the failing cell.
2. The book's sources are copied to ``<out>/source`` with each notebook replaced by its
   executed ``.ipynb``, and ``jupyter-book build`` turns them into ``<out>/html`` with
   warnings as errors; Jupyter Book does not execute anything itself (execution is off).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

BOOK = Path(__file__).resolve().parent
REPO = BOOK.parent
PARAMS = REPO / "params" / "book"


def toc_files(book: Path = BOOK) -> list[str]:
    """Every file of the table of contents, in reading order, without extension."""
    toc = yaml.safe_load((book / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    walk(toc.get("parts"))
    walk(toc.get("chapters"))
    return files


def is_notebook(path: Path) -> bool:
    """A MyST-markdown notebook: front matter with a kernelspec."""
    text = path.read_text()
    return text.startswith("---") and "kernelspec:" in text.split("---", 2)[1]


def notebook_chapters(book: Path = BOOK) -> list[Path]:
    return [
        book / f"{name}.md"
        for name in toc_files(book)
        if (book / f"{name}.md").exists() and is_notebook(book / f"{name}.md")
    ]


def load_profile(profile: str) -> dict:
    path = PARAMS / f"{profile}.yaml"
    if not path.exists():
        choices = ", ".join(sorted(p.stem for p in PARAMS.glob("*.yaml")))
        raise SystemExit(f"no book profile {profile!r} ({path} is missing); choose one of: {choices}")
    return yaml.safe_load(path.read_text())


def parameter_types(notebook) -> dict[str, str]:
    """The annotation (int, float, str, bool) of each parameter of the ``parameters`` cell."""
    import ast

    cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    return {n.target.id: n.annotation.id for n in ast.parse(cell.source).body if isinstance(n, ast.AnnAssign)}


def parse_overrides(pairs: list[list[str]] | None) -> dict:
    """``-p name value`` pairs as papermill reads them: the value as a YAML scalar (0.5, 3, true, text)."""
    return {name: yaml.safe_load(value) if value.strip() else value for name, value in pairs or []}


def check_overrides(relative: Path, notebook, overrides: dict) -> None:
    """One line naming the parameter for an override the chapter does not declare, or of the wrong type."""
    types = parameter_types(notebook)
    for name, value in overrides.items():
        if name not in types:
            raise SystemExit(f"{relative} has no parameter {name!r}; its parameters: {', '.join(types)}")
        kind = {"int": int, "float": (int, float), "str": str, "bool": bool}[types[name]]
        if not isinstance(value, kind) or (types[name] != "bool" and isinstance(value, bool)):
            raise SystemExit(f"{relative}: parameter {name} must be {types[name]}, got {value!r}")


def declared_parameters(notebook) -> list[str]:
    """Names assigned in the cell tagged ``parameters``."""
    import ast

    cells = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise SystemExit(f"expected exactly one cell tagged 'parameters', found {len(cells)}")
    names = []
    for node in ast.parse(cells[0].source).body:
        if isinstance(node, ast.AnnAssign):
            names.append(node.target.id)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets]
    return names


@contextlib.contextmanager
def redirect_stderr_fd(path: Path):
    """Send file descriptor 2 (inherited by kernels) to ``path`` for the duration."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "w") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


COLAB_SETUP = BOOK / "colab_setup.ipy"  # the one cell that sets up a kernel without micmco (Colab)


def with_colab_setup(notebook):
    """The chapter with the Colab setup cell (book/colab_setup.ipy) right after its parameters cell: written once,
    in every executed notebook, which is what Colab opens (Binder and a clone run the MyST source, with micmco
    installed). Hidden in the HTML; run where micmco is installed, it does nothing."""
    import nbformat

    cell = nbformat.v4.new_code_cell(COLAB_SETUP.read_text().rstrip("\n"), metadata={"tags": ["remove-cell"]})
    tagged = [i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", [])]
    notebook.cells.insert(tagged[0] + 1 if tagged else 0, cell)
    return notebook


def execute_notebook(notebook, target: Path, parameters: dict, cwd: Path, label: str) -> None:
    """Execute a jupytext notebook with papermill into ``target``; a failure exits naming ``label`` and the cell."""
    import jupytext
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source = target.with_name(f".{target.stem}.unexecuted.ipynb")
    kernel_log = target.with_name(f".{target.stem}.kernel.log")
    jupytext.write(with_colab_setup(notebook), source, fmt="ipynb")
    try:
        with redirect_stderr_fd(kernel_log):  # the kernel's own chatter; shown if the chapter fails
            papermill.execute_notebook(
                str(source),
                str(target),
                parameters=parameters,
                cwd=str(cwd),
                kernel_name="python3",
                progress_bar=False,
                log_output=False,
            )
    except PapermillExecutionError as error:
        print(" FAILED", flush=True)
        sys.stderr.write(kernel_log.read_text()[-3000:])
        first_line = error.source.strip().splitlines()[0] if error.source.strip() else ""
        raise SystemExit(
            f"chapter {label} failed in cell {error.cell_index} (execution count {error.exec_count}), "
            f"which begins: {first_line!r}\n{error.ename}: {error.evalue}\n"
            f"(the partly executed notebook is {target})"
        ) from None
    finally:
        source.unlink(missing_ok=True)
        kernel_log.unlink(missing_ok=True)
    show_run_parameters(target)
    write_repository(target, repository_url())


def execute_chapters(
    profile: str, out: Path, only: list[str] | None = None, raw_overrides: list | None = None, jobs: int = 1
) -> list[Path]:
    """Execute every notebook chapter into ``out/source`` (``raw_overrides``: ``-p`` pairs as given, parameters
    set on top of the profile's in the chapters of ``only``), ``jobs`` at a time; returns the executed notebooks."""
    import jupytext

    overrides = parse_overrides(raw_overrides)

    settings = load_profile(profile).get("chapters", {})
    chapters = notebook_chapters()
    unknown = set(settings) - {c.stem for c in chapters}
    if unknown:
        raise SystemExit(f"params/book/{profile}.yaml names chapters that do not exist: {sorted(unknown)}")
    if only:
        stems = [c.stem for c in chapters]
        wrong = [name for name in only if name not in stems]
        if wrong:
            raise SystemExit(f"no chapter {', '.join(map(repr, wrong))}; the chapters are: {', '.join(stems)}")
        chapters = [c for c in chapters if c.stem in only]
    work = []  # (label, notebook, target, parameters, cwd), every chapter checked before any runs
    for chapter in chapters:
        relative = chapter.relative_to(BOOK)
        target = (out / "source" / relative).with_suffix(".ipynb")
        target.parent.mkdir(parents=True, exist_ok=True)
        notebook = jupytext.read(chapter)
        parameters = settings.get(chapter.stem, {})
        if overrides:
            check_overrides(relative, notebook, overrides)
            parameters = {**parameters, **overrides}
        missing = set(parameters) - set(declared_parameters(notebook))
        if missing:
            raise SystemExit(
                f"{relative}: params/book/{profile}.yaml sets {sorted(missing)}, "
                f"which its parameters cell does not declare"
            )
        work.append((str(relative), notebook, target, parameters, chapter.parent))
    if jobs > 1 and len(work) > 1:
        return execute_in_parallel(work, out, profile, raw_overrides, jobs)
    for number, (label, notebook, target, parameters, cwd) in enumerate(work, start=1):
        print(f"[{number}/{len(work)}] {label} ({profile}) ...", end="", flush=True)
        started = time.perf_counter()
        execute_notebook(notebook, target, parameters, cwd=cwd, label=label)
        print(f" {time.perf_counter() - started:.1f} s", flush=True)
    return [target for _, _, target, _, _ in work]


def execute_in_parallel(work: list, out: Path, profile: str, raw_overrides: list | None, jobs: int) -> list[Path]:
    """Execute chapters ``jobs`` at a time, each by this script in a child process (``--chapter X --no-html``:
    chapters are independent, they read committed results and write only their own notebook), with a line per
    finished chapter. A failure stops the others and exits with the failed chapter's output and message;
    Ctrl-C reaches the children too (one process group): they stop as in order, and only this process says so."""
    import subprocess
    import tempfile

    pairs = [arg for name, value in raw_overrides or [] for arg in ("-p", name, value)]  # as given: no re-reading
    queue, running, finished = list(work), {}, 0
    interrupted = False
    try:
        while queue or running:
            while queue and len(running) < jobs:
                label = queue.pop(0)[0]
                chapter = ["--chapter", Path(label).stem, "--no-html", *pairs]
                log = tempfile.TemporaryFile("w+")  # the child's output: shown only if it fails
                command = [sys.executable, __file__, "--profile", profile, "--out", str(out), *chapter]
                running[subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True)] = (
                    label, time.perf_counter(), log,
                )  # fmt: skip
            time.sleep(0.2)
            for child in [c for c in running if c.poll() is not None]:
                label, started, log = running.pop(child)
                if child.returncode != 0:
                    log.seek(0)
                    sys.stderr.write(log.read()[-6000:])
                    raise SystemExit(f"chapter {label} failed (exit {child.returncode}); the build stopped")
                log.close()
                finished += 1
                print(f"[{finished}/{len(work)}] {label} ({profile}) {time.perf_counter() - started:.1f} s", flush=True)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        for child in running:  # stopped by a failure or Ctrl-C: no chapter runs on unseen
            try:
                child.wait(timeout=10 if interrupted else 0)  # after Ctrl-C each child stops itself, cleaning up
            except subprocess.TimeoutExpired:
                child.terminate()
                child.wait()
    return [target for _, _, target, _, _ in work]


def show_run_parameters(path: Path) -> None:
    """Show the parameters a chapter ran with: papermill's injected cell (the profile's values and any ``-p``) stays
    open under a line saying so, and the chapter's own defaults cell (the smoke profile's) is folded (a reader can
    still open it). A chapter run on its defaults keeps its defaults cell open."""
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    injected = [cell for cell in notebook.cells if "injected-parameters" in cell.metadata.get("tags", [])]
    if injected and not injected[0].source.startswith(RAN_WITH):
        injected[0].source = RAN_WITH + injected[0].source.removeprefix("# Parameters\n")
        injected[0].metadata["tags"] = [t for t in injected[0].metadata["tags"] if t != "hide-input"]
        for cell in notebook.cells:
            tags = cell.metadata.get("tags", [])
            if "parameters" in tags and "hide-input" not in tags:
                cell.metadata["tags"] = tags + ["hide-input"]
    nbformat.write(notebook, path)


# The first line of a chapter's injected-parameters cell in the book
RAN_WITH = (
    "# What this chapter ran with: params/book/<profile>.yaml and any -p\n"
    "# (injected by papermill; its smoke defaults are folded above)\n"
)


def stage_sources(out: Path) -> Path:
    """Copy the book's sources to ``out/source`` (keeping the executed notebooks already there)."""
    source = out / "source"
    notebooks = {c.relative_to(BOOK).with_suffix("") for c in notebook_chapters()}
    for path in BOOK.rglob("*"):
        relative = path.relative_to(BOOK)
        if path.is_dir() or relative.parts[0] in ("_build", "__pycache__") or path in (Path(__file__), COLAB_SETUP):
            continue
        if ".ipynb_checkpoints" in relative.parts or (
            path.suffix == ".ipynb" and relative.with_suffix("") in notebooks
        ):  # a chapter converted by jupytext or Jupyter beside its source: never staged over the executed one
            continue
        if path.suffix == ".md" and relative.with_suffix("") in notebooks:
            if not (source / relative).with_suffix(".ipynb").exists():
                raise SystemExit(f"{relative} has not been executed; run all chapters first")
            continue
        (source / relative).parent.mkdir(parents=True, exist_ok=True)
        if relative.as_posix() == "_config.yml":
            (source / relative).write_text(staged_config(path.read_text(), repository_url()))
            continue
        shutil.copy2(path, source / relative)
    return source


def repository_url(book: Path = BOOK) -> str:
    """``repository.url`` of ``_config.yml``: the one setting behind the launch buttons and the chapters'
    clone cell ("" = unset: no buttons, nothing cloned)."""
    config = yaml.safe_load((book / "_config.yml").read_text())
    return str((config.get("repository") or {}).get("url") or "").strip().rstrip("/")


def staged_config(text: str, url: str) -> str:
    """The ``_config.yml`` the HTML is built from: unchanged with a repository, without any launch or
    repository button while ``repository.url`` is unset (Jupyter Book would otherwise link its own)."""
    if url:
        return text
    config = yaml.safe_load(text)
    config["launch_buttons"] = {"binderhub_url": "", "colab_url": "", "jupyterhub_url": "", "thebe": False}
    config.setdefault("html", {})["use_repository_button"] = False
    config.pop("repository", None)
    return "# book/_config.yml as staged by book/build.py (repository.url unset: no buttons)\n" + yaml.safe_dump(
        config, sort_keys=False, allow_unicode=True
    )


def write_repository(path: Path, url: str) -> None:
    """Write ``url`` into an executed notebook's clone cell (its ``REPOSITORY = ""`` line)."""
    import nbformat

    if not url:
        return
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        cell.source = cell.source.replace('REPOSITORY = ""', f"REPOSITORY = {url!r}", 1)
    nbformat.write(notebook, path)


def fix_launch_links(html: Path) -> None:
    """Point the launch buttons at files that exist.

    The HTML is built from executed copies (``book/chapters/X.ipynb``) that are not in the
    repository. Binder opens the MyST source ``book/chapters/X.md`` instead (binder/ installs
    jupytext and makes JupyterLab open it as a notebook); Colab, which opens only ``.ipynb``
    files on GitHub, opens the executed notebook that the published site carries under
    ``_sources/`` on the ``gh-pages`` branch (see .github/workflows/book.yml).
    """
    config = yaml.safe_load((BOOK / "_config.yml").read_text())
    repository, branch = repository_url(), config["repository"].get("branch", "main")
    if not repository:
        return
    slug = repository.split("github.com/")[-1]
    for page in html.rglob("*.html"):
        text = page.read_text()
        if "mybinder" not in text and "colab" not in text:
            continue
        for notebook in {c.relative_to(BOOK).with_suffix("") for c in notebook_chapters()}:
            name = notebook.as_posix()
            text = text.replace(f"lab/tree/book/{name}.ipynb", f"lab/tree/book/{name}.md")
            text = text.replace(
                f"github/{slug}/blob/{branch}/book/{name}.ipynb", f"github/{slug}/blob/gh-pages/_sources/{name}.ipynb"
            )
        page.write_text(text)


def build_html(out: Path) -> Path:
    source = stage_sources(out)
    print("jupyter-book build (warnings are errors) ...", flush=True)
    started = time.perf_counter()
    command = [
        str(Path(sys.executable).with_name("jupyter-book")),
        "build",
        str(source),
        "--path-output",
        str(out),
        "-W",
        "-n",
        "--keep-going",
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stdout.write(result.stdout[-6000:])
        sys.stderr.write(result.stderr[-6000:])
        raise SystemExit(f"jupyter-book build failed (exit {result.returncode}); the log is above")
    html = out / "_build" / "html"
    final = out / "html"
    if final.exists():
        shutil.rmtree(final)
    html.rename(final)
    shutil.rmtree(out / "_build", ignore_errors=True)
    fix_launch_links(final)
    print(f"  {time.perf_counter() - started:.1f} s", flush=True)
    return final


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu", help="params/book/<profile>.yaml (smoke: seconds per chapter)")
    parser.add_argument("--out", type=Path, default=BOOK / "_build", help="build directory (default book/_build)")
    parser.add_argument("--chapter", action="append", help="execute only this chapter (its file stem); repeatable")
    parser.add_argument("--no-html", action="store_true", help="only execute the chapters")
    parser.add_argument("--jobs", type=int, default=1, help="chapters executed at once (default 1)")
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        help="set a parameter of the --chapter(s) on top of the profile's, as papermill's -p; repeatable",
    )
    args = parser.parse_args(argv)
    if args.parameter and not args.chapter:
        parser.error("-p sets parameters of the chapters named with --chapter; name at least one")
    if args.jobs < 1:
        parser.error(f"--jobs is the number of chapters executed at once: >= 1, got {args.jobs}")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    from micmco.util import import_deferring_signals

    # A Ctrl-C inside these imports can be caught as an ImportError by a package probing an optional
    # dependency, and the build then ran on: defer it, and stop once they are done.
    if import_deferring_signals(("jupytext", "nbformat", "papermill", "jupyter_client")):
        raise KeyboardInterrupt
    started = time.perf_counter()
    out = args.out.resolve()
    if (out / "source").exists() and not args.chapter:
        shutil.rmtree(out / "source")
    execute_chapters(args.profile, out, args.chapter, args.parameter, args.jobs)
    if not args.no_html:
        html = build_html(out)
        print(f"The book ({args.profile} profile) is built in {time.perf_counter() - started:.0f} s.")
        print(f"Open {html / 'index.html'}  (file://{html / 'index.html'})")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # Ctrl-C: one line, as `micmco train` gives; executed chapters stay in <out>/source
        print("\nbook: interrupted; run the same command again to rebuild.", file=sys.stderr, flush=True)
        sys.stdout.flush()
        # Not sys.exit: where the kernel died of the same Ctrl-C, nbclient's abandoned task logs the dead
        # kernel's traceback at interpreter teardown (seen under load). The kernel was shut down on the way out.
        os._exit(130)
