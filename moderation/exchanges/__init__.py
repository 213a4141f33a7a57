"""Hash exchanges: hash lists fed by hash-sharing programmes through python-threatexchange.

The library (Meta's, the one HMA is built on) talks to each programme and checkpoints its
progress; this package stores what it fetches in Safeguard's hash lists, with provenance.

- ``errors``: the refusals (configuration) and the fetch outcomes (malformed page, source
  unavailable, source refused).
- ``credentials``: credentials encrypted at rest (Fernet, key from SAFEGUARD_EXCHANGE_KEY),
  write-only; redaction of secrets from messages and from the library's logs.
- ``programmes``: the adapter over the library, one module per programme (NCMEC, StopNCII,
  ThreatExchange, Tech Against Terrorism): open its SignalExchangeAPI pointed at its base URL,
  turn its FetchDeltas into records, store its checkpoints as JSON, send feedback.
- ``configure``: ``exchange_create``, ``exchange_update``, ``exchange_fetch_request``.
- ``fetch``: ``exchanges_due`` (beat), ``exchange_fetch`` — incremental, page by page, each page
  applied in one transaction through the hash-list upsert and withdrawal of
  ``moderation.services.hashlists``, the checkpoint saved with it.
- ``feedback``: ``exchange_feedback_export`` — reviewers' verdicts sent back (StopNCII).
- ``forms``: the console's form.
"""
