"""`core.sqlrows.insert` against `bulk_create`, the ORM call it replaces in intake and the audit
log, in one process on the real PostgreSQL: CPU microseconds per row (`time.process_time`, so
time spent waiting on the server costs nothing) and wall, for the rows intake writes.

    python benchmarks/bench_insert.py               # 2,000 rounds of one row, 40 of 100 rows
    python benchmarks/bench_insert.py --rounds 5000

Both sides insert the same synthetic rows (an audit event, a case, an item, a flag), one row
per statement as a single intake does and 100 per statement as a batch does, alternating in
blocks of 50 rounds so drift on a shared machine falls on both alike. Each block runs in one
transaction that is rolled back, so the tables stay the same size throughout. The database
`safeguard_bench_insert` is created and dropped.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from profile_intake import scratch_django  # noqa: E402 - benchmarks/ is this script's own path

DB_NAME = os.environ.get("BENCH_INSERT_DB_NAME", "safeguard_bench_insert")
BLOCK = 50


def run(rounds: int, batch_rounds: int) -> list[tuple[str, int, float, float, float, float]]:
    import django

    django.setup()
    from datetime import timedelta

    from django.core.management import call_command
    from django.db import transaction
    from django.utils import timezone

    from core import sqlrows
    from core.models import AuditEvent
    from moderation.models import Case, Flag, Item
    from principles.models import HarmCategory, Priority

    call_command("migrate", verbosity=0)
    category = HarmCategory.objects.order_by("pk").first()
    counter = iter(range(10**9))

    def audit() -> Any:
        return AuditEvent(
            created_at=timezone.now(),
            actor_label="bench",
            verb="item.received",
            object_type="moderation.item",
            object_id="1",
            data={"source": "bench", "kind": "text", "case": 1, "flag": 1},
        )

    def case() -> Any:
        now = timezone.now()
        c = Case(
            subject_key=f"bench:{next(counter)}",
            source="bench",
            priority=Priority.P2,
            category=category,
            sla_due_at=now + timedelta(hours=24),
        )
        c.add_reason("intake: bench", at=now)
        return c

    def item() -> Any:
        return Item(
            source="bench",
            external_id=f"x{next(counter)}",
            kind=Item.Kind.TEXT,
            subject_account_id="acct",
            text="synthetic placeholder text",
            status=Item.Status.READY,
        )

    def flag_for(parent: Any) -> Callable[[], Any]:
        return lambda: Flag(item=parent, source=Flag.Source.API, category=category)

    with transaction.atomic():
        parent = Item.objects.create(source="bench", external_id="parent", kind=Item.Kind.TEXT)
    shapes: list[tuple[str, type[Any], Callable[[], Any]]] = [
        ("audit event", AuditEvent, audit),
        ("case", Case, case),
        ("item", Item, item),
        ("flag", Flag, flag_for(parent)),
    ]
    out = []
    for per_statement, total_rounds in ((1, rounds), (100, batch_rounds)):
        for name, model, make in shapes:
            cpu = {"bulk_create": 0.0, "sqlrows.insert": 0.0}
            wall = {"bulk_create": 0.0, "sqlrows.insert": 0.0}
            ways: dict[str, Callable[[list[Any]], Any]] = {
                "bulk_create": model.objects.bulk_create,
                "sqlrows.insert": lambda objs, model=model: sqlrows.insert(model, objs),
            }
            for block in range(max(1, total_rounds // BLOCK)):
                order = list(ways) if block % 2 == 0 else list(reversed(ways))
                for way in order:
                    # Instances are built outside the timed part: both sides get the same.
                    batches = [[make() for _ in range(per_statement)] for _ in range(BLOCK)]
                    with transaction.atomic():
                        c0, w0 = time.process_time(), time.perf_counter()
                        for objs in batches:
                            ways[way](objs)
                        cpu[way] += time.process_time() - c0
                        wall[way] += time.perf_counter() - w0
                        transaction.set_rollback(True)
            rows = max(1, total_rounds // BLOCK) * BLOCK * per_statement
            out.append(
                (
                    f"{name}, {per_statement} per statement",
                    rows,
                    cpu["bulk_create"] * 1e6 / rows,
                    cpu["sqlrows.insert"] * 1e6 / rows,
                    wall["bulk_create"] * 1e6 / rows,
                    wall["sqlrows.insert"] * 1e6 / rows,
                )
            )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rounds", type=int, default=2000, help="single-row statements per side")
    ap.add_argument("--batch-rounds", type=int, default=100, help="100-row statements per side")
    args = ap.parse_args()
    os.environ.pop("REDIS_URL", None)  # no broker: nothing here enqueues
    with scratch_django(DB_NAME, "sg-bench-insert-", {}):
        rows = run(args.rounds, args.batch_rounds)
    print(f"{'rows':34} {'n':>7} {'cpu µs/row':>22} {'ratio':>6} {'wall µs/row':>22} {'ratio':>6}")
    print(
        f"{'':34} {'':>7} {'bulk_create':>11}{'insert':>11} {'':>6} {'bulk_create':>11}{'insert':>11}"
    )
    for name, n, cb, ci, wb, wi in rows:
        print(
            f"{name:34} {n:>7} {cb:>11.1f}{ci:>11.1f} {ci / cb:>5.2f}x {wb:>11.1f}{wi:>11.1f} "
            f"{wi / wb:>5.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
