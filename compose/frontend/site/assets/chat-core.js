// The page's logic without the DOM: API calls with retries, idempotency keys, and the
// transcript that shows every message once. Kept apart from app.js so that Node's test runner
// can check it (compose/frontend/tests/) with a scripted fetch, no browser needed.

// Statuses Traefik answers when no replica could take the request (or one died mid-request):
// the write may or may not have happened, so it is sent again with the same Idempotency-Key.
export const RETRY_STATUSES = new Set([502, 503, 504]);

export const RETRY_DEFAULTS = Object.freeze({
  attempts: 16, // with the delays below: about 28 s of waiting before the page gives up
  baseDelayMs: 250,
  maxDelayMs: 2000,
  attemptTimeoutMs: 10000, // a request that hangs (frozen replica) is abandoned and retried
});

/** A failure the page shows to the person; `kind` picks the wording and what happens next. */
export class ApiError extends Error {
  constructor(kind, status, message, retryAfterS = null) {
    super(message);
    this.name = "ApiError";
    this.kind = kind; // unauthorized | rate_limited | unavailable | network | http
    this.status = status;
    this.retryAfterS = retryAfterS;
  }
}

/** A random Idempotency-Key. getRandomValues works on plain-HTTP origins too (randomUUID does not). */
export function newIdempotencyKey(cryptoImpl = globalThis.crypto) {
  const bytes = cryptoImpl.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function retryDelayMs(attempt, options = RETRY_DEFAULTS) {
  return Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** (attempt - 1));
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    if (body && typeof body.message === "string") return body.message;
  } catch {
    // not JSON (e.g. Traefik's plain-text 429): fall through to the status text
  }
  return `${response.status} ${response.statusText || "error"}`.trim();
}

/** The error a final (non-retried) failure response becomes. */
export async function errorFor(response) {
  if (response.status === 401) {
    return new ApiError(
      "unauthorized",
      401,
      "The API token was not accepted (401). Check it and sign in again.",
    );
  }
  if (response.status === 429) {
    const seconds = Number.parseInt(response.headers.get("Retry-After") || "", 10);
    const wait = Number.isFinite(seconds) && seconds > 0 ? seconds : 1;
    return new ApiError(
      "rate_limited",
      429,
      `Too many requests (429). Wait ${wait} s, then send again: the message is kept.`,
      wait,
    );
  }
  if (isRetryable(response)) {
    return new ApiError(
      "unavailable",
      response.status,
      `The service did not answer (${response.status}) after several tries. Send again later: the message is kept.`,
    );
  }
  return new ApiError("http", response.status, await errorMessage(response));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Whether to try again. Besides 502/503/504: a 404 that is not the API's JSON. Traefik answers
 * a bare "404 page not found" when no `web` replica is in its configuration at all (every one
 * unhealthy or restarting, seen on an overloaded host), which is an outage, not an answer.
 */
export function isRetryable(response) {
  if (RETRY_STATUSES.has(response.status)) return true;
  const type = response.headers.get("Content-Type") || "";
  return response.status === 404 && !type.includes("application/json");
}

/**
 * One API call, retried on a network error, a timeout or 502/503/504 with the same
 * Idempotency-Key (writes) so that a retry never stores twice. Resolves to
 * `{ data, replica, replayed, attempts }`; rejects with an ApiError.
 * `onRetry({ attempt, reason, delayMs })` is called before each new attempt (the "retrying" state).
 */
export async function callApi(
  { method = "GET", path, token, body, idempotencyKey, onRetry = () => {} },
  { fetchImpl = globalThis.fetch, wait = sleep, options = RETRY_DEFAULTS } = {},
) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const payload = body === undefined ? undefined : JSON.stringify(body);

  for (let attempt = 1; ; attempt += 1) {
    let response;
    let reason;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), options.attemptTimeoutMs);
    try {
      response = await fetchImpl(path, {
        method,
        headers,
        body: payload,
        credentials: "same-origin", // the sticky cookie goes along; nothing else is sent
        cache: "no-store",
        signal: abort.signal,
      });
    } catch (error) {
      reason = error && error.name === "AbortError" ? "timed out" : "network error";
    } finally {
      clearTimeout(timer);
    }
    if (response && !isRetryable(response)) {
      if (!response.ok) throw await errorFor(response);
      return {
        data: response.status === 204 ? null : await response.json(),
        replica: response.headers.get("X-Replica"),
        replayed: response.headers.get("Idempotent-Replayed") === "true",
        attempts: attempt,
      };
    }
    if (response) reason = `${response.status}`;
    if (attempt >= options.attempts) {
      if (response) throw await errorFor(response);
      throw new ApiError(
        "network",
        0,
        `Could not reach the service (${reason}) after ${attempt} tries. Send again: the message is kept.`,
      );
    }
    const delayMs = retryDelayMs(attempt, options);
    onRetry({ attempt: attempt + 1, reason, delayMs });
    await wait(delayMs);
  }
}

/**
 * The messages shown, each once: keyed by the id the API gave it, in server order.
 * Messages arrive from pages of history and from replies to sends, possibly both for the same
 * message (a send confirmed while history was loading, or a replayed retry): the second copy
 * only adds what the first lacked (e.g. the replica badge).
 */
export class Transcript {
  constructor() {
    this.messages = []; // { id, role, content, created_at, replica }
    this.byId = new Map();
  }

  /** Adds messages in the order given (a page, or [user, assistant] of one send); returns the new ones. */
  add(items, replica = null) {
    const added = [];
    for (const item of items) {
      const known = this.byId.get(item.id);
      if (known) {
        if (!known.replica && replica) known.replica = replica;
        continue;
      }
      const message = {
        id: item.id,
        role: item.role,
        content: item.content,
        created_at: item.created_at,
        replica,
      };
      // Server order: by created_at; a user message and its reply share one timestamp (one
      // transaction), so ties keep the order given. Sorting is stable.
      this.messages.push(message);
      this.byId.set(item.id, message);
      added.push(message);
    }
    if (added.length) {
      this.messages.sort((a, b) => Date.parse(a.created_at) - Date.parse(b.created_at));
    }
    return added;
  }

  clear() {
    this.messages = [];
    this.byId.clear();
  }
}

/**
 * A message typed but not yet confirmed keeps its Idempotency-Key until the API confirms it,
 * so sending the same text again after an error reuses the key and can never store it twice.
 */
export function keyForSend(pending, text, conversationId, makeKey = newIdempotencyKey) {
  if (pending && pending.text === text && pending.conversationId === conversationId) {
    return pending;
  }
  return { text, conversationId, key: makeKey() };
}
