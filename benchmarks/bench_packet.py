"""Benchmark: building a referral packet (reports.packets.packet_build), warm.

Set-up (the real code paths, synthetic data only): one case of N image items (tiny synthetic
JPEGs from moderation.media.synthetic, submitted through moderation.services.item_submit and
hashed by moderation.services.hashing.media_hash; every 10th one matches a seeded internal SHA-256 hash
list; every 4th carries an extra user report), claimed by a moderator who reveals every other
image and records a decision; a lead drafts and submits a packet, a second lead approves it
(reports.packets). The same is done for a 1-item case, the same-run baseline.

Measured, per packet:
  build   packet_build(packet_id=...) end to end (claim the attempt, build the zip, write it,
          mark it ready, audit). The build run by the approval is discarded as the warm-up;
          then the status is reset to building and the packet rebuilt --repeat times.
  stages  the builder's functions called directly, --repeat times each:
            doc     referral_document() + validate_referral() + canonical JSON
                    (assembly and schema validation are also shown apart)
            pdf     render_pdf()
            custody custody_document() + canonical JSON
            zip     _refuse_media() on every file + manifest_for() + Ed25519 sign + zip_bytes()
  queries SQL statements per build (DEBUG=true records them; the recording adds a little).

Baseline (same run): the 1-item packet. Reported: the N-item p50 against the 1 s target, the
N-item / 1-item ratio, and the marginal cost per item ((p50_N - p50_1) / (N - 1)).

Correctness, checked on every run: every build ends ready with the same SHA-256 (deterministic),
the zip holds the expected files, referral.json lists N items, manifest.sig verifies, and no file
in the zip starts with an image or video signature (our own list, not the builder's) or contains
the first bytes of any evidence file.

Usage (from the repository root):
    python benchmarks/bench_packet.py --quick                  # 10 items, 2 repeats, checks only
    python benchmarks/bench_packet.py                          # 100 items, 10 repeats, SQLite
    python benchmarks/bench_packet.py --database-url \\
        postgres://postgres@127.0.0.1:5432/safeguard_bench_packet   # created, then dropped
    python benchmarks/bench_packet.py --profile                # + cProfile of the N-item build
Exit status: 1 if a check fails; outside --quick also 1 if the N-item p50 misses the target.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

TARGET_SECONDS = 1.0
EXPECTED_FILES = {
    "README.txt",
    "custody.json",
    "manifest.json",
    "manifest.sig",
    "referral.json",
    "signing-key.pub",
    "summary.pdf",
}
# Our own list of image/video magic numbers (independent of reports.builder.MEDIA_SIGNATURES).
IMAGE_SIGNATURES: tuple[bytes, ...] = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG",  # PNG
    b"GIF8",  # GIF
    b"BM",  # BMP
    b"II*\x00",  # TIFF (little-endian)
    b"MM\x00*",  # TIFF (big-endian)
    b"\x1aE\xdf\xa3",  # Matroska / WebM
    b"\x00\x00\x01\x00",  # ICO
    b"\x00\x00\x00\x0cjP  ",  # JPEG 2000
    b"\xff\x0a",  # JPEG XL codestream
)


def starts_like_media(data: bytes) -> bool:
    if data.startswith(IMAGE_SIGNATURES):
        return True
    if data[:4] == b"RIFF" and data[8:12] in (b"WEBP", b"AVI "):
        return True
    return data[4:8] == b"ftyp"


# --- environment and database ------------------------------------------------------------------


def _admin_url(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name:
        raise SystemExit("--database-url needs a database name, e.g. .../safeguard_bench_packet")
    return urlunsplit(parts._replace(path="/postgres")), name


def _pg_admin(url: str, statements: list[str]) -> None:
    import psycopg2

    admin, _ = _admin_url(url)
    conn = psycopg2.connect(admin)
    conn.autocommit = True
    with conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql)
    conn.close()


def setup_django(var_dir: Path, database_url: str | None) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["DEBUG"] = "true"
    os.environ.setdefault("LOG_LEVEL", "WARNING")  # not one INFO line per eager task
    os.environ["SAFEGUARD_VAR_DIR"] = str(var_dir)
    os.environ["EVIDENCE_ROOT"] = str(var_dir / "evidence")
    os.environ["SAFEGUARD_SIGNING_KEY_FILE"] = str(var_dir / "keys" / "packet-signing-key.pem")
    # One moderator reveals every other image of the big case: lift the daily exposure limits
    # in this throwaway installation only.
    os.environ["SAFEGUARD_REVEAL_SOFT_LIMIT"] = "100000"
    os.environ["SAFEGUARD_REVEAL_HARD_LIMIT"] = "100000"
    # Embedded mode: tasks run in-process (hashing, rules, the approval's build).
    for name in ("REDIS_URL", "CELERY_BROKER_URL", "CELERY_TASK_ALWAYS_EAGER", "DATABASE_URL"):
        os.environ.pop(name, None)
    if database_url:
        _, name = _admin_url(database_url)
        _pg_admin(database_url, [f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"'])
        os.environ["DATABASE_URL"] = database_url
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def drop_database(database_url: str) -> None:
    from django.db import connections

    connections.close_all()
    _, name = _admin_url(database_url)
    _pg_admin(database_url, [f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'])


# --- data -------------------------------------------------------------------------------------


def make_users() -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from core.roles import MODERATOR, SAFETY_LEAD

    user_model = get_user_model()
    users = {}
    for username, role in (
        ("bench-mod", MODERATOR),
        ("bench-lead", SAFETY_LEAD),
        ("bench-lead2", SAFETY_LEAD),
    ):
        user = user_model.objects.create_user(username=username, email=f"{username}@example.org")
        user.groups.add(Group.objects.get(name=role))
        users[username] = user_model.objects.get(pk=user.pk)  # fresh permission cache
    return users


def _jpeg(seed: int) -> bytes:
    from moderation.media.synthetic import synthetic_jpeg

    return synthetic_jpeg(seed, 160, 120, quality=80)


def seed_hash_list(seeds: list[int]) -> None:
    """An internal exact SHA-256 list holding the digests of some of the synthetic images."""
    import hashlib

    from core.audit import SystemActor
    from moderation.models import KnownHash
    from moderation.services.hashlists import hash_list_upsert

    hash_list, _ = hash_list_upsert(
        name="bench-internal-sha256",
        algorithm="sha256",
        actor=SystemActor("bench"),
        provider="internal",
    )
    KnownHash.objects.bulk_create(
        [
            KnownHash(hash_list=hash_list, value=hashlib.sha256(_jpeg(s)).hexdigest(), category="B")
            for s in seeds
        ]
    )


def make_case(prefix: str, n: int, seed0: int) -> tuple[Any, list[bytes]]:
    """n image items of one subject → one case; every media hashed by the real pipeline."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from core.audit import SystemActor
    from moderation.models import Media
    from moderation.services.hashing import media_hash
    from moderation.services.intake import ItemInput, item_submit, report_submit
    from principles.models import HarmCategory

    actor = SystemActor("bench")
    grooming = HarmCategory.objects.get(code="grooming")
    heads = []
    case = None
    for i in range(n):
        data = _jpeg(seed0 + i)
        heads.append(data[:64])
        item, created = item_submit(
            data=ItemInput(
                source="acme",
                external_id=f"{prefix}-{i:05d}",
                kind="image",
                category_hint=grooming,
                subject_account_id=f"{prefix}-subject",
                subject_username=f"{prefix}_user",
                subject_ip=f"192.0.2.{i % 250 + 1}",  # TEST-NET-1 (RFC 5737)
                subject_port=40000 + i % 5,
                subject_country="GB",
                visibility="public" if i % 3 == 0 else "private",
                uk_linked=True,
                note=f"synthetic bench item {i}",
                url=f"https://example.org/{prefix}/{i}",
            ),
            upload=SimpleUploadedFile(f"{prefix}-{i}.jpg", data),
            actor=actor,
        )
        assert created, item
        if i % 4 == 1:
            report_submit(
                item=item,
                reporter=f"reporter-{i}",
                report_id=f"{prefix}-r{i}",
                category=grooming,
                note="synthetic user report",
                actor=actor,
            )
        case = case or item.case
        assert item.case_id == case.pk, "all items of one subject go to one case"
    for media_id in Media.objects.filter(
        item__case=case, hash_status=Media.HashStatus.PENDING
    ).values_list("pk", flat=True):
        media_hash(media_id=media_id)  # the worker's job, when on-commit did not run it
    not_done = Media.objects.filter(item__case=case).exclude(hash_status=Media.HashStatus.DONE)
    assert not not_done.exists(), list(not_done.values_list("pk", "hash_error"))
    return case, heads


