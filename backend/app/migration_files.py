"""Discovery and ordering of migration files `NNNN_name.sql` (pure logic)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    def sql(self) -> str:
        return self.path.read_text()


def parse_name(filename: str) -> tuple[int, str] | None:
    match = _NAME.match(filename)
    if not match:
        return None
    return int(match["version"]), match["name"]


def discover(directory: Path) -> list[Migration]:
    """All migrations in version order. Unrelated files are ignored; a `.sql` file with a bad
    name or two files with one version are errors (they would silently skip or reorder)."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix != ".sql":
            continue
        parsed = parse_name(path.name)
        if parsed is None:
            raise ValueError(f"migration file name must look like 0001_name.sql: {path.name}")
        version, name = parsed
        if version in found:
            raise ValueError(
                f"two migrations with version {version}: {found[version].path.name}, {path.name}"
            )
        found[version] = Migration(version, name, path)
    return [found[v] for v in sorted(found)]


def expected_version(directory: Path) -> int:
    """The schema version this image needs: its highest migration (0 when there are none)."""
    migrations = discover(directory)
    return migrations[-1].version if migrations else 0
