"""A fake hash exchange: one local HTTP server that speaks four programmes' APIs the way
python-threatexchange's clients call them, over synthetic data (random hashes, never a real
list's).

- StopNCII: GET /stopncii/FetchHashes (x-functions-key, Ocp-Apim-Subscription-Key headers;
  startTimestamp, pageSize, nextPageToken), POST /stopncii/SubmitFeedback.
- NCMEC: GET /ncmec/v2/entries (basic auth; from/to, and paging by a `next` path), XML.
- ThreatExchange: GET /tx/<privacy group>/threat_updates/ (access_token, start_time, limit;
  paging by a full `next` URL).
- Tech Against Terrorism: POST /tat/token-auth/tcap/ (username, password → token),
  GET /tat/api/hash-list/v2/all (Bearer; after=<checkpoint>, paging by a query string).

Each programme holds a list of events (an entry's state at a time); a page shows the latest
state of each entry changed in its range, in time order. Tests script faults per programme:
statuses to answer next (429, 5xx with Retry-After), a raw body for the n-th data request
(malformed payloads), a delay per page (to kill a worker mid-fetch). Every request is logged.

Run standalone (benchmarks): `python fake_exchange.py --stopncii-synthetic N --port P`.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import html
import json
import random
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

PAYLOADS = Path(__file__).parent / "payloads"

STOPNCII_KEYS = {
    "subscription_key": "sub-key-0123456789",
    "fetch_function_key": "fetch-key-0123456789",
}
STOPNCII_FEEDBACK_KEY = "feedback-key-0123456789"
NCMEC_CREDENTIALS = {"username": "esp-user", "password": "ncmec-pass-0123456789"}
TX_TOKEN = "1234567890|fakeAppSecretToken0123456789"
TX_GROUP = 4242
TAT_CREDENTIALS = {"username": "tat-user", "password": "tat-pass-0123456789"}
_TAT_TOKEN = "tat-session-token-0123456789"
_NCMEC_DATE = "%Y-%m-%dT%H:%M:%SZ"


def random_hex(rng: random.Random, chars: int) -> str:
    return f"{rng.getrandbits(chars * 4):0{chars}x}"


@dataclass
class Event:
    """An entry's state from time `ts` on (one programme's fields in `data`)."""

    ts: int
    key: str
    data: dict[str, Any]


@dataclass
class Programme:
    events: list[Event] = field(default_factory=list)
    page_size: int = 5
    faults: list[tuple[int, str]] = field(default_factory=list)  # (status, Retry-After)
    raw: dict[int, bytes] = field(default_factory=dict)  # n-th data request → body
    data_requests: int = 0
    recorded: bytes | None = None  # serve this body once, then empty pages

    _cache: tuple[list[Event], list[int]] | None = None

    def add(self, ts: int, key: str, **data: Any) -> None:
        self.events.append(Event(ts, key, data))
        self.events.sort(key=lambda e: (e.ts, e.key))
        self._cache = None

    def latest(self, *, since: float = float("-inf"), until: float = float("inf")) -> list[Event]:
        """The latest event of each entry changed in [since, until), in time order."""
        if until == float("inf"):
            # An entry changed since `since` shows its latest state: one sorted list, cut.
            if self._cache is None:
                last = {event.key: event for event in self.events}
                ordered = sorted(last.values(), key=lambda e: (e.ts, e.key))
                self._cache = (ordered, [e.ts for e in ordered])
            ordered, stamps = self._cache
            return ordered[bisect.bisect_left(stamps, since) :]
        last = {e.key: e for e in self.events if since <= e.ts < until}
        return sorted(last.values(), key=lambda e: (e.ts, e.key))


class FakeExchange:
    """The server; `url(programme)` is the base URL to give an exchange."""

    def __init__(self) -> None:
        self.programmes: dict[str, Programme] = defaultdict(Programme)
        self.requests: list[dict[str, Any]] = []
        self.delay = 0.0
        self.feedback: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"fake": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeExchange:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, programme: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/{programme}"

    def __getitem__(self, programme: str) -> Programme:
        return self.programmes[programme]

    def fail_next(self, programme: str, *statuses: int, retry_after: str = "") -> None:
        self[programme].faults.extend((status, retry_after) for status in statuses)

    def data_requests(self, programme: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["programme"] == programme and r["data"]]


class _Handler(BaseHTTPRequestHandler):
    fake: FakeExchange
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        parsed = urlparse(self.path)
        parts = parsed.path.strip("/").split("/")
        programme, rest = parts[0], "/".join(parts[1:])
        query = {k: v[-1] for k, v in parse_qs(parsed.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        data_request = (programme, method, rest) in {
            ("stopncii", "GET", "FetchHashes"),
            ("ncmec", "GET", "v2/entries"),
            ("tat", "GET", "api/hash-list/v2/all"),
        } or (programme == "tx" and rest.endswith("threat_updates"))
        fake = self.fake
        with fake._lock:
            fake.requests.append(
                {
                    "programme": programme,
                    "method": method,
                    "path": rest,
                    "query": query,
                    "headers": dict(self.headers),
                    "body": body,
                    "data": data_request,
                }
            )
            state = fake[programme]
            fault = state.faults.pop(0) if data_request and state.faults else None
            number = 0
            if data_request and fault is None:
                state.data_requests += 1
                number = state.data_requests
        if fault is not None:
            status, retry_after = fault
            headers = {"Retry-After": retry_after} if retry_after else {}
            return self._send(status, b'{"error": "try later"}', headers=headers)
        if data_request and fake.delay:
            time.sleep(fake.delay)
        if number and number in state.raw:
            return self._send(200, state.raw[number])
        handler = getattr(self, f"_{programme}", None)
        if handler is None:
            return self._send(404, b"{}")
        status, payload, content_type = handler(method, rest, query, body, state)
        self._send(status, payload, content_type=content_type)

    def _send(
        self,
        status: int,
        payload: bytes,
        *,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    # --- StopNCII ------------------------------------------------------------------------

    def _stopncii(
        self, method: str, rest: str, query: dict[str, str], body: bytes, state: Programme
    ) -> tuple[int, bytes, str]:
        if self.headers.get("Ocp-Apim-Subscription-Key") != STOPNCII_KEYS["subscription_key"]:
            return 401, b'{"error": "subscription key"}', "application/json"
        if method == "POST" and rest == "SubmitFeedback":
            if self.headers.get("x-functions-key") != STOPNCII_FEEDBACK_KEY:
                return 401, b'{"error": "function key"}', "application/json"
            self.fake.feedback.extend(json.loads(body)["hashFeedbacks"])
            return 200, b"{}", "application/json"
        if self.headers.get("x-functions-key") != STOPNCII_KEYS["fetch_function_key"]:
            return 401, b'{"error": "function key"}', "application/json"
        if state.recorded is not None:
            body, state.recorded = state.recorded, None
            return 200, body, "application/json"
        start = int(query.get("startTimestamp", "0"))
        size = min(int(query.get("pageSize", "800")), state.page_size)
        offset = int(query.get("nextPageToken") or 0)
        events = state.latest(since=start)
        page = events[offset : offset + size]
        more = offset + size < len(events)
        payload = {
            "count": len(page),
            "nextPageToken": str(offset + size) if more else None,
            "nextSetTimestamp": page[-1].ts if page else start,
            "hasMoreRecords": more,
            "hashRecords": [
                {
                    "lastModtimestamp": e.ts,
                    "signalType": e.data.get("signalType", "ImagePDQ"),
                    "hashValue": e.data["hashValue"],
                    "hashStatus": e.data.get("hashStatus", "Active"),
                    "caseNumbers": {},
                    "CSPFeedbacks": e.data.get("CSPFeedbacks", []),
                }
                for e in page
            ],
        }
        return 200, json.dumps(payload).encode(), "application/json"

    # --- NCMEC ---------------------------------------------------------------------------

    def _ncmec(
        self, method: str, rest: str, query: dict[str, str], body: bytes, state: Programme
    ) -> tuple[int, bytes, str]:
        expected = base64.b64encode(
            f"{NCMEC_CREDENTIALS['username']}:{NCMEC_CREDENTIALS['password']}".encode()
        ).decode()
        if self.headers.get("Authorization") != f"Basic {expected}":
            return 401, b"<error>auth</error>", "application/xml"
        if state.recorded is not None:
            body, state.recorded = state.recorded, None
            return 200, body, "application/xml"
        # The library formats times in local time with a "Z" (hash_api._date_format); read
        # them back the same way.
        since = datetime.strptime(query["from"], _NCMEC_DATE).timestamp()
        until = datetime.strptime(query["to"], _NCMEC_DATE).timestamp()
        start = int(query.get("start") or 0)
        size = int(query.get("size") or state.page_size)
        events = state.latest(since=since, until=until)
        page = events[start : start + size]
        next_ = ""
        if start + size < len(events):
            next_ = "/v2/entries?" + urlencode(
                {
                    "from": query["from"],
                    "to": query["to"],
                    "start": start + size,
                    "size": size,
                    "max": len(events),
                }
            )
        return 200, ncmec_xml(page, next_).encode(), "application/xml"

    # --- ThreatExchange ------------------------------------------------------------------

    def _tx(
        self, method: str, rest: str, query: dict[str, str], body: bytes, state: Programme
    ) -> tuple[int, bytes, str]:
        if query.get("access_token") != TX_TOKEN:
            return 401, b'{"error": {"message": "Invalid OAuth access token"}}', "application/json"
        if rest != f"{TX_GROUP}/threat_updates":
            return 404, b"{}", "application/json"
        if state.recorded is not None:
            body, state.recorded = state.recorded, None
            return 200, body, "application/json"
        start = int(query.get("start_time") or 0)
        size = min(int(query.get("limit") or 100), state.page_size)
        offset = int(query.get("after") or 0)
        events = state.latest(since=start)
        page = events[offset : offset + size]
        payload: dict[str, Any] = {"data": [tx_update(e) for e in page], "paging": {}}
        if offset + size < len(events):
            payload["paging"]["next"] = (
                f"http://127.0.0.1:{self.server.server_port}/tx/{rest}/?"
                + urlencode({**query, "after": offset + size})
            )
        return 200, json.dumps(payload).encode(), "application/json"

    # --- Tech Against Terrorism ----------------------------------------------------------

    def _tat(
        self, method: str, rest: str, query: dict[str, str], body: bytes, state: Programme
    ) -> tuple[int, bytes, str]:
        if method == "POST" and rest == "token-auth/tcap":
            form = {k: v[-1] for k, v in parse_qs(body.decode()).items()}
            if (form.get("username"), form.get("password")) != (
                TAT_CREDENTIALS["username"],
                TAT_CREDENTIALS["password"],
            ):
                return 401, b'{"error": "bad credentials"}', "application/json"
            return 200, json.dumps({"token": _TAT_TOKEN, "user": {}}).encode(), "application/json"
        if self.headers.get("Authorization") != f"Bearer {_TAT_TOKEN}":
            return 401, b'{"error": "token"}', "application/json"
        if state.recorded is not None:
            body, state.recorded = state.recorded, None
            return 200, body, "application/json"
        after = query.get("after") or ""
        after_key = (-1.0, -1)
        if after:
            ts, _, ident = after.partition(",")
            after_key = (float(ts), int(ident))
        offset = int(query.get("offset") or 0)
        size = state.page_size
        events = [e for e in state.latest() if (float(e.ts), int(e.data["id"])) > after_key]
        page = events[offset : offset + size]
        more = offset + size < len(events)
        payload = {
            "count": len(events),
            "next": urlencode({"limit": size, "offset": offset + size}) if more else None,
            "previous": None,
            "checkpoint": f"{page[-1].ts},{page[-1].data['id']}" if page else "",
            "results": [tat_entry(e) for e in page],
        }
        return 200, json.dumps(payload).encode(), "application/json"


def ncmec_xml(events: list[Event], next_: str = "") -> str:
    """A GET /v2/entries response in NCMEC's shape."""
    sections = []
    for kind, tag in (("image", "images"), ("video", "videos")):
        chosen = [e for e in events if e.data.get("type", "image") == kind]
        if not chosen:
            continue
        max_ts = datetime.fromtimestamp(max(e.ts for e in chosen), tz=UTC).strftime(_NCMEC_DATE)
        items = []
        for e in chosen:
            member = f'<member id="{e.data.get("member", 42)}">Example ESP</member>'
            stamp = datetime.fromtimestamp(e.ts, tz=UTC).strftime(_NCMEC_DATE)
            if e.data.get("deleted"):
                name = "deleted" + kind.capitalize()
                items.append(
                    f"<{name}><id>{e.data['id']}</id>{member}<timestamp>{stamp}</timestamp></{name}>"
                )
                continue
            prints = "".join(f"<{k}>{v}</{k}>" for k, v in e.data["fingerprints"].items())
            classification = (
                f"<classification>{e.data['classification']}</classification>"
                if e.data.get("classification")
                else ""
            )
            items.append(
                f"<{kind}><id>{e.data['id']}</id>{member}<timestamp>{stamp}</timestamp>"
                f"{classification}<fingerprints>{prints}</fingerprints></{kind}>"
            )
        sections.append(
            f'<{tag} count="{len(chosen)}" maxTimestamp="{max_ts}">{"".join(items)}</{tag}>'
        )
    paging = f"<paging><next>{html.escape(next_)}</next></paging>" if next_ else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<queryResult xmlns="https://hashsharing.ncmec.org/hashsharing/v2">'
        f"{''.join(sections)}{paging}</queryResult>"
    )


