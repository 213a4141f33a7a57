"""Request ids (core.requestid): taken or made per request, echoed, stamped on log records and
on the messages of tasks a request sends. The real worker's side: tests/core/test_logging.py."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest
from django.test import Client

from core import requestid
from core.requestid import (
    HEADER,
    TASK_HEADER,
    RequestIdFilter,
    on_before_task_publish,
    on_task_postrun,
    on_task_prerun,
    request_id_var,
    sane_request_id,
)


def _record() -> logging.LogRecord:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "message", None, None)
    RequestIdFilter().filter(record)
    return record


class SaneRequestIdTests:
    @pytest.mark.parametrize(
        "incoming",
        [
            "0f8fad5b-d9cb-469f-a165-70867728950e",
            "7f3a9c0e2b4d4e6f8a1b3c5d7e9f0a2b",
            "req_01HZX3K9Q2.worker-7",
        ],
    )
    def test_it_accepts_what_load_balancers_send(self, incoming: str) -> None:
        assert sane_request_id(incoming) == incoming

    @pytest.mark.parametrize(
        "incoming",
        [
            "",
            "short",
            "x" * 65,
            "abc12345\nINFO forged log line",
            "sam@example.org-request",
            "a request id with spaces",
            "-starts-with-a-dash",
            "<script>alert(1)</script>",
        ],
    )
    def test_it_refuses_what_is_not_an_id(self, incoming: str) -> None:
        assert sane_request_id(incoming) is None


@pytest.mark.django_db
class RequestIdMiddlewareTests:
    def test_an_incoming_id_is_kept_and_echoed(self) -> None:
        response = Client().get("/healthz", HTTP_X_REQUEST_ID="lb-0123456789abcdef")
        assert response[HEADER] == "lb-0123456789abcdef"

    def test_a_missing_or_insane_id_is_replaced_by_a_new_one(self) -> None:
        first = Client().get("/healthz")[HEADER]
        second = Client().get("/healthz", HTTP_X_REQUEST_ID="bad\r\nid")[HEADER]
        assert len(first) == 32 and len(second) == 32 and first != second
        assert "bad" not in second

    def test_every_response_carries_it_refusals_too(self) -> None:
        assert Client().get("/queue/")[HEADER]  # a login redirect
        assert Client().get("/api/v1/cases/1")[HEADER]  # a 401
        assert Client().get("/no/such/page/")[HEADER]

    def test_log_records_written_during_the_request_carry_it(
        self, caplog: pytest.LogCaptureFixture, settings: Any
    ) -> None:
        settings.DEBUG = False
        caplog.handler.addFilter(RequestIdFilter())
        with caplog.at_level(logging.WARNING, logger="django.request"):
            Client().get("/no/such/page/", HTTP_X_REQUEST_ID="rid-for-the-404-log")
        ids = {getattr(r, "request_id", None) for r in caplog.records if r.name == "django.request"}
        assert ids == {"rid-for-the-404-log"}
        # …and the context is cleared after the response.
        assert request_id_var.get() is None


class RequestIdFilterTests:
    def test_outside_a_request_the_id_is_a_dash(self) -> None:
        record = _record()
        assert record.request_id == "-" and not hasattr(record, "task_id")

    def test_inside_a_request_the_id_is_the_requests(self) -> None:
        token = request_id_var.set("rid-inside-request")
        try:
            assert _record().request_id == "rid-inside-request"
        finally:
            request_id_var.reset(token)


class TaskPropagationTests:
    def test_a_published_task_carries_the_current_id(self) -> None:
        headers: dict[str, Any] = {}
        on_before_task_publish(headers=headers)
        assert TASK_HEADER not in headers  # nothing current, nothing stamped
        token = request_id_var.set("rid-publishing-1")
        try:
            on_before_task_publish(headers=headers)
        finally:
            request_id_var.reset(token)
        assert headers[TASK_HEADER] == "rid-publishing-1"

    def test_a_task_runs_under_its_messages_id_and_restores_the_context(self) -> None:
        task = SimpleNamespace(
            name="demo.task", request=SimpleNamespace(**{TASK_HEADER: "rid-9876543210"})
        )
        on_task_prerun(task_id="t-1", task=task)
        record = _record()
        assert (record.request_id, record.task_id, record.task_name) == (
            "rid-9876543210",
            "t-1",
            "demo.task",
        )
        on_task_postrun(task_id="t-1")
        assert request_id_var.get() is None and not hasattr(_record(), "task_id")
        assert "t-1" not in requestid._task_tokens

    def test_a_task_without_an_id_gets_a_new_one(self) -> None:
        task = SimpleNamespace(name="beat.task", request=SimpleNamespace())
        on_task_prerun(task_id="t-2", task=task)
        try:
            assert len(_record().request_id) == 32
        finally:
            on_task_postrun(task_id="t-2")

    @pytest.mark.django_db
    def test_an_eager_task_keeps_the_request_it_runs_in(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        from celery import shared_task

        seen: list[str | None] = []

        @shared_task(name="tests.requestid.probe")
        def probe() -> None:
            seen.append(request_id_var.get())

        token = request_id_var.set("rid-eager-request")
        try:
            probe.delay()
        finally:
            request_id_var.reset(token)
        assert seen == ["rid-eager-request"]
