//! A JSON Schema of the plan format (`volley schema`), for TOML editors
//! (Taplo, Even Better TOML) to complete and check keys. Written by hand
//! beside the loader: every key the loader accepts is here, and a test
//! (tests/schema.rs) validates every fixture plan against it. The loader
//! stays the judge: it checks what a schema cannot (durations, expressions,
//! which keys an executor needs).

use serde_json::{Map, Value, json};

/// Where `volley schema` output is committed, relative to the repository.
pub const COMMITTED: &str = "docs/plan.schema.json";

/// `${NAME}` or `${NAME:-default}`: an environment variable, set with `-e`.
const ENV: &str = r"^\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}$";

fn text(d: &str) -> Value {
    json!({ "type": "string", "description": d })
}

fn dur(d: &str) -> Value {
    json!({
        "type": "string",
        "description": format!("{d} A duration: \"500ms\", \"30s\", \"2m30s\", \"1h\"."),
    })
}

fn dur_range(d: &str) -> Value {
    json!({
        "type": "string",
        "description": format!("{d} A duration, or a range \"1s..3s\" picked uniformly each time."),
    })
}

/// A whole number, or `${VAR}` standing for one.
fn whole(d: &str) -> Value {
    json!({
        "description": d,
        "anyOf": [
            { "type": "integer", "minimum": 0 },
            { "type": "string", "pattern": ENV },
        ],
    })
}

/// A number, or `${VAR}` standing for one.
fn number(d: &str) -> Value {
    json!({
        "description": d,
        "anyOf": [
            { "type": "number" },
            { "type": "string", "pattern": ENV },
        ],
    })
}

fn flag(d: &str) -> Value {
    json!({ "type": "boolean", "description": d })
}

fn one_of(values: &[&str], d: &str) -> Value {
    json!({ "enum": values, "description": d })
}

fn strings(d: &str) -> Value {
    json!({ "type": "object", "additionalProperties": { "type": "string" }, "description": d })
}

fn anything(d: &str) -> Value {
    json!({ "description": d })
}

/// A table with exactly these keys (`required` among them).
fn table(d: &str, props: &[(&str, Value)], required: &[&str]) -> Value {
    let mut p = Map::new();
    for (k, v) in props {
        p.insert((*k).to_string(), v.clone());
    }
    json!({
        "type": "object",
        "description": d,
        "properties": p,
        "required": required,
        "additionalProperties": false,
    })
}

fn http_version() -> Value {
    one_of(
        &["auto", "1.1", "2"],
        "\"auto\" (HTTP/2 when a TLS server offers it, else HTTP/1.1), \"1.1\", or \"2\" (HTTP/2 only; h2c by prior knowledge on http:// URLs).",
    )
}

/// Connection keys of `[defaults]`, HTTP and webhook scenarios.
fn connection_keys() -> Vec<(&'static str, Value)> {
    vec![
        (
            "base_url",
            text("Joined to relative URLs, e.g. \"${BASE_URL}\"."),
        ),
        (
            "headers",
            strings("Headers sent with every request (values are templates)."),
        ),
        ("timeout", dur("A request's time limit (60s unless set).")),
        (
            "insecure_skip_tls_verify",
            flag("Accept any TLS certificate (self-signed test servers)."),
        ),
        ("http_version", http_version()),
    ]
}

fn tls_client_keys() -> Vec<(&'static str, Value)> {
    vec![
        (
            "client_cert",
            text(
                "PEM client certificate, for servers that ask for one (mTLS); relative to the plan.",
            ),
        ),
        ("client_key", text("PEM key of client_cert.")),
        (
            "ca_file",
            text("PEM certificates of private CAs to trust beside the public roots."),
        ),
        (
            "max_redirects",
            whole("Redirects followed per request (10 unless set; 0 follows none)."),
        ),
    ]
}

fn defaults() -> Value {
    let mut keys = connection_keys();
    keys.extend(tls_client_keys());
    table("Settings every scenario inherits.", &keys, &[])
}

fn data() -> Value {
    json!({
        "type": "object",
        "description": "CSV feeders: [data.NAME] rows read as {{ data.NAME.column }}.",
        "additionalProperties": table(
            "A CSV feeder.",
            &[
                ("file", text("The CSV file, relative to the plan (then to the current directory).")),
                ("pick", one_of(&["round-robin", "random", "unique"], "How an iteration takes a row: the next (shared by all VUs), a random one, or one per VU for its whole life.")),
            ],
            &["file"],
        ),
    })
}

