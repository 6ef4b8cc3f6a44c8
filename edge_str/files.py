"""Reading the package's small JSON and YAML files: a missing or malformed one is one clear line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from edge_str.errors import EdgeStrError


def read_document(path: Path, missing: str, fmt: str = "JSON", what: str = "file") -> Any:
    """The parsed content of ``path`` (``fmt``: "JSON" or "YAML").

    ``missing`` ends the message for a file that is not there ("config file not found");
    ``what`` names the file in the others ("cannot read the config file").
    """
    parse: Callable[[str], Any] = json.loads if fmt == "JSON" else yaml.safe_load
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise EdgeStrError(f"{path}: {missing}") from None
    except (OSError, UnicodeDecodeError) as error:  # a folder, no permission, binary bytes
        reason = getattr(error, "strerror", None) or type(error).__name__
        raise EdgeStrError(f"{path}: cannot read the {what} ({reason})") from None
    try:
        return parse(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise EdgeStrError(f"{path}: not valid {fmt} ({str(error).splitlines()[0]})") from None
