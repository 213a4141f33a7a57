"""Console pages of the reports app, one module per area.

- `packets`: referral packet pages (`reports:` URL names).
- `compliance`: compliance, operations, transparency and QA pages (`compliance:` URL names).

Views may import models, selectors and services; nothing imports views except the URL confs.
"""
