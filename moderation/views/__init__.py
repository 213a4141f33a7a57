"""Console pages, one module per page family: home, queue, cases, escalations, rules,
hash_lists, exposure.

Views are typed functions with decorator stacks: they read through `moderation.selectors`,
write through `moderation.services` and `moderation.rules.services`, and let refusals
(`core.errors.DomainError`) propagate to the decorators of `core.pages`. A case the user may
not see is a 404, never a 403.

May import: models, selectors, forms, services, rules.services, forces, core, principles.
"""