def review_case(case: Any, moderator: Any) -> None:
    from moderation.models import Media
    from moderation.services.exposure import media_reveal
    from moderation.services.queue import case_claim_next
    from moderation.services.review import decision_record
    from principles.models import HarmCategory

    claimed = case_claim_next(user=moderator)
    assert claimed is not None and claimed.pk == case.pk, (claimed, case)
    for i, media in enumerate(Media.objects.filter(item__case=case).order_by("pk")):
        if i % 2 == 0:
            media_reveal(media=media, case=claimed, user=moderator, reason="assess the image")
    decision_record(
        case=claimed,
        moderator=moderator,
        outcome="remove_and_report",
        categories=[HarmCategory.objects.get(code="grooming")],
        rationale="synthetic rationale for the benchmark",
    )


def make_packet(case: Any, destination: Any, lead: Any, lead2: Any) -> tuple[Any, float]:
    """Draft, submit, approve; returns the packet and the approval's wall time (which runs the
    first build in-process on commit: the warm-up, discarded)."""
    from reports.models import ReferralPacket
    from reports.packets import packet_approve, packet_build, packet_draft, packet_submit

    packet = packet_draft(
        cases=[case],
        destination=destination,
        priority="urgent",
        summary="Adult account grooming a child (synthetic benchmark data).",
        actor=lead,
        drafted_by=lead,
    )
    packet = packet_submit(packet=packet, lead=lead)
    t0 = time.perf_counter()
    packet_approve(packet=packet, lead=lead2, declaration_confirmed=True)
    packet = ReferralPacket.objects.get(pk=packet.pk)
    if packet.status == ReferralPacket.Status.BUILDING:  # the on-commit build did not run
        packet = packet_build(packet_id=packet.pk)
    elapsed = time.perf_counter() - t0
    assert packet.status == ReferralPacket.Status.READY, (packet.status, packet.error)
    return packet, elapsed


