"""Subcommands of the ``mono-depth`` CLI, one module each (``add_parser(subparsers)`` + ``run(args)``).

A command's module holds its parser (``mono-depth --help`` imports them all, so they import nothing
heavy); where the work needs numpy, OpenCV, YAML or the pipeline it lives in ``<command>_run.py``, loaded
by ``run``. Limits that a parser's help and its work share are defined here.
"""

MIN_FRAME_SIZE = 16   # bench: smaller frames are no camera image (and OpenCV's resize rejects 0)
