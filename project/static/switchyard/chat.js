/* The chat page: conversations, replies streamed over EventSource, stop, resume after a drop or a reload. */
"use strict";

(() => {
  const { api, el, icon, markdown, formatCost, formatMs, describeError, copyText } = Switchyard;
  const $ = (id) => document.getElementById(id);
  const models = JSON.parse($("models-data").textContent);

  const sidebar = $("sidebar");
  const backdrop = $("sidebar-backdrop");
  const toggle = $("sidebar-toggle");
  const list = $("conversation-list");
  const listEmpty = $("conversation-empty");
  const title = $("chat-title");
  const scroller = $("messages");
  const welcome = $("welcome");
  const messageList = $("message-list");
  const form = $("composer");
  const input = $("message-input");
  const sendButton = $("send-button");
  const stopButton = $("stop-button");
  const status = $("chat-status");
  const modelSelect = $("model-select");

  // stream: the reply this page follows: {messageId, conversationId, node, text, source, frame}
  const state = { conversations: [], current: null, stream: null, sending: false, editing: null };

  function say(text) {
    status.textContent = text || "";
    status.hidden = !text;
  }

  // ---- layout ------------------------------------------------------------------------

  function setSidebar(open) {
    sidebar.classList.toggle("open", open);
    backdrop.hidden = !open;
    toggle.setAttribute("aria-expanded", String(open));
    if (open) $("new-chat").focus();
  }

  function nearBottom() {
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 120;
  }

  function scrollDown(force) {
    if (force || nearBottom()) scroller.scrollTop = scroller.scrollHeight;
  }

  function autosize() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight, 240) + "px";
  }

  function showWelcome() {
    welcome.hidden = messageList.children.length > 0;
  }

  function setBusy(busy) {
    sendButton.hidden = busy;
    stopButton.hidden = !busy;
  }

  // ---- conversations -----------------------------------------------------------------

  async function loadConversations() {
    const data = await api("GET", "/api/v1/conversations?limit=100");
    state.conversations = data.results || data;
    if (state.current) state.current = state.conversations.find((c) => c.id === state.current.id) || state.current;
    renderConversations();
  }

  function conversationTitle(conversation) {
    return conversation.title || "New chat";
  }

  function renderConversations() {
    if (state.current) title.textContent = conversationTitle(state.current);
    if (state.editing !== null) return;  // a list refreshed now would take the title field from under the person
    listEmpty.hidden = state.conversations.length > 0;
    list.replaceChildren(...state.conversations.map(conversationItem));
  }

  function remember(conversation) {
    state.conversations = state.conversations.map((c) => (c.id === conversation.id ? conversation : c));
    if (state.current && state.current.id === conversation.id) state.current = conversation;
  }

  function startRename(conversation) {
    const item = list.querySelector(`[data-conversation-id="${conversation.id}"]`);
    if (!item || state.editing !== null) return;
    state.editing = conversation.id;
    item.replaceWith(renameForm(conversation));
  }

  function conversationItem(conversation) {
    const current = Boolean(state.current && state.current.id === conversation.id);
    const name = conversationTitle(conversation);
    return el("li", { class: current ? "conversation current" : "conversation", "data-conversation-id": conversation.id },
      el("a", {
        class: "conversation-open", href: `/?c=${conversation.id}`, "aria-current": current ? "page" : null, title: name,
        onclick: (event) => { event.preventDefault(); openConversation(conversation.id); },
      }, name),
      el("span", { class: "conversation-actions" },
        el("button", { class: "icon-button", type: "button", title: "Rename", "aria-label": `Rename “${name}”`,
          onclick: () => startRename(conversation) }, icon("edit")),
        el("button", { class: "icon-button danger", type: "button", title: "Delete", "aria-label": `Delete “${name}”`,
          onclick: () => deleteConversation(conversation) }, icon("trash"))));
  }

  function renameForm(conversation) {
    const field = el("input", { type: "text", maxlength: "200", "aria-label": "Conversation title", value: conversation.title || "" });
    let settled = false;
    const finish = async (save) => {
      if (settled) return;
      settled = true;
      const value = field.value.trim();
      if (save && value && value !== conversation.title) {
        try {
          remember(await api("PATCH", `/api/v1/conversations/${conversation.id}`, { title: value }));
        } catch (error) { say(describeError(error)); }
      }
      state.editing = null;
      renderConversations();
      const item = list.querySelector(`[data-conversation-id="${conversation.id}"] .conversation-open`);
      if (item) item.focus();
    };
    field.addEventListener("keydown", (event) => {
      if (event.key === "Enter") { event.preventDefault(); finish(true); }
      if (event.key === "Escape") { event.preventDefault(); finish(false); }
    });
    field.addEventListener("blur", () => finish(true));
    setTimeout(() => { field.focus(); field.select(); }, 0);
    return el("li", { class: "conversation editing", "data-conversation-id": conversation.id }, field);
  }

  async function deleteConversation(conversation) {
    if (!window.confirm(`Delete “${conversationTitle(conversation)}”? This cannot be undone.`)) return;
    try {
      await api("DELETE", `/api/v1/conversations/${conversation.id}`);
      state.conversations = state.conversations.filter((c) => c.id !== conversation.id);
      if (state.current && state.current.id === conversation.id) newChat();
      renderConversations();
    } catch (error) { say(describeError(error)); }
  }

  function newChat() {
    closeStream();
    state.current = null;
    messageList.replaceChildren();
    title.textContent = "New chat";
    history.replaceState(null, "", "/");
    say("");
    showWelcome();
    renderConversations();
    setSidebar(false);
    input.focus();
  }

  function selectModel(name) {
    if (name && [...modelSelect.options].some((option) => option.value === name)) modelSelect.value = name;
  }

  async function openConversation(id) {
    closeStream();
    say("");
    setSidebar(false);
    try {
      const conversation = state.conversations.find((c) => c.id === id) || await api("GET", `/api/v1/conversations/${id}`);
      state.current = conversation;
      selectModel(conversation.model);
      history.replaceState(null, "", `/?c=${id}`);
      renderConversations();
      const data = await api("GET", `/api/v1/conversations/${id}/messages`);
      if (!state.current || state.current.id !== id) return;
      const items = data.results || data;
      messageList.replaceChildren(...items.map(renderMessage));
      showWelcome();
      scrollDown(true);
      const streaming = items.find((m) => m.role === "assistant" && m.status === "streaming");
      if (streaming) follow(streaming, nodeOf(streaming.id));
    } catch (error) {
      say(describeError(error));
    }
  }

  // ---- messages ----------------------------------------------------------------------

  function nodeOf(messageId) {
    return messageList.querySelector(`[data-message-id="${messageId}"]`);
  }

  function renderMessage(message) {
    if (message.role === "user") {
      return el("article", { class: "message user", "data-message-id": message.id },
        el("h2", { class: "sr-only" }, "You"),
        el("div", { class: "message-body plain" }, message.content));
    }
    const node = el("article", { class: "message assistant", "data-message-id": message.id, "data-status": message.status },
      el("div", { class: "avatar", "aria-hidden": "true" }, "S"),
      el("div", { class: "message-main" },
        el("h2", { class: "sr-only" }, "Assistant"),
        el("div", { class: "message-body markdown" }),
        el("div", { class: "message-notices" }),
        el("div", { class: "message-meta" })));
    paintText(node, message.content || "");
    settle(node, message);
    return node;
  }

  function paintText(node, text) {
    const body = node.querySelector(".message-body");
    if (!text && node.dataset.status === "streaming") {
      body.replaceChildren(el("span", { class: "typing", "aria-label": "The model is writing" }, el("i"), el("i"), el("i")));
    } else {
      body.innerHTML = markdown(text);
    }
  }

  function detailParts(message) {
    const parts = [];
    if (message.model) parts.push(message.model);
    if (message.provider) parts.push(`via ${message.provider}`);
    if (message.output_tokens) parts.push(`${message.input_tokens || 0} → ${message.output_tokens} tokens`);
    if (message.cost_usd !== undefined && message.cost_usd !== null && message.status !== "failed") parts.push(formatCost(message.cost_usd));
    if (message.latency_ms) parts.push(formatMs(message.latency_ms));
    return parts;
  }

  const FAILURES = {
    producer_lost: "The server generating this reply stopped.",
    client_gone: "The reply was stopped because no window was following it.",
    context_length_exceeded: "The conversation is too long for this model.",
    content_policy: "The provider refused to answer this request.",
  };

  // The end of a reply, from the saved message: badges, the detail line, errors and fallbacks.
  function settle(node, message) {
    const notices = node.querySelector(".message-notices");
    const meta = node.querySelector(".message-meta");
    notices.replaceChildren();
    meta.replaceChildren();
    if (message.status === "streaming") return;
    if (message.fallback_from && message.status !== "failed") {
      notices.append(el("p", { class: "notice notice-warn" },
        `${message.fallback_from} was unavailable, so ${message.model} answered instead.`));
    }
    if (message.status === "failed") {
      const error = { code: message.error_code, message: message.error_message || "" };
      const text = FAILURES[error.code] ? `${FAILURES[error.code]} ${error.message}` : describeError(error);
      notices.append(el("p", { class: "notice notice-error", role: "alert" },
        el("strong", {}, "The reply failed. "), text, " ", el("code", {}, error.code || "error")));
    }
    if (message.simulated) {
      meta.append(el("span", { class: "badge sim", title: "Written by the built-in provider simulator, not a real model" }, "Simulated"));
    }
    if (message.status === "cancelled") meta.append(el("span", { class: "badge stopped" }, "Stopped"));
    const parts = detailParts(message);
    if (parts.length) {
      meta.append(el("span", {
        class: "detail",
        title: `Served by ${message.model || "?"}${message.provider ? ` (${message.provider})` : ""}; `
          + `${message.input_tokens || 0} tokens in, ${message.output_tokens || 0} out; cost ${message.cost_usd ?? "?"} USD`
          + (message.ttft_ms ? `; first token after ${formatMs(message.ttft_ms)}` : ""),
      }, parts.join(" · ")));
    }
    if (node._text || message.content) {
      const button = el("button", { type: "button", class: "icon-button copy-reply", "aria-label": "Copy reply", title: "Copy reply" }, icon("copy"));
      button.addEventListener("click", async () => {
        if (await copyText(node._text || message.content)) {
          button.replaceChildren(icon("check"));
          setTimeout(() => button.replaceChildren(icon("copy")), 1500);
        }
      });
      meta.append(button);
    }
    if (message.status === "complete") meta.append(feedbackControls(message));
  }

  // Thumbs up or down on a finished reply, then an optional comment (POST /api/v1/feedback).
  function feedbackControls(message) {
    const box = el("span", { class: "feedback", role: "group", "aria-label": "Rate this reply" });
    const note = el("form", { class: "feedback-comment", hidden: "" },
      el("input", { type: "text", name: "comment", maxlength: "2000", placeholder: "What was good or wrong? (optional)", "aria-label": "Comment" }),
      el("button", { type: "submit", class: "button" }, "Send"));
    let score = 0;
    const give = async (comment) => {
      try {
        await api("POST", "/api/v1/feedback", { message_id: message.id, score, comment: comment || "" });
        say("");
        return true;
      } catch (error) {
        say(describeError(error));
        return false;
      }
    };
    for (const [value, label] of [[1, "Good reply"], [-1, "Bad reply"]]) {
      const thumb = icon("thumb");
      if (value < 0) thumb.classList.add("thumb-down");
      const button = el("button", { type: "button", class: "icon-button feedback-button", "aria-label": label, title: label, "aria-pressed": "false", "data-score": String(value) }, thumb);
      button.addEventListener("click", async () => {
        score = value;
        if (!(await give(""))) return;
        for (const other of box.querySelectorAll(".feedback-button")) other.setAttribute("aria-pressed", String(other === button));
        note.hidden = false;
      });
      box.append(button);
    }
    note.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (await give(note.elements.comment.value)) note.replaceChildren(el("span", { class: "muted" }, "Thanks for the feedback."));
    });
    box.append(note);
    return box;
  }

  // ---- streaming ---------------------------------------------------------------------

  function closeStream() {
    const stream = state.stream;
    if (stream) {
      stream.source.close();
      cancelAnimationFrame(stream.frame);
    }
    state.stream = null;
    setBusy(false);
  }

  function schedulePaint(stream) {
    if (stream.frame) return;
    stream.frame = requestAnimationFrame(() => {
      stream.frame = 0;
      stream.node._text = stream.text;
      paintText(stream.node, stream.text);
      scrollDown();
    });
  }

  // EventSource reconnects by itself after a dropped connection and sends Last-Event-ID, so
  // the server resumes right after the last token this page received: nothing lost or repeated.
  // A page that starts following (a reload) starts from the first token.
  function follow(message, node) {
    closeStream();
    const stream = { messageId: message.id, conversationId: message.conversation, node, text: "", source: null, frame: 0 };
    state.stream = stream;
    setBusy(true);
    node.dataset.status = "streaming";
    node.setAttribute("aria-busy", "true");
    node.querySelector(".message-meta").replaceChildren(
      el("span", { class: "detail" }, [message.model, message.simulated ? "simulated" : ""].filter(Boolean).join(" · ")));
    paintText(node, "");
    const source = new EventSource(`/api/v1/messages/${message.id}/stream`);
    stream.source = source;
    source.addEventListener("open", () => node.classList.remove("reconnecting"));
    source.addEventListener("token", (event) => {
      stream.text += JSON.parse(event.data).delta;
      schedulePaint(stream);
    });
    source.addEventListener("done", (event) => {
      const data = JSON.parse(event.data);
      finish(stream, data.status || (data.finish_reason === "cancelled" ? "cancelled" : "complete"));
    });
    source.addEventListener("error", (event) => {
      if (event.data) {  // the server's own `error` event: the reply failed
        const data = JSON.parse(event.data);
        finish(stream, "failed", { error_code: data.code, error_message: data.message });
      } else if (source.readyState === EventSource.CLOSED) {
        finish(stream, null);  // refused or already over (204): the saved message tells the end
      } else {
        node.classList.add("reconnecting");  // dropped: EventSource retries by itself
      }
    });
  }

  async function finish(stream, endStatus, error) {
    if (state.stream !== stream) return;
    closeStream();
    const { node } = stream;
    node._text = stream.text;
    node.classList.remove("reconnecting");
    node.removeAttribute("aria-busy");
    if (endStatus) node.dataset.status = endStatus;
    paintText(node, stream.text);
    if (error) settle(node, { status: "failed", ...error });
    try {
      const data = await api("GET", `/api/v1/conversations/${stream.conversationId}/messages`);
      const message = (data.results || data).find((m) => m.id === stream.messageId);
      if (message) {
        node.dataset.status = message.status;
        if (!endStatus && message.content) {  // the stream told us nothing: show what was saved
          node._text = message.content;
          paintText(node, message.content);
        }
        settle(node, message);
      }
    } catch (failure) {
      say(describeError(failure));
    }
    loadConversations().catch(() => {});
  }

  async function send(text) {
    const content = text === undefined ? input.value : text;
    if (!content.trim() || state.stream || state.sending) return;
    if (!modelSelect.value) { say("No models are available to you. Ask an administrator to add one."); return; }
    state.sending = true;
    sendButton.disabled = true;
    say("");
    try {
      let conversation = state.current;
      if (!conversation) {
        conversation = await api("POST", "/api/v1/conversations", { model: modelSelect.value });
        state.conversations.unshift(conversation);
        state.current = conversation;
        history.replaceState(null, "", `/?c=${conversation.id}`);
      }
      const reply = await api("POST", `/api/v1/conversations/${conversation.id}/messages`, { content, model: modelSelect.value });
      input.value = "";
      autosize();
      messageList.append(renderMessage(reply.user_message));
      const node = renderMessage(reply.assistant_message);
      messageList.append(node);
      showWelcome();
      scrollDown(true);
      follow(reply.assistant_message, node);
      loadConversations().catch(() => {});
    } catch (error) {
      say(describeError(error));
      renderConversations();
    } finally {
      state.sending = false;
      sendButton.disabled = false;
    }
  }

  async function stop() {
    if (!state.stream) return;
    stopButton.disabled = true;
    try {
      await api("POST", `/api/v1/messages/${state.stream.messageId}/cancel`);
    } catch (error) {
      say(describeError(error));
    } finally {
      stopButton.disabled = false;
    }
    input.focus();
  }

  // ---- wiring ------------------------------------------------------------------------

  form.addEventListener("submit", (event) => { event.preventDefault(); send(); });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); send(); }
  });
  input.addEventListener("input", autosize);
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    if (sidebar.classList.contains("open")) { setSidebar(false); toggle.focus(); } else if (state.stream) stop();
  });
  stopButton.addEventListener("click", stop);
  $("new-chat").addEventListener("click", newChat);
  toggle.addEventListener("click", () => setSidebar(!sidebar.classList.contains("open")));
  $("sidebar-close").addEventListener("click", () => { setSidebar(false); toggle.focus(); });
  backdrop.addEventListener("click", () => setSidebar(false));
  welcome.querySelectorAll(".suggestion").forEach((button) => button.addEventListener("click", () => send(button.textContent.trim())));
  modelSelect.addEventListener("change", async () => {
    if (!state.current) return;
    try {
      remember(await api("PATCH", `/api/v1/conversations/${state.current.id}`, { model: modelSelect.value }));
    } catch (error) { say(describeError(error)); }
  });
  if (!models.length) say("No models are available to you. Ask an administrator to add one.");

  showWelcome();
  loadConversations().then(() => {
    const wanted = new URLSearchParams(location.search).get("c");
    const conversation = wanted && state.conversations.find((c) => String(c.id) === wanted);
    if (conversation) openConversation(conversation.id);
    else if (wanted) openConversation(Number(wanted));
  }).catch((error) => say(describeError(error)));
})();
