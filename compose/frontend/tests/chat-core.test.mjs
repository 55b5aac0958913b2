// The page's logic under Node's built-in test runner (`node --test compose/frontend/tests/*.test.mjs`),
// with a scripted fetch: which failures are retried, with which key, and what the person sees.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  ApiError,
  Transcript,
  callApi,
  keyForSend,
  newIdempotencyKey,
} from "../site/assets/chat-core.js";

const FAST = { attempts: 4, baseDelayMs: 1, maxDelayMs: 2, attemptTimeoutMs: 1000 };
const noWait = async () => {};

function reply(status, body, headers = {}) {
  return new Response(body === undefined ? null : JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json", ...headers },
  });
}

/** A fetch that answers from a script, one entry per call, and records every call. */
function scripted(...answers) {
  const calls = [];
  const fetchImpl = async (path, init) => {
    calls.push({ path, init });
    const next = answers.shift();
    if (next instanceof Error) throw next;
    return next;
  };
  return { fetchImpl, calls };
}

test("a write retried after a network error and a 502 keeps its Idempotency-Key", async () => {
  const { fetchImpl, calls } = scripted(
    new TypeError("Failed to fetch"),
    reply(502, undefined),
    reply(201, { id: "m1" }, { "X-Replica": "r2", "Idempotent-Replayed": "true" }),
  );
  const retries = [];
  const result = await callApi(
    {
      method: "POST",
      path: "/api/v1/chat",
      token: "t",
      body: { message: "hi" },
      idempotencyKey: "k-1",
      onRetry: (info) => retries.push(info),
    },
    { fetchImpl, wait: noWait, options: FAST },
  );
  assert.equal(calls.length, 3);
  assert.deepEqual(
    calls.map((c) => c.init.headers["Idempotency-Key"]),
    ["k-1", "k-1", "k-1"],
  );
  assert.deepEqual(
    calls.map((c) => c.init.body),
    Array(3).fill(JSON.stringify({ message: "hi" })),
  );
  assert.equal(calls[0].init.headers.Authorization, "Bearer t");
  assert.deepEqual(
    retries.map((r) => [r.attempt, r.reason]),
    [
      [2, "network error"],
      [3, "502"],
    ],
  );
  assert.deepEqual(result, { data: { id: "m1" }, replica: "r2", replayed: true, attempts: 3 });
});

test("503 and 504 are retried; after the last attempt the person sees why", async () => {
  const { fetchImpl, calls } = scripted(
    reply(503, { message: "database unavailable" }),
    reply(504, undefined),
    reply(503, undefined),
    reply(503, { message: "database unavailable" }),
  );
  await assert.rejects(
    callApi({ method: "POST", path: "/x", idempotencyKey: "k" }, { fetchImpl, wait: noWait, options: FAST }),
    (error) => error instanceof ApiError && error.kind === "unavailable" && /503/.test(error.message),
  );
  assert.equal(calls.length, FAST.attempts);
});

test("a 401 is not retried and says to check the token", async () => {
  const { fetchImpl, calls } = scripted(reply(401, { error: "unauthorized", message: "invalid bearer token" }));
  await assert.rejects(
    callApi({ path: "/x", token: "bad" }, { fetchImpl, wait: noWait, options: FAST }),
    (error) => error.kind === "unauthorized" && error.status === 401 && /token/.test(error.message),
  );
  assert.equal(calls.length, 1);
});

test("a 429 is not retried and says how long to wait", async () => {
  const plain = new Response("Too Many Requests", { status: 429, headers: { "Retry-After": "3" } });
  const { fetchImpl, calls } = scripted(plain);
  await assert.rejects(
    callApi({ method: "POST", path: "/x", idempotencyKey: "k" }, { fetchImpl, wait: noWait, options: FAST }),
    (error) => error.kind === "rate_limited" && error.retryAfterS === 3 && /Wait 3 s/.test(error.message),
  );
  assert.equal(calls.length, 1);
});

test("other errors carry the API's own message", async () => {
  const { fetchImpl } = scripted(reply(422, { error: "validation_error", message: "message must not be empty" }));
  await assert.rejects(
    callApi({ path: "/x" }, { fetchImpl, wait: noWait, options: FAST }),
    (error) => error.kind === "http" && error.message === "message must not be empty",
  );
});

