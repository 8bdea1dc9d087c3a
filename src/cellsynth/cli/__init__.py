"""The ``cellsynth`` command.

Each subcommand lives in a module of this package with two functions:
``register(subparsers)`` adds its parser (cheap: no heavy imports) and ``run(args)`` does
the work. Every subcommand accepts ``--config FILE`` (YAML or TOML) whose keys mirror the
long flags (``sh-order`` or ``sh_order``); flags on the command line win over the file.
User errors (:class:`cellsynth.errors.CellsynthError`), unparsable command lines included,
print one line and exit with 2. Config values go through the same checks as the flags
(:func:`config_defaults`).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import sys
from pathlib import Path
from typing import Any, NoReturn

from cellsynth import __version__
from cellsynth.errors import CellsynthError

COMMAND_ORDER = ("simulate", "shape_model", "synthesize", "train", "evaluate", "calibrate", "measure", "annotate",
                 "dataset",
                 "export")


class ArgumentParser(argparse.ArgumentParser):
    """argparse with cellsynth's error format: one line that says where the help is.

    argparse prints its usage block and exits; this parser raises :class:`UsageError`
    instead, which :func:`main` prints as one line and turns into exit status 2, like
    every other user error.
    """

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


class UsageError(CellsynthError):
    """A command line argparse cannot parse."""


def build_parser() -> ArgumentParser:
    """Build the full ``cellsynth`` argument parser from the subcommand modules."""
    parser = ArgumentParser(
        prog="cellsynth",
        description="Fully annotated synthetic 3D fluorescence microscopy. Arrays are (Z, Y, X); sizes are in µm.",
    )
    parser.add_argument("--version", action="version", version=f"cellsynth {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    found = {m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")}
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
    """Read a YAML or TOML configuration file into a flat dict of option values (not yet checked:
    :func:`config_defaults` does that)."""
    path = Path(path)
    if not path.is_file():
        raise CellsynthError(f"config file not found: {path}")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise CellsynthError(f"config {path} is not UTF-8 text (byte {err.start}); save it as UTF-8") from None
    except OSError as err:
        raise CellsynthError(f"cannot read config {path}: {err.strerror or err}") from None
    if path.suffix.lower() == ".toml":
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise CellsynthError(f"cannot parse config {path}: {err}") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise CellsynthError(f"cannot parse config {path}: {_yaml_problem(err)}") from None
        data = {} if data is None else data
    if not isinstance(data, dict):
        raise CellsynthError(f"config {path} must be a mapping of option names to values")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def _yaml_problem(err: Exception) -> str:
    """A YAML error in one line: what and where (PyYAML's own text spans several lines)."""
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    mark = getattr(err, "problem_mark", None)
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else problem


def config_defaults(parser: argparse.ArgumentParser, values: dict[str, Any], source: str) -> dict[str, Any]:
    """Config file values as parser defaults, each run through its flag's own checks.

    A value goes through what the flag's text would: its type (and with it the checks of
    :mod:`cellsynth.cli._options`), its number of values and its choices; switches take
    true or false. A null value leaves the option at its default.

    Raises
    ------
    CellsynthError
        For an unknown option or a value its flag would refuse, naming the file and option.
    """
    actions = {a.dest: a for a in parser._actions if a.dest not in ("help", "config")}
    unknown = sorted(set(values) - set(actions))
    if unknown:
        raise CellsynthError(f"config {source} has unknown options: {', '.join(unknown)}")
    defaults = {}
    for key, value in values.items():
        if value is None:
            continue
        try:
            defaults[key] = _config_value(actions[key], value)
        except (ValueError, TypeError, argparse.ArgumentTypeError) as err:
            flag = actions[key].option_strings[-1] if actions[key].option_strings else key
            raise CellsynthError(f"config {source}: {key}: {err} (as for {flag})") from None
    return defaults


def _config_value(action: argparse.Action, value: Any) -> Any:
    if action.nargs == 0:  # switches: store_true, store_false, --x/--no-x
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
        return value if not isinstance(action, argparse._StoreFalseAction) else not value
    if isinstance(action, argparse._AppendAction):
        items = value if isinstance(value, list) else [value]
        return [_config_item(action, v) for v in items]
    if action.nargs is None:
        return _config_item(action, value)
    if action.nargs == argparse.OPTIONAL:
        return action.const if value is True else _config_item(action, value)
    items = value if isinstance(value, list) else [value]
    if isinstance(action.nargs, int) and len(items) != action.nargs:
        raise ValueError(f"expected {action.nargs} values, got {value!r}")
    if action.nargs == argparse.ONE_OR_MORE and not items:
        raise ValueError("expected at least one value")
    return [_config_item(action, v) for v in items]


def _config_item(action: argparse.Action, value: Any) -> Any:
    """One value as argparse would take it from text: a scalar, through the flag's type and choices."""
    if isinstance(value, (list, dict)) or (isinstance(value, bool) and action.type is not None):
        raise ValueError(f"expected one value, got {value!r}")
    text = value if isinstance(value, str) else str(value)
    result = action.type(text) if callable(action.type) else text
    if action.choices is not None and result not in action.choices:
        raise ValueError(f"{result!r} is not one of {', '.join(map(str, action.choices))}")
    return result


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse ``argv``, taking defaults from ``--config`` where one is given."""
    args = _parse(parser, argv)
    if getattr(args, "config", None):
        sub: argparse.ArgumentParser = args._parser
        sub.set_defaults(**config_defaults(sub, load_config(args.config), args.config))
        args = _parse(parser, argv)
    return args


def _parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """``parser.parse_args``, with unknown arguments reported by the subcommand that got them."""
    args, extras = parser.parse_known_args(argv)
    if extras:
        getattr(args, "_parser", parser).error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def resolved_config(args: argparse.Namespace) -> dict[str, Any]:
    """The complete option values of a parsed command, for recording beside its output."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
            if not k.startswith("_") and k not in ("func", "config")}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cellsynth`` console command.

    Returns the exit status: 0, 2 for a user error or an input the system refuses (one line
    on stderr), 130 when interrupted.
    """
    from cellsynth.memory import limit_malloc_arenas

    limit_malloc_arenas()  # resident memory that follows what the command holds (see there)
    parser = build_parser()
    try:
        args = parse_args(parser, argv)
        args._argv = list(sys.argv[1:] if argv is None else argv)  # the command as typed, for records
        args.func(args)
    except CellsynthError as err:
        print(f"cellsynth: error: {_one_line(str(err))}", file=sys.stderr)
        return 2
    except OSError as err:  # what the system refused (a name too long, a full disk...): one line, with the path
        where = f": {err.filename}" if err.filename else ""
        print(f"cellsynth: error: {_one_line(err.strerror or str(err))}{where}", file=sys.stderr)
        return 2
    except MemoryError:  # an estimate fell short: still one line, and the hint
        print("cellsynth: error: ran out of memory; give smaller inputs or settings (see the command's --help)",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cellsynth: interrupted", file=sys.stderr)
        return 130
    return 0


def _one_line(message: str) -> str:
    return re.sub(r"\s*\n\s*", " ", message.strip())


if __name__ == "__main__":
    sys.exit(main())
