"""Seed the knowledge base the agents search with articles about Switchyard itself.

Articles are created only where their slug is free, so an article an operator edited or
deleted and re-created is left alone; reversing removes only untouched seeded articles.
"""

from django.db import migrations

ARTICLES = [
    (
        "api-keys",
        "Creating, using and revoking API keys",
        "api keys, authentication, 401, bearer, revoke",
        "Create a key on the /keys/ page or with `python manage.py createapikey --user NAME`. The secret is "
        "shown once and stored only as a SHA-256 hash, so copy it when it appears; a lost key cannot be "
        "recovered, only replaced. Send it as `Authorization: Bearer <key>` or as `x-api-key: <key>`. A "
        "missing, wrong, revoked, disabled or expired key gets 401 with code invalid_api_key. Revoking a key "
        "on /keys/ or in the admin stops it within seconds on every server. A key can be limited to some "
        "models (`--models a,b`); using another model gets 403.",
    ),
    (
        "rate-limits",
        "Rate limits and the 429 response",
        "429, rate limit, rpm, tpm, retry-after, throttling, too many requests",
        "Each API key can have a requests-per-minute (rpm) and a tokens-per-minute (tpm) limit. Over a "
        "limit the API answers 429 with code rate_limit_exceeded and a Retry-After header in seconds; "
        "wait that long before retrying. Every response carries x-ratelimit-limit-requests, "
        "x-ratelimit-remaining-requests and x-ratelimit-reset-requests (and the same three for tokens), plus "
        "the IETF RateLimit and RateLimit-Policy headers, so a client can slow down before it is refused. "
        "Ask an administrator to raise a key's limits if your workload needs more.",
    ),
    (
        "budgets-and-costs",
        "Costs, monthly budgets and the X-Cost-USD header",
        "cost, billing, budget, price, usd, spend, invoice",
        "Every completion reports its price in the X-Cost-USD header, computed from the model's price per "
        "million input and output tokens. A key can have a monthly budget in USD; once the month's spend "
        "reaches it, further calls get 429 with code budget_exceeded until the next month or until an "
        "administrator raises the budget. Administrators see spend per key and per model on the costs "
        "dashboard in the admin. Cached answers (X-Cache: HIT) cost nothing.",
    ),
    (
        "streaming",
        "Streaming replies with server-sent events",
        "stream, sse, event-stream, tokens, done, chunk",
        "Send `stream: true` to /v1/chat/completions to receive `data: {chunk}` lines and a final "
        "`data: [DONE]`; add `stream_options: {include_usage: true}` to get token usage in the last chunk. "
        "If the provider fails after the stream began, the stream ends with an error chunk "
        "`data: {\"error\": {...}}` and then [DONE], never silently. Chat conversations stream at "
        "/api/v1/messages/{id}/stream; a dropped connection resumes with the Last-Event-ID header and loses "
        "nothing. Proxies must not buffer the response (the server sends X-Accel-Buffering: no).",
    ),
    (
        "fallbacks-and-breakers",
        "Fallbacks and circuit breakers: what happens when a provider fails",
        "fallback, circuit breaker, outage, 503, provider down, upstream_unavailable, retry",
        "Switchyard retries a failed call (after about 1 s, then 2-4 s, honouring Retry-After), then tries "
        "the model's fallbacks in order: the same model on another provider, then a cheaper model, then a "
        "cached answer to a similar question. The X-Fallback-From header names the model that failed. A "
        "provider that fails half of its last ten calls is skipped for 30 seconds (its circuit breaker is "
        "open), then one probe call decides whether it is healthy again. When nothing can answer, you get "
        "503 with code upstream_unavailable and a Retry-After header.",
    ),
    (
        "caching",
        "Response caching: exact and semantic",
        "cache, x-cache, hit, semantic, stale, no-cache",
        "Identical requests at temperature 0 are answered from the cache (X-Cache: HIT) for the model's "
        "cache lifetime, an hour by default. Models with semantic caching also answer near-identical "
        "questions (X-Cache: SEMANTIC-HIT) when the similarity is at least 0.95, within the same model, "
        "system prompt and parameters. Send `Cache-Control: no-cache` to skip the cache for one call, or "
        "`no-store` to also keep the answer out of it. Errors and cut-off streams are never cached. "
        "Administrators can purge entries in the admin.",
    ),
    (
        "deadlines-and-timeouts",
        "Deadlines and timeouts",
        "timeout, deadline, 504, slow, deadline_exceeded, latency",
        "Each kind of request has one deadline that covers every retry and fallback: 30 seconds for "
        "completions, 60 seconds per chat reply, 5 minutes per agent task. A request that cannot finish "
        "in time gets 504 with code deadline_exceeded; an agent task that runs out of time ends FAILED with "
        "error code timeout. Long outputs on slow models are the usual cause: lower max_tokens, pick a "
        "faster model, or use the agent task API, which does not hold a connection open.",
    ),
    (
        "agent-tasks",
        "Running agents as long tasks (202 and polling)",
        "agents, tasks, 202, polling, retry-after, idempotency-key, cancel, need_input",
        "POST /api/v1/tasks with {agent, input, model?} answers 202 at once with a Location header; poll "
        "GET /api/v1/tasks/{id} as its Retry-After header suggests (5 s while PENDING, 2 s while running). "
        "The task's log lists the agent's thoughts, actions and tool results; GET .../events streams them. "
        "Send an Idempotency-Key header to make retries of the POST safe: the same key returns the same "
        "task. A task in WAITING_INPUT asks a question: answer with POST .../input {request_id, value}. "
        "POST .../cancel stops a running task within two seconds; it answers 409 once the task finished.",
    ),
    (
        "interactive-agents",
        "Interactive agents over WebSocket",
        "websocket, ws, interactive, agent console, start_task, provide_input, 4401",
        "Connect to /ws/agents/ with your session cookie or an Authorization: Bearer key; the server sends "
        "{type: session}. Send {type: start_task, agent, input} and watch thought, action and tool_result "
        "messages arrive, then complete or error. Answer a need_input message with {type: provide_input, "
        "request_id, value}. One task runs at a time per connection (a second start gets error busy); "
        "{type: cancel} stops it, and closing the connection cancels it too. Connections without valid "
        "credentials are closed with code 4401; pages of other sites are refused.",
    ),
    (
        "openai-sdk",
        "Using the OpenAI Python SDK with Switchyard",
        "openai, sdk, python, base_url, compatible, client",
        "Switchyard speaks OpenAI's API, so the official SDK works unchanged: "
        "`OpenAI(base_url=\"http://HOST/v1\", api_key=\"<your Switchyard key>\")`. Chat completions, "
        "streaming, tools, response_format, embeddings and the models list all work. Use the public model "
        "names listed by GET /v1/models; Switchyard routes each to its provider. The extra `prompt` field "
        "({name, version?, variables}) applies a managed prompt template; pass it through `extra_body`.",
    ),
    (
        "prompt-templates",
        "Managed prompt templates",
        "prompt, template, version, system prompt, variables",
        "Administrators keep system prompts as named templates in the admin. Each edit creates a new "
        "immutable version, so request logs that name \"support-bot v3\" keep meaning the same text. A "
        "template names its variables as {name}; a request that omits one gets 400 naming it. Templates "
        "can set default parameters such as temperature and a default model. The agents use the templates "
        "agent-research-assistant and agent-support-triage when an administrator creates them.",
    ),
    (
        "error-codes",
        "Error codes reference",
        "error, status codes, 400, 401, 403, 404, 409, 413, 429, 502, 503, 504, request id",
        "Every error body is {error: {type, code, message, request_id}}. 400 invalid_request (bad input), "
        "401 invalid_api_key, 403 model_not_allowed, 404 not found or not yours (model_not_found, "
        "task_not_found), 409 conflict (task_finished, a reply already streaming), 413 too large, 429 rate "
        "limit or budget, 502 upstream_error, 503 upstream_unavailable, 504 deadline_exceeded. Quote the "
        "request_id (also in the X-Request-ID header) when you contact support.",
    ),
    (
        "simulator",
        "The provider simulator",
        "simulator, simulated, demo, testing, script, fake model",
        "The demo setup answers from a built-in provider simulator, and says so wherever its output is "
        "shown. It speaks the OpenAI, Anthropic and Gemini wire formats with deterministic text, and can be "
        "told to be slow, fail, rate-limit, hang or break streams, per model, through its /_sim/ control "
        "endpoint. Its `script` setting makes a model return given tool calls turn by turn, which is how the "
        "example agents run end to end without a real model.",
    ),
]


def seed(apps, schema_editor):
    KnowledgeArticle = apps.get_model("agents", "KnowledgeArticle")
    for slug, title, tags, body in ARTICLES:
        KnowledgeArticle.objects.get_or_create(slug=slug, defaults={"title": title, "tags": tags, "body": body})


def unseed(apps, schema_editor):
    KnowledgeArticle = apps.get_model("agents", "KnowledgeArticle")
    for slug, title, tags, body in ARTICLES:
        KnowledgeArticle.objects.filter(slug=slug, title=title, body=body).delete()


class Migration(migrations.Migration):
    dependencies = [("agents", "0001_initial")]

    operations = [migrations.RunPython(seed, unseed)]
