"""The core app's workflows live in one module per concept: API tokens in `core.tokens`,
people in `core.people`. The token workflows are re-exported here, under the name other apps,
fixtures and scripts have always imported them by."""

from __future__ import annotations

from .tokens import api_token_create, api_token_revoke

__all__ = ["api_token_create", "api_token_revoke"]
