"""Command line: ``micmco train CONFIG.yaml [--set key=value ...]`` and ``micmco check CONFIG.yaml``."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from .config import ConfigError

EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="micmco", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("train", "train one run and write its result record (resumes an interrupted run)"),
        ("check", "validate a config without running anything"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("config", type=Path, help="YAML run config, e.g. params/synthetic/smoke/elbo-kl.yaml")
        command.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config value, e.g. --set objective.lam=0.5 (repeatable)",
        )
        command.add_argument("--output-dir", help="directory for run directories (overrides output_dir)")
    train = commands.choices["train"]
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    from .experiment import fingerprint, load_config, run, summary  # torch import: after argument errors

    overrides = list(args.overrides)
    if args.output_dir:
        overrides.append(f"output_dir={args.output_dir}")
    if getattr(args, "quiet", False):
        overrides.append("train.progress=false")
    try:
        config = load_config(args.config, overrides)
    except FileNotFoundError:
        print(f"micmco: no such config file: {args.config}", file=sys.stderr)
        return EXIT_CONFIG
    except ConfigError as error:
        print(f"micmco: invalid config {args.config}: {error}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "check":
        print(f"{args.config}: valid ({config.profile} profile, fingerprint {fingerprint(config)})")
        return 0

    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        record = run(config)
    except KeyboardInterrupt:
        print(
            "\nmicmco: interrupted; the completed steps are checkpointed. Rerun the same command to resume.",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    print(summary(record))
    print(f"result: {Path(config.output_dir) / (config.name + '-' + record['fingerprint'])}/result.json")
    return 0


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
