"""Admins' escalation rules pages: list, edit (a form of condition and action rows over the
rule's JSON, with validation errors beside the rows they concern), preview."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from moderation.models import EscalationRule
from moderation.rules.builder import (
    RowErrors,
    rule_builder_schema,
    rule_errors_by_row,
    rule_in_words,
)
from moderation.rules.services import rule_preview, rule_save
from moderation.rules.validation import RuleInvalid


@require_GET
@permission_required("moderation.view_escalationrule", raise_exception=True)
def rule_index(request: HttpRequest) -> HttpResponse:
    schema = rule_builder_schema()
    rules = [
        (rule, *rule_in_words(rule.conditions, rule.actions, schema))
        for rule in EscalationRule.objects.all()
    ]
    return render(request, "moderation/rules.html", {"nav": "rules", "rules": rules})


def _parse_json(raw: str, what: str) -> Any:
    try:
        return json.loads(raw or "[]")
    except json.JSONDecodeError as exc:
        raise RuleInvalid([f"{what} is not valid JSON: {exc.msg} (line {exc.lineno})"]) from None


@require_http_methods(["GET", "POST"])
@permission_required("moderation.change_escalationrule", raise_exception=True)
def rule_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    rule = get_object_or_404(EscalationRule, pk=pk) if pk else None
    data = request.POST if request.method == "POST" else None
    errors: list[str] = []
    row_errors = RowErrors()
    conditions: Any = None
    actions: Any = None
    preview = None
    form = {
        "name": data.get("name", "") if data else (rule.name if rule else ""),
        "order": data.get("order", "100") if data else str(rule.order if rule else 100),
        "enabled": (data.get("enabled") == "on") if data else (rule.enabled if rule else True),
        "description": data.get("description", "") if data else (rule.description if rule else ""),
        "conditions": data.get("conditions", "")
        if data
        else json.dumps(
            rule.conditions if rule else [{"field": "category", "op": "eq", "value": "grooming"}],
            indent=2,
        ),
        "actions": data.get("actions", "")
        if data
        else json.dumps(
            rule.actions if rule else [{"type": "open_escalation", "tier": "lead"}], indent=2
        ),
    }
    if data is not None:
        try:
            conditions = _parse_json(form["conditions"], "Conditions")
            actions = _parse_json(form["actions"], "Actions")
            if not form["name"].strip():
                raise RuleInvalid(["Give the rule a name."])
            try:
                order = int(form["order"])
            except ValueError:
                raise RuleInvalid(["Order must be a whole number."]) from None
            if data.get("preview"):
                preview = rule_preview(conditions=conditions, actions=actions)
            else:
                saved = rule_save(
                    actor=request.user,
                    name=form["name"].strip(),
                    conditions=conditions,
                    actions=actions,
                    order=order,
                    enabled=form["enabled"],
                    description=form["description"],
                    rule=rule,
                )
                messages.success(request, f"Rule {saved.name!r} saved (version {saved.version}).")
                return redirect("moderation:rules")
        except RuleInvalid as exc:
            errors = exc.errors
            row_errors = rule_errors_by_row(errors, conditions, actions)
    return render(
        request,
        "moderation/rule_form.html",
        {
            "nav": "rules",
            "rule": rule,
            "form": form,
            "errors": errors,
            "preview": preview,
            "builder_schema": rule_builder_schema(),
            "row_errors": row_errors.as_json(),
        },
        status=400 if errors else 200,
    )