def tx_update(e: Event) -> dict[str, Any]:
    """One /threat_updates record in ThreatExchange's shape."""
    update: dict[str, Any] = {
        "id": str(e.data["id"]),
        "indicator": e.data["indicator"],
        "type": e.data.get("type", "HASH_PDQ"),
        "last_updated": e.ts,
        "should_delete": bool(e.data.get("should_delete")),
    }
    if not update["should_delete"]:
        update["descriptors"] = {
            "data": [
                {
                    "id": str(e.data["id"] * 10),
                    "owner": {"id": str(e.data.get("owner", 99887766))},
                    "status": e.data.get("status", "MALICIOUS"),
                    "tags": e.data.get("tags", []),
                    "reactions": [],
                }
            ]
        }
    return update


def tat_entry(e: Event) -> dict[str, Any]:
    """One hash-list entry in Tech Against Terrorism's shape."""
    return {
        "hash_digest": e.data["hash_digest"],
        "algorithm": e.data.get("algorithm", "PDQ"),
        "ideology": e.data.get("ideology", "far-right"),
        "file_type": e.data.get("file_type", "jpg"),
        "deleted": bool(e.data.get("deleted")),
        "updated_on": float(e.ts),
        "created_on": datetime.fromtimestamp(e.ts, tz=UTC).isoformat(),
        "id": int(e.data["id"]),
    }


