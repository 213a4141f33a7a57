"""The one chokepoint for outbound HTTP (webhooks, notifications). Tests patch `send`."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class OutboundResponse:
    status: int
    body: str


class OutboundError(Exception):
    """Network failure or non-2xx answer; `retryable` says whether trying again may help."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = True):
        super().__init__(message)
        self.status = status
        self.retryable = retryable


def send(
    url: str, body: dict[str, Any], headers: dict[str, str], timeout: float = 10.0
) -> OutboundResponse:
    """POST JSON; raise OutboundError for failures. Never called inside a DB transaction."""
    data = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    request = urllib.request.Request(  # noqa: S310 — URL comes from admin configuration
        url,
        data=data,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "Safeguard/1", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return OutboundResponse(response.status, response.read(65536).decode(errors="replace"))
    except urllib.error.HTTPError as exc:
        # 4xx other than 408/429 won't succeed on retry; 5xx might.
        retryable = exc.code >= 500 or exc.code in (408, 429)
        raise OutboundError(f"HTTP {exc.code}", status=exc.code, retryable=retryable) from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise OutboundError(f"network error: {exc}") from None