# --- measuring --------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _reset(packet_id: int) -> None:
    from reports.models import ReferralPacket

    ReferralPacket.objects.filter(pk=packet_id).update(
        status=ReferralPacket.Status.BUILDING, progress=0
    )


def time_build(packet_id: int) -> tuple[float, float, int, str]:
    """One packet_build: wall seconds, this process's CPU seconds, queries, the zip's SHA-256."""
    from django.db import connection, reset_queries

    from reports.packets import packet_build

    _reset(packet_id)
    reset_queries()
    c0, t0 = time.process_time(), time.perf_counter()
    packet = packet_build(packet_id=packet_id)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert packet is not None and packet.status == "ready", (packet and packet.error,)
    return wall, cpu, len(connection.queries), packet.sha256


def time_stages(packet_id: int, out: dict[str, Any]) -> None:
    """The builder's functions called directly (the same sequence as build_packet_zip)."""
    from django.conf import settings
    from django.db import connection, reset_queries

    from reports import builder, signing
    from reports.models import ReferralPacket

    packet = ReferralPacket.objects.select_related("destination", "escalation").get(pk=packet_id)
    reset_queries()
    t0 = time.perf_counter()
    document = builder.referral_document(packet)
    t1 = time.perf_counter()
    out["doc_queries"] = len(connection.queries)
    builder.validate_referral(document)
    referral_json = builder._canonical(document)
    t2 = time.perf_counter()
    pdf = builder.render_pdf(document)
    t3 = time.perf_counter()
    reset_queries()
    custody = builder._canonical(builder.custody_document(packet))
    t4 = time.perf_counter()
    out["custody_queries"] = len(connection.queries)
    files = {
        "referral.json": referral_json,
        "summary.pdf": pdf,
        "custody.json": custody,
        "signing-key.pub": signing.public_key_pem(),
        "README.txt": f"Referral {packet.reference} from {settings.SAFEGUARD_ORG_NAME}.\n"
        "(bench stand-in; same size class as the builder's README)\n".encode(),
    }
    files = {name: builder._refuse_media(name, data) for name, data in files.items()}
    manifest = builder.manifest_for(packet, files)
    files["manifest.json"] = manifest
    files["manifest.sig"] = signing.sign(manifest).hex().encode() + b"\n"
    builder.zip_bytes(files)
    t5 = time.perf_counter()
    for key, value in (
        ("assemble", t1 - t0),
        ("validate", t2 - t1),
        ("doc", t2 - t0),
        ("pdf", t3 - t2),
        ("custody", t4 - t3),
        ("zip", t5 - t4),
        ("total", t5 - t0),
    ):
        out.setdefault(key, []).append(value)


