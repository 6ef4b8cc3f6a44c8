"""The one exception type that reaches users as a single clear line (no traceback)."""


class EdgeStrError(Exception):
    """A user-facing failure: bad input, wrong layout, unusable model, ...

    The command line prints ``edge-str: error: <message>`` and exits non-zero. Messages name
    the file (and line, where there is one) and the problem.
    """
