"""PostgreSQL code the app installs: the claim-queue trigger and the claim function, one `.sql`
file per migration version (`<migration>_<what>.sql`). A migration loads the version it
installs, so a later change is a new file and a new migration; existing files never change.

Imports nothing from the project (migrations import it).
"""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def read_sql(name: str) -> str:
    """The text of `moderation/sql/<name>.sql`."""
    return (_HERE / f"{name}.sql").read_text(encoding="utf-8")
