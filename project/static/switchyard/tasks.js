/* Task history and task detail: polls the Task API while anything is still running. */
"use strict";

(() => {
  const { api, el, markdown } = Switchyard;
  const FINISHED = new Set(["COMPLETED", "FAILED", "CANCELLED"]);
  const $ = (id) => document.getElementById(id);

  function progressBar(percent) {
    return el("div", { class: "progress", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(percent), "aria-label": "Progress" },
      el("span", { style: `width:${percent}%` }));
  }

  async function listPage() {
    const rows = $("task-rows");
    const data = await api("GET", "/api/v1/tasks?limit=100");
    const tasks = data.results || data;
    if (!tasks.length) {
      rows.replaceChildren(el("tr", {}, el("td", { colspan: "5", class: "muted" }, "No tasks yet. Start one from the agent console or the API.")));
      return;
    }
    rows.replaceChildren(...tasks.map((task) => el("tr", { "data-task-id": task.id, "data-status": task.status },
      el("td", {}, el("a", { href: `/tasks/${task.id}/` }, String(task.input || task.id).slice(0, 60))),
      el("td", {}, task.agent),
      el("td", {}, el("span", { class: "badge" }, task.status)),
      el("td", {}, progressBar(task.progress || 0), el("span", { class: "sr-only" }, `${task.progress || 0}%`)),
      el("td", {}, new Date(task.created_at).toLocaleString()))));
    if (tasks.some((t) => !FINISHED.has(t.status))) setTimeout(listPage, 2000);
  }

  async function detailPage(root) {
    const id = root.dataset.taskId;
    let pendingRequest = null;
    const inputForm = $("input-form");
    inputForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      await api("POST", `/api/v1/tasks/${id}/input`, { request_id: pendingRequest, value: $("input-value").value });
      $("input-value").value = "";
      inputForm.hidden = true;
      refresh();
    });
    $("task-cancel").addEventListener("click", async () => {
      try { await api("POST", `/api/v1/tasks/${id}/cancel`); } catch (error) { window.alert(error.message); }
      refresh();
    });

    async function refresh() {
      const task = await api("GET", `/api/v1/tasks/${id}`);
      $("task-title").textContent = `${task.agent} task`;
      $("task-status").textContent = task.status;
      $("task-input").textContent = typeof task.input === "string" ? task.input : JSON.stringify(task.input, null, 2);
      const percent = task.progress || 0;
      const bar = $("task-progress");
      bar.setAttribute("aria-valuenow", String(percent));
      bar.firstElementChild.style.width = `${percent}%`;
      $("task-percent").textContent = `${percent}%`;
      $("task-step").textContent = task.current_step || "";
      $("task-cancel").hidden = FINISHED.has(task.status);
      $("agent-log").replaceChildren(...(task.log || []).map((item) => {
        const li = el("li", { class: item.type }, el("span", { class: "kind" }, item.type.replace("_", " ")), item.content || "");
        if (item.data && Object.keys(item.data).length) li.append(el("pre", {}, JSON.stringify(item.data, null, 2)));
        return li;
      }));
      const need = [...(task.log || [])].reverse().find((item) => item.type === "need_input");
      if (task.status === "WAITING_INPUT" && need) {
        pendingRequest = (need.data && need.data.request_id) || null;
        $("input-prompt").textContent = need.content;
        inputForm.hidden = false;
      } else {
        inputForm.hidden = true;
      }
      if (task.result !== null && task.result !== undefined && task.result !== "") {
        $("agent-result").hidden = false;
        $("agent-result").innerHTML = markdown(typeof task.result === "string" ? task.result : JSON.stringify(task.result, null, 2));
      }
      if (task.error) {
        $("task-error").hidden = false;
        $("task-error").textContent = `${task.error.code || "error"}: ${task.error.message || ""}`;
      }
      if (!FINISHED.has(task.status)) setTimeout(refresh, task.status === "PENDING" ? 1000 : 700);
    }
    refresh();
  }

  const detail = document.getElementById("task-detail");
  if (detail) detailPage(detail); else listPage();
})();
