"""A local stand-in for NCMEC's CyberTipline ESP API, for tests: /submit, /finish, /retract,
/status on 127.0.0.1 (a random port), in a thread.

It enforces what the real service is documented to enforce (Coop's ncmecReporting.ts: Basic
auth; children of <report> in the XSD's order, else responseCode 4100) plus the rules the
adapter promises: no empty element, at most one <personOrUserReported>, no unknown element.
The element orders come from `reports.ncmec` (NCMEC_ORDER, sourced from NCMEC's XSD); the
checks themselves are written here, independently of `reports.ncmec.report_problems`.
"""

from __future__ import annotations

import base64
import threading
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from xml.sax.saxutils import escape

from reports.ncmec import NCMEC_INCIDENT_TYPES, NCMEC_ORDER, NCMEC_REPEATABLE

VALIDATION_ERROR = "4100"  # NCMEC's code for a report that fails schema validation (Coop)
UNKNOWN_REPORT = "1100"
BASE_PATH = "/ispws"


@dataclass
class Call:
    route: str
    body: bytes
    content_type: str
    authorised: bool


@dataclass
class FakeEsp:
    username: str = "esp-user"
    password: str = "esp-pass"
    # Failure switches: a route → the HTTP status it answers with (a server error), or a route
    # → a non-zero responseCode with a description.
    http_errors: dict[str, int] = field(default_factory=dict)
    refusals: dict[str, tuple[str, str]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    open_reports: dict[str, bytes] = field(default_factory=dict)
    finished: dict[str, bytes] = field(default_factory=dict)
    retracted: set[str] = field(default_factory=set)
    _next_id: int = 4564654
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}{BASE_PATH}"

    def routes(self) -> list[str]:
        return [c.route for c in self.calls]

    def start(self) -> FakeEsp:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return  # keep test output quiet

            def do_GET(self) -> None:
                self._handle(b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self._handle(self.rfile.read(length))

            def _handle(self, body: bytes) -> None:
                status, xml = fake.answer(
                    self.path, body, self.headers.get("Content-Type", ""), self.headers
                )
                data = xml.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # --- What the server answers ------------------------------------------------------------

    def _authorised(self, headers: Any) -> bool:
        expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return headers.get("Authorization", "") == f"Basic {expected}"

    def answer(self, path: str, body: bytes, content_type: str, headers: Any) -> tuple[int, str]:
        route = path.removeprefix(BASE_PATH)
        authorised = self._authorised(headers)
        with self._lock:
            self.calls.append(Call(route, body, content_type, authorised))
        if not authorised:
            return 401, "<html><body>401 Unauthorized</body></html>"
        if route in self.http_errors:
            return self.http_errors[route], "<html><body>Internal Server Error</body></html>"
        if route in self.refusals:
            code, description = self.refusals[route]
            return 200, _response("reportResponse", code, description)
        if route == "/status":
            return 200, _response("reportResponse", "0", "Server is up")
        if route == "/submit":
            return self._submit(body, content_type)
        if route in ("/finish", "/retract"):
            report_id = urllib.parse.parse_qs(body.decode()).get("id", [""])[0]
            if "application/x-www-form-urlencoded" not in content_type:
                return 200, _response("reportResponse", "1000", "Expected a form field id")
            if report_id not in self.open_reports:
                return 200, _response("reportResponse", UNKNOWN_REPORT, "Unknown report id")
            xml = self.open_reports.pop(report_id)
            if route == "/finish":
                self.finished[report_id] = xml
                return 200, (
                    "<reportDoneResponse><responseCode>0</responseCode>"
                    f"<reportId>{report_id}</reportId><files/></reportDoneResponse>"
                )
            self.retracted.add(report_id)
            return 200, _response("reportResponse", "0", "Report retracted", report_id)
        return 404, "<html><body>Not Found</body></html>"

    def _submit(self, body: bytes, content_type: str) -> tuple[int, str]:
        if not content_type.startswith("text/xml"):
            return 200, _response("reportResponse", VALIDATION_ERROR, "Expected text/xml")
        problems = validate_report(body)
        if problems:
            return 200, _response("reportResponse", VALIDATION_ERROR, "; ".join(problems))
        with self._lock:
            report_id = str(self._next_id)
            self._next_id += 1
            self.open_reports[report_id] = body
        return 200, _response("reportResponse", "0", "Success", report_id)


def _response(root: str, code: str, description: str, report_id: str = "") -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><{root}>'
        f"<responseCode>{code}</responseCode>"
        f"<responseDescription>{escape(description)}</responseDescription>"
        + (f"<reportId>{report_id}</reportId>" if report_id else "")
        + f"</{root}>"
    )


def _check(element: ET.Element, problems: list[str]) -> None:
    order = NCMEC_ORDER.get(element.tag)
    if order is None:  # a leaf: text, no children
        if len(element):
            problems.append(f"Unknown structure under <{element.tag}>")
        elif not (element.text or "").strip():
            problems.append(f"Element <{element.tag}> is empty")
        return
    if len(element) == 0:
        problems.append(f"Element <{element.tag}> is empty")
    last = -1
    counts: dict[str, int] = {}
    for child in element:
        if child.tag not in order:
            problems.append(f"Unknown element <{child.tag}> in <{element.tag}>")
            continue
        position = order.index(child.tag)
        if position < last:
            problems.append(f"Element <{child.tag}> is out of order in <{element.tag}>")
        last = max(last, position)
        counts[child.tag] = counts.get(child.tag, 0) + 1
        if counts[child.tag] > 1 and (element.tag, child.tag) not in NCMEC_REPEATABLE:
            problems.append(f"Element <{child.tag}> may occur once in <{element.tag}>")
        _check(child, problems)


def validate_report(body: bytes) -> list[str]:
    """The fake's validation of a /submit body (an empty list: accepted)."""
    if b"<!DOCTYPE" in body.upper():
        return ["DTDs are not accepted"]
    try:
        root = ET.fromstring(body)  # noqa: S314 — test server, no DTD (checked above)
    except ET.ParseError as exc:
        return [f"Malformed XML: {exc}"]
    if root.tag != "report":
        return [f"Root element must be <report>, not <{root.tag}>"]
    problems: list[str] = []
    _check(root, problems)
    if len(root.findall("personOrUserReported")) > 1:
        problems.append("At most one <personOrUserReported> per report")
    for required in ("incidentSummary", "reporter"):
        if root.find(required) is None:
            problems.append(f"Missing <{required}>")
    kind = root.findtext("incidentSummary/incidentType")
    if kind not in NCMEC_INCIDENT_TYPES:
        problems.append(f"Invalid incidentType {kind!r}")
    raw_time = root.findtext("incidentSummary/incidentDateTime") or ""
    try:
        when = datetime.fromisoformat(raw_time)
    except ValueError:
        problems.append("Invalid incidentDateTime")
    else:
        if when.tzinfo is None or when > datetime.now(UTC):
            problems.append("incidentDateTime must be a past time with a time zone")
    return problems
