"""Moderation workflows that write, one module per concept, named `<entity>_<action>`.

Each function takes keyword-only arguments and an explicit actor, changes state in one
transaction with its audit event, and enqueues follow-up work with `core.enqueue` after commit.

May import: `moderation.models`, `moderation.selectors`, `moderation.hooks`, `moderation.media`,
`moderation.matching`, `moderation.rules` (validation and engine), other service modules of
this package, `core`, `principles`. Never views, the API, or task modules (tasks are named).
"""