fn stage() -> Value {
    table(
        "A stage: reach `target` over `duration`.",
        &[
            ("duration", dur("How long the stage lasts.")),
            (
                "target",
                number(
                    "VUs (ramping-vus) or arrivals per time_unit (ramping-arrival-rate) at the stage's end.",
                ),
            ),
            (
                "spike",
                flag("This stage is a spike: recovery is measured from its end."),
            ),
        ],
        &["duration", "target"],
    )
}

fn breaking_point() -> Value {
    let one = table(
        "Where the load breaks the system.",
        &[
            (
                "signal",
                text("The metric watched, e.g. \"http_req_failed\" or \"http_req_duration\"."),
            ),
            (
                "expr",
                text(
                    "Broken when this holds over the window, e.g. \"rate>0.05\" or \"p(95)>500\".",
                ),
            ),
            ("window", dur("The window the expression is judged over.")),
            ("abort", flag("Stop the run at the breaking point.")),
        ],
        &["signal", "expr"],
    );
    json!({
        "description": "breaking_point on a ramping scenario: one signal, or a list (the first to break).",
        "anyOf": [one, { "type": "array", "items": one }],
    })
}

fn recovery() -> Value {
    table(
        "How recovery after `spike = true` stages is judged.",
        &[
            (
                "window",
                dur("Recovered when the window after the spike holds the baseline."),
            ),
            (
                "tolerance",
                anything(
                    "How far above the baseline still counts as recovered: \"10%\" or a number.",
                ),
            ),
            (
                "latency",
                text("The latency metric compared with the baseline."),
            ),
            (
                "errors",
                text("The error-rate metric compared with the baseline."),
            ),
        ],
        &[],
    )
}

/// Keys every scenario has, whatever its driver.
fn common_keys() -> Vec<(&'static str, Value)> {
    vec![
        (
            "driver",
            one_of(
                volley_protocols::drivers::NAMES,
                "What the scenario's VUs speak.",
            ),
        ),
        (
            "executor",
            one_of(
                &[
                    "shared-iterations",
                    "per-vu-iterations",
                    "constant-vus",
                    "ramping-vus",
                    "constant-arrival-rate",
                    "ramping-arrival-rate",
                ],
                "How iterations are scheduled, as in k6.",
            ),
        ),
        (
            "start_time",
            dur("When the scenario starts, from the run's start."),
        ),
        (
            "graceful_stop",
            dur(
                "How long running iterations may finish after the scenario's end (30s unless set).",
            ),
        ),
        ("tags", strings("Tags on every sample of the scenario.")),
        ("think_time", dur_range("Pause after each iteration.")),
        (
            "vus",
            whole("VUs (shared-iterations, per-vu-iterations, constant-vus)."),
        ),
        (
            "iterations",
            whole("Iterations: shared by all VUs, or per VU."),
        ),
        (
            "duration",
            dur("How long the scenario runs (constant-vus, constant-arrival-rate)."),
        ),
        (
            "max_duration",
            dur("The longest an iterations executor may run (10m unless set)."),
        ),
        ("start_vus", whole("VUs at the start of ramping-vus.")),
        (
            "stages",
            json!({ "type": "array", "items": stage(), "description": "Stages of ramping-vus and ramping-arrival-rate." }),
        ),
        (
            "graceful_ramp_down",
            dur("How long an iteration of a VU ramped down may finish."),
        ),
        (
            "rate",
            number("Arrivals per time_unit (constant-arrival-rate)."),
        ),
        (
            "start_rate",
            number("Arrivals per time_unit at the start of ramping-arrival-rate."),
        ),
        ("time_unit", dur("The unit of rate (1s unless set).")),
        (
            "pre_allocated_vus",
            whole("VUs an arrival-rate scenario allocates at its start."),
        ),
        (
            "max_vus",
            whole("The most VUs an arrival-rate scenario may allocate."),
        ),
        ("breaking_point", breaking_point()),
        ("recovery", recovery()),
    ]
}

