/* Task history and a task's page: polls the Task API while anything is unfinished. */
"use strict";

(() => {
  const { api, el, markdown, describeError } = Switchyard;
  const FINISHED = new Set(["COMPLETED", "FAILED", "CANCELLED"]);
  const STATUS_TEXT = {
    PENDING: "Queued", PROCESSING: "Running", WAITING_INPUT: "Needs your answer",
    COMPLETED: "Completed", FAILED: "Failed", CANCELLED: "Cancelled",
  };
  const $ = (id) => document.getElementById(id);

  function ago(iso) {
    if (!iso) return "—";
    const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
    if (seconds < 45) return "just now";
    if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
    return new Date(iso).toLocaleString();
  }

  function statusBadge(status) {
    return el("span", { class: "badge", "data-status": status }, STATUS_TEXT[status] || status);
  }

  function progressBar(percent, label) {
    return el("div", { class: "progress", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100",
      "aria-valuenow": String(percent), "aria-label": label }, el("span", { style: `width:${percent}%` }));
  }

  function later(callback, ms) {
    // A hidden tab waits until it is looked at again.
    return setTimeout(() => (document.hidden
      ? document.addEventListener("visibilitychange", callback, { once: true })
      : callback()), ms);
  }

  // ---- the list ------------------------------------------------------------------------

  // The form above the list starts a task (as the console does, in the background).
  function startForm() {
    const form = $("task-form");
    const agentSelect = $("task-agent");
    const note = $("task-form-status");
    const agentsLoaded = api("GET", "/api/v1/agents").then((data) => {
      agentSelect.replaceChildren(...(data.results || data).map((a) => el("option", { value: a.name, title: a.description }, a.name)));
    }).catch((error) => { note.textContent = describeError(error); });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!$("task-input-text").value.trim()) { $("task-input-text").focus(); return; }
      $("task-start").disabled = true;
      try {
        await agentsLoaded;  // the agent must not go out blank
        if (!agentSelect.value) { note.textContent = "There is no agent to run: ask an operator to set one up."; return; }
        const body = { agent: agentSelect.value, input: $("task-input-text").value };
        if ($("task-model").value) body.model = $("task-model").value;
        const task = await api("POST", "/api/v1/tasks", body);
        $("task-input-text").value = "";
        note.replaceChildren("Started: ", el("a", { href: `/tasks/${task.id}/` }, "follow it on its page"), ".");
        listPage();
      } catch (error) {
        note.textContent = describeError(error);
      } finally {
        $("task-start").disabled = false;
      }
    });
  }

  let listTimer = 0;
  async function listPage() {
    clearTimeout(listTimer);
    const rows = $("task-rows");
    let tasks = [];
    try {
      const data = await api("GET", "/api/v1/tasks?limit=100");
      tasks = data.results || data;
    } catch (error) {
      rows.replaceChildren(el("tr", {}, el("td", { colspan: "5", class: "empty" }, describeError(error))));
      listTimer = later(listPage, 5000);
      return;
    }
    if (!tasks.length) {
      rows.replaceChildren(el("tr", {}, el("td", { colspan: "5", class: "empty" },
        "No tasks yet. ", el("a", { href: "/agents/" }, "Run an agent"), " or submit one through the Task API.")));
    } else {
      rows.replaceChildren(...tasks.map(taskRow));
    }
    listTimer = later(listPage, tasks.some((t) => !FINISHED.has(t.status)) ? 1500 : 10000);
  }

  function taskRow(task) {
    const percent = task.progress || 0;
    const text = String(task.input || "").trim() || task.id;
    return el("tr", { "data-task-id": task.id, "data-status": task.status },
      el("td", { class: "task-cell" }, el("a", { href: `/tasks/${task.id}/`, title: text }, text.length > 80 ? text.slice(0, 80) + "…" : text),
        el("span", { class: "status-inline", "aria-hidden": "true" }, statusBadge(task.status))),
      el("td", {}, el("code", { class: "tool" }, task.agent)),
      el("td", {}, statusBadge(task.status)),
      el("td", {}, el("div", { class: "progress-cell" }, progressBar(percent, `Progress of “${text.slice(0, 40)}”`), el("span", { class: "percent" }, `${percent}%`))),
      el("td", { class: "muted nowrap" }, ago(task.created_at)));
  }

  // ---- one task --------------------------------------------------------------------------

  function detailPage(root) {
    const id = root.dataset.taskId;
    const timeline = new Timeline.View($("agent-log"), $("log-empty"));
    const cancel = $("task-cancel");
    let timer = null;

    cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      try { await api("POST", `/api/v1/tasks/${id}/cancel`); } catch (error) { showError(describeError(error)); }
      cancel.disabled = false;
      refresh();
    });

    function showError(text) {
      $("task-error").hidden = !text;
      $("task-error").textContent = text || "";
    }

    function paint(task) {
      const percent = task.progress || 0;
      $("task-title").textContent = `${task.agent}`;
      document.title = `${task.agent} task · Switchyard`;
      const badge = $("task-status");
      badge.dataset.status = task.status;
      badge.textContent = STATUS_TEXT[task.status] || task.status;
      const bar = $("task-progress");
      bar.setAttribute("aria-valuenow", String(percent));
      bar.firstElementChild.style.width = `${percent}%`;
      $("task-percent").textContent = `${percent}%`;
      $("task-step").textContent = task.current_step || "";
      $("task-model").textContent = task.model || "—";
      $("task-created").textContent = ago(task.created_at);
      $("task-finished").textContent = task.finished_at ? ago(task.finished_at) : "—";
      $("task-input").textContent = task.input || "";
      cancel.hidden = FINISHED.has(task.status);
      (task.log || []).forEach((item) => timeline.add(Timeline.fromLog(item)));
      if (task.status === "WAITING_INPUT" && task.input_request) {
        const requestId = task.input_request.request_id;
        timeline.ask(requestId, async (value) => {
          await api("POST", `/api/v1/tasks/${id}/input`, { request_id: requestId, value });
          refresh();
        });
      }
      if (task.status === "COMPLETED" && task.result !== null && task.result !== undefined) {
        $("agent-result").hidden = false;
        $("agent-result-body").innerHTML = markdown(String(task.result));
      }
      // A cancel someone chose is not an error: the badge says Cancelled.
      const failed = task.error && task.status !== "CANCELLED";
      showError(failed ? `${describeError(task.error)} (${task.error.code || "error"})` : "");
      if (FINISHED.has(task.status) || (task.log || []).length) $("log-empty").hidden = true;
    }

    async function refresh() {
      clearTimeout(timer);
      let task;
      try {
        task = await api("GET", `/api/v1/tasks/${id}`);
      } catch (error) {
        showError(error.status === 404 ? "There is no such task, or it is not yours." : describeError(error));
        if (error.status === 404) {
          $("log-empty").hidden = true;
          $("task-status").textContent = "Not found";
          $("task-cancel").hidden = true;
        }
        if (error.status !== 404) timer = setTimeout(refresh, 5000);
        return;
      }
      paint(task);
      if (!FINISHED.has(task.status)) timer = setTimeout(refresh, task.status === "WAITING_INPUT" ? 2000 : 800);
    }
    refresh();
  }

  const detail = $("task-detail");
  if (detail) detailPage(detail); else { startForm(); listPage(); }
})();