def measure(packet_id: int, repeat: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """repeat x (one full build, then one pass of direct stage calls), interleaved so both see
    the same load on a shared machine."""
    builds: dict[str, Any] = {"times": [], "cpu": [], "queries": 0}
    stages: dict[str, Any] = {}
    digests = set()
    for _ in range(repeat):
        wall, cpu, queries, digest = time_build(packet_id)
        builds["times"].append(wall)
        builds["cpu"].append(cpu)
        builds["queries"] = max(builds["queries"], queries)
        digests.add(digest)
        time_stages(packet_id, stages)
    assert len(digests) == 1, f"rebuilds differ: {sorted(digests)}"
    builds["sha256"] = digests.pop()
    return builds, stages


def check_zip(packet_id: int, n_items: int, evidence_heads: list[bytes]) -> list[str]:
    """Problems with the stored zip (empty list = fine)."""
    from django.conf import settings

    from reports import signing
    from reports.models import ReferralPacket

    problems: list[str] = []
    packet = ReferralPacket.objects.get(pk=packet_id)
    data = (Path(settings.EVIDENCE_ROOT) / packet.file.name).read_bytes()
    archive = zipfile.ZipFile(io.BytesIO(data))
    names = set(archive.namelist())
    if names != EXPECTED_FILES:
        problems.append(f"unexpected files {sorted(names ^ EXPECTED_FILES)}")
    for name in sorted(names):
        body = archive.read(name)
        if starts_like_media(body):
            problems.append(f"{name} starts with an image/video signature")
        for head in evidence_heads:
            if head[:32] in body:
                problems.append(f"{name} contains the first bytes of an evidence file")
                break
    document = json.loads(archive.read("referral.json"))
    if len(document["items"]) != n_items:
        problems.append(f"referral.json lists {len(document['items'])} items, not {n_items}")
    public = signing.load_public_pem(archive.read("signing-key.pub"))
    signature = bytes.fromhex(archive.read("manifest.sig").decode().strip())
    if not signing.verify(public, signature, archive.read("manifest.json")):
        problems.append("manifest.sig does not verify")
    return problems


def profile_builds(packet_id: int, repeat: int, out_dir: Path) -> None:
    from reports.packets import packet_build

    profiler = cProfile.Profile()
    for _ in range(repeat):
        _reset(packet_id)
        profiler.enable()
        packet_build(packet_id=packet_id)
        profiler.disable()
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.dump_stats(out_dir / "packet_build.prof")
    print(f"\n--- cProfile, {repeat} builds: top 25 by cumulative time ---")
    stats.sort_stats("cumulative").print_stats(25)
    print(f"--- cProfile, {repeat} builds: top 25 by own time ---")
    stats.sort_stats("tottime").print_stats(25)
    try:
        from pyinstrument import Profiler
    except ImportError:
        return
    pi = Profiler(interval=0.0005)
    _reset(packet_id)
    pi.start()
    packet_build(packet_id=packet_id)
    pi.stop()
    print(pi.output_text(unicode=False, color=False, show_all=False))


# --- report -----------------------------------------------------------------------------------


def _ms(values: list[float], q: float) -> str:
    return f"{pct(values, q) * 1000:8.1f}"


def report(label: str, builds: dict[str, Any], stages: dict[str, Any], cold: float) -> None:
    t = builds["times"]
    print(
        f"\n{label}: packet_build p50 {pct(t, 50):.3f} s  p95 {pct(t, 95):.3f} s  "
        f"min {min(t):.3f} s  max {max(t):.3f} s  (n={len(t)}); client CPU p50 "
        f"{pct(builds['cpu'], 50):.3f} s; {builds['queries']} queries/build; first build "
        f"incl. approval {cold:.3f} s"
    )
    print(f"  {'stage (direct calls)':<44}{'p50 ms':>8}{'p95 ms':>9}{'share':>8}")
    total50 = pct(stages["total"], 50)
    rows: list[tuple[str, str]] = [
        ("doc", "document assembly + schema + JSON"),
        ("assemble", "  of which: referral_document()"),
        ("validate", "  of which: validate_referral() + JSON"),
        ("pdf", "PDF (render_pdf)"),
        ("custody", "custody log (custody_document + JSON)"),
        ("zip", "refuse-media + manifest + sign + zip"),
        ("total", "sum of stages"),
    ]
    for key, title in rows:
        share = pct(stages[key], 50) / total50 * 100
        print(f"  {title:<44}{_ms(stages[key], 50)} {_ms(stages[key], 95)}{share:7.0f}%")
    overhead = pct(t, 50) - total50
    print(
        f"  {'service overhead (p50 build - p50 stages)':<44}{overhead * 1000:8.1f}"
        f"   (status updates, zip write + rename, audit event)"
    )
    print(
        f"  queries: referral_document {stages['doc_queries']}, "
        f"custody_log {stages['custody_queries']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="10 items, 2 repeats, checks only")
    parser.add_argument("--database-url", default=None, help="postgres://…/NAME (re-created)")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the PG database")
    parser.add_argument("--profile", action="store_true", help="cProfile the N-item build")
    args = parser.parse_args(argv)
    if args.quick:
        args.items, args.repeat = 10, 2
    if args.items < 2 or args.repeat < 1:
        parser.error("--items >= 2 and --repeat >= 1")

    var_dir = Path(tempfile.mkdtemp(prefix="bench-packet-"))
    try:
        t0 = time.perf_counter()
        setup_django(var_dir, args.database_url)
        from django.db import connection

        from reports.models import Destination

        engine = connection.vendor
        users = make_users()
        seed_hash_list([1000 + i for i in range(0, args.items, 10)] + [9000])
        destination = Destination.objects.get(code="kent")  # from the force list
        # The 1-item baseline first: its approval's build also absorbs the one-off costs
        # (imports, schema load, signing key generation).
        small_case, small_heads = make_case("one", 1, 9000)
        review_case(small_case, users["bench-mod"])
        small, small_cold = make_packet(
            small_case, destination, users["bench-lead"], users["bench-lead2"]
        )
        big_case, big_heads = make_case("big", args.items, 1000)
        review_case(big_case, users["bench-mod"])
        big, big_cold = make_packet(
            big_case, destination, users["bench-lead"], users["bench-lead2"]
        )
        setup_s = time.perf_counter() - t0
        print(
            f"database {engine}; set-up {setup_s:.1f} s; cases: {big_case.reference} "
            f"({args.items} items), {small_case.reference} (1 item); repeat {args.repeat}",
            flush=True,
        )

        results: dict[int, tuple[dict[str, Any], dict[str, Any], float]] = {}
        for n, packet, cold in ((1, small, small_cold), (args.items, big, big_cold)):
            builds, stages = measure(packet.pk, args.repeat)
            results[n] = (builds, stages, cold)

        problems = check_zip(big.pk, args.items, big_heads) + check_zip(small.pk, 1, small_heads)
        for n, (builds, stages, cold) in results.items():
            report(f"{n}-item packet", builds, stages, cold)

        p50_n = pct(results[args.items][0]["times"], 50)
        p95_n = pct(results[args.items][0]["times"], 95)
        p50_1 = pct(results[1][0]["times"], 50)
        marginal = (p50_n - p50_1) / (args.items - 1)
        print(
            f"\n{args.items}-item p50 / target {TARGET_SECONDS:.1f} s = {p50_n / TARGET_SECONDS:.2f}"
            f"  (p95 {p95_n / TARGET_SECONDS:.2f});  {args.items}-item / 1-item p50 = "
            f"{p50_n / p50_1:.1f}x;  marginal cost {marginal * 1000:.2f} ms/item; fixed cost "
            f"~{(p50_1 - marginal) * 1000:.0f} ms"
        )
        for name in ("doc", "pdf", "custody", "zip"):
            big_s = pct(results[args.items][1][name], 50)
            small_s = pct(results[1][1][name], 50)
            print(
                f"  {name:<8} per-item {(big_s - small_s) / (args.items - 1) * 1000:6.2f} ms, "
                f"fixed {small_s * 1000:6.1f} ms"
            )
        print(
            f"  deterministic: {args.repeat} rebuilds gave sha256 {results[args.items][0]['sha256'][:16]}…"
        )

        if args.profile:
            profile_builds(big.pk, args.repeat, var_dir)

        if problems:
            print("\nFAIL: " + "; ".join(problems))
            return 1
        print("checks: ok (expected files, item count, signature, no image signatures)")
        if not args.quick and p50_n >= TARGET_SECONDS:
            print(f"MISS: {args.items}-item p50 {p50_n:.3f} s >= {TARGET_SECONDS} s")
            return 1
        print("target: " + ("not assessed (--quick)" if args.quick else "met"))
        return 0
    finally:
        if args.database_url and not args.keep_db:
            try:
                drop_database(args.database_url)
            except Exception as exc:  # noqa: BLE001 — report, keep the exit status
                print(f"could not drop the bench database: {exc}", file=sys.stderr)
        shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
