"""Moderation: intake, evidence and hashing, hash lists and matching, cases and the queue,
review and decisions, escalation rules, escalations and the 999 path, retention.

The map (docs/ARCHITECTURE.md has the whole of it):
- `models`, `selectors` (reads), `hooks` (extension points for later apps), `permissions`,
  `forms`, `forces` (reference data), `admin`, `urls`, `api_urls`;
- `media/` (decode, validate, hash files) and `matching/` (hash indexes) — pure libraries;
- `services/` (workflows that write, one module per concept), `rules/` (escalation rules);
- `tasks/`, `views/`, `api/` — thin entry points; `sql/` — PostgreSQL the migrations install.

Imports point one way: models ← selectors ← services ← views, API and task bodies.
This app may import `core` and `principles`, never `reports` (reports plugs in through `hooks`).
"""
