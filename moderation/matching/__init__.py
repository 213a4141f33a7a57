"""Hash lists as match indexes: the exact Hamming index (multi-index hashing) and the
per-list banks that build, share (memory-mapped) and query it.

Imports `moderation.models` (to load list contents) and nothing above it.
"""
