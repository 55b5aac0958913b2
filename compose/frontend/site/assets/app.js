// The chat page: wires chat-core.js (API calls, retries, transcript) to the DOM.
// The token lives only in this tab's sessionStorage and goes out only in the Authorization
// header of same-origin calls to /api (Traefik routes them to the `web` replicas).
import { ApiError, Transcript, callApi, keyForSend, newIdempotencyKey } from "./chat-core.js";

const API = "/api/v1";
// A conversation id that cannot exist: GET on it answers 404 to a valid token, 401 otherwise.
// The API has no "who am I signed in as" call, and this one reads nothing and writes nothing.
const PROBE_ID = "00000000-0000-0000-0000-000000000000";
const PAGE_SIZE = 50;
const store = window.sessionStorage;

const $ = (id) => document.getElementById(id);
const ui = {
  signIn: $("sign-in"),
  signInForm: $("sign-in-form"),
  token: $("token"),
  chat: $("chat"),
  chatTitle: $("chat-title"),
  newConversation: $("new-conversation"),
  loadMore: $("load-more"),
  transcript: $("transcript"),
  messageForm: $("message-form"),
  message: $("message"),
  send: $("send"),
  status: $("status"),
  error: $("error"),
  signOut: $("sign-out"),
  replicaNow: $("replica-now"),
  replicaNowId: $("replica-now-id"),
};

const state = {
  token: store.getItem("token"),
  conversationId: store.getItem("conversationId"),
  nextCursor: null,
  // { text, conversationId, key } until the API confirms the send; kept in sessionStorage so
  // that a reload mid-send offers the same text with the same key (stored once either way).
  pending: JSON.parse(store.getItem("pending") || "null"),
  busy: false,
  transcript: new Transcript(),
};

// --- feedback ------------------------------------------------------------------------------
function setStatus(text) {
  ui.status.textContent = text;
}

function showError(text) {
  ui.error.textContent = text;
  ui.error.hidden = !text;
}

function retrying(what) {
  return ({ attempt, reason }) => {
    document.body.dataset.retrying = "true";
    setStatus(`Retrying ${what} (attempt ${attempt}, after ${reason})…`);
    const bubble = ui.transcript.querySelector("li.pending");
    if (bubble) {
      bubble.classList.add("retrying");
      bubble.querySelector(".meta").textContent = `You · retrying (attempt ${attempt})…`;
    }
  };
}

function settled() {
  delete document.body.dataset.retrying;
}

function handleFailure(error, what) {
  settled();
  if (!(error instanceof ApiError)) throw error;
  setStatus("");
  if (error.kind === "unauthorized") {
    signOut();
    showError(error.message);
    return;
  }
  showError(`Could not ${what}: ${error.message}`);
}

// --- rendering -----------------------------------------------------------------------------
function badge(replica) {
  const span = document.createElement("span");
  span.className = "badge";
  span.title = "The backend replica that answered";
  span.textContent = `replica ${replica}`;
  return span;
}

function messageItem(message) {
  const li = document.createElement("li");
  li.className = `message ${message.role}`;
  li.dataset.id = message.id;
  li.dataset.role = message.role;
  const meta = document.createElement("p");
  meta.className = "meta";
  meta.append(message.role === "user" ? "You" : "Assistant");
  if (message.replica) {
    li.dataset.replica = message.replica;
    meta.append(" · ", badge(message.replica));
  }
  const content = document.createElement("p");
  content.className = "content";
  content.textContent = message.content;
  li.append(meta, content);
  return li;
}

function pendingItem(text) {
  const li = document.createElement("li");
  li.className = "message user pending";
  const meta = document.createElement("p");
  meta.className = "meta";
  meta.textContent = "You · sending…";
  const content = document.createElement("p");
  content.className = "content";
  content.textContent = text;
  li.append(meta, content);
  return li;
}

function render() {
  const pending = ui.transcript.querySelector("li.pending");
  ui.transcript.replaceChildren(...state.transcript.messages.map(messageItem));
  if (pending) ui.transcript.append(pending);
  ui.loadMore.hidden = !state.nextCursor;
  ui.transcript.lastElementChild?.scrollIntoView({ block: "nearest" });
}

function showReplica(replica) {
  if (!replica) return;
  ui.replicaNow.hidden = false;
  ui.replicaNowId.textContent = replica;
}

function showView() {
  const signedIn = Boolean(state.token);
  ui.signIn.hidden = signedIn;
  ui.chat.hidden = !signedIn;
  ui.signOut.hidden = !signedIn;
  const inConversation = Boolean(state.conversationId);
  ui.messageForm.hidden = !inConversation;
  ui.chatTitle.textContent = inConversation
    ? `Conversation ${state.conversationId.slice(0, 8)}`
    : "Start a conversation";
}