fn http_checks() -> Value {
    table(
        "What a response must be; failures count in `checks`.",
        &[
            (
                "status",
                anything("One status or a list of accepted statuses."),
            ),
            (
                "body_contains",
                anything("A string or a list of strings the body must contain."),
            ),
            (
                "json",
                json!({ "type": "object", "description": "JSON path -> the value it must equal." }),
            ),
            (
                "json_exists",
                json!({ "type": "array", "items": { "type": "string" }, "description": "JSON paths that must match something." }),
            ),
            (
                "headers",
                strings("Header name -> text its value must contain."),
            ),
            ("max_duration", dur("The longest the request may take.")),
        ],
        &[],
    )
}

fn record() -> Value {
    table(
        "A custom metric ([metrics.NAME]) fed from the response.",
        &[
            ("header", text("A response header's value.")),
            ("json", text("A JSON path into the body.")),
            ("status", flag("The response status.")),
            ("duration", flag("The request's duration.")),
            (
                "events",
                one_of(&["count", "per_second"], "On stream = \"sse\" requests."),
            ),
            ("equals", anything("Makes a yes/no value: equal or not.")),
            (
                "from",
                one_of(&["body", "events"], "The body, or each SSE event's data."),
            ),
        ],
        &[],
    )
}

fn request() -> Value {
    table(
        "One HTTP request of the scenario's flow.",
        &[
            (
                "name",
                text("The request's name (tag `name`); the URL unless set."),
            ),
            ("method", text("GET unless set.")),
            ("url", text("Absolute, or joined to base_url; a template.")),
            ("headers", strings("Headers of this request (templates).")),
            (
                "query",
                json!({ "type": "object", "description": "Query parameters (templates)." }),
            ),
            ("json", anything("A JSON body (templates in strings).")),
            ("body", text("A text body (a template).")),
            ("timeout", dur("This request's time limit.")),
            (
                "weight",
                number("Share of iterations with flow = \"weighted\"."),
            ),
            ("checks", http_checks()),
            (
                "captures",
                json!({ "type": "object", "description": "Variable -> JSON path (\"$.token\"), read later as {{ vars.NAME }}." }),
            ),
            ("think_time", dur_range("Pause after this request.")),
            (
                "body_file",
                text(
                    "A file as the body, relative to the plan; templated unless body_file_raw = true.",
                ),
            ),
            ("body_file_raw", flag("Send body_file as it is.")),
            (
                "form",
                json!({ "type": "object", "description": "application/x-www-form-urlencoded fields." }),
            ),
            (
                "multipart",
                json!({ "type": "object", "description": "multipart/form-data fields and files." }),
            ),
            (
                "cookies",
                strings("Cookies put in the VU's jar before the request is sent."),
            ),
            (
                "max_redirects",
                whole("Redirects followed for this request."),
            ),
            (
                "once",
                flag("Run in the VU's first iteration only (log in once, then loop)."),
            ),
            (
                "group",
                text("The group the request belongs to (group_duration)."),
            ),
            (
                "tags",
                strings("Tags on this request's samples (templates)."),
            ),
            (
                "record",
                json!({ "type": "object", "additionalProperties": record(), "description": "Custom metrics fed from the response." }),
            ),
            (
                "stream",
                one_of(&["sse"], "Read the response as server-sent events."),
            ),
        ],
        &["url"],
    )
}

fn http_keys() -> Vec<(&'static str, Value)> {
    let mut keys = vec![
        (
            "flow",
            one_of(
                &["sequence", "weighted"],
                "Every request in order each iteration, or one per iteration picked by weight.",
            ),
        ),
        (
            "requests",
            json!({ "type": "array", "items": request(), "description": "The requests ([[scenarios.NAME.requests]])." }),
        ),
        (
            "cookies",
            one_of(&["on", "off"], "A cookie jar per VU (on unless set)."),
        ),
        (
            "reset_cookies",
            one_of(
                &["never", "iteration"],
                "\"iteration\": each iteration starts with an empty jar.",
            ),
        ),
        (
            "on_429",
            one_of(
                &["count", "honor"],
                "What a 429 does: counted, or its Retry-After honored.",
            ),
        ),
        (
            "max_retry_after",
            dur("The longest Retry-After honored (60s unless set)."),
        ),
        (
            "vus_per_connection",
            whole(
                "HTTP/2: VUs sharing one connection, a stream each, as h2load's -m (1 unless set: a VU owns its connection; 1 to 1000).",
            ),
        ),
    ];
    keys.extend(connection_keys());
    keys.extend(tls_client_keys());
    keys
}

