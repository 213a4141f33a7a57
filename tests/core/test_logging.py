"""Structured logs: the JSON format (core.logs), request ids carried into a real worker's task
logs (core.requestid through config/celery.py), no personal data or content hashes in the logs
of an intake and hashing flow, and the error-report scrubbing of core.sentry."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from core.logs import JsonFormatter
from core.requestid import RequestIdFilter, request_id_var
from core.sentry import FILTERED, scrub_event
from moderation.media.synthetic import synthetic_jpeg
from moderation.models import Media
from tests.core.test_settings import _load_settings
from tests.moderation.factories import SUBJECT_DETAILS
from tests.worker import WorkerProcess, start_worker, wait_for

__all__ = ["start_worker"]  # the fixture, imported for pytest

REQUEST_ID = "it-0123456789abcdef"


def _format(record: logging.LogRecord) -> dict[str, Any]:
    RequestIdFilter().filter(record)
    return json.loads(JsonFormatter().format(record))


class JsonFormatterTests:
    def test_a_line_is_one_json_object_with_the_context_fields(self) -> None:
        token = request_id_var.set("rid-json-000001")
        try:
            record = logging.LogRecord(
                "moderation.x", logging.WARNING, __file__, 1, "media %s failed", (42,), None
            )
            line = _format(record)
        finally:
            request_id_var.reset(token)
        assert line["message"] == "media 42 failed"
        assert (line["level"], line["logger"], line["request_id"]) == (
            "WARNING",
            "moderation.x",
            "rid-json-000001",
        )
        assert line["time"].endswith("+00:00") and "task_id" not in line

    def test_extra_attributes_are_not_copied_into_the_line(self) -> None:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
        record.subject_email = "sam@example.org"  # as `extra=` would set it
        assert "sam@example.org" not in JsonFormatter().format(record)

    def test_a_traceback_stays_inside_the_one_line(self) -> None:
        try:
            raise ValueError("boom")
        except ValueError:
            record = logging.LogRecord("x", logging.ERROR, __file__, 1, "m", None, sys.exc_info())
        text = JsonFormatter().format(record)
        assert "\n" not in text and "ValueError: boom" in json.loads(text)["exception"]


class SentryScrubTests:
    def test_bodies_cookies_queries_auth_headers_user_and_frame_variables_are_removed(
        self,
    ) -> None:
        event = {
            "request": {
                "url": "https://safeguard.example/m/raw_lookup",
                "query_string": "signal_type=pdq&signal=" + "f" * 64,
                "data": {"subject_username": "sam_example"},
                "cookies": {"sessionid": "abc"},
                "headers": {
                    "Authorization": "Token secret-key",
                    "Cookie": "sessionid=abc",
                    "X-CSRFToken": "t",
                    "User-Agent": "pytest",
                },
                "env": {"REMOTE_ADDR": "2001:db8::7"},
            },
            "user": {"ip_address": "2001:db8::7", "username": "mod1"},
            "exception": {
                "values": [{"stacktrace": {"frames": [{"function": "f", "vars": {"pdq": "f"}}]}}]
            },
        }
        scrubbed = scrub_event(event, {})
        request = scrubbed["request"]
        assert request["data"] == request["cookies"] == request["query_string"] == FILTERED
        assert request["headers"] == {
            "Authorization": FILTERED,
            "Cookie": FILTERED,
            "X-CSRFToken": FILTERED,
            "User-Agent": "pytest",
        }
        assert "REMOTE_ADDR" not in request["env"] and "user" not in scrubbed
        assert "vars" not in scrubbed["exception"]["values"][0]["stacktrace"]["frames"][0]

    def test_sentry_is_started_without_personal_data_only_when_configured(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        sentry_sdk = pytest.importorskip("sentry_sdk")
        from core.sentry import sentry_init

        seen: dict[str, Any] = {}
        monkeypatch.setattr(sentry_sdk, "init", lambda **kw: seen.update(kw))
        sentry_init(dsn="https://key@errors.example/1", environment="test")
        assert seen["send_default_pii"] is False
        assert seen["max_request_body_size"] == "never"
        assert seen["include_local_variables"] is False
        assert seen["before_send"] is scrub_event


@pytest.fixture
def json_capture() -> Iterator[io.StringIO]:
    """Root-logger output of this process in the JSON format, at DEBUG: stricter than
    production's INFO (SQL stays out: settings.LOGGING keeps django.db.backends at WARNING)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(previous)


