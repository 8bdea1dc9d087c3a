"""The ``cellsynth`` command.

Each subcommand lives in a module of this package with two functions:
``register(subparsers)`` adds its parser (cheap: no heavy imports) and ``run(args)`` does
the work. Every subcommand accepts ``--config FILE`` (YAML or TOML) whose keys mirror the
long flags (``sh-order`` or ``sh_order``); flags on the command line win over the file.
User errors (:class:`cellsynth.errors.CellsynthError`) print one line and exit with 2.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path
from typing import Any

from cellsynth import __version__
from cellsynth.errors import CellsynthError

COMMAND_ORDER = ("simulate", "shape_model", "synthesize", "train", "evaluate", "calibrate", "measure", "annotate",
                 "dataset",
                 "export")


def build_parser() -> argparse.ArgumentParser:
    """Build the full ``cellsynth`` argument parser from the subcommand modules."""
    parser = argparse.ArgumentParser(
        prog="cellsynth",
        description="Fully annotated synthetic 3D fluorescence microscopy. Arrays are (Z, Y, X); sizes are in µm.",
    )
    parser.add_argument("--version", action="version", version=f"cellsynth {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    found = {m.name for m in pkgutil.iter_modules(__path__)}
    for name in sorted(found, key=lambda n: COMMAND_ORDER.index(n) if n in COMMAND_ORDER else len(COMMAND_ORDER)):
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    _add_config_options(subparsers)
    return parser


def _add_config_options(subparsers: argparse._SubParsersAction) -> None:
    for sub in set(subparsers.choices.values()):
        nested = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            _add_config_options(nested[0])
        elif "--config" not in sub._option_string_actions:
            sub.add_argument("--config", metavar="FILE", help="YAML or TOML file whose keys mirror these flags")
            sub.set_defaults(_parser=sub)


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML or TOML configuration file into a flat dict of option values."""
    path = Path(path)
    if not path.is_file():
        raise CellsynthError(f"config file not found: {path}")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text) or {}
    except Exception as err:  # yaml and tomllib raise their own error types
        raise CellsynthError(f"cannot parse config {path}: {err}") from None
    if not isinstance(data, dict):
        raise CellsynthError(f"config {path} must be a mapping of option names to values")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse ``argv``, taking defaults from ``--config`` where one is given."""
    args = parser.parse_args(argv)
    if getattr(args, "config", None):
        sub: argparse.ArgumentParser = args._parser
        values = load_config(args.config)
        known = {a.dest for a in sub._actions}
        unknown = sorted(set(values) - known)
        if unknown:
            raise CellsynthError(f"config {args.config} has unknown options: {', '.join(unknown)}")
        sub.set_defaults(**values)
        args = parser.parse_args(argv)
    return args


def resolved_config(args: argparse.Namespace) -> dict[str, Any]:
    """The complete option values of a parsed command, for recording beside its output."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
            if not k.startswith("_") and k not in ("func", "config")}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cellsynth`` console command."""
    parser = build_parser()
    try:
        args = parse_args(parser, argv)
        args._argv = list(sys.argv[1:] if argv is None else argv)  # the command as typed, for records
        args.func(args)
    except CellsynthError as err:
        print(f"cellsynth: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cellsynth: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
