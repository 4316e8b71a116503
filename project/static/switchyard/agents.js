/* The agent console: each run is a background task (Task API, run by a worker), followed over its
   SSE feed. Closing the tab does not stop it; coming back (or opening its page) re-attaches. */
"use strict";

(() => {
  const { api, el, markdown, describeError } = Switchyard;
  const $ = (id) => document.getElementById(id);
  const timeline = new Timeline.View($("agent-log"), $("activity-empty"), { follow: true });
  const agentSelect = $("agent-select");
  const input = $("agent-input");
  const startButton = $("start-button");
  const cancelButton = $("cancel-button");
  const runState = $("run-state");
  const result = $("agent-result");
  const STEPS = ["thought", "action", "tool_result", "need_input"];
  const RUN_KEY = "switchyard.agents.run";  // the task this browser follows, across tabs and reloads

  // run: null when idle, else {taskId, source}
  let run = null;
  let agents = [];

  function setConnection(text, kind) {
    $("connection-text").textContent = text;
    $("connection").className = `badge ${kind || ""}`;
  }

  function setRun(next, label, kind) {
    run = next;
    startButton.disabled = Boolean(run);
    cancelButton.hidden = !run;
    runState.hidden = !label;
    runState.textContent = label || "";
    runState.className = `badge ${kind || ""}`;
  }

  function remember(taskId) {
    try {
      if (taskId) localStorage.setItem(RUN_KEY, taskId); else localStorage.removeItem(RUN_KEY);
    } catch (_) { /* the URL still names it */ }
    history.replaceState(null, "", taskId ? `/agents/?task=${taskId}` : "/agents/");
  }

  function showResult(text, taskId) {
    result.hidden = false;
    $("activity-empty").hidden = true;
    $("agent-result-body").innerHTML = markdown(typeof text === "string" ? text : JSON.stringify(text, null, 2));
    Switchyard.highlightCode($("agent-result-body"));
    const link = $("agent-result-link");
    link.replaceChildren();
    if (taskId) link.append("Saved as a task: ", el("a", { href: `/tasks/${taskId}/` }, "open its page"), ".");
    result.scrollIntoView({ block: "nearest" });
  }

  // The end of a run, from the feed's `end` event (or the task itself).
  function ended(taskId, end) {
    if (run && run.source) run.source.close();
    if (end.status === "COMPLETED") {
      showResult(end.result, taskId);
      setRun(null, "Completed", "ok");
    } else if (end.status === "CANCELLED") {
      timeline.note("info", "The task was cancelled.");
      setRun(null, "Cancelled", "stopped");
    } else {
      const error = end.error || {};
      timeline.note("error", `${describeError(error) || "The task failed."}${error.code ? ` (${error.code})` : ""}`);
      setRun(null, "Failed", "bad");
    }
    setConnection("Ready", "ok");
    remember(null);
    const link = $("agent-result-link");
    if (end.status !== "COMPLETED") {
      result.hidden = true;
      link.replaceChildren();
    }
  }

  // Follow a task's log from its first item: a re-attached page shows the whole run so far.
  function follow(taskId) {
    timeline.clear();
    result.hidden = true;
    const source = new EventSource(`/api/v1/tasks/${taskId}/events`);
    setRun({ taskId, source }, "Running", "live");
    remember(taskId);
    source.addEventListener("open", () => setConnection("Following the task", "ok"));
    STEPS.forEach((type) => source.addEventListener(type, (event) => {
      const item = JSON.parse(event.data);
      timeline.add(Timeline.fromLog(item));
      if (type === "need_input") {
        setRun(run, "Waiting for you", "sim");
        const requestId = (item.data || {}).request_id;
        timeline.ask(requestId, async (value) => {
          await api("POST", `/api/v1/tasks/${taskId}/input`, { request_id: requestId, value });
          setRun(run, "Running", "live");
        });
      } else if (run && run.taskId === taskId && runState.textContent !== "Running") {
        setRun(run, "Running", "live");
      }
    }));
    source.addEventListener("end", (event) => ended(taskId, JSON.parse(event.data)));
    source.addEventListener("error", (event) => {
      if (event.data) {  // the server's own error: the feed refused us
        const data = JSON.parse(event.data);
        timeline.note("error", describeError(data));
        source.close();
        setRun(null, "Failed", "bad");
        remember(null);
      } else if (source.readyState === EventSource.CLOSED) {
        source.close();
        reattach(taskId, { quiet: true });
      } else {
        setConnection("Reconnecting…", "bad");  // EventSource resumes after the last item it had
      }
    });
  }

  // Back on the console: the task it followed, if any, from the URL or this browser's memory.
  async function reattach(taskId, { quiet = false } = {}) {
    let task;
    try {
      task = await api("GET", `/api/v1/tasks/${taskId}`);
    } catch (error) {
      remember(null);
      setRun(null);
      if (!quiet) timeline.note("error", error.status === 404 ? "That task does not exist, or it is not yours." : describeError(error));
      return;
    }
    if (["COMPLETED", "FAILED", "CANCELLED"].includes(task.status)) {
      timeline.clear();
      (task.log || []).forEach((item) => timeline.add(Timeline.fromLog(item)));
      ended(taskId, { status: task.status, result: task.result, error: task.error });
      return;
    }
    follow(taskId);
  }

  let starting = false;  // a start is between the key press and its task's id
  async function start() {
    if (run || starting) return;
    if (!input.value.trim()) { input.focus(); return; }
    starting = true;
    startButton.disabled = true;
    try {
      // Ctrl+Enter skips the form's own checks, and a quick hand can beat the agents' list here.
      const loaded = await agentsLoaded;
      if (run) return;  // a run was picked up again meanwhile
      if (!agentSelect.value) {
        if (loaded) timeline.note("error", "There is no agent to run: ask an operator to set one up.");
        startButton.disabled = false;
        return;
      }
      const body = { agent: agentSelect.value, input: input.value };
      if ($("agent-model").value) body.model = $("agent-model").value;
      const task = await api("POST", "/api/v1/tasks", body);
      follow(task.id);
    } catch (error) {
      startButton.disabled = false;
      timeline.note("error", describeError(error));
    } finally {
      starting = false;
    }
  }

  $("start-form").addEventListener("submit", (event) => { event.preventDefault(); start(); });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); start(); }
  });
  cancelButton.addEventListener("click", async () => {
    if (!run) return;
    cancelButton.disabled = true;
    try {
      await api("POST", `/api/v1/tasks/${run.taskId}/cancel`);
    } catch (error) {
      if (error.status !== 409) timeline.note("error", describeError(error));  // 409: it had just finished
    } finally {
      cancelButton.disabled = false;
    }
  });

  agentSelect.addEventListener("change", () => {
    const agent = agents.find((a) => a.name === agentSelect.value);
    $("agent-description").textContent = agent ? agent.description : "";
    $("agent-tools").replaceChildren(...(agent ? agent.tools : []).map((tool) => el("li", { title: tool.description }, tool.name)));
  });

  // Resolves true once the list is in the select, false if it could not be loaded (already said).
  const agentsLoaded = api("GET", "/api/v1/agents").then((data) => {
    agents = data.results || data;
    agentSelect.replaceChildren(...agents.map((a) => el("option", { value: a.name }, a.name)));
    agentSelect.dispatchEvent(new Event("change"));
    return true;
  }).catch((error) => { timeline.note("error", describeError(error)); return false; });

  setRun(null);
  setConnection("Ready", "ok");
  let followed = new URLSearchParams(location.search).get("task");
  if (!followed) { try { followed = localStorage.getItem(RUN_KEY); } catch (_) { followed = null; } }
  if (followed) reattach(followed);
})();
