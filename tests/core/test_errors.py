from __future__ import annotations

from typing import Any

from django.contrib.messages import get_messages
from django.contrib.messages.storage.fallback import FallbackStorage
from django.contrib.sessions.backends.signed_cookies import SessionStore
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from rest_framework.exceptions import NotFound

from core.api import exception_handler
from core.errors import Conflict, DomainError
from core.pages import refusal_as_json, refusal_redirects_to
from moderation.media.validation import MediaRejected


class _Refused(DomainError):
    pass


class DomainErrorTests:
    def test_a_refusal_is_a_validation_error_on_its_field_by_default(self) -> None:
        assert _Refused("Choose a category.").api_body() == {
            "code": "invalid",
            "message": "The request is invalid; see fields.",
            "fields": {"detail": "Choose a category."},
        }
        assert _Refused("Too big.", field="file").api_body()["fields"] == {"file": "Too big."}
        assert _Refused("x", fields={"rule": ["a", "b"]}).api_body()["fields"] == {
            "rule": ["a", "b"]
        }

    def test_a_conflict_is_a_409_with_its_message(self) -> None:
        exc = Conflict("You don't hold this case.")
        assert exc.status == 409
        assert exc.api_body() == {"code": "conflict", "message": "You don't hold this case."}

    def test_rejected_media_keeps_its_code_and_an_oversized_file_is_a_413(self) -> None:
        too_large = MediaRejected("too_large", "The file is larger than the limit.")
        assert too_large.status == 413
        assert too_large.api_body() == {
            "code": "too_large",
            "message": "The file is larger than the limit.",
        }
        assert MediaRejected("truncated", "Cut short.").status == 400


class ApiExceptionHandlerTests:
    def test_it_renders_every_refusal_in_the_one_error_shape(self) -> None:
        response = exception_handler(Conflict("Taken."), {})
        assert response is not None and response.status_code == 409
        assert response.data == {"error": {"code": "conflict", "message": "Taken."}}

    def test_other_api_errors_keep_their_shape(self) -> None:
        response = exception_handler(NotFound(), {})
        assert response is not None and response.status_code == 404
        assert response.data["error"]["code"] == "not_found"


def _request(method: str = "post") -> HttpRequest:
    request = getattr(RequestFactory(), method)("/somewhere")
    request.session = SessionStore()
    request._messages = FallbackStorage(request)  # type: ignore[attr-defined]
    return request


class PageRefusalTests:
    def test_a_form_post_shows_the_refusal_and_redirects_where_it_can_be_acted_on(self) -> None:
        @refusal_redirects_to("moderation:case", "pk")
        def view(request: HttpRequest, pk: int) -> HttpResponse:
            raise _Refused("Write a rationale.")

        request = _request()
        response = view(request, pk=7)
        assert response.status_code == 302 and response["Location"] == "/cases/7/"
        assert [str(m) for m in get_messages(request)] == ["Write a rationale."]

    def test_a_fetch_endpoint_answers_json_with_the_refusal_status(self) -> None:
        @refusal_as_json
        def view(request: HttpRequest) -> HttpResponse:
            raise Conflict("You no longer hold this case.")

        response: Any = view(_request())
        assert response.status_code == 409
        assert response.content == b'{"error": "You no longer hold this case."}'

    def test_what_is_not_a_refusal_propagates(self) -> None:
        @refusal_as_json
        def view(request: HttpRequest) -> HttpResponse:
            raise ValueError("a bug")

        try:
            view(_request())
        except ValueError:
            pass
        else:  # pragma: no cover
            raise AssertionError("a bug must not be shown as a refusal")
