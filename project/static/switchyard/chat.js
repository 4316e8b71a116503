/* The chat page: conversations (searched, paged on scroll), replies streamed over EventSource, stop,
   resume after a drop or a reload, continue and retry, versions of a reply, drafts kept per conversation. */
"use strict";

(() => {
  const { api, el, icon, markdown, formatCost, formatMs, describeError, copyText, highlightCode } = Switchyard;
  const $ = (id) => document.getElementById(id);
  const models = JSON.parse($("models-data").textContent);
  const config = JSON.parse($("chat-config").textContent);
  const PAGE = 50;

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
  const search = $("conversation-search");
  const listMore = $("conversation-more");
  const counter = $("composer-count");
  const toBottom = $("scroll-bottom");
  const exportMenu = $("chat-export");

  // stream: the reply this page follows: {messageId, conversationId, node, text, source, frame}
  // stale: another tab changed the open conversation while a message was being edited here.
  // next: the URL of the list's next page (null at its end); loading: a page is on its way.
  const state = {
    conversations: [], current: null, stream: null, sending: false, editing: null, stale: false,
    next: null, loading: false, query: "", chosen: {}, chosenEdit: {},
  };
  // Other tabs of this person: a reply started here appears there too.
  const tabs = "BroadcastChannel" in window ? new BroadcastChannel("switchyard-chat") : null;

  function say(...parts) {
    status.replaceChildren(...parts.filter((part) => part !== undefined && part !== null && part !== ""));
    status.hidden = !status.childNodes.length;
    if (!status.hidden) status.scrollIntoView({ block: "nearest" });
  }

  // A refused or failed call, said in place; a signed-out person is offered a log-in that keeps the draft.
  // sending: the call sent the person's words (a message, an edit); any other call (reading a
  // conversation, a reply's saved copy, the list) sent nothing of theirs, and says so.
  function sayError(error, { sending = false } = {}) {
    if (error.code === "not_authenticated" || error.status === 401 || (error.status === 403 && /credentials/i.test(error.message))) {
      const next = location.pathname + location.search;
      const login = el("a", { href: `/accounts/login/?next=${encodeURIComponent(next)}`, target: "_blank", rel: "noopener" }, "log in (opens a new tab)");
      if (sending) say("You are signed out, so nothing was sent. Your message is kept here: ", login, ", then send it again.");
      else say("You are signed out: ", login, ", then try again.");
      return;
    }
    say(describeError(error));
  }

  // ---- drafts: what is typed stays, per conversation, across reloads ----------------------

  function draftKey(conversationId) {
    return `switchyard.draft.${conversationId || "new"}`;
  }

  function draftSave() {
    try {
      if (input.value) localStorage.setItem(draftKey(state.current && state.current.id), input.value);
      else localStorage.removeItem(draftKey(state.current && state.current.id));
    } catch (_) { /* storage full or disabled: the draft stays in the box */ }
  }

  function draftRestore() {
    let text = "";
    try { text = localStorage.getItem(draftKey(state.current && state.current.id)) || ""; } catch (_) { text = ""; }
    input.value = text;
    autosize();
    countChars();
  }

  function draftClear(conversationId) {
    try { localStorage.removeItem(draftKey(conversationId)); } catch (_) { /* nothing kept */ }
  }

  // The counter shows near the limit; over it, sending is refused here and the text stays.
  function countChars() {
    const length = input.value.length;
    const near = length >= config.maxChars * 0.9;
    counter.hidden = !near;
    counter.classList.toggle("over", length > config.maxChars);
    if (!near) return;
    const count = `${length.toLocaleString("en")} / ${config.maxChars.toLocaleString("en")}`;
    counter.textContent = length > config.maxChars
      ? `${count} characters: ${(length - config.maxChars).toLocaleString("en")} too many` : `${count} characters`;
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

  // Instant, not the pane's smooth scrolling: a reply that ends while a smooth scroll is under way
  // would find the pane "not at the bottom" and leave its end hidden under the message box.
  function scrollDown(force) {
    if (force || nearBottom()) scroller.scrollTo({ top: scroller.scrollHeight, behavior: "instant" });
    else showToBottom(true);
  }

  // The button appears when the latest messages are out of sight; "New content below" when text arrived meanwhile.
  function showToBottom(fresh) {
    if (nearBottom()) { toBottom.hidden = true; toBottom.classList.remove("fresh"); return; }
    toBottom.hidden = false;
    if (fresh) toBottom.classList.add("fresh");
    $("scroll-bottom-label").textContent = toBottom.classList.contains("fresh") ? "New content below" : "Scroll to the latest";
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

  function listUrl(limit, offset) {
    const query = new URLSearchParams({ limit: String(limit), offset: String(offset) });
    if (state.query) query.set("search", state.query);
    return `/api/v1/conversations?${query}`;
  }

  // The first page again (as many rows as are shown, so a refresh does not shorten the list).
  async function loadConversations() {
    const query = state.query;
    const data = await api("GET", listUrl(Math.min(1000, Math.max(PAGE, state.conversations.length)), 0));
    if (query !== state.query) return;
    state.conversations = data.results;
    state.next = data.next;
    if (state.current) state.current = state.conversations.find((c) => c.id === state.current.id) || state.current;
    renderConversations();
  }

  async function loadMoreConversations() {
    if (!state.next || state.loading) return;
    state.loading = true;
    listMore.hidden = false;
    const query = state.query;
    try {
      const data = await api("GET", listUrl(PAGE, state.conversations.length));
      if (query !== state.query) return;
      const known = new Set(state.conversations.map((c) => c.id));
      state.conversations.push(...data.results.filter((c) => !known.has(c.id)));
      state.next = data.next;
      renderConversations();
    } catch (error) {
      sayError(error);
    } finally {
      state.loading = false;
      listMore.hidden = true;
    }
  }

  function listNearEnd() {
    return list.scrollHeight - list.scrollTop - list.clientHeight < 200;
  }

  function conversationTitle(conversation) {
    return conversation.title || "New chat";
  }

  function renderConversations() {
    if (state.current) title.textContent = conversationTitle(state.current);
    exportMenu.hidden = !state.current;
    if (state.current) {
      $("export-markdown").href = `/api/v1/conversations/${state.current.id}/export?as=markdown`;
      $("export-json").href = `/api/v1/conversations/${state.current.id}/export?as=json`;
    }
    if (state.editing !== null) return;  // a list refreshed now would take the title field from under the person
    listEmpty.hidden = state.conversations.length > 0;
    listEmpty.textContent = state.query ? `No conversation holds “${state.query}”.` : "Your conversations will appear here.";
    $("conversation-heading").textContent = state.query ? "Found" : "Recent";
    const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest("#conversation-list li");
    const focusedId = focused ? focused.dataset.conversationId : null;
    list.replaceChildren(...state.conversations.map(conversationItem));
    rovingReset(focusedId);
    // A short first page leaves nothing to scroll: fetch on until the list can scroll or ends.
    if (state.next && list.scrollHeight <= list.clientHeight + 4) loadMoreConversations();
  }

  // One Tab stop for the whole list (roving tabindex): arrows move between conversations,
  // F2 renames and Delete deletes the focused one.
  function rovingReset(focusedId) {
    const links = [...list.querySelectorAll(".conversation-open")];
    const current = links.find((link) => link.getAttribute("aria-current") === "page");
    const keep = focusedId && list.querySelector(`[data-conversation-id="${focusedId}"] .conversation-open`);
    const active = keep || current || links[0];
    links.forEach((link) => link.setAttribute("tabindex", link === active ? "0" : "-1"));
    if (keep) keep.focus();
  }

  function rovingMove(link, key) {
    const links = [...list.querySelectorAll(".conversation-open")];
    const index = links.indexOf(link);
    const target = { ArrowDown: links[index + 1], ArrowUp: links[index - 1], Home: links[0], End: links[links.length - 1] }[key];
    if (!target) return;
    links.forEach((other) => other.setAttribute("tabindex", other === target ? "0" : "-1"));
    target.focus();
    if (key === "ArrowDown" || key === "End") loadMoreConversations();
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
        class: "conversation-open", href: `/?c=${conversation.id}`, "aria-current": current ? "page" : null, title: name, dir: "auto",
        "aria-keyshortcuts": "F2 Delete",
        onclick: (event) => {
          // Ctrl, Cmd or Shift and a click: the browser opens the link in a new tab or window.
          if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey || event.altKey) return;
          event.preventDefault();
          openConversation(conversation.id, { push: true });
        },
        onkeydown: (event) => {
          if (["ArrowDown", "ArrowUp", "Home", "End"].includes(event.key)) { event.preventDefault(); rovingMove(event.currentTarget, event.key); }
          if (event.key === "F2") { event.preventDefault(); startRename(conversation); }
          if (event.key === "Delete") { event.preventDefault(); deleteConversation(conversation); }
        },
      }, name),
      el("span", { class: "conversation-actions" },
        el("button", { class: "icon-button", type: "button", tabindex: "-1", title: "Rename (F2)", "aria-label": `Rename “${name}”`,
          onclick: () => startRename(conversation) }, icon("edit")),
        el("button", { class: "icon-button danger", type: "button", tabindex: "-1", title: "Delete (Delete key)", "aria-label": `Delete “${name}”`,
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
        } catch (error) { sayError(error); }
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
      draftClear(conversation.id);
      if (state.current && state.current.id === conversation.id) newChat();
      renderConversations();
      if (tabs) tabs.postMessage({ type: "deleted", conversation: conversation.id });
    } catch (error) { sayError(error); }
  }

  // A conversation deleted elsewhere (another tab, or before an old link was opened): start a new
  // chat instead, keeping whatever was typed in the message box.
  function conversationGone(id, notice) {
    const typed = input.value;
    state.conversations = state.conversations.filter((c) => c.id !== id);
    newChat();
    if (typed) { input.value = typed; autosize(); countChars(); draftSave(); }
    say(notice);
  }

  // push: the person asked for it (the New chat button), so Back returns to where they were.
  function newChat({ push = false } = {}) {
    if (push && location.search) history.pushState(null, "", "/");
    closeStream();
    state.current = null;
    state.chosen = {};
    state.chosenEdit = {};
    state.stale = false;
    draftRestore();
    selectModel(config.defaultModel);
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
    const option = modelSelect.selectedOptions[0];
    modelSelect.title = option ? option.title : "";
  }

  // push: the person chose it in the list, so Back returns to the conversation they were on.
  async function openConversation(id, { keepScroll = false, push = false } = {}) {
    if (push && new URLSearchParams(location.search).get("c") !== String(id)) history.pushState(null, "", `/?c=${id}`);
    closeStream();
    say("");
    setSidebar(false);
    state.stale = false;
    const switching = !state.current || state.current.id !== id;
    try {
      const conversation = state.conversations.find((c) => c.id === id) || await api("GET", `/api/v1/conversations/${id}`);
      state.current = conversation;
      if (switching) { state.chosen = {}; state.chosenEdit = {}; draftRestore(); }
      selectModel(conversation.model);
      history.replaceState(null, "", `/?c=${id}`);
      renderConversations();
      const data = await api("GET", `/api/v1/conversations/${id}/messages`);
      if (!state.current || state.current.id !== id) return;
      const items = data.results || data;
      messageList.replaceChildren(...items.map(renderMessage));
      versionsApply();
      showWelcome();
      if (!keepScroll) scrollDown(true);
      const streaming = items.find((m) => m.role === "assistant" && m.status === "streaming");
      if (streaming) follow(streaming, nodeOf(streaming.id));
    } catch (error) {
      if (error.status === 404) conversationGone(id, "That conversation is not here any more: it was deleted, or it belongs to someone else.");
      else sayError(error);
    }
  }

  // ---- messages ----------------------------------------------------------------------

  function nodeOf(messageId) {
    return messageList.querySelector(`[data-message-id="${messageId}"]`);
  }

  function copyButton(label, text) {
    const button = el("button", { type: "button", class: "icon-button copy-button", "aria-label": label, title: label }, icon("copy"));
    button.addEventListener("click", async () => {
      if (await copyText(text())) {
        button.replaceChildren(icon("check"));
        setTimeout(() => button.replaceChildren(icon("copy")), 1500);
      }
    });
    return button;
  }

  function renderMessage(message) {
    if (message.role === "user") {
      const node = el("article", {
        class: "message user", "data-message-id": message.id, "data-edit-group": String(message.edit_of ?? message.id),
      },
        el("h2", { class: "sr-only" }, "You"),
        el("div", { class: "message-body plain", dir: "auto" }, message.content));
      node._message = message;
      node.append(el("div", { class: "message-actions user-actions", role: "group", "aria-label": "Message actions" },
        editPager(node),
        copyButton("Copy message", () => message.content),
        el("button", { type: "button", class: "icon-button edit-message", "aria-label": "Edit message", title: "Edit and resend",
          onclick: () => editStart(node) }, icon("edit"))));
      return node;
    }
    const group = message.reply_to === null || message.reply_to === undefined ? `own-${message.id}` : String(message.reply_to);
    const node = el("article", {
      class: "message assistant", "data-message-id": message.id, "data-status": message.status, "data-version-group": group,
    },
      el("div", { class: "avatar", "aria-hidden": "true" }, "S"),
      el("div", { class: "message-main" },
        el("h2", { class: "sr-only" }, "Assistant"),
        el("div", { class: "message-body markdown", dir: "auto" }),
        el("div", { class: "message-notices" }),
        el("div", { class: "message-meta" })));
    node._message = message;
    paintText(node, message.content || "");
    settle(node, message);
    return node;
  }

  // ---- versions of a reply (regenerate, retry): one shown at a time, 1/2 and 2/2 -------------

  function versionNodes(group) {
    return [...messageList.querySelectorAll(`.message.assistant[data-version-group="${group}"]`)];
  }

  // ---- branches (edits): each version of an edited message has the turns that followed it ------
  // An edit is written after everything before it, so the turns of an earlier version lie between
  // that version and the next one (the server's rule too: chat.selectors.newest_branch).

  function editVersions(group) {
    return [...messageList.querySelectorAll(`.message.user[data-edit-group="${group}"]`)];
  }

  function offBranch() {
    const users = [...messageList.querySelectorAll(".message.user")];
    const spans = [...new Set(users.map((node) => node.dataset.editGroup))].map((group) => {
      const ids = editVersions(group).map((node) => Number(node.dataset.messageId));
      const chosen = ids.includes(Number(state.chosenEdit[group])) ? Number(state.chosenEdit[group]) : ids[ids.length - 1];
      const next = ids[ids.indexOf(chosen) + 1];
      return { group, first: ids[0], chosen, next: next === undefined ? Infinity : next, many: ids.length > 1 };
    }).filter((span) => span.many);
    const off = new Set();
    [...messageList.children].forEach((node) => {
      const id = Number(node.dataset.messageId);
      spans.forEach((span) => {
        if (node.dataset.editGroup === span.group) { if (id !== span.chosen) off.add(node); return; }
        if (id > span.first && !(id > span.chosen && id < span.next)) off.add(node);
      });
    });
    return { off, newest: spans.every((span) => span.next === Infinity) };
  }

  function editPager(node) {
    return el("span", { class: "versions edit-versions", role: "group", "aria-label": "Versions of this message", hidden: true },
      el("button", { type: "button", class: "icon-button versions-prev", "aria-label": "Previous version of this message", onclick: () => editStep(node, -1) }, "‹"),
      el("span", { class: "versions-count", tabindex: "-1" }, ""),
      el("button", { type: "button", class: "icon-button versions-next", "aria-label": "Next version of this message", onclick: () => editStep(node, 1) }, "›"));
  }

  function editStep(node, step) {
    const nodes = editVersions(node.dataset.editGroup);
    const target = nodes[nodes.indexOf(node) + step];
    if (!target) return;
    state.chosenEdit[node.dataset.editGroup] = target.dataset.messageId;
    versionsApply();
    const button = target.querySelector(step < 0 ? ".edit-versions .versions-prev" : ".edit-versions .versions-next");
    (button && !button.disabled ? button : target.querySelector(".edit-versions .versions-count")).focus();
  }

  function editStart(node) {
    if (state.stream || state.sending || node.querySelector(".edit-form")) return;
    const body = node.querySelector(".message-body");
    const field = el("textarea", { class: "edit-field", rows: "3", dir: "auto", "aria-label": "New version of the message" });
    field.value = node._message.content;
    const form = el("form", { class: "edit-form" }, field,
      el("div", { class: "row" },
        el("button", { type: "submit", class: "button primary small" }, "Send edit"),
        el("button", { type: "button", class: "button small", onclick: () => editClose(node, form, body) }, "Cancel")));
    form.addEventListener("submit", (event) => { event.preventDefault(); editSend(node, field.value, form, body); });
    field.addEventListener("keydown", (event) => {
      if (event.key === "Escape") { event.preventDefault(); event.stopPropagation(); editClose(node, form, body); }
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); form.requestSubmit(); }
    });
    node.classList.add("editing");
    body.replaceWith(form);
    field.focus();
  }

  // A reply started in another tab meanwhile is shown once the edit is closed, not over it (state.stale).
  function editClose(node, form, body) {
    form.replaceWith(body);
    node.classList.remove("editing");
    if (state.stale && state.current) openConversation(state.current.id);
  }

  async function editSend(node, content, form, body) {
    if (!content.trim() || state.stream || state.sending) return;
    if (content.length > config.maxChars) { say(`A message holds at most ${config.maxChars.toLocaleString("en")} characters.`); return; }
    state.sending = true;
    try {
      const posted = await api("POST", `/api/v1/messages/${node.dataset.messageId}/edit`, { content, model: modelSelect.value });
      if (!node.isConnected) { startedElsewhere(posted.user_message.conversation); return; }
      if (state.stale) {  // read again, with the other tab's messages, this edit and its reply
        editClose(node, form, body);
        announce(posted.user_message.conversation);
        return;
      }
      form.replaceWith(body);
      node.classList.remove("editing");
      const user = renderMessage(posted.user_message);
      const reply = renderMessage(posted.assistant_message);
      messageList.append(user, reply);
      state.chosenEdit[user.dataset.editGroup] = user.dataset.messageId;
      versionsApply();
      scrollDown(true);
      follow(posted.assistant_message, reply);
      announce(posted.user_message.conversation);
    } catch (error) {
      sayError(error, { sending: true });
    } finally {
      state.sending = false;
    }
  }

  function versionsApply() {
    const { off, newest } = offBranch();
    messageList.querySelectorAll(".message.user").forEach((node) => {
      node.hidden = off.has(node);
      const versions = editVersions(node.dataset.editGroup);
      const index = versions.indexOf(node);
      const pager = node.querySelector(".edit-versions");
      pager.hidden = versions.length < 2;
      pager.querySelector(".versions-count").textContent = `${index + 1}/${versions.length}`;
      pager.querySelector(".versions-prev").disabled = index === 0;
      pager.querySelector(".versions-next").disabled = index === versions.length - 1;
      // Edits go on from the newest branch only (the server's rule too), and not while a reply
      // streams (the server answers 409), as the reply actions are hidden then.
      node.querySelector(".edit-message").hidden = !newest || index !== versions.length - 1 || Boolean(state.stream);
    });
    const groups = new Set([...messageList.querySelectorAll(".message.assistant")].map((node) => node.dataset.versionGroup));
    groups.forEach((group) => {
      const all = versionNodes(group);
      all.forEach((node) => { if (off.has(node)) node.hidden = true; });
      const nodes = all.filter((node) => !off.has(node));
      const chosen = nodes.find((node) => node.dataset.messageId === String(state.chosen[group])) || nodes[nodes.length - 1];
      nodes.forEach((node, index) => {
        node.hidden = node !== chosen;
        const pager = node.querySelector(".versions");
        if (!pager) return;
        pager.hidden = nodes.length < 2;
        pager.querySelector(".versions-count").textContent = `${index + 1}/${nodes.length}`;
        pager.querySelector(".versions-prev").disabled = index === 0;
        pager.querySelector(".versions-next").disabled = index === nodes.length - 1;
      });
    });
    refreshActions();
  }

  function versionStep(node, step) {
    const nodes = versionNodes(node.dataset.versionGroup);
    const target = nodes[nodes.indexOf(node) + step];
    if (!target) return;
    state.chosen[node.dataset.versionGroup] = target.dataset.messageId;
    versionsApply();
    const button = target.querySelector(step < 0 ? ".versions-prev" : ".versions-next");
    (button && !button.disabled ? button : target.querySelector(".versions-count")).focus();
  }

  function versionPager(node) {
    return el("span", { class: "versions", role: "group", "aria-label": "Versions of this reply", hidden: true },
      el("button", { type: "button", class: "icon-button versions-prev", "aria-label": "Previous version", onclick: () => versionStep(node, -1) }, "‹"),
      el("span", { class: "versions-count", tabindex: "-1" }, ""),
      el("button", { type: "button", class: "icon-button versions-next", "aria-label": "Next version", onclick: () => versionStep(node, 1) }, "›"));
  }

  // The reply to the last message is the one that can be continued, retried or regenerated.
  function isLatest(node) {
    if (!offBranch().newest) return false;
    const users = messageList.querySelectorAll(".message.user:not([hidden])");
    const last = users[users.length - 1];
    return !last || Boolean(last.compareDocumentPosition(node) & Node.DOCUMENT_POSITION_FOLLOWING);
  }

  function refreshActions() {
    messageList.querySelectorAll(".message.assistant").forEach((node) => {
      if (node._message && node.dataset.status !== "streaming") actionsFill(node, node._message);
    });
  }

  // The footer's buttons. Other features add theirs to the same ``.message-actions`` group.
  function actionsFill(node, message) {
    const actions = node.querySelector(".message-actions");
    if (!actions) return;  // a reply whose saved copy could not be read back has no footer yet
    actions.querySelectorAll(".reply-action").forEach((button) => button.remove());
    const busy = Boolean(state.stream);
    const latest = isLatest(node) && !busy;
    const text = node._text || message.content;
    const add = (label, handler, primary) => actions.insertBefore(el("button", {
      type: "button", class: `button small reply-action${primary ? " primary" : ""}`, onclick: () => handler(node),
    }, label), actions.querySelector(".copy-reply"));
    if (latest && (message.status === "cancelled" || message.status === "failed")) {
      if (text) add("Continue", continueReply, true);
      add("Retry", regenerateReply, !text);
    } else if (latest && message.status === "complete") {
      add("Regenerate", regenerateReply, false);
    }
  }

  function paintText(node, text) {
    const body = node.querySelector(".message-body");
    if (!text && node.dataset.status === "streaming") {
      body.replaceChildren(el("span", { class: "typing", "aria-label": "The model is writing" }, el("i"), el("i"), el("i")));
    } else {
      body.innerHTML = markdown(text);
      if (node.dataset.status !== "streaming") highlightCode(body);  // once, when the text is final
    }
  }

  function detailParts(message) {
    const parts = [];
    if (message.status === "failed") {  // no model answered: name none
      if (message.latency_ms) parts.push(`failed after ${formatMs(message.latency_ms)}`);
      return parts;
    }
    if (message.model) parts.push(message.model);
    if (message.provider) parts.push(`via ${message.provider}`);
    if (message.output_tokens) parts.push(`${message.input_tokens || 0} → ${message.output_tokens} tokens`);
    if (message.cost_usd !== undefined && message.cost_usd !== null && message.status !== "failed") parts.push(formatCost(message.cost_usd));
    if (message.latency_ms) parts.push(formatMs(message.latency_ms));
    return parts;
  }

  // What each failure means to the person reading it (codes: docs/api.md). Unknown codes show
  // the server's own sentence, which is written for its reader too.
  const FAILURES = {
    upstream_unavailable: "The model provider is unavailable right now. Retry in a moment, or pick another model.",
    upstream_error: "The model provider failed while writing the reply.",
    deadline_exceeded: "The model took too long to answer.",
    producer_lost: "The server writing this reply stopped before it ended.",
    stream_unavailable: "The reply could not be saved as it was written.",
    context_length_exceeded: "The conversation is too long for this model. Start a new chat, or pick a model that reads more.",
    content_policy: "The model provider declined to answer this request.",
    internal_error: "Something went wrong inside Switchyard.",
    model_not_found: "This model is no longer available. Pick another one.",
  };

  function failureText(error) {
    if (FAILURES[error.code]) return FAILURES[error.code];
    if ((error.code || "").startsWith("rate_limit") || (error.code || "").includes("budget")) return describeError(error);
    return error.message || "The reply failed.";
  }

  // Staff see which request it was, linked to its request-log entry; others see no internals.
  function staffReference(message) {
    if (!config.requestLogUrl || !message.request_id) return null;
    return el("span", { class: "staff-ref" }, " Request ",
      el("a", { href: `${config.requestLogUrl}?q=${encodeURIComponent(message.request_id)}`, target: "_blank", rel: "noopener" },
        message.request_id));
  }

  // The end of a reply, from the saved message: badges, the detail line, errors and fallbacks.
  function settle(node, message) {
    const notices = node.querySelector(".message-notices");
    const meta = node.querySelector(".message-meta");
    node._message = { ...(node._message || {}), ...message };
    message = node._message;
    notices.replaceChildren();
    meta.replaceChildren();
    if (message.status === "streaming") return;
    if (message.fallback_from && message.status !== "failed") {
      notices.append(el("p", { class: "notice notice-warn" },
        `${message.fallback_from} was unavailable, so ${message.model} answered instead.`));
    }
    if (message.status === "failed") {
      const error = { code: message.error_code, message: message.error_message || "" };
      notices.append(el("p", { class: "notice notice-error", role: "alert" },
        el("strong", {}, "The reply failed. "), failureText(error), " ", el("code", {}, error.code || "error"), staffReference(message)));
    }
    if (message.status === "cancelled" && message.error_code) {  // stopped, but not by the person's Stop
      notices.append(el("p", { class: "notice notice-warn", role: "status" },
        message.error_message || "The reply stopped before it ended.", staffReference(message)));
    }
    if (message.simulated && message.status !== "failed") {
      meta.append(el("span", { class: "badge sim", title: "Written by the built-in provider simulator, not a real model" }, "Simulated"));
    }
    if (message.status === "cancelled") {
      meta.append(el("span", { class: "badge stopped" }, message.error_code ? "Cut off" : "Stopped"));
    }
    const parts = detailParts(message);
    if (parts.length) {
      meta.append(el("span", {
        class: "detail",
        title: `Served by ${message.model || "?"}${message.provider ? ` (${message.provider})` : ""}; `
          + `${message.input_tokens || 0} tokens in, ${message.output_tokens || 0} out; cost ${message.cost_usd ?? "?"} USD`
          + (message.ttft_ms ? `; first token after ${formatMs(message.ttft_ms)}` : ""),
      }, parts.join(" · ")));
    }
    const actions = el("span", { class: "message-actions", role: "group", "aria-label": "Reply actions" }, versionPager(node));
    meta.append(actions);
    if (node._text || message.content) {
      const copy = copyButton("Copy reply", () => node._text || message.content);
      copy.classList.add("copy-reply");
      actions.append(copy);
    }
    actionsFill(node, message);
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

  function announce(conversationId) {
    if (tabs) tabs.postMessage({ type: "reply", conversation: conversationId });
  }

  // A post answered after the person opened another conversation (a slow network, a click on the
  // list meanwhile) is not drawn into the one now shown: the reply goes on in its own, and is
  // followed there when the person goes back to it.
  function isOpen(conversationId) {
    return Boolean(state.current && state.current.id === conversationId);
  }

  function startedElsewhere(conversationId) {
    announce(conversationId);
    loadConversations().catch(() => {});
  }

  // The button just pressed (Continue, Retry, Regenerate) goes while the reply streams; focus left
  // on nothing would send a keyboard or screen-reader user back to the top of the page. It goes
  // to the message box, as after Stop, where Escape stops the reply.
  function focusLostToBox() {
    if (!document.activeElement || document.activeElement === document.body) input.focus();
  }

  async function continueReply(node) {
    if (state.stream || state.sending) return;
    say("");
    try {
      const started = await api("POST", `/api/v1/messages/${node.dataset.messageId}/continue`);
      if (!node.isConnected) { startedElsewhere(started.assistant_message.conversation); return; }
      follow(started.assistant_message, node);
      announce(started.assistant_message.conversation);
      focusLostToBox();
    } catch (error) { sayError(error); }
  }

  // Retry and Regenerate: another version of the reply, after the ones there are.
  async function regenerateReply(node) {
    if (state.stream || state.sending) return;
    say("");
    try {
      const started = await api("POST", `/api/v1/messages/${node.dataset.messageId}/regenerate`, { model: modelSelect.value });
      if (!node.isConnected) { startedElsewhere(started.assistant_message.conversation); return; }
      const fresh = renderMessage(started.assistant_message);
      const versions = versionNodes(node.dataset.versionGroup);
      versions[versions.length - 1].after(fresh);
      state.chosen[fresh.dataset.versionGroup] = fresh.dataset.messageId;
      versionsApply();
      follow(started.assistant_message, fresh);
      announce(started.assistant_message.conversation);
      focusLostToBox();
    } catch (error) { sayError(error); }
  }

  // Whether to follow is decided before the new text is drawn: measured after it, a frame that
  // brought more than the "near the bottom" margin (a fast model, a tab coming back from the
  // background, a long line on a phone) read as the person having scrolled up, and the pane stopped following.
  function schedulePaint(stream) {
    if (stream.frame) return;
    stream.frame = requestAnimationFrame(() => {
      stream.frame = 0;
      const following = nearBottom();
      stream.node._text = stream.text;
      paintText(stream.node, stream.text);
      scrollDown(following);
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
    versionsApply();
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
    const near = nearBottom();
    node._text = stream.text;
    node.classList.remove("reconnecting");
    node.removeAttribute("aria-busy");
    if (endStatus) node.dataset.status = endStatus;
    paintText(node, stream.text);
    if (error) settle(node, { status: "failed", ...error });
    // The end of a reply (its error, its buttons) must not hide under the message box: scrolled to
    // as soon as it is drawn, and again once the saved message has filled it in, unless the person
    // scrolled up meanwhile (then the "Scroll to the latest" button stays, and so do they).
    if (near) scrollDown(true);
    const pinnedAt = scroller.scrollTop;
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
      if (failure.status === 404) { conversationGone(stream.conversationId, "This conversation was deleted, perhaps in another tab."); return; }
      sayError(failure);
    }
    versionsApply();
    if (near && scroller.scrollTop >= pinnedAt - 2) scrollDown(true);
    loadConversations().catch(() => {});
  }

  async function send(text) {
    const content = text === undefined ? input.value : text;
    if (!content.trim() || state.stream || state.sending) return;
    if (!modelSelect.value) { say("No models are available to you. Ask an administrator to add one."); return; }
    if (content.length > config.maxChars) {
      say(`This message has ${content.length.toLocaleString("en")} characters; a message holds at most `
        + `${config.maxChars.toLocaleString("en")}. Nothing was sent and your text is kept: shorten it or send it in parts.`);
      return;
    }
    state.sending = true;
    sendButton.disabled = true;
    say("");
    const typedIn = state.current && state.current.id;
    const model = modelSelect.value;
    let created = null;  // the conversation this send made: it goes again if the message is refused
    try {
      let conversation = state.current;
      if (!conversation) {
        conversation = created = await api("POST", "/api/v1/conversations", { model });
        state.conversations.unshift(conversation);
        if (!state.current) {  // still on the new chat
          state.current = conversation;
          history.replaceState(null, "", `/?c=${conversation.id}`);
        }
      }
      const reply = await api("POST", `/api/v1/conversations/${conversation.id}/messages`, { content, model });
      created = null;
      draftClear(typedIn);
      draftClear(conversation.id);
      if (!isOpen(conversation.id)) { startedElsewhere(conversation.id); return; }
      if (text === undefined) {
        input.value = "";
        autosize();
        countChars();
      }
      state.chosenEdit = {};  // a new message goes on from the newest branch
      messageList.append(renderMessage(reply.user_message));
      const node = renderMessage(reply.assistant_message);
      messageList.append(node);
      versionsApply();
      showWelcome();
      scrollDown(true);
      follow(reply.assistant_message, node);
      announce(conversation.id);
      loadConversations().catch(() => {});
    } catch (error) {
      if (created && error.status) await discardCreated(created);
      if (error.code === "conversation_not_found" && state.current && state.current.id === typedIn) {
        conversationGone(state.current.id, "This conversation was deleted, perhaps in another tab. Your message is kept: send it to start a new chat.");
      } else if (error.code === "model_not_found") {
        modelWithdrawn(model);
      } else sayError(error, { sending: true });
      renderConversations();
    } finally {
      state.sending = false;
      sendButton.disabled = false;
    }
  }

  // A refused first message leaves no empty conversation behind: the one made for it goes again,
  // and the page is back on the new chat with the text still in the box.
  async function discardCreated(conversation) {
    try { await api("DELETE", `/api/v1/conversations/${conversation.id}`); } catch (_) { /* listed again on reload */ }
    state.conversations = state.conversations.filter((c) => c.id !== conversation.id);
    if (state.current && state.current.id === conversation.id) {
      state.current = null;
      history.replaceState(null, "", "/");
    }
  }

  // A model taken away since the page was loaded (disabled in the admin, or no longer allowed):
  // it leaves the picker, and the person is told to pick another.
  function modelWithdrawn(name) {
    [...modelSelect.options].filter((option) => option.value === name).forEach((option) => option.remove());
    selectModel(modelSelect.value);
    if (!modelSelect.options.length) {
      modelSelect.disabled = true;
      say(`The model “${name}” is no longer available, and no other model is. Nothing was sent; ask an administrator to add one.`);
      return;
    }
    say(`The model “${name}” is no longer available, so nothing was sent. Pick another model in the list above; your message is kept.`);
    modelSelect.focus();
  }

  async function stop() {
    if (!state.stream) return;
    const focused = document.activeElement;
    stopButton.disabled = true;
    try {
      await api("POST", `/api/v1/messages/${state.stream.messageId}/cancel`);
    } catch (error) {
      sayError(error);
    } finally {
      stopButton.disabled = false;
    }
    // To the message box, unless the person moved on while the stop was answered: the stopped
    // reply's end can arrive first, and with it its Continue button, which they may be on.
    const now = document.activeElement;
    if (!now || now === document.body || now === focused) input.focus();
  }

  // ---- per-conversation settings --------------------------------------------------------

  const settings = $("settings");

  // The conversation the URL names, once loaded: its settings are not shown (nor saved as a new
  // conversation's) before it has arrived.
  let pageReady = Promise.resolve();

  async function settingsOpen() {
    await pageReady;
    const current = state.current || {};
    $("settings-system").value = current.system_prompt || "";
    $("settings-temperature").value = current.temperature ?? "";
    $("settings-error").hidden = true;
    settings.showModal();
    $("settings-system").focus();
  }

  async function settingsSave() {
    const raw = $("settings-temperature").value.trim();
    const changes = { system_prompt: $("settings-system").value, temperature: raw === "" ? null : Number(raw) };
    try {
      if (state.current) {
        remember(await api("PATCH", `/api/v1/conversations/${state.current.id}`, changes));
      } else {
        const conversation = await api("POST", "/api/v1/conversations", { model: modelSelect.value, ...changes });
        state.conversations.unshift(conversation);
        state.current = conversation;
        history.replaceState(null, "", `/?c=${conversation.id}`);
      }
      settings.close();
      renderConversations();
    } catch (error) {
      $("settings-error").hidden = false;
      $("settings-error").textContent = describeError(error);
    }
  }

  // ---- wiring ------------------------------------------------------------------------

  form.addEventListener("submit", (event) => { event.preventDefault(); send(); });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); send(); }
  });
  input.addEventListener("input", () => { autosize(); countChars(); draftSave(); });
  list.addEventListener("scroll", () => { if (listNearEnd()) loadMoreConversations(); });
  let searchTimer = 0;
  search.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      state.query = search.value.trim();
      state.conversations = [];
      state.next = null;
      loadConversations().catch(sayError);
    }, 250);
  });
  scroller.addEventListener("scroll", () => showToBottom(false));
  toBottom.addEventListener("click", () => { scrollDown(true); toBottom.hidden = true; toBottom.classList.remove("fresh"); input.focus(); });
  exportMenu.addEventListener("click", (event) => { if (event.target.closest("a")) exportMenu.open = false; });
  if (tabs) {
    tabs.addEventListener("message", (event) => {
      const data = event.data || {};
      if (data.type === "deleted" && state.current && state.current.id === data.conversation) {
        conversationGone(data.conversation, "This conversation was deleted in another tab.");
        return;
      }
      loadConversations().catch(() => {});
      if (data.type === "reply" && state.current && state.current.id === data.conversation && !state.stream) {
        // Drawn again, the conversation would take away an edit being typed here.
        if (messageList.querySelector(".edit-form")) state.stale = true;
        else openConversation(data.conversation, { keepScroll: false });
      }
    });
  }
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || event.defaultPrevented) return;  // a rename or an edit took it
    if (exportMenu.open) { exportMenu.open = false; exportMenu.querySelector("summary").focus(); return; }
    if (sidebar.classList.contains("open")) { setSidebar(false); toggle.focus(); return; }
    // Closing the settings dialog, clearing the search box or a feedback comment must not also
    // cut the reply off: Escape stops it from anywhere else.
    const typing = event.target.closest && event.target.closest("dialog, input");
    if (state.stream && !typing) stop();
  });
  stopButton.addEventListener("click", stop);
  $("settings-open").addEventListener("click", settingsOpen);
  $("settings-cancel").addEventListener("click", () => settings.close());
  $("settings-form").addEventListener("submit", (event) => { event.preventDefault(); settingsSave(); });
  $("new-chat").addEventListener("click", () => newChat({ push: true }));
  // Back and Forward between the conversations opened here (each is an entry of the tab's history).
  window.addEventListener("popstate", () => {
    const wanted = new URLSearchParams(location.search).get("c");
    if (wanted) openConversation(Number(wanted));
    else if (state.current) newChat();
  });
  toggle.addEventListener("click", () => setSidebar(!sidebar.classList.contains("open")));
  $("sidebar-close").addEventListener("click", () => { setSidebar(false); toggle.focus(); });
  backdrop.addEventListener("click", () => setSidebar(false));
  welcome.querySelectorAll(".suggestion").forEach((button) => button.addEventListener("click", () => send(button.textContent.trim())));
  modelSelect.addEventListener("change", async () => {
    if (!state.current) return;
    try {
      remember(await api("PATCH", `/api/v1/conversations/${state.current.id}`, { model: modelSelect.value }));
    } catch (error) { sayError(error); }
  });
  if (!models.length) say("No models are available to you. Ask an administrator to add one.");

  showWelcome();
  draftRestore();
  pageReady = loadConversations().then(() => {
    const wanted = new URLSearchParams(location.search).get("c");
    const conversation = wanted && state.conversations.find((c) => String(c.id) === wanted);
    if (conversation) return openConversation(conversation.id);
    if (wanted) return openConversation(Number(wanted));
    return undefined;
  }).catch(sayError);
})();
