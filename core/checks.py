"""System checks for misconfiguration that would leak evidence or lose work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register


def _is_within(child: Path, parent: Path) -> bool:
    try:
        child.resolve().relative_to(parent.resolve())
    except ValueError:
        return False
    return True


@register(Tags.security)
def check_evidence_is_private(app_configs: Any, **kwargs: Any) -> list[Error]:
    errors: list[Error] = []
    if settings.MEDIA_URL not in ("", "/"):  # Django prefixes an empty value with "/"
        errors.append(
            Error(
                "MEDIA_URL must stay empty: evidence is never served from a public URL.",
                hint="Media are read only through the authenticated, audited media view.",
                id="safeguard.E001",
            )
        )
    evidence = Path(settings.EVIDENCE_ROOT)
    public_dirs = [Path(settings.STATIC_ROOT), *map(Path, settings.STATICFILES_DIRS)]
    for public in public_dirs:
        if _is_within(evidence, public) or _is_within(public, evidence):
            errors.append(
                Error(
                    f"EVIDENCE_ROOT ({evidence}) overlaps a static directory ({public}).",
                    hint="Keep evidence in private storage outside every static directory.",
                    id="safeguard.E002",
                )
            )
    return errors


@register()
def check_task_execution(app_configs: Any, **kwargs: Any) -> list[Warning]:
    warnings: list[Warning] = []
    if settings.IS_POSTGRES and settings.CELERY_TASK_ALWAYS_EAGER and not settings.DEBUG:
        warnings.append(
            Warning(
                "PostgreSQL is configured but Celery runs tasks in-process (no REDIS_URL).",
                hint="Set REDIS_URL and run workers for the hashing, default and packets queues.",
                id="safeguard.W001",
            )
        )
    if settings.CELERY_TASK_TIME_LIMIT <= settings.CELERY_TASK_SOFT_TIME_LIMIT:
        warnings.append(
            Warning(
                "CELERY_TASK_TIME_LIMIT should exceed CELERY_TASK_SOFT_TIME_LIMIT.",
                id="safeguard.W002",
            )
        )
    return warnings


@register()
def check_video_timeout(app_configs: Any, **kwargs: Any) -> list[Error]:
    """A video still being decoded must not look stuck to the hashing sweeper."""
    # The hashing task's hard limit is the video timeout + 90 s (moderation/tasks/hashing.py).
    hard_limit = settings.SAFEGUARD_VIDEO_TIMEOUT_SECONDS + 90
    stuck_after = settings.SAFEGUARD_HASH_STUCK_AFTER_SECONDS
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    if hard_limit >= min(stuck_after, visibility):
        return [
            Error(
                f"SAFEGUARD_VIDEO_TIMEOUT_SECONDS + 90 ({hard_limit}) must be below "
                f"SAFEGUARD_HASH_STUCK_AFTER_SECONDS ({stuck_after}) and "
                f"CELERY_VISIBILITY_TIMEOUT ({visibility}).",
                hint="Otherwise a video still being decoded is handed to a second worker.",
                id="safeguard.E010",
            )
        ]
    return []


@register(Tags.security)
def check_evidence_master_keys(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """Evidence is encrypted at rest with master keys from the environment. A malformed entry
    refuses to start; running without DEBUG on the generated key file is warned about."""
    from core.evidence_crypto import parse_master_keys

    configured = (settings.SAFEGUARD_EVIDENCE_MASTER_KEYS or "").strip()
    if configured:
        try:
            keys = parse_master_keys(configured)
        except ValueError as exc:
            return [
                Error(
                    f"SAFEGUARD_EVIDENCE_MASTER_KEYS: {exc}.",
                    hint="Entries are 'id:base64url(32 bytes)', comma separated; "
                    "`manage.py rotate_evidence_keys --generate` prints one.",
                    id="safeguard.E020",
                )
            ]
        if not keys:
            return [Error("SAFEGUARD_EVIDENCE_MASTER_KEYS has no key.", id="safeguard.E020")]
        return []
    if not settings.DEBUG:
        return [
            Warning(
                "Evidence is encrypted with a master key generated into "
                f"{settings.SAFEGUARD_EVIDENCE_KEY_FILE}, on the application's own disk.",
                hint="Set SAFEGUARD_EVIDENCE_MASTER_KEYS from a secret store kept apart from "
                "the evidence and its backups (docs/THREAT_MODEL.md).",
                id="safeguard.W020",
            )
        ]
    return []
