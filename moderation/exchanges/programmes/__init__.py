"""The adapter over python-threatexchange: one `Programme` per hash-sharing programme.

What Safeguard uses of the library (threatexchange 1.2.17), for each programme:
- its `SignalExchangeAPI` and `fetch_iter(types, checkpoint)`, which yields `FetchDelta`s
  (updates keyed the programme's way, plus the checkpoint to resume after them) using the
  library's own paging, flow control (NCMEC's time-window probing) and HTTP retries
  (urllib3 `Retry` on 429/5xx, honouring Retry-After). The API is built from credentials kept
  in the database rather than discovered from the environment (`for_collab`'s way) and pointed
  at a base URL: StopNCII and ThreatExchange take one natively; NCMEC's client picks its URL
  from a fixed enum of NCMEC environments and Tech Against Terrorism's from a class constant,
  so each gets a small subclass that takes the URL. Tests point all four at a local fake;
- its checkpoint dataclasses, stored as JSON (`dataclasses.asdict`, back through `dacite`, a
  dependency of the library), `is_stale()` and `get_progress_timestamp()`;
- its StopNCII client's `submit_feedbacks` for verdicts sent back.

Deltas become `ExchangeRecord`s here (remote id, hashes by Safeguard algorithm, labels,
category, deleted), so the fetch service knows nothing of any programme.

Where 1.2.17 can't be used as is, the fix is here beside its reason: StopNCII deletions (the
library compares the hash *value* with Withdrawn/Deleted, so none is ever seen), StopNCII
malformed records (the library logs and drops them: a half-applied page), ThreatExchange
(requests without a timeout; an empty page trips an assertion).
"""

from __future__ import annotations

from functools import cache

from ..errors import ExchangeError
from .base import ExchangeRecord, FeedbackItem, Programme, clean_base_url


@cache
def programmes() -> dict[str, Programme]:
    """Every programme, by exchange kind.

    Imported on first use: the library's programme modules load its PDQ index (faiss) and
    more, about 40 MB and half a second, which web and worker processes that never touch an
    exchange need not pay."""
    from .ncmec import NCMEC
    from .stopncii import StopNCII
    from .tat import TechAgainstTerrorism
    from .threatexchange import ThreatExchange

    return {p.kind: p for p in (NCMEC(), StopNCII(), ThreatExchange(), TechAgainstTerrorism())}


def programme_for(kind: str) -> Programme:
    try:
        return programmes()[kind]
    except KeyError:
        raise ExchangeError(f"Unknown exchange kind {kind!r}.", field="kind") from None


__all__ = [
    "ExchangeRecord",
    "FeedbackItem",
    "Programme",
    "clean_base_url",
    "programme_for",
    "programmes",
]