fn webhook_keys() -> Vec<(&'static str, Value)> {
    let event = table(
        "A weighted event type.",
        &[
            (
                "type",
                text("The event type, e.g. \"payment_intent.succeeded\"."),
            ),
            ("weight", number("Its share of deliveries.")),
        ],
        &["type"],
    );
    let ratio = |d: &str| number(&format!("Share of deliveries {d} (0 to 1)."));
    let mut keys = vec![
        (
            "scheme",
            one_of(
                &["stripe", "github", "standard", "shopify", "slack"],
                "How deliveries are signed (stripe unless set).",
            ),
        ),
        (
            "endpoint",
            text("The URL the provider would POST to; relative paths join base_url."),
        ),
        (
            "secret",
            anything("The endpoint's signing secret, or a list while rotating."),
        ),
        (
            "events",
            json!({ "type": "array", "items": event, "description": "Weighted event types; every template, equally, unless set." }),
        ),
        (
            "templates",
            text("A folder of event templates (*.json) added to the built-in ones."),
        ),
        ("forged_ratio", ratio("with a wrong signature")),
        (
            "stale_ratio",
            ratio("with a timestamp older than the tolerance"),
        ),
        ("unsigned_ratio", ratio("without a signature")),
        ("duplicate_ratio", ratio("sent twice")),
        ("out_of_order_ratio", ratio("sent out of order")),
        ("tolerance", dur("The endpoint's timestamp tolerance.")),
    ];
    keys.extend(connection_keys());
    // The TLS files, not max_redirects: a delivery is one POST.
    keys.extend(
        tls_client_keys()
            .into_iter()
            .filter(|(k, _)| *k != "max_redirects"),
    );
    keys
}

/// `[setup]` and `[teardown]`: the HTTP driver's keys and max_duration.
fn phase(name: &str, when: &str) -> Value {
    let mut keys = http_keys();
    keys.push((
        "max_duration",
        dur(&format!("The longest [{name}] may take (60s unless set).")),
    ));
    table(
        &format!("HTTP requests run once, in order, {when}; each must succeed."),
        &keys,
        &[],
    )
}

fn websocket_keys() -> Vec<(&'static str, Value)> {
    let receive = table(
        "Where delivered messages keep their fields (JSON pointers or paths).",
        &[
            ("type", text("Where a message's type is.")),
            ("id", text("Where a message's id is.")),
            ("sender", text("Where a message's sender is.")),
            ("sent_at", text("Where a message's send time is.")),
            ("message_type", text("The type of chat messages.")),
            (
                "joined_type",
                text("The type of the server's answer to the join."),
            ),
            (
                "ack_type",
                text("The type of the server's acknowledgement of a message."),
            ),
            (
                "ack_id",
                text("Where an acknowledgement names the message."),
            ),
        ],
        &[],
    );
    vec![
        ("url", text("ws:// or wss:// URL.")),
        (
            "protocol",
            one_of(
                &["websocket", "socket.io"],
                "Plain WebSocket frames, or Socket.IO v5.",
            ),
        ),
        ("namespace", text("Socket.IO namespace (\"/\" unless set).")),
        (
            "message_event",
            text("Socket.IO: the event of chat messages."),
        ),
        (
            "joined_event",
            text("Socket.IO: the event the server answers a join with."),
        ),
        (
            "ack",
            flag("Socket.IO: ask the server to acknowledge every chat message."),
        ),
        (
            "correlate",
            anything("How a delivered message refers back to what was sent."),
        ),
        ("headers", strings("Headers of the upgrade request.")),
        (
            "subprotocols",
            json!({ "type": "array", "items": { "type": "string" }, "description": "Sec-WebSocket-Protocol values." }),
        ),
        ("room_size", whole("Participants per room.")),
        ("room", text("The room's name (a template).")),
        ("user", text("The participant's name (a template).")),
        ("join", anything("The join message (a template).")),
        ("message", anything("The chat message (a template).")),
        (
            "messages_per_minute",
            number("Messages each participant sends per minute."),
        ),
        ("session_duration", dur_range("How long a session lasts.")),
        (
            "reconnect",
            one_of(
                &["always", "on-drop", "never"],
                "What a participant does after a session ends.",
            ),
        ),
        ("reconnect_delay", dur_range("Pause before reconnecting.")),
        (
            "deadline",
            dur("How long a message may take to arrive before it counts as lost."),
        ),
        ("connect_timeout", dur("The connection's time limit.")),
        ("ping_interval", dur("How often to ping.")),
        ("pong_timeout", dur("How long to wait for a pong.")),
        ("receive", receive),
        (
            "insecure_skip_tls_verify",
            flag("Accept any TLS certificate."),
        ),
        ("tag_rooms", flag("Tag samples with their room.")),
    ]
}

