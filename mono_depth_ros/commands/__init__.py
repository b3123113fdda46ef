"""Subcommands of the ``mono-depth`` CLI, one module each (``add_parser(subparsers)`` + ``run(args)``)."""
