"""JSON log lines (`LOG_FORMAT=json`), one object per line, for log shippers.

A small formatter rather than python-json-logger: it writes a fixed set of fields and never
copies arbitrary record attributes into the output, so what reaches the logs is what this file
names — time, level, logger, message, request id, task id and name, the process, and a
formatted traceback. The message itself is the code's own: the project logs ids, never
personal data or hashes of content (tests/core/test_logging.py scans an intake and hashing
flow's output for them). Imports nothing from the project.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

# LogRecord attributes copied when present (set by core.requestid.RequestIdFilter).
_CONTEXT_FIELDS = ("request_id", "task_id", "task_name")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in _CONTEXT_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        entry["process"] = record.process
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # default=str: a message argument that is not JSON (a Path, a Decimal) still logs.
        return json.dumps(entry, ensure_ascii=False, default=str)
