"""The moderation API (DRF), one module per resource with its serializers beside it: items,
reports, cases, escalation_rules, hash_lists. One APIView per operation, thin: validate input,
call one service, serialize. Refusals (`core.errors.DomainError`) propagate to the one
exception handler in `core.api`; nothing here translates them.

May import: models, selectors, permissions, services, rules, core, principles.
"""