_SYNTHETIC_START = 1_700_000_000


def synthetic_event(seed: int, i: int) -> Event:
    """The i-th of a synthetic StopNCII list: a random-looking PDQ value (SHA-256 of the seed
    and index: made up, never a real list's), one second after the previous."""
    value = hashlib.sha256(f"{seed}:{i}".encode()).hexdigest()
    return Event(_SYNTHETIC_START + i, f"pdq:{i}", {"hashValue": value})


def synthetic_stopncii(count: int, *, seed: int = 1) -> Iterator[Event]:
    """`count` synthetic PDQ hashes in StopNCII's shape."""
    for i in range(count):
        yield synthetic_event(seed, i)


class _SyntheticEvents(Sequence[Event]):
    """Events first..count-1 of a synthetic list, made on demand (a million cost no memory)."""

    def __init__(self, seed: int, first: int, count: int) -> None:
        self.seed, self.first, self.count = seed, first, count

    def __len__(self) -> int:
        return max(0, self.count - self.first)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            start, stop, _ = index.indices(len(self))
            return [synthetic_event(self.seed, self.first + i) for i in range(start, stop)]
        return synthetic_event(self.seed, self.first + index)


@dataclass
class SyntheticProgramme(Programme):
    """A programme serving `count` synthetic StopNCII hashes without holding them."""

    seed: int = 1
    count: int = 0

    def latest(self, *, since: float = float("-inf"), until: float = float("inf")) -> Any:
        first = 0 if since == float("-inf") else max(0, int(since) - _SYNTHETIC_START)
        return _SyntheticEvents(self.seed, first, self.count)


def main() -> None:
    """Serve synthetic StopNCII hashes until killed (for benchmarks)."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--stopncii-synthetic", type=int, default=1000)
    parser.add_argument("--page-size", type=int, default=800)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--port-file", required=True)
    args = parser.parse_args()
    fake = FakeExchange()
    fake.programmes["stopncii"] = SyntheticProgramme(
        page_size=args.page_size, seed=args.seed, count=args.stopncii_synthetic
    )
    Path(args.port_file).write_text(str(fake.server.server_port))
    fake.server.serve_forever()


if __name__ == "__main__":
    main()
