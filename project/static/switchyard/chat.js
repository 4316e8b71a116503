/* The chat page: conversations, streamed replies over EventSource, stop, resume on reload. */
"use strict";

(() => {
  const { api, el, markdown, formatCost } = Switchyard;
  const state = { conversations: [], current: null, streaming: null };
  const $ = (id) => document.getElementById(id);
  const models = JSON.parse($("models-data").textContent);

  const list = $("conversation-list");
  const messages = $("messages");
  const form = $("composer");
  const input = $("message-input");
  const sendButton = $("send-button");
  const stopButton = $("stop-button");
  const status = $("chat-status");
  const modelSelect = $("model-select");

  function say(text, isError) {
    status.textContent = text || "";
    status.className = isError ? "chat-status alert alert-error" : "chat-status muted";
    status.hidden = !text;
  }

  function errorText(error) {
    if (error.code === "rate_limit_exceeded" || error.status === 429) return "Rate limit reached: " + error.message;
    if (error.status === 503 || error.status === 502) return "The model provider is unavailable right now: " + error.message;
    return error.message;
  }

  // ---- conversations -------------------------------------------------------------
  async function loadConversations() {
    const data = await api("GET", "/api/v1/conversations");
    state.conversations = data.results || data;
    renderConversations();
  }

  function renderConversations() {
    list.replaceChildren(...state.conversations.map((conversation) => {
      const current = state.current && state.current.id === conversation.id;
      return el("li", { class: current ? "conversation current" : "conversation" },
        el("button", {
          class: "conversation-open", type: "button", "aria-current": current ? "true" : "false",
          onclick: () => openConversation(conversation.id),
        }, conversation.title || "New chat"),
        el("button", { class: "icon-button", type: "button", title: "Rename", "aria-label": `Rename ${conversation.title || "chat"}`,
          onclick: () => renameConversation(conversation) }, "✎"),
        el("button", { class: "icon-button", type: "button", title: "Delete", "aria-label": `Delete ${conversation.title || "chat"}`,
          onclick: () => deleteConversation(conversation) }, "🗑"));
    }));
  }

  async function newConversation() {
    const conversation = await api("POST", "/api/v1/conversations", { model: modelSelect.value });
    state.conversations.unshift(conversation);
    await openConversation(conversation.id);
    input.focus();
    return conversation;
  }

  async function renameConversation(conversation) {
    const title = window.prompt("New title", conversation.title || "");
    if (title === null || !title.trim()) return;
    try {
      const updated = await api("PATCH", `/api/v1/conversations/${conversation.id}`, { title: title.trim() });
      Object.assign(conversation, updated);
      renderConversations();
    } catch (error) { say(errorText(error), true); }
  }

  async function deleteConversation(conversation) {
    if (!window.confirm(`Delete "${conversation.title || "New chat"}"?`)) return;
    try {
      await api("DELETE", `/api/v1/conversations/${conversation.id}`);
      state.conversations = state.conversations.filter((c) => c.id !== conversation.id);
      if (state.current && state.current.id === conversation.id) {
        state.current = null;
        messages.replaceChildren();
        history.replaceState(null, "", "/");
      }
      renderConversations();
    } catch (error) { say(errorText(error), true); }
  }

  async function openConversation(id) {
    closeStream();
    say("");
    const conversation = state.conversations.find((c) => c.id === id) || await api("GET", `/api/v1/conversations/${id}`);
    state.current = conversation;
    if (conversation.model && [...modelSelect.options].some((o) => o.value === conversation.model)) {
      modelSelect.value = conversation.model;
    }
    history.replaceState(null, "", `/?c=${id}`);
    renderConversations();
    const data = await api("GET", `/api/v1/conversations/${id}/messages`);
    const items = data.results || data;
    messages.replaceChildren(...items.map(renderMessage));
    const streaming = items.find((m) => m.role === "assistant" && m.status === "streaming");
    if (streaming) follow(streaming.id, messages.querySelector(`[data-message-id="${streaming.id}"]`));
    scrollDown();
  }

  // ---- messages ------------------------------------------------------------------
  function detailLine(message) {
    const parts = [];
    if (message.model) parts.push(message.model + (message.provider ? ` via ${message.provider}` : ""));
    if (message.cost_usd !== undefined && message.cost_usd !== null) parts.push(formatCost(message.cost_usd));
    const usage = message.usage || {};
    const tokens = (message.output_tokens ?? usage.completion_tokens ?? usage.output_tokens);
    if (tokens) parts.push(`${tokens} tokens`);
    if (message.fallback_from) parts.push(`fallback from ${message.fallback_from}`);
    return parts.join(" · ");
  }

  function renderMessage(message) {
    const body = el("div", { class: "bubble-body" });
    body.innerHTML = markdown(message.content || "");
    const meta = el("div", { class: "bubble-meta muted" });
    const node = el("article", { class: `bubble ${message.role}`, "data-message-id": message.id, "data-status": message.status || "complete" },
      el("div", { class: "bubble-role sr-only" }, message.role === "user" ? "You said" : "Assistant said"),
      body, meta);
    node._text = message.content || "";
    finishMeta(node, message);
    return node;
  }

  function finishMeta(node, message) {
    const meta = node.querySelector(".bubble-meta");
    meta.replaceChildren();
    if (message.role !== "assistant") return;
    if (message.simulated) meta.append(el("span", { class: "badge sim", title: "Generated by the built-in simulator, not a real model" }, "simulated"), " ");
    const line = detailLine(message);
    if (line) meta.append(line);
    if (message.status === "cancelled") meta.append(el("span", { class: "badge" }, "stopped"));
    const error = message.error || (message.error_code ? { code: message.error_code, message: message.error_message } : null);
    if (message.status === "failed" && error) {
      node.append(el("p", { class: "alert alert-error", role: "alert" }, `Reply failed (${error.code}): ${error.message || ""}`));
    }
  }

  function scrollDown() { messages.scrollTop = messages.scrollHeight; }

  function closeStream() {
    if (state.streaming) state.streaming.source.close();
    state.streaming = null;
    setBusy(false);
  }

  function setBusy(busy) {
    sendButton.disabled = busy;
    stopButton.hidden = !busy;
  }

  // EventSource reconnects by itself after a dropped connection, sending Last-Event-ID,
  // so the server resumes exactly after the last token this page rendered.
  function follow(messageId, node) {
    closeStream();
    setBusy(true);
    node.dataset.status = "streaming";
    node._text = "";
    const body = node.querySelector(".bubble-body");
    body.innerHTML = "";
    const source = new EventSource(`/api/v1/messages/${messageId}/stream`);
    state.streaming = { source, messageId, node };
    source.addEventListener("token", (event) => {
      node._text += JSON.parse(event.data).delta;
      body.innerHTML = markdown(node._text);
      scrollDown();
    });
    source.addEventListener("done", (event) => {
      const data = JSON.parse(event.data);
      node.dataset.status = data.status || (data.finish_reason === "cancelled" ? "cancelled" : "complete");
      closeStream();
      refreshMessage(messageId, node);
    });
    source.addEventListener("error", (event) => {
      if (!event.data) return; // a dropped connection: EventSource retries by itself
      const data = JSON.parse(event.data);
      node.dataset.status = "failed";
      closeStream();
      say(`The reply failed (${data.code}): ${data.message}`, true);
      refreshMessage(messageId, node);
    });
  }

  async function refreshMessage(messageId, node) {
    if (!state.current) return;
    const data = await api("GET", `/api/v1/conversations/${state.current.id}/messages`);
    const message = (data.results || data).find((m) => m.id === messageId);
    if (!message) return;
    node.dataset.status = message.status;
    finishMeta(node, message);
    loadConversations().catch(() => {});
  }

  async function send() {
    const content = input.value.trim();
    if (!content || state.streaming) return;
    say("");
    try {
      const conversation = state.current || await newConversation();
      const reply = await api("POST", `/api/v1/conversations/${conversation.id}/messages`, { content, model: modelSelect.value });
      input.value = "";
      messages.append(renderMessage(reply.user_message));
      const node = renderMessage({ id: reply.assistant_message.id, role: "assistant", content: "", status: "streaming" });
      messages.append(node);
      scrollDown();
      follow(reply.assistant_message.id, node);
    } catch (error) {
      say(errorText(error), true);
    }
  }

  async function stop() {
    if (!state.streaming) return;
    const { messageId } = state.streaming;
    try { await api("POST", `/api/v1/messages/${messageId}/cancel`); }
    catch (error) { say(errorText(error), true); }
  }

  form.addEventListener("submit", (event) => { event.preventDefault(); send(); });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); send(); }
  });
  stopButton.addEventListener("click", stop);
  $("new-chat").addEventListener("click", () => newConversation().catch((error) => say(errorText(error), true)));
  if (!models.length) say("No models are available to you. Ask an administrator to add one.", true);

  loadConversations().then(() => {
    const wanted = Number(new URLSearchParams(location.search).get("c")) || new URLSearchParams(location.search).get("c");
    if (wanted && state.conversations.some((c) => String(c.id) === String(wanted))) {
      openConversation(state.conversations.find((c) => String(c.id) === String(wanted)).id);
    }
  }).catch((error) => say(errorText(error), true));
})();
