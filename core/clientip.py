"""The client's IP address, trusting X-Forwarded-For only from configured proxies.

Behind a reverse proxy every request comes from the proxy's address. Taking the first
X-Forwarded-For entry instead would let any client choose its own address (and lock out
someone else's account, or dodge a rate limit). So the header is read from the right, one hop
at a time, only while the hop it came from is a trusted proxy (`SAFEGUARD_TRUSTED_PROXIES`,
addresses or CIDR ranges): the first untrusted address is the client. With no trusted proxies
configured, the header is ignored. Used by django-axes (AXES_CLIENT_IP_CALLABLE) and the API
throttles. Imports nothing from the project.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any

from django.conf import settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(e, strict=False) for e in entries)


def _trusted(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_ip(request: Any) -> str:
    remote = request.META.get("REMOTE_ADDR", "") or ""
    networks = _networks(tuple(settings.SAFEGUARD_TRUSTED_PROXIES))
    if not networks or not _trusted(remote, networks):
        return remote
    hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    for hop in reversed([h for h in hops if h]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return remote  # a malformed header: fall back to the proxy, never to the junk
        if not _trusted(hop, networks):
            return hop
    return remote
