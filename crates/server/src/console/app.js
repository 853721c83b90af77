// Haven's web console: tables, items, queries and PartiQL through the same DynamoDB API any
// client uses, signed with SigV4 (sigv4.js). The access key lives only in this page's memory:
// never in a URL, in storage or in a log. Everything the server returns is shown as text
// (textContent), never parsed as HTML.
"use strict";

const state = { key: null };
const ANONYMOUS = { id: "console", secret: "console", region: "us-east-1" };
const main = () => document.getElementById("main");

// ---- DOM helpers -------------------------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child != null) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}
const show = (...nodes) => main().replaceChildren(...nodes);
const errorBox = (id) => el("div", { id, class: "error", hidden: "" });
function fail(box, error) {
  box.textContent = error.message;
  box.hidden = false;
}
const value = (id) => document.getElementById(id).value.trim();

// ---- The API -----------------------------------------------------------------------------
class ApiError extends Error {
  constructor(type, message) {
    super(`${type}: ${message || ""}`);
    this.type = type;
  }
}

async function api(operation, request) {
  const body = JSON.stringify(request);
  const headers = await Sigv4.sign(state.key || ANONYMOUS, { host: location.host, body, headers: {
    "content-type": "application/x-amz-json-1.0", "x-amz-target": `DynamoDB_20120810.${operation}` } });
  const response = await fetch("/", { method: "POST", headers, body, credentials: "omit" });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    const type = (answer.__type || `HTTP ${response.status}`).split("#").pop();
    throw new ApiError(type, answer.message || answer.Message);
  }
  return answer;
}

// A signed GET of a status page (under --auth only a key without a policy may read one); null
// when there is no such page or the key may not read it.
async function statusPage(path) {
  const headers = await Sigv4.sign(state.key || ANONYMOUS, { host: location.host, method: "GET", path });
  const response = await fetch(path, { headers, credentials: "omit" });
  const type = response.headers.get("content-type") || "";
  return response.ok && type.includes("json") ? response.json() : null;
}