fn postgres_keys() -> Vec<(&'static str, Value)> {
    let checks = table(
        "What a query's result must be.",
        &[
            (
                "rows",
                whole("Exactly this many rows (returned, or affected)."),
            ),
            ("min_rows", whole("At least this many rows.")),
            ("max_rows", whole("At most this many rows.")),
            ("no_error", flag("The query must not fail.")),
            ("max_duration", dur("The longest the query may take.")),
        ],
        &[],
    );
    let params = json!({ "type": "array", "description": "$1, $2, ... (templates)." });
    let captures = strings("Variable -> column of the first row, read as {{ vars.NAME }}.");
    let statement = table(
        "One statement of a multi-statement query.",
        &[
            ("sql", text("The SQL.")),
            ("params", params.clone()),
            ("checks", checks.clone()),
            ("captures", captures.clone()),
        ],
        &["sql"],
    );
    let query = table(
        "One query (or transaction) of the scenario's flow.",
        &[
            ("name", text("The query's name (tag `name`).")),
            ("sql", text("The SQL, with $1, $2, ... for params.")),
            ("params", params),
            ("checks", checks),
            ("captures", captures),
            (
                "statements",
                json!({ "type": "array", "items": statement, "description": "Several statements, in order; in one transaction unless transaction = false." }),
            ),
            (
                "transaction",
                flag("Run statements in one transaction (true unless set)."),
            ),
            (
                "isolation",
                one_of(
                    &["read committed", "repeatable read", "serializable"],
                    "The transaction's isolation level.",
                ),
            ),
            (
                "vars",
                json!({ "type": "object", "description": "Values set once per run of the query, read as {{ vars.NAME }} (pgbench's \\set)." }),
            ),
            (
                "weight",
                number("Share of iterations with flow = \"weighted\"."),
            ),
            ("timeout", dur("This query's time limit.")),
            ("think_time", dur_range("Pause after this query.")),
        ],
        &[],
    );
    vec![
        (
            "database_url",
            text("postgres://user:password@host:port/db (DATABASE_URL unless set)."),
        ),
        (
            "connections",
            one_of(
                &["pool", "per-vu", "per-iteration"],
                "A pool shared by the VUs, one connection per VU, or one per iteration (a connection storm).",
            ),
        ),
        ("pool_size", whole("Connections in the pool.")),
        (
            "acquire_timeout",
            dur("How long a VU waits for a pooled connection."),
        ),
        ("connect_timeout", dur("The connection's time limit.")),
        (
            "timeout",
            dur("Client-side limit per query (none unless set)."),
        ),
        (
            "flow",
            one_of(
                &["sequence", "weighted"],
                "Every query in order each iteration, or one per iteration picked by weight.",
            ),
        ),
        (
            "queries",
            json!({ "type": "array", "items": query, "description": "The queries ([[scenarios.NAME.queries]])." }),
        ),
        (
            "sample_activity",
            flag(
                "Sample pg_stat_activity every second into pg_connections{state} (true unless set).",
            ),
        ),
    ]
}

fn props(keys: &[(&str, Value)]) -> Value {
    let mut p = Map::new();
    for (k, v) in keys {
        p.insert((*k).to_string(), v.clone());
    }
    Value::Object(p)
}

fn scenario() -> Value {
    let driver = |name: &str, keys: Vec<(&'static str, Value)>| {
        json!({
            "if": { "properties": { "driver": { "const": name } }, "required": ["driver"] },
            "then": { "properties": props(&keys) },
        })
    };
    let described = ["http", "webhook", "websocket", "postgres"];
    let mut branches = vec![
        driver("http", http_keys()),
        driver("webhook", webhook_keys()),
        driver("websocket", websocket_keys()),
        driver("postgres", postgres_keys()),
    ];
    // A driver registered without keys written here (a new one, like the
    // echo example) still validates: its keys are its loader's to check.
    for name in volley_protocols::drivers::NAMES {
        if !described.contains(name) {
            branches.push(json!({
                "if": { "properties": { "driver": { "const": name } }, "required": ["driver"] },
                "then": { "additionalProperties": true },
            }));
        }
    }
    json!({
        "type": "object",
        "description": "A scenario: a driver, an executor and the driver's keys.",
        "properties": props(&common_keys()),
        "required": ["driver", "executor"],
        "allOf": branches,
        // The driver's keys count as evaluated through its `then`.
        "unevaluatedProperties": false,
    })
}