// --- actions -------------------------------------------------------------------------------
async function signIn(token) {
  showError("");
  setStatus("Checking the token…");
  try {
    await callApi({ path: `${API}/conversations/${PROBE_ID}`, token, onRetry: retrying("sign-in") });
  } catch (error) {
    // 404 is the expected answer for a valid token (see PROBE_ID).
    if (!(error instanceof ApiError && error.status === 404)) {
      handleFailure(error, "sign in");
      return;
    }
  }
  settled();
  state.token = token;
  store.setItem("token", token);
  ui.token.value = "";
  setStatus("Signed in.");
  showView();
  if (state.conversationId) await loadHistory(true);
  (state.conversationId ? ui.message : ui.newConversation).focus();
}

function signOut() {
  state.token = null;
  state.conversationId = null;
  state.nextCursor = null;
  state.pending = null;
  state.transcript.clear();
  store.removeItem("pending");
  store.removeItem("token");
  store.removeItem("conversationId");
  render();
  showView();
  ui.replicaNow.hidden = true;
  ui.token.focus();
}

async function startConversation() {
  if (state.busy) return;
  state.busy = true;
  showError("");
  setStatus("Starting a conversation…");
  try {
    const result = await callApi({
      method: "POST",
      path: `${API}/conversations`,
      token: state.token,
      body: {},
      idempotencyKey: newIdempotencyKey(),
      onRetry: retrying("starting the conversation"),
    });
    settled();
    state.conversationId = result.data.id;
    store.setItem("conversationId", state.conversationId);
    state.transcript.clear();
    state.nextCursor = null;
    state.pending = null;
    store.removeItem("pending");
    showReplica(result.replica);
    render();
    showView();
    setStatus("Conversation started.");
    ui.message.focus();
  } catch (error) {
    handleFailure(error, "start a conversation");
  } finally {
    state.busy = false;
  }
}

async function loadHistory(fromStart) {
  const conversationId = state.conversationId;
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (!fromStart && state.nextCursor) query.set("cursor", state.nextCursor);
  try {
    const result = await callApi({
      path: `${API}/conversations/${conversationId}/messages?${query}`,
      token: state.token,
      onRetry: retrying("loading messages"),
    });
    settled();
    if (conversationId !== state.conversationId) return; // switched meanwhile
    if (fromStart) state.transcript.clear();
    state.transcript.add(result.data.items);
    state.nextCursor = result.data.next_cursor;
    render();
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      // The conversation is gone (e.g. a new database): start afresh.
      state.conversationId = null;
      store.removeItem("conversationId");
      showView();
      setStatus("That conversation no longer exists; start a new one.");
      return;
    }
    handleFailure(error, "load the messages");
  }
}

async function sendMessage() {
  const text = ui.message.value;
  if (state.busy || !text.trim() || !state.conversationId) return;
  state.busy = true;
  ui.send.setAttribute("aria-disabled", "true");
  showError("");
  state.pending = keyForSend(state.pending, text, state.conversationId);
  store.setItem("pending", JSON.stringify(state.pending));
  const { key, conversationId } = state.pending;
  ui.transcript.querySelector("li.pending")?.remove();
  ui.transcript.append(pendingItem(text));
  ui.transcript.lastElementChild.scrollIntoView({ block: "nearest" });
  setStatus("Sending…");
  try {
    const result = await callApi({
      method: "POST",
      path: `${API}/chat`,
      token: state.token,
      body: { conversation_id: conversationId, message: text },
      idempotencyKey: key,
      onRetry: retrying("sending"),
    });
    settled();
    ui.transcript.querySelector("li.pending")?.remove();
    state.pending = null;
    store.removeItem("pending");
    if (ui.message.value === text) ui.message.value = "";
    if (conversationId === state.conversationId) {
      const { user_message: user, assistant_message: assistant } = result.data;
      state.transcript.add([user, assistant], result.replica);
    }
    showReplica(result.replica);
    render();
    const retried = result.attempts > 1 ? ` after ${result.attempts} attempts` : "";
    setStatus(`Answered by replica ${result.replica}${retried}.`);
  } catch (error) {
    ui.transcript.querySelector("li.pending")?.remove();
    handleFailure(error, "send the message");
  } finally {
    state.busy = false;
    ui.send.removeAttribute("aria-disabled");
  }
}

// --- events --------------------------------------------------------------------------------
ui.signInForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const token = ui.token.value.trim();
  if (!token) {
    showError("Enter an API token.");
    ui.token.focus();
    return;
  }
  signIn(token);
});
ui.signOut.addEventListener("click", () => {
  signOut();
  setStatus("Signed out.");
});
ui.newConversation.addEventListener("click", startConversation);
ui.loadMore.addEventListener("click", () => loadHistory(false));
ui.messageForm.addEventListener("submit", (event) => {
  event.preventDefault();
  sendMessage();
});
ui.message.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    sendMessage();
  }
});

showView();
// Back in a tab that was signed in (a reload): the history, and the focus where typing goes.
if (state.token && state.conversationId) {
  loadHistory(true);
  if (state.pending && state.pending.conversationId === state.conversationId) {
    ui.message.value = state.pending.text;
    setStatus("Your last message may not have been sent: press Enter to send it (never twice).");
  }
  ui.message.focus();
} else if (state.token) {
  ui.newConversation.focus();
}
document.body.dataset.ready = "true";