// The samples of /metrics (open to anyone): [{name, labels, value}].
async function metrics() {
  const text = await (await fetch("/metrics", { credentials: "omit" })).text();
  return text.split("\n").filter((line) => line && !line.startsWith("#")).map((line) => {
    const [, name, labels = "", value] = line.match(/^([^{ ]+)(?:\{(.*)\})? (\S+)$/) || [];
    const pairs = [...labels.matchAll(/(\w+)="([^"]*)"/g)].map(([, k, v]) => [k, v]);
    return { name, labels: Object.fromEntries(pairs), value: Number(value) };
  }).filter((sample) => sample.name);
}

// The sum of `name`'s samples whose labels include `match`, grouped by label `by`.
function sums(samples, name, by, match = {}) {
  const out = new Map();
  for (const s of samples) {
    if (s.name !== name || Object.entries(match).some(([k, v]) => s.labels[k] !== v)) continue;
    const key = by ? s.labels[by] : "";
    out.set(key, (out.get(key) || 0) + s.value);
  }
  return out;
}
const sum = (samples, name, match) => [...sums(samples, name, "", match).values()].reduce((a, b) => a + b, 0);

const AUTH_ERRORS = ["UnrecognizedClientException", "InvalidSignatureException",
  "MissingAuthenticationTokenException", "IncompleteSignatureException"];

// ---- DynamoDB JSON <-> plain JSON --------------------------------------------------------
function marshal(value) {
  if (value === null) return { NULL: true };
  if (typeof value === "string") return { S: value };
  if (typeof value === "number") return { N: String(value) };
  if (typeof value === "boolean") return { BOOL: value };
  if (Array.isArray(value)) return { L: value.map(marshal) };
  if (typeof value === "object") return { M: marshalItem(value) };
  throw new Error(`cannot store ${typeof value}`);
}
const marshalItem = (object) =>
  Object.fromEntries(Object.entries(object).map(([k, v]) => [k, marshal(v)]));

function unmarshal(av) {
  const [type, v] = Object.entries(av)[0];
  switch (type) {
    case "S": case "B": case "BOOL": return v;
    case "N": return Number.isSafeInteger(Number(v)) || !/^-?\d+$/.test(v) ? Number(v) : v;
    case "NULL": return null;
    case "L": return v.map(unmarshal);
    case "M": return unmarshalItem(v);
    case "SS": case "BS": return v;
    case "NS": return v.map(Number);
    default: throw new Error(`unknown attribute type ${type}`);
  }
}
const unmarshalItem = (item) =>
  Object.fromEntries(Object.entries(item).map(([k, v]) => [k, unmarshal(v)]));

// An item typed in the editor: DynamoDB JSON or plain JSON.
function parseItem(text, dynamoJson) {
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new Error(`Invalid JSON: ${error.message}`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new Error("An item is a JSON object of attributes");
  }
  return dynamoJson ? parsed : marshalItem(parsed);
}

// ---- Sign-in -----------------------------------------------------------------------------
function signIn(message) {
  const box = errorBox("login-error");
  if (message) {
    box.textContent = message;
    box.hidden = false;
  }
  const form = el("form", { id: "login", autocomplete: "off", onsubmit: async (event) => {
    event.preventDefault();
    state.key = { id: value("key-id"), secret: document.getElementById("key-secret").value,
      region: value("key-region") || "us-east-1" };
    form.reset();
    try {
      await api("ListTables", { Limit: 1 });
      document.getElementById("who").textContent = `key ${state.key.id}`;
      route();
    } catch (error) {
      state.key = null;
      fail(box, error);
    }
  } },
  el("h1", {}, "Sign in"),
  el("p", {}, "This server checks every request's signature: enter an access key."),
  el("label", {}, "Access key id ", el("input", { id: "key-id", required: "" })),
  el("label", {}, "Secret ", el("input", { id: "key-secret", type: "password", required: "" })),
  el("label", {}, "Region ", el("input", { id: "key-region", value: "us-east-1" })),
  el("button", { id: "sign-in" }, "Sign in"), box);
  show(form);
}

// ---- Pages -------------------------------------------------------------------------------
async function tablesPage() {
  const names = [];
  let start;
  do {
    const page = await api("ListTables", start ? { ExclusiveStartTableName: start } : {});
    names.push(...page.TableNames);
    start = page.LastEvaluatedTableName;
  } while (start && names.length < 10000);
  show(el("h1", {}, "Tables"),
    names.length ? el("table", { id: "tables" }, el("tr", {}, el("th", {}, "Name")),
      names.map((name) => el("tr", {}, el("td", {},
        el("a", { href: `#/table/${encodeURIComponent(name)}` }, name)))))
      : el("p", {}, "No tables yet."),
    el("p", {}, el("a", { href: "#/create" }, "Create a table")));
}

function keySchemaRow(prefix, label) {
  return el("div", {}, el("strong", {}, label), " ",
    el("label", {}, "Partition key ", el("input", { id: `${prefix}-hash` })),
    el("select", { id: `${prefix}-hash-type` }, ["S", "N", "B"].map((t) => el("option", {}, t))),
    el("label", {}, " Sort key ", el("input", { id: `${prefix}-range` })),
    el("select", { id: `${prefix}-range-type` }, ["S", "N", "B"].map((t) => el("option", {}, t))));
}

function keySchema(prefix, definitions) {
  const schema = [];
  for (const [role, suffix] of [["HASH", "hash"], ["RANGE", "range"]]) {
    const name = value(`${prefix}-${suffix}`);
    if (!name) continue;
    schema.push({ AttributeName: name, KeyType: role });
    definitions.set(name, value(`${prefix}-${suffix}-type`));
  }
  return schema;
}

function createPage() {
  const box = errorBox("create-error");
  show(el("h1", {}, "Create table"), el("form", { id: "create", onsubmit: async (event) => {
    event.preventDefault();
    const definitions = new Map();
    const request = { TableName: value("table-name"), KeySchema: keySchema("table", definitions),
      BillingMode: value("billing") };
    if (request.BillingMode === "PROVISIONED") {
      request.ProvisionedThroughput = { ReadCapacityUnits: 5, WriteCapacityUnits: 5 };
    }
    const gsiName = value("gsi-name");
    if (gsiName) {
      const index = { IndexName: gsiName, KeySchema: keySchema("gsi", definitions),
        Projection: { ProjectionType: "ALL" } };
      if (request.ProvisionedThroughput) index.ProvisionedThroughput = request.ProvisionedThroughput;
      request.GlobalSecondaryIndexes = [index];
    }
    if (document.getElementById("stream").checked) {
      request.StreamSpecification = { StreamEnabled: true, StreamViewType: "NEW_AND_OLD_IMAGES" };
    }
    request.AttributeDefinitions = [...definitions].map(([name, type]) =>
      ({ AttributeName: name, AttributeType: type }));
    try {
      await api("CreateTable", request);
      const ttl = value("ttl");
      if (ttl) {
        await api("UpdateTimeToLive", { TableName: request.TableName,
          TimeToLiveSpecification: { Enabled: true, AttributeName: ttl } });
      }
      location.hash = `#/table/${encodeURIComponent(request.TableName)}`;
    } catch (error) {
      fail(box, error);
    }
  } },
  el("fieldset", {}, el("label", {}, "Table name ", el("input", { id: "table-name" })),
    keySchemaRow("table", "Key"),
    el("label", {}, "Billing ", el("select", { id: "billing" },
      el("option", { value: "PAY_PER_REQUEST" }, "On demand"),
      el("option", { value: "PROVISIONED" }, "Provisioned (5/5)")))),
  el("fieldset", {}, el("legend", {}, "Global secondary index (optional)"),
    el("label", {}, "Index name ", el("input", { id: "gsi-name" })), keySchemaRow("gsi", "Key")),
  el("fieldset", {}, el("label", {}, el("input", { id: "stream", type: "checkbox" }),
    " Stream (new and old images)"),
    el("label", {}, "TTL attribute ", el("input", { id: "ttl" }))),
  el("button", { id: "create-table" }, "Create table"), box));
}

function itemsTable(items, onEdit) {
  const names = [...new Set(items.flatMap((item) => Object.keys(item)))];
  return el("table", { class: "items" },
    el("tr", {}, names.map((n) => el("th", {}, n)), onEdit ? el("th", {}) : null),
    items.map((item) => el("tr", {}, names.map((n) =>
      el("td", {}, n in item ? JSON.stringify(unmarshal(item[n])) : "")),
    onEdit ? el("td", {}, el("button", { class: "edit", onclick: () => onEdit(item) }, "Edit"))
      : null)));
}

function keyOf(description, item) {
  return Object.fromEntries(description.KeySchema.map((k) => [k.AttributeName, item[k.AttributeName]]));
}

async function tablePage(name) {
  const { Table: table } = await api("DescribeTable", { TableName: name });
  const ttl = await api("DescribeTimeToLive", { TableName: name }).catch(() => null);
  const indexes = [...(table.GlobalSecondaryIndexes || []).map((i) => ["global", i]),
    ...(table.LocalSecondaryIndexes || []).map((i) => ["local", i])];
  const box = errorBox("table-error");
  const browse = el("div", { id: "browse" });
  const metricsBox = el("div", {});
  // After each change: the first page of items again, and the table's metrics.
  const reload = async () => {
    await browseItems(table, browse, undefined, editor.load);
    metricsBox.replaceChildren(tableMetrics(await metrics(), name));
  };
  const editor = itemEditor(table, reload);
  show(el("h1", {}, `Table ${name}`), box,
    el("table", { id: "description" },
      el("tr", {}, el("th", {}, "Status"), el("td", {}, table.TableStatus)),
      el("tr", {}, el("th", {}, "Key"), el("td", {},
        table.KeySchema.map((k) => `${k.AttributeName} (${k.KeyType})`).join(", "))),
      el("tr", {}, el("th", {}, "Items"), el("td", {}, String(table.ItemCount))),
      el("tr", {}, el("th", {}, "Size (bytes)"), el("td", {}, String(table.TableSizeBytes))),
      el("tr", {}, el("th", {}, "Billing"), el("td", {},
        (table.BillingModeSummary || {}).BillingMode || "PROVISIONED")),
      el("tr", {}, el("th", {}, "Stream"), el("td", {},
        table.LatestStreamArn ? `${table.StreamSpecification.StreamViewType} ${table.LatestStreamArn}` : "off")),
      el("tr", {}, el("th", {}, "TTL"), el("td", {},
        ttl ? `${ttl.TimeToLiveDescription.TimeToLiveStatus} ${ttl.TimeToLiveDescription.AttributeName || ""}` : "?")),
      el("tr", {}, el("th", {}, "ARN"), el("td", {}, table.TableArn))),
    el("h2", {}, "Indexes"),
    indexes.length ? el("table", { id: "indexes" }, indexes.map(([kind, i]) => el("tr", {},
      el("td", {}, i.IndexName), el("td", {}, kind),
      el("td", {}, i.KeySchema.map((k) => `${k.AttributeName} (${k.KeyType})`).join(", ")),
      el("td", {}, i.IndexStatus || "ACTIVE")))) : el("p", {}, "None."),
    el("h2", {}, "Items"), browse, editor.node,
    queryBuilder(table),
    el("h2", {}, "Metrics"), metricsBox,
    el("h2", {}, "Danger zone"),
    el("button", { id: "delete-table", class: "danger", onclick: async () => {
      if (!confirm(`Delete table ${name} and all its items?`)) return;
      try {
        await api("DeleteTable", { TableName: name });
        location.hash = "#/";
      } catch (error) {
        fail(box, error);
      }
    } }, "Delete table"));
  await reload();
}

async function browseItems(table, node, start, onEdit) {
  const request = { TableName: table.TableName, Limit: 25 };
  if (start) request.ExclusiveStartKey = start;
  const page = await api("Scan", request);
  const next = page.LastEvaluatedKey && el("button", { id: "next-page",
    onclick: () => browseItems(table, node, page.LastEvaluatedKey, onEdit) }, "Next page");
  node.replaceChildren(...[itemsTable(page.Items, onEdit), next].filter(Boolean));
}

function itemEditor(table, refresh) {
  const box = errorBox("item-error");
  const text = el("textarea", { id: "item-json", spellcheck: "false" });
  const typed = el("input", { id: "dynamo-json", type: "checkbox" });
  const run = (action) => async () => {
    box.hidden = true;
    try {
      const item = parseItem(text.value, typed.checked);
      await action(item);
      text.value = "";
      await refresh();
    } catch (error) {
      fail(box, error);
    }
  };
  const node = el("fieldset", { id: "editor" }, el("legend", {}, "Item"), text,
    el("label", {}, typed, " DynamoDB JSON (otherwise plain JSON)"),
    el("button", { id: "save-item", onclick: run((item) =>
      api("PutItem", { TableName: table.TableName, Item: item })) }, "Save item"),
    " ",
    el("button", { id: "delete-item", onclick: run((item) =>
      api("DeleteItem", { TableName: table.TableName, Key: keyOf(table, item) })) }, "Delete item"),
    box);
  const load = (item) => {
    text.value = JSON.stringify(typed.checked ? item : unmarshalItem(item), null, 2);
    text.focus();
  };
  return { node, load };
}

function queryBuilder(table) {
  const box = errorBox("query-error");
  const results = el("div", { id: "query-results" });
  const cli = el("code", { class: "cli", id: "query-cli" });
  const targets = [["", table.KeySchema], ...[...(table.GlobalSecondaryIndexes || []),
    ...(table.LocalSecondaryIndexes || [])].map((i) => [i.IndexName, i.KeySchema])];
  const run = async (event) => {
    event.preventDefault();
    box.hidden = true;
    try {
      const [operation, request] = queryRequest(table, targets);
      cli.textContent = cliCommand(operation, request);
      const answer = await api(operation, request);
      results.replaceChildren(el("p", {}, `${answer.Count} item(s), ${answer.ScannedCount} scanned`),
        itemsTable(answer.Items));
    } catch (error) {
      fail(box, error);
    }
  };
  return el("form", { id: "query", onsubmit: run }, el("h2", {}, "Query or scan"),
    el("fieldset", {},
      el("label", {}, "On ", el("select", { id: "q-index" }, targets.map(([n]) =>
        el("option", { value: n }, n ? `index ${n}` : "the table")))),
      el("label", {}, "Partition key value ", el("input", { id: "q-hash", placeholder: "empty: scan" })),
      el("label", {}, "Sort key ", el("select", { id: "q-op" },
        ["=", "<", "<=", ">", ">=", "begins_with"].map((o) => el("option", {}, o))),
      el("input", { id: "q-range" })),
      el("br"),
      el("label", {}, "Filter ", el("input", { id: "q-filter", size: 40,
        placeholder: "e.g. #a > :v (names #a and values :v below)" })),
      el("label", {}, "Projection ", el("input", { id: "q-projection", placeholder: "a, b" })),
      el("br"),
      el("label", {}, "Names (JSON) ", el("input", { id: "q-names", placeholder: '{"#a": "price"}' })),
      el("label", {}, "Values (plain JSON) ", el("input", { id: "q-values", placeholder: '{":v": 5}' })),
      el("button", { id: "run-query" }, "Run")),
    box, el("p", {}, "The same request with the AWS CLI:"), cli, results);
}

// The Query (or Scan, without a partition key value) the builder's fields describe.
function queryRequest(table, targets) {
  const index = value("q-index");
  const schema = targets.find(([n]) => n === index)[1];
  const definitions = Object.fromEntries(table.AttributeDefinitions.map((d) =>
    [d.AttributeName, d.AttributeType]));
  const typed = (name, text) =>
    ({ [definitions[name]]: text });
  const request = { TableName: table.TableName };
  if (index) request.IndexName = index;
  const names = value("q-names") ? JSON.parse(value("q-names")) : {};
  const values = value("q-values") ? marshalItem(JSON.parse(value("q-values"))) : {};
  let operation = "Scan";
  if (value("q-hash")) {
    operation = "Query";
    const [hash, range] = ["HASH", "RANGE"].map((role) =>
      (schema.find((k) => k.KeyType === role) || {}).AttributeName);
    names["#pk"] = hash;
    values[":pk"] = typed(hash, value("q-hash"));
    request.KeyConditionExpression = "#pk = :pk";
    if (range && value("q-range")) {
      names["#sk"] = range;
      values[":sk"] = typed(range, value("q-range"));
      const op = value("q-op");
      request.KeyConditionExpression += op === "begins_with"
        ? " AND begins_with(#sk, :sk)" : ` AND #sk ${op} :sk`;
    }
  }
  if (value("q-filter")) request.FilterExpression = value("q-filter");
  if (value("q-projection")) {
    request.ProjectionExpression = value("q-projection").split(",").map((p, i) => {
      names[`#p${i}`] = p.trim();
      return `#p${i}`;
    }).join(", ");
  }
  if (Object.keys(names).length) request.ExpressionAttributeNames = names;
  if (Object.keys(values).length) request.ExpressionAttributeValues = values;
  return [operation, request];
}

const shellQuote = (text) => `'${text.replace(/'/g, "'\\''")}'`;
const cliOption = (name) => name.replace(/[A-Z]/g, (c, i) => (i ? "-" : "") + c.toLowerCase());

function cliCommand(operation, request) {
  const command = [`aws dynamodb ${cliOption(operation)} --endpoint-url ${location.origin}`];
  for (const [name, member] of Object.entries(request)) {
    const text = typeof member === "string" ? member : JSON.stringify(member);
    command.push(`  --${cliOption(name)} ${shellQuote(text)}`);
  }
  return command.join(" \\\n");
}

function rows(map, format = String) {
  return [...map].map(([key, v]) => el("tr", {}, el("td", {}, key || "(table)"), el("td", {}, format(v))));
}

// A table's share of the metrics: capacity consumed (the table and each index), TTL, streams.
function tableMetrics(samples, table) {
  const match = { table };
  return el("table", { id: "table-metrics" },
    el("tr", {}, el("th", {}, "Consumed since start"), el("th", {}, "")),
    rows(sums(samples, "haven_consumed_read_capacity_units_total", "index", match),
      (v) => `${v} read units`),
    rows(sums(samples, "haven_consumed_write_capacity_units_total", "index", match),
      (v) => `${v} write units`),
    rows(sums(samples, "haven_index_backfilled_items_total", "index", match),
      (v) => `${v} items backfilled`),
    el("tr", {}, el("td", {}, "TTL deletions"),
      el("td", {}, String(sum(samples, "haven_ttl_deleted_items_total", match)))),
    el("tr", {}, el("td", {}, "Stream records served"),
      el("td", {}, String(sum(samples, "haven_stream_records_served_total", match)))));
}

async function statusView() {
  const [health, samples, dns] = await Promise.all([
    fetch("/health", { credentials: "omit" }).then((r) => r.json()).catch(() => ({})),
    metrics(), statusPage("/dns/status").catch(() => null)]);
  const byOutcome = sums(samples, "haven_requests_total", "outcome");
  const errors = new Map([...byOutcome].filter(([outcome]) => outcome !== "ok"));
  const commits = sum(samples, "haven_storage_commit_batches_count");
  show(el("h1", {}, "Status"),
    el("table", { id: "node" },
      el("tr", {}, el("th", {}, "This node"), el("td", {}, health.status || "not answering")),
      el("tr", {}, el("th", {}, "Requests since start"), el("td", {}, String(sum(samples, "haven_requests_total")))),
      el("tr", {}, el("th", {}, "Executing / queued / connections"), el("td", {},
        ["haven_in_flight_requests", "haven_queued_requests", "haven_open_connections"]
          .map((n) => sum(samples, n)).join(" / "))),
      el("tr", {}, el("th", {}, "Throttled since start"),
        el("td", {}, String(sum(samples, "haven_throttled_requests_total")))),
      el("tr", {}, el("th", {}, "Storage commits"), el("td", {}, commits ? `${commits}, ${(
        sum(samples, "haven_storage_commit_batches_sum") / commits).toFixed(1)} batches each on average` : "none"))),
    el("h2", {}, "Errors since start, by type"),
    errors.size ? el("table", { id: "errors" }, rows(errors)) : el("p", {}, "None."),
    el("h2", {}, "Requests by operation"),
    el("table", { id: "operations" }, rows(sums(samples, "haven_requests_total", "operation"))),
    el("h2", {}, "Tables"),
    el("table", { id: "table-sizes" }, rows(sums(samples, "haven_table_items", "table"), (v) => `${v} items`)),
    el("h2", {}, "DNS"),
    dns ? el("pre", { id: "dns" }, JSON.stringify(dns, null, 2))
      : el("p", {}, "No DNS status here (the server has no --config, or this key may not read it)."),
    el("p", {}, "Graphs over time: scrape /metrics with Prometheus (docs/metrics.md)."));
}

function partiqlPage() {
  const box = errorBox("partiql-error");
  const results = el("div", { id: "partiql-results" });
  const text = el("textarea", { id: "statement", spellcheck: "false",
    placeholder: 'SELECT * FROM "Music" WHERE Artist = \'Acme\'' });
  show(el("h1", {}, "PartiQL"), text, el("button", { id: "run-statement", onclick: async () => {
    box.hidden = true;
    try {
      const answer = await api("ExecuteStatement", { Statement: text.value });
      results.replaceChildren(el("p", {}, `${(answer.Items || []).length} item(s)`),
        itemsTable(answer.Items || []));
    } catch (error) {
      fail(box, error);
    }
  } }, "Run"), box, results);
}

// ---- Routing -----------------------------------------------------------------------------
async function route() {
  const hash = location.hash || "#/";
  try {
    if (hash.startsWith("#/table/")) await tablePage(decodeURIComponent(hash.slice(8)));
    else if (hash === "#/create") createPage();
    else if (hash === "#/partiql") partiqlPage();
    else if (hash === "#/status") await statusView();
    else await tablesPage();
  } catch (error) {
    if (AUTH_ERRORS.includes(error.type) || error.type === "AccessDeniedException" && !state.key) {
      state.key = null;
      signIn();
    } else {
      const box = errorBox("page-error");
      fail(box, error);
      show(box);
    }
  }
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", () => {
  if (!window.crypto || !crypto.subtle) {
    show(el("p", { class: "error" },
      "This page needs a secure context (https, or http on localhost) to sign requests."));
    return;
  }
  route();
});