test("a request that hangs is abandoned and retried", async () => {
  let call = 0;
  const fetchImpl = (path, init) => {
    call += 1;
    if (call === 1) {
      return new Promise((_, reject) =>
        init.signal.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError"))),
      );
    }
    return Promise.resolve(reply(200, { ok: true }));
  };
  const reasons = [];
  const result = await callApi(
    { path: "/x", onRetry: (r) => reasons.push(r.reason) },
    { fetchImpl, wait: noWait, options: { ...FAST, attemptTimeoutMs: 20 } },
  );
  assert.deepEqual(reasons, ["timed out"]);
  assert.equal(result.attempts, 2);
});

test("network errors until the last attempt end in a kept-message error", async () => {
  const { fetchImpl } = scripted(...Array(FAST.attempts).fill(new TypeError("Failed to fetch")));
  await assert.rejects(
    callApi({ method: "POST", path: "/x", idempotencyKey: "k" }, { fetchImpl, wait: noWait, options: FAST }),
    (error) => error.kind === "network" && /message is kept/.test(error.message),
  );
});

test("the transcript shows each message once, in server order, keeping the replica badge", () => {
  const t = new Transcript();
  const at = "2026-12-02T00:00:01.000001+00:00";
  const later = "2026-12-02T00:00:02.000001+00:00";
  const user = { id: "u1", role: "user", content: "hi", created_at: at };
  const assistant = { id: "a1", role: "assistant", content: "hello", created_at: at };
  const user2 = { id: "u2", role: "user", content: "again", created_at: later };
  assert.equal(t.add([user, assistant], "r1").length, 2);
  // A replayed retry and a history page that overlaps: nothing new, badge kept.
  assert.equal(t.add([user, assistant], "r2").length, 0);
  assert.equal(t.add([user2, user, assistant]).length, 1);
  assert.deepEqual(
    t.messages.map((m) => [m.id, m.replica]),
    [
      ["u1", "r1"],
      ["a1", "r1"],
      ["u2", null],
    ],
  );
  // An older page loaded later goes before the newer messages.
  t.add([{ id: "u0", role: "user", content: "first", created_at: "2026-12-02T00:00:00+00:00" }]);
  assert.deepEqual(
    t.messages.map((m) => m.id),
    ["u0", "u1", "a1", "u2"],
  );
});

test("sending the same text again after an error reuses its key; new text gets a new one", () => {
  let n = 0;
  const make = () => `key-${++n}`;
  const first = keyForSend(null, "hi", "c1", make);
  assert.equal(keyForSend(first, "hi", "c1", make).key, "key-1");
  assert.equal(keyForSend(first, "hi there", "c1", make).key, "key-2");
  assert.equal(keyForSend(first, "hi", "c2", make).key, "key-3");
});

test("idempotency keys are 32 random hex digits", () => {
  const keys = new Set(Array.from({ length: 100 }, () => newIdempotencyKey()));
  assert.equal(keys.size, 100);
  for (const key of keys) assert.match(key, /^[0-9a-f]{32}$/);
});

test("Traefik's bare 404 (no route: no web replica configured) is retried; the API's JSON 404 is not", async () => {
  const bare = new Response("404 page not found\n", { status: 404, headers: { "Content-Type": "text/plain" } });
  const { fetchImpl, calls } = scripted(bare, reply(201, { id: "c1" }));
  const result = await callApi(
    { method: "POST", path: "/api/v1/conversations", idempotencyKey: "k" },
    { fetchImpl, wait: noWait, options: FAST },
  );
  assert.equal(result.attempts, 2);
  assert.equal(calls.length, 2);
  const api404 = scripted(reply(404, { error: "not_found", message: "conversation x not found" }));
  await assert.rejects(
    callApi({ path: "/api/v1/conversations/x" }, { fetchImpl: api404.fetchImpl, wait: noWait, options: FAST }),
    (error) => error.kind === "http" && error.status === 404 && /not found/.test(error.message),
  );
  assert.equal(api404.calls.length, 1);
});
