"""Synthetic signals and uploads for the HMA tests: seeded random hashes (never a real list's)
and generated images and videos (moderation.media.synthetic)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from moderation.media.synthetic import synthetic_jpeg


def pdq(seed: int) -> str:
    """A uniformly random 256-bit hash (a random hash is far from degenerate)."""
    return np.random.default_rng(seed).integers(0, 256, 32, dtype=np.uint8).tobytes().hex()


def flip(value: str, bits: int, *, seed: int = 0) -> str:
    """``value`` with ``bits`` distinct bits flipped: a hash at exactly that distance."""
    number = int(value, 16)
    width = len(value) * 4
    for bit in np.random.default_rng(seed).choice(width, bits, replace=False):
        number ^= 1 << int(bit)
    return f"{number:0{len(value)}x}"


def md5(seed: int) -> str:
    return hashlib.md5(f"synthetic-{seed}".encode(), usedforsecurity=False).hexdigest()


def vpdq(frames: list[tuple[str, int, float]]) -> str:
    """A vPDQ signal (python-threatexchange's compact features) from (pdq, quality, seconds)."""
    return json.dumps([f"{h},{q},{t:.3f}" for h, q, t in frames])


def jpeg(seed: int = 1, size: tuple[int, int] = (640, 480)) -> bytes:
    return synthetic_jpeg(seed, *size, quality=90)


def upload(field: str, data: bytes, name: str = "upload.bin") -> dict[str, Any]:
    """A multipart body with one file in ``field`` (HMA: the content type)."""
    return {field: SimpleUploadedFile(name, data, content_type="application/octet-stream")}


def create_bank(client: APIClient, name: str, **extra: Any) -> dict[str, Any]:
    response = client.post("/c/banks", {"name": name, **extra}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def add_signals(client: APIClient, bank: str, signals: dict[str, str]) -> dict[str, Any]:
    response = client.post(f"/c/bank/{bank}/signal", signals, format="json")
    assert response.status_code == 200, response.content
    return response.json()
