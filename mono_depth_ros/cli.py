"""``mono-depth``: the command-line entry point.

Each subcommand lives in its own module under ``mono_depth_ros.commands`` and exposes
``add_parser(subparsers)`` (returning its parser) and ``run(args) -> int``. Modules are imported
lazily so that ``mono-depth --help`` stays fast and a missing optional dependency only affects the
command that needs it.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, NoReturn, Optional

from . import __version__
from .text import plural  # noqa: F401 (re-exported: the commands use cli.plural)

# name -> module; the order is the order of --help.
COMMANDS = {
    "info": "mono_depth_ros.commands.info",
    "predict": "mono_depth_ros.commands.predict",
    "export": "mono_depth_ros.commands.export",
    "kitti2bag": "mono_depth_ros.commands.kitti2bag",
    "bag": "mono_depth_ros.commands.bag",
    "quantize": "mono_depth_ros.commands.quantize",
    "bench": "mono_depth_ros.commands.bench",
    "demo": "mono_depth_ros.commands.demo",
}


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2 (or ``code``)."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    """argparse with issue 11's errors: a mistake on the command line is one line, ``mono-depth predict: error:
    argument --backend: invalid choice: ...``, exit status 2, instead of the whole usage first; ``--help`` is
    unchanged. The subcommands' parsers are of this class too (``add_subparsers`` uses the parent's class)."""

    def error(self, message: str) -> NoReturn:
        text = " | ".join(ln.strip() for ln in message.splitlines() if ln.strip())
        hint = "" if "invalid choice" in text else f" (see {self.prog} --help)"   # a choice error lists them
        self.exit(2, f"{self.prog}: error: {text}{hint}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="mono-depth", description="Monocular depth estimation (Eigen et al. 2014)")
    parser.add_argument("--version", action="version", version=f"mono_depth_ros {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, modname in COMMANDS.items():
        mod = importlib.import_module(modname)
        p = mod.add_parser(sub)
        p.set_defaults(_run=mod.run, _parser=p)
    return parser


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (YAML / protobuf / argparse messages span several)."""
    text = str(exc) or type(exc).__name__
    return " | ".join(ln.strip() for ln in text.splitlines() if ln.strip())


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:   # named by the subcommand's parser (its usage and --help are the relevant ones)
        args._parser.error(f"unrecognized arguments: {' '.join(extra)}")
    prog = f"mono-depth {args.command}"
    try:
        return int(args._run(args) or 0)
    except CLIError as exc:
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except (OSError, ValueError) as exc:   # missing / existing / unreadable files, bad values, bag errors
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - model/file/backend errors are user errors with a clear message
        from .backends.base import BackendError
        from .model_spec import ModelFileError

        if isinstance(exc, (ModelFileError, BackendError)):
            print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
