"""Selectors: reads for pages, the API, services and commands; nothing here writes.

- `compliance`: the reporting period and the Interim Code metrics for the console.
- `transparency`: the aggregates of a transparency report, small counts suppressed.
- `packets`: the referral packets a user may see.

May import models (this app's, moderation's, principles') and core; never services, views,
the API or tasks.
"""