@pytest.mark.worker
@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class StructuredLogFlowTests:
    def test_an_intake_and_its_hashing_log_the_request_id_and_no_personal_data_or_hashes(
        self,
        start_worker: Callable[..., WorkerProcess],
        platform_client: APIClient,
        json_capture: io.StringIO,
    ) -> None:
        worker = start_worker(LOG_FORMAT="json")
        data = synthetic_jpeg(31, 320, 240)
        response = platform_client.post(
            "/api/v1/items",
            {
                "source": "acme",
                "external_id": "post-log-1",
                "kind": "image",
                "media": SimpleUploadedFile("holiday-sam.jpg", data),
                "text": "synthetic message text",
                **{k: v for k, v in SUBJECT_DETAILS.items() if k != "subject_linked_accounts"},
            },
            format="multipart",
            HTTP_X_REQUEST_ID=REQUEST_ID,
        )
        assert response.status_code == 201, response.content
        assert response["X-Request-ID"] == REQUEST_ID
        wait_for(
            lambda: Media.objects.filter(hash_status="done").exists(),
            message=f"hashing by the worker\n{worker.output()}",
        )
        media = Media.objects.get()
        worker.stop()  # flushes its log
        output = worker.output()

        # 1. The worker logs JSON, and its hashing task's lines carry the request's id.
        lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
        assert lines, output
        hashing = [line for line in lines if line.get("task_name") == "moderation.hash_media_batch"]
        assert hashing, output
        assert {line["request_id"] for line in hashing} == {REQUEST_ID}
        assert all(line["task_id"] for line in hashing)

        # 2. Neither side logged a hash of the content or anything about the reported user.
        secrets = [
            media.sha256,
            media.md5,
            media.sha1,
            media.pdq,
            media.phash,
            media.dhash,
            "holiday-sam",
            "synthetic message text",
            *(str(v) for k, v in SUBJECT_DETAILS.items() if k != "subject_linked_accounts"),
        ]
        secrets = [s for s in secrets if s and s not in ("GB",)]
        web = json_capture.getvalue()
        # The web side logged during the request (at least the access line, by URL pattern).
        web_lines = [json.loads(line) for line in web.splitlines()]
        assert any(
            line["request_id"] == REQUEST_ID and line["logger"] == "core.metrics"
            for line in web_lines
        ), web
        for text, side in ((output, "worker"), (web, "web")):
            leaked = [s for s in secrets if s.lower() in text.lower()]
            assert leaked == [], f"{side} log holds {leaked}"


class LoggingSettingsTests:
    def test_an_unknown_log_format_is_refused_at_start_up(self) -> None:
        result = _load_settings({"DEBUG": "true", "LOG_FORMAT": "xml"})
        assert result.returncode != 0 and "LOG_FORMAT" in result.stderr

    def test_a_sentry_dsn_that_is_not_a_url_is_refused_at_start_up(self) -> None:
        result = _load_settings({"DEBUG": "true", "SENTRY_DSN": "not a url"})
        assert result.returncode != 0 and "SENTRY_DSN" in result.stderr

    def test_json_logs_are_configured_from_the_environment(self) -> None:
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                "import django, logging; django.setup(); "
                "logging.getLogger('safeguard.check').warning('media %s failed', 7)",
            ],
            cwd=Path(__file__).resolve().parents[2],
            env={**_clean_env(), "DEBUG": "true", "LOG_FORMAT": "json"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
        line = next(x for x in lines if x["logger"] == "safeguard.check")
        assert line["message"] == "media 7 failed" and line["request_id"] == "-"


def _clean_env() -> dict[str, str]:
    import os

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "DEBUG", "SECRET_KEY", "CELERY_BROKER_URL"}
    }
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    env["SAFEGUARD_VAR_DIR"] = str(Path(__file__).resolve().parents[2] / "var" / "test-settings")
    return env
