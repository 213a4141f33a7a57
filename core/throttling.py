"""Per-token API rate limits: each token (or session user) gets its own bucket. Requests
without credentials are limited earlier, per client address (core.api_guard).

A bucket is a fixed window that opens with its first request: one counter in the shared cache,
incremented by each request and expiring ``period`` seconds after the window opened. On Redis
that is one round trip (a script: INCR, and EXPIRE when the counter is new) — DRF's
SimpleRateThrottle instead reads, unpickles, rewrites and pickles the list of the bucket's
request times on every request (two round trips and a list as long as the rate;
benchmarks/HMA.md). A window that opens at its first request, not at a clock boundary, cannot
be straddled by a burst: N+1 requests within one period always meet one 429. Across two
windows a client can at most send 2N in just over one period, which is the usual price of
a fixed window. ``rate_hit`` is shared by the DRF throttle and the HMA lookup fast path
(hma.fastpath), so both count against the same bucket.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError
from redis.exceptions import ResponseError as RedisResponseError
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from .clientip import client_ip
from .models import ApiToken

# KEYS[1] the counter, ARGV[1] the period in seconds → {count, seconds until the window ends}.
# Atomic on the server: the counter can never be left without its expiry (which a separate
# SET NX … EX then INCR could, if the key expired in between: a bucket locked for good).
_HIT_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
"""
# One client and registered script per connection pool: Django's RedisCache builds a new
# redis.Redis per call, which cost more CPU than the round trip (benchmarks/HMA.md). A client
# over a pool is safe to share between threads.
_scripts: dict[int, Any] = {}
# The EVALSHA of a bucket as sent on the wire, by (script sha, key, period): a bucket is one
# token's, so a busy process sends the same few commands again and again. Bounded.
_packed: dict[tuple[str, str, int], Any] = {}
_PACKED_MAX = 4096


def parse_rate(rate: str) -> tuple[int, int]:
    """``"600/min"`` → (600, 60), as settings validate it."""
    count, period = rate.split("/")
    return int(count), {"s": 1, "m": 60, "h": 3600, "d": 86400}[period[0]]


def _redis_hit(backend: RedisCache, key: str, period: int) -> tuple[int, int]:
    pool = backend._cache._get_connection_pool(write=True)
    script = _scripts.get(id(pool))
    if script is None:
        client = backend._cache.get_client(key, write=True)
        script = _scripts[id(pool)] = client.register_script(_HIT_SCRIPT)
    reply = _evalsha(pool, script.sha, key, period)
    if reply is None:
        # Through redis-py's command layer: it loads the script if the server lost it
        # (restart, SCRIPT FLUSH) and reconnects and retries on a connection error.
        reply = script(keys=[key], args=[period])
    count, ttl = reply
    return int(count), int(ttl)


def _evalsha(pool: Any, sha: str, key: str, period: int) -> Any:
    """The script's reply over a pooled connection, or None if this did not get one (the
    script is not loaded, the connection failed): the caller then goes through redis-py.

    Why: redis-py's command layer (argument packing, retry wrapper, response callbacks,
    observability hooks) cost twice the CPU of the round trip itself on every request of
    every API route (benchmarks/HMA.md). The pool, its connections and their parser are
    redis-py's own. A connection that failed is disconnected before it goes back to the pool;
    if it failed after Redis ran the script, the retry counts the request twice, as
    redis-py's own retry would."""
    conn = pool.get_connection()
    try:
        packed = _packed.get((sha, key, period))
        if packed is None:
            if len(_packed) >= _PACKED_MAX:
                _packed.clear()
            packed = _packed[(sha, key, period)] = conn.pack_command("EVALSHA", sha, 1, key, period)
        conn.send_packed_command(packed)
        return conn.read_response()
    except RedisResponseError:  # NOSCRIPT: the connection is fine, the script is not there
        return None
    except (RedisError, OSError):
        conn.disconnect()
        return None
    except BaseException:
        conn.disconnect()  # never back to the pool with a reply half read
        raise
    finally:
        pool.release(conn)


def _cache_hit(key: str, period: int) -> tuple[int, int]:
    """Any other cache (the embedded default's local memory): add then incr; the window's
    end is kept beside the counter."""
    now = int(time.time())
    cache.add(key, 0, timeout=period)
    cache.add(f"{key}:ends", now + period, timeout=period)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=period)
        cache.set(f"{key}:ends", now + period, timeout=period)
        count = 1
    return count, max(1, int(cache.get(f"{key}:ends", now + period)) - now)


def rate_hit(bucket: str, rate: str | None = None) -> int | None:
    """Count one request in ``bucket`` against ``rate`` (default SAFEGUARD_API_RATE): None if
    it is allowed, else the seconds until the bucket's window ends (Retry-After)."""
    allowed, period = parse_rate(rate or settings.SAFEGUARD_API_RATE)
    key = f"{bucket}:window"
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        count, ttl = _redis_hit(backend, backend.make_and_validate_key(key), period)
    else:
        count, ttl = _cache_hit(key, period)
    return None if count <= allowed else max(1, ttl)


def token_bucket(token_pk: int) -> str:
    """The bucket of one API token (shared by every API route)."""
    return f"throttle:{settings.SAFEGUARD_THROTTLE_NAMESPACE}:token:{token_pk}"


class TokenRateThrottle(SimpleRateThrottle):
    scope = "token"

    def get_rate(self) -> str:
        # Read at request time, so the rate is configurable (and testable) without a restart.
        return settings.SAFEGUARD_API_RATE

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if isinstance(request.auth, ApiToken):
            return token_bucket(request.auth.pk)
        if request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return f"throttle:{settings.SAFEGUARD_THROTTLE_NAMESPACE}:{ident}"

    def get_ident(self, request: Request) -> str:
        return client_ip(request) or "unknown"

    def allow_request(self, request: Request, view: Any) -> bool:
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        self._wait = rate_hit(key, self.get_rate())
        return self._wait is None

    def wait(self) -> float | None:
        return getattr(self, "_wait", None)
