"""Extension points that let later apps plug into moderation without an upward import.

`reports` registers the `draft_referral` rule action and the follow-up referral after a 999
call in its AppConfig.ready(); dependencies keep pointing one way (reports → moderation).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# name -> (validate(params) -> list of error strings, apply(case, params, actor, rule) -> str)
RULE_ACTIONS: dict[str, tuple[Callable[[dict[str, Any]], list[str]], Callable[..., str]]] = {}
# name -> describe() -> {"label": str, "params": [{"name", "label", "kind", "choices", ...}]}:
# what the console's rule builder offers for a registered action's parameters (e.g. reports'
# enabled destinations for draft_referral). Read at page time, so new choices show at once.
RULE_ACTION_DESCRIPTIONS: dict[str, Callable[[], dict[str, Any]]] = {}
# Called after a 999 call is recorded on an escalation: (escalation, actor) -> None
CALL_RECORDED: list[Callable[..., None]] = []


def register_rule_action(
    name: str,
    *,
    validate: Callable[[dict[str, Any]], list[str]],
    apply: Callable[..., str],
    describe: Callable[[], dict[str, Any]] | None = None,
) -> None:
    RULE_ACTIONS[name] = (validate, apply)
    if describe is not None:
        RULE_ACTION_DESCRIPTIONS[name] = describe


def on_call_recorded(handler: Callable[..., None]) -> Callable[..., None]:
    CALL_RECORDED.append(handler)
    return handler
