// Rule builder: a rule's conditions and actions as rows of pickers over its JSON. The JSON
// textareas ("Advanced: edit JSON") remain the form's fields: every change to a row rewrites
// them, and a valid edit of the JSON redraws the rows. The server validates the JSON as ever;
// its messages come back mapped to rows (rule-builder-errors) and are shown beside them.
// Without this script the page is the JSON form it always was.
(function () {
  "use strict";
  const root = document.getElementById("rule-builder");
  const schemaNode = document.getElementById("rule-builder-schema");
  if (!root || !schemaNode) { return; }
  const schema = JSON.parse(schemaNode.textContent);
  const errorsNode = document.getElementById("rule-builder-errors");
  const serverErrors = errorsNode ? JSON.parse(errorsNode.textContent) : {};
  const areas = { conditions: document.getElementById("conditions"), actions: document.getElementById("actions") };
  const details = document.getElementById("rule-json");
  const notice = document.getElementById("rule-builder-notice");
  const fields = {};
  schema.fields.forEach(function (f) { fields[f.name] = f; });
  const actionTypes = {};
  schema.actions.forEach(function (a) { actionTypes[a.type] = a; });
  const NOUN = { conditions: "Condition", actions: "Action" };
  const model = { conditions: [], actions: [] };
  const problems = { conditions: "", actions: "" };
  let nextId = 1;

  function own(obj, key) { return Object.prototype.hasOwnProperty.call(obj, key); }
  function isObject(v) { return v !== null && typeof v === "object" && !Array.isArray(v); }
  function el(tag, props) {
    const node = document.createElement(tag);
    Object.keys(props || {}).forEach(function (k) {
      if (k === "text") { node.textContent = props[k]; } else { node.setAttribute(k, props[k]); }
    });
    return node;
  }
  function keywords(text) { return text.split(",").map(function (s) { return s.trim(); }).filter(Boolean); }

  // --- Values ------------------------------------------------------------------------------

  function firstChoice(choices) { return choices && choices.length ? choices[0][0] : ""; }

  function defaultValue(field, op) {
    if (field.kind === "set") {
      const first = field.choices ? firstChoice(field.choices) : "";
      if (op === "in") { return first === "" ? [] : [first]; }
      return first;
    }
    if (field.kind === "int") { return field.choices ? firstChoice(field.choices) : (field.min || 0); }
    if (field.kind === "bool") { return true; }
    return [];  // text: keywords
  }

  // Switching between "is" and "is any of" keeps what was chosen.
  function convertValue(field, op, value) {
    if (field.kind !== "set") { return value; }
    if (op === "in") {
      if (Array.isArray(value)) { return value; }
      return value === "" || value === undefined || value === null ? defaultValue(field, op) : [value];
    }
    if (Array.isArray(value)) { return value.length ? value[0] : defaultValue(field, op); }
    return value;
  }

  function defaultParam(param) {
    if (own(param, "default")) { return param.default; }
    return param.choices ? firstChoice(param.choices) : "";
  }

  // --- JSON ⇄ rows -------------------------------------------------------------------------

  function conditionRow(raw) {
    const extra = {};
    Object.keys(raw).forEach(function (k) { if (!["field", "op", "value"].includes(k)) { extra[k] = raw[k]; } });
    return { id: nextId++, field: raw.field, op: raw.op, value: raw.value, extra: extra, errors: [] };
  }

  function actionRow(raw) {
    const spec = actionTypes[raw.type];
    const params = {};
    const extra = {};
    const names = spec.params.map(function (p) { return p.name; });
    Object.keys(raw).forEach(function (k) {
      if (k === "type") { return; }
      if (names.includes(k)) { params[k] = raw[k]; } else { extra[k] = raw[k]; }
    });
    return { id: nextId++, type: raw.type, params: params, extra: extra, errors: [] };
  }

  // The rows for a textarea's JSON, or {problem} when the form can't show it.
  function parse(kind) {
    let data;
    try { data = JSON.parse(areas[kind].value.trim() || "[]"); } catch (e) {
      return { problem: NOUN[kind] + "s: the JSON is not valid yet." };
    }
    if (!Array.isArray(data)) { return { problem: NOUN[kind] + "s: the JSON must be a list." }; }
    const rows = [];
    for (let i = 0; i < data.length; i++) {
      const raw = data[i];
      const where = NOUN[kind] + " " + (i + 1);
      if (kind === "conditions") {
        if (!isObject(raw) || !own(fields, raw.field)) { return { problem: where + " asks about a field the form does not offer." }; }
        if (!fields[raw.field].ops.includes(raw.op)) { return { problem: where + " uses an operator the form does not offer." }; }
        rows.push(conditionRow(raw));
      } else {
        if (!isObject(raw) || !own(actionTypes, raw.type)) { return { problem: where + " is an action the form does not offer." }; }
        rows.push(actionRow(raw));
      }
    }
    return { rows: rows };
  }

  function serialise(kind) {
    return model[kind].map(function (row) {
      if (kind === "conditions") {
        return Object.assign({ field: row.field, op: row.op, value: row.value }, row.extra);
      }
      const out = { type: row.type };
      actionTypes[row.type].params.forEach(function (p) {
        if (own(row.params, p.name) && row.params[p.name] !== undefined) { out[p.name] = row.params[p.name]; }
      });
      return Object.assign(out, row.extra);
    });
  }

  function sync(kind) { areas[kind].value = JSON.stringify(serialise(kind), null, 2); }

  // --- Controls ----------------------------------------------------------------------------

  // A select over [[value, label, group?], …]; a value not among the choices is kept and shown.
  function choiceSelect(choices, current, label, multiple) {
    const select = el("select", { "aria-label": label });
    if (multiple) { select.multiple = true; select.size = Math.min(Math.max(choices.length, 2), 6); }
    const wanted = (multiple ? (Array.isArray(current) ? current : []) : [current]).map(String);
    const groups = {};
    const known = [];
    if (!multiple && (current === undefined || current === null || current === "")) {
      select.append(el("option", { value: "", text: "— choose —" }));
    }
    choices.forEach(function (choice) {
      const option = el("option", { value: String(choice[0]), text: choice[1] });
      option.selected = wanted.includes(String(choice[0]));
      known.push(String(choice[0]));
      if (choice[2]) {
        if (!groups[choice[2]]) { groups[choice[2]] = el("optgroup", { label: choice[2] }); select.append(groups[choice[2]]); }
        groups[choice[2]].append(option);
      } else {
        select.append(option);
      }
    });
    wanted.forEach(function (value) {
      if (value !== "" && value !== "undefined" && value !== "null" && !known.includes(value)) {
        const option = el("option", { value: value, text: value + " (not available)" });
        option.selected = true;
        select.append(option);
      }
    });
    return select;
  }

  // The choice's own value (a number or boolean stays one) for a select's string value.
  function choiceValue(choices, text) {
    for (let i = 0; i < choices.length; i++) { if (String(choices[i][0]) === text) { return choices[i][0]; } }
    return text === "" ? undefined : text;
  }

  function valueControl(row, label, changed) {
    const field = fields[row.field];
    if (field.choices && (field.kind === "set" || field.kind === "int" || field.kind === "bool")) {
      const multiple = field.kind === "set" && row.op === "in";
      const select = choiceSelect(field.choices, row.value, label, multiple);
      select.addEventListener("change", function () {
        row.value = multiple
          ? Array.from(select.selectedOptions).map(function (o) { return choiceValue(field.choices, o.value); })
          : choiceValue(field.choices, select.value);
        changed();
      });
      return select;
    }
    if (field.kind === "int") {
      const input = el("input", { type: "number", step: "1", "aria-label": label });
      input.value = row.value === undefined || row.value === null ? "" : String(row.value);
      input.addEventListener("input", function () { row.value = input.value === "" ? null : Number(input.value); changed(); });
      return input;
    }
    // Free text: one value, or comma-separated values for "is any of" and keywords.
    const list = field.kind === "text" || row.op === "in";
    const input = el("input", { type: "text", "aria-label": label, size: "30" });
    if (list) { input.placeholder = "comma-separated"; }
    input.value = Array.isArray(row.value) ? row.value.join(", ") : (row.value === undefined || row.value === null ? "" : String(row.value));
    input.addEventListener("input", function () { row.value = list ? keywords(input.value) : input.value; changed(); });
    return input;
  }

  function paramControl(row, param, label, changed) {
    if (param.choices) {
      const select = choiceSelect(param.choices, row.params[param.name], label, false);
      select.addEventListener("change", function () { row.params[param.name] = choiceValue(param.choices, select.value); changed(); });
      return select;
    }
    const input = el("input", { type: "text", "aria-label": label, size: "34" });
    if (param.placeholder) { input.placeholder = param.placeholder; }
    input.value = row.params[param.name] === undefined ? "" : String(row.params[param.name]);
    input.addEventListener("input", function () { row.params[param.name] = input.value; changed(); });
    return input;
  }

  function labelled(text, control) {
    const wrap = el("label", { class: "rb-field" });
    wrap.append(el("span", { class: "muted", text: text }), control);
    return wrap;
  }

  // --- Rows --------------------------------------------------------------------------------

  function renderRow(kind, row, index) {
    const noun = NOUN[kind] + " " + (index + 1);
    const item = el("li", { class: "rb-row" });
    item.dataset.row = (kind === "conditions" ? "condition-" : "action-") + index;
    const controls = el("div", { class: "rb-controls" });
    controls.append(el("span", { class: "rb-num", text: noun }));
    const changed = function () { sync(kind); };
    if (kind === "conditions") {
      const field = fields[row.field];
      const fieldSelect = choiceSelect(schema.fields.map(function (f) { return [f.name, f.label]; }), row.field, noun + ": field", false);
      fieldSelect.addEventListener("change", function () {
        const next = fields[fieldSelect.value];
        row.field = next.name;
        row.op = next.ops[0];
        row.value = defaultValue(next, row.op);
        redraw(kind, noun + ": field");
      });
      const opSelect = choiceSelect(field.ops.map(function (op) { return [op, schema.operators[op] || op]; }), row.op, noun + ": operator", false);
      opSelect.addEventListener("change", function () {
        row.op = opSelect.value;
        row.value = convertValue(field, row.op, row.value);
        redraw(kind, noun + ": operator");
      });
      controls.append(fieldSelect, opSelect, valueControl(row, noun + ": value", changed));
    } else {
      const typeSelect = choiceSelect(schema.actions.map(function (a) { return [a.type, a.label]; }), row.type, noun + ": action", false);
      typeSelect.addEventListener("change", function () {
        row.type = typeSelect.value;
        row.params = {};
        actionTypes[row.type].params.forEach(function (p) { row.params[p.name] = defaultParam(p); });
        redraw(kind, noun + ": action");
      });
      controls.append(typeSelect);
      actionTypes[row.type].params.forEach(function (p) {
        controls.append(labelled(p.label, paramControl(row, p, noun + ": " + p.label, changed)));
      });
    }
    const remove = el("button", { type: "button", class: "linklike", "aria-label": "Remove " + noun.toLowerCase(), text: "Remove" });
    remove.addEventListener("click", function () {
      model[kind].splice(index, 1);
      redraw(kind, null);
      const rows = root.querySelectorAll('[data-rows="' + kind + '"] .rb-row');
      const focus = rows[Math.min(index, rows.length - 1)];
      (focus ? focus.querySelector("select, input") : root.querySelector('[data-add="' + kind + '"]')).focus();
    });
    controls.append(remove);
    item.append(controls);
    if (row.errors.length) {
      const id = "rb-errors-" + row.id;
      const list = el("ul", { class: "rb-errors", id: id });
      row.errors.forEach(function (message) { list.append(el("li", { class: "error", text: message })); });
      item.classList.add("rb-invalid");
      item.append(list);
      controls.querySelectorAll("select, input").forEach(function (c) {
        c.setAttribute("aria-invalid", "true");
        c.setAttribute("aria-describedby", id);
      });
    }
    return item;
  }

  function render(kind) {
    const list = root.querySelector('[data-rows="' + kind + '"]');
    list.replaceChildren.apply(list, model[kind].map(function (row, i) { return renderRow(kind, row, i); }));
  }

  // After a change of shape (a row added or removed, a field, operator or action changed):
  // draw the rows again, rewrite the JSON, and put the focus back where it was.
  function redraw(kind, focusLabel) {
    render(kind);
    sync(kind);
    if (focusLabel) {
      const target = root.querySelector('[aria-label="' + focusLabel.replace(/"/g, '\\"') + '"]');
      if (target) { target.focus(); }
    }
  }

  function showProblems() {
    const text = [problems.conditions, problems.actions].filter(Boolean).join(" ");
    notice.textContent = text ? text + " The rows show it again once it is; edit it under “Advanced: edit JSON”." : "";
    notice.hidden = !text;
  }

  function load(kind, withErrors) {
    const parsed = parse(kind);
    const fieldset = root.querySelector('[data-rows="' + kind + '"]').closest("fieldset");
    if (parsed.problem) {
      problems[kind] = parsed.problem;
      fieldset.hidden = true;
      return false;
    }
    problems[kind] = "";
    if (withErrors) {
      const byRow = (serverErrors && serverErrors[kind]) || {};
      parsed.rows.forEach(function (row, i) { row.errors = byRow[String(i)] || []; });
    }
    model[kind] = parsed.rows;
    fieldset.hidden = false;
    render(kind);
    return true;
  }

  root.querySelectorAll("[data-add]").forEach(function (button) {
    button.addEventListener("click", function () {
      const kind = button.dataset.add;
      if (kind === "conditions") {
        const field = fields.category || schema.fields[0];
        model.conditions.push({ id: nextId++, field: field.name, op: field.ops[0], value: defaultValue(field, field.ops[0]), extra: {}, errors: [] });
      } else {
        const spec = schema.actions[0];
        const params = {};
        spec.params.forEach(function (p) { params[p.name] = defaultParam(p); });
        model.actions.push({ id: nextId++, type: spec.type, params: params, extra: {}, errors: [] });
      }
      redraw(kind, NOUN[kind] + " " + model[kind].length + (kind === "conditions" ? ": field" : ": action"));
    });
  });

  ["conditions", "actions"].forEach(function (kind) {
    areas[kind].addEventListener("input", function () { load(kind, false); showProblems(); });
  });

  const shown = [load("conditions", true), load("actions", true)];
  showProblems();
  root.hidden = false;
  // The JSON folds away once the rows show it all; it stays open when they can't.
  if (shown[0] && shown[1]) { details.open = false; }
})();
