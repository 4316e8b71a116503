/* The agent console: one WebSocket session, one run at a time, questions answered in place. */
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

  // run: null when idle, else {taskId} (taskId stays null until the server names the task)
  let socket = null;
  let run = null;
  let agents = [];
  let retryMs = 1000;

  function setConnection(text, kind) {
    $("connection-text").textContent = text;
    $("connection").className = `badge ${kind || ""}`;
  }

  function setRun(next, label, kind) {
    run = next;
    const open = socket && socket.readyState === WebSocket.OPEN;
    startButton.disabled = Boolean(run) || !open;
    cancelButton.hidden = !run;
    runState.hidden = !label;
    runState.textContent = label || "";
    runState.className = `badge ${kind || ""}`;
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/ws/agents/`);
    setConnection("Connecting…");
    socket.addEventListener("open", () => { retryMs = 1000; setConnection("Connected", "ok"); startButton.disabled = Boolean(run); });
    socket.addEventListener("close", (event) => {
      if (run) {
        timeline.note("error", "The connection closed, which stops the running task.");
        setRun(null, "Stopped", "bad");
      }
      if (event.code === 4401) { setConnection("Signed out", "bad"); return; }
      setConnection("Reconnecting…", "bad");
      startButton.disabled = true;
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 15000);
    });
    socket.addEventListener("message", (event) => handle(JSON.parse(event.data)));
  }

  function send(frame) {
    if (!socket || socket.readyState !== WebSocket.OPEN) throw new Error("Not connected; wait a moment and try again.");
    socket.send(JSON.stringify(frame));
  }

  function showResult(text, taskId) {
    result.hidden = false;
    $("agent-result-body").innerHTML = markdown(typeof text === "string" ? text : JSON.stringify(text, null, 2));
    const link = $("agent-result-link");
    link.replaceChildren();
    if (taskId) link.append("Saved as a task: ", el("a", { href: `/tasks/${taskId}/` }, "open its page"), ".");
    result.scrollIntoView({ block: "nearest" });
  }

  function handle(frame) {
    if (run && frame.task_id && !run.taskId) run.taskId = frame.task_id;
    switch (frame.type) {
      case "session": case "pong": break;
      case "thought": case "action": case "tool_result":
        timeline.add(Timeline.fromFrame(frame));
        break;
      case "need_input":
        timeline.add(Timeline.fromFrame(frame));
        setRun(run, "Waiting for you", "sim");
        timeline.ask(frame.request_id, async (value) => {
          send({ type: "provide_input", request_id: frame.request_id, value });
          setRun(run, "Running", "live");
        });
        break;
      case "complete":
        showResult(frame.result, frame.task_id || (run && run.taskId));
        setRun(null, "Completed", "ok");
        break;
      case "error": {
        // An error naming a task ends that run; one without a task_id ends only a run
        // that had not started yet (a refused start_task); others are just reported.
        const ends = Boolean(frame.task_id) || Boolean(run && !run.taskId);
        const text = frame.code === "cancelled" ? "The task was cancelled." : describeError(frame);
        timeline.note("error", `${text}${frame.code && frame.code !== "cancelled" ? ` (${frame.code})` : ""}`);
        if (ends && run) setRun(null, frame.code === "cancelled" ? "Cancelled" : "Failed", frame.code === "cancelled" ? "stopped" : "bad");
        break;
      }
      default: break;
    }
  }

  function start() {
    if (run || !input.value.trim()) { if (!input.value.trim()) input.focus(); return; }
    timeline.clear();
    result.hidden = true;
    const frame = { type: "start_task", agent: agentSelect.value, input: input.value };
    if ($("agent-model").value) frame.model = $("agent-model").value;
    try {
      send(frame);
      setRun({ taskId: null }, "Running", "live");
    } catch (error) {
      timeline.note("error", error.message);
    }
  }

  $("start-form").addEventListener("submit", (event) => { event.preventDefault(); start(); });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); start(); }
  });
  cancelButton.addEventListener("click", () => {
    try { send({ type: "cancel" }); } catch (error) { timeline.note("error", error.message); }
  });

  agentSelect.addEventListener("change", () => {
    const agent = agents.find((a) => a.name === agentSelect.value);
    $("agent-description").textContent = agent ? agent.description : "";
    $("agent-tools").replaceChildren(...(agent ? agent.tools : []).map((tool) => el("li", { title: tool.description }, tool.name)));
  });

  api("GET", "/api/v1/agents").then((data) => {
    agents = data.results || data;
    agentSelect.replaceChildren(...agents.map((a) => el("option", { value: a.name }, a.name)));
    agentSelect.dispatchEvent(new Event("change"));
  }).catch((error) => timeline.note("error", describeError(error)));
  setRun(null);
  connect();
})();
