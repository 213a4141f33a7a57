"""Referrals to police, NCA/CEOP, IWF and NCMEC, transparency reports, QA and compliance pages.

Imports point one way, with no cycles (not even inside function bodies):

    models ← selectors ← services (packets, builder, transparency, qa, hooks) ← views, api, tasks

Services enqueue work by task name through `core.enqueue.enqueue_on_commit` and never import
`reports.tasks`; `ReportsConfig.ready()` imports the tasks and registers the moderation hooks.
"""
