"""Reading the repository's compose files in tests: Compose's merge tags (`!reset`,
`!override`) read as their plain value, and `${NAME:-default}` read as Compose does when the
variable is unset."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml


class _ComposeLoader(yaml.SafeLoader):
    """Compose's merge tags (`!reset`, `!override`) read as their plain value."""


def _plain(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


_ComposeLoader.add_multi_constructor("!", _plain)


def load_compose(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=_ComposeLoader)  # a SafeLoader subclass


_DEFAULT = re.compile(r"^\$\{(\w+):-([^}]*)\}$")


def compose_default(value: str) -> str:
    """`${NAME:-default}` -> default (what Compose uses when the variable is unset)."""
    match = _DEFAULT.match(str(value).strip())
    assert match, f"{value!r} is not ${{NAME:-default}}"
    return match.group(2)