fn thresholds() -> Value {
    let item = json!({
        "anyOf": [
            { "type": "string", "description": "An expression: \"p(95)<200\", \"rate<0.01\", \"count>0\"." },
            table(
                "An expression with options.",
                &[
                    ("threshold", text("The expression.")),
                    ("abort_on_fail", flag("Stop the run as soon as it fails.")),
                    ("delay_abort_eval", dur("Judge for aborting only after this long.")),
                    ("after", dur("Slopes: fit only the values from then on.")),
                    (
                        "allow_empty",
                        flag("A rate or trend with no sample at the end passes instead of failing as \"no data\"."),
                    ),
                ],
                &["threshold"],
            ),
        ],
    });
    json!({
        "type": "object",
        "description": "metric or \"metric{tag:value}\" = [expressions]: a failed one makes the run exit 99.",
        "additionalProperties": { "type": "array", "items": item },
    })
}

fn options() -> Value {
    table(
        "How the run is reported.",
        &[(
            "summary_trend_stats",
            json!({
                "type": "array",
                "items": { "type": "string", "pattern": r"^(avg|min|med|max|count|p\([0-9]+(\.[0-9]+)?\))$" },
                "description": "The trend statistics the summary and report show, in order: avg, min, med, max, count, p(N).",
            }),
        )],
        &[],
    )
}

fn metrics() -> Value {
    json!({
        "type": "object",
        "description": "The plan's own metrics ([metrics.NAME]), fed by `record` and named by thresholds.",
        "additionalProperties": table(
            "A custom metric.",
            &[
                ("kind", one_of(&["counter", "gauge", "rate", "trend"], "The k6 metric type.")),
                ("unit", one_of(&["default", "time", "data"], "What its values are.")),
            ],
            &["kind"],
        ),
    })
}

fn monitors() -> Value {
    json!({
        "type": "object",
        "description": "[monitors.NAME]: a process, a JSON or a Prometheus endpoint polled every second.",
        "additionalProperties": table(
            "A monitor.",
            &[
                ("pid", anything("A process id, e.g. 12345 or \"${PID}\".")),
                ("pid_file", text("A file holding the process id.")),
                ("url", text("A JSON endpoint polled every second.")),
                ("json_path", text("Where the value is in the JSON, e.g. \"$.memory_mb\".")),
                ("prometheus", text("A Prometheus endpoint, e.g. \"http://127.0.0.1:9100/metrics\".")),
                ("metric", text("The Prometheus metric read.")),
                ("labels", strings("Labels the Prometheus series must have.")),
                ("gauge", text("The name of the gauge recorded.")),
                ("unit", text("The value's unit, e.g. \"MB\".")),
                ("scale", json!({ "type": "number", "description": "Multiplies each value read." })),
                ("timeout", dur("A poll's time limit.")),
            ],
            &[],
        ),
    })
}

/// The plan format as a JSON Schema (draft 2020-12).
pub fn plan_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "volley plan",
        "description": "A volley load-test plan (TOML). `volley validate PLAN` checks what the schema cannot. Print this schema with `volley schema`.",
        "type": "object",
        "properties": {
            "defaults": defaults(),
            "options": options(),
            "data": data(),
            "scenarios": {
                "type": "object",
                "description": "[scenarios.NAME]: what runs, and how.",
                "additionalProperties": scenario(),
            },
            "setup": phase("setup", "before any VU starts (their captures are {{ setup.NAME }})"),
            "teardown": phase("teardown", "after the last VU stopped, also after Ctrl-C"),
            "thresholds": thresholds(),
            "metrics": metrics(),
            "monitors": monitors(),
        },
        "additionalProperties": false,
    })
}

/// The schema as `volley schema` prints it (and as committed).
pub fn plan_schema_text() -> String {
    let mut s = serde_json::to_string_pretty(&plan_schema()).expect("a JSON value prints");
    s.push('\n');
    s
}
