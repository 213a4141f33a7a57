"""Media files as evidence: sniff and validate uploads (bombs, truncation, mislabelled
types), compute digests and perceptual hashes from one decode, make synthetic test images.

A library: imports no project module except `core.errors`; never the ORM.
"""
