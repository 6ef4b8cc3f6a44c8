"""Subcommands of the ``edge-str`` console script, one module each (see ``edge_str.cli``)."""
