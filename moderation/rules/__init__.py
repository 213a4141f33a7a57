"""Escalation rules: admins write policy as data; the system validates and enforces it.

A rule has conditions (all must hold) and actions. Conditions are `{"field", "op", "value"}`
over a case's items, flags, matches and subject; actions are `{"type", ...params}`.
Rules run after intake, after hashing and matching, and after each decision, in order. Each
rule applies at most once per case and rule version (a `RuleApplication` row), so re-running is
safe. A rule that fails at run time is disabled and reported; it never blocks intake.

- `validation`: what a valid rule is, in words an admin can act on (reads reference data only).
- `engine`: what a case looks like to a rule, and whether a rule matches (reads, no writes).
- `actions`: the built-in actions, applied to a case (writes through the services).
- `services`: save a rule, apply the rules to a case, preview a rule, enqueue the rules.

Imports point inward: services → actions → engine → validation → models. `actions` may call
`moderation.services` (escalations, notifications by task name); nothing here imports views,
the API or task modules.
"""
