/* The agent console: one WebSocket session, one task at a time, answers asked in place. */
"use strict";

(() => {
  const { api, el, markdown } = Switchyard;
  const $ = (id) => document.getElementById(id);
  const log = $("agent-log");
  const agentSelect = $("agent-select");
  const startButton = $("start-button");
  const cancelButton = $("cancel-button");
  const connection = $("connection");
  const inputForm = $("input-form");
  const result = $("agent-result");
  let socket = null;
  let pendingRequest = null;
  let running = false;
  let agents = [];

  function setRunning(value) {
    running = value;
    startButton.disabled = value || !socket || socket.readyState !== WebSocket.OPEN;
    cancelButton.hidden = !value;
  }

  function entry(kind, text, detail) {
    const item = el("li", { class: kind }, el("span", { class: "kind" }, kind.replace("_", " ")), text);
    if (detail !== undefined && detail !== null && detail !== "") {
      item.append(el("pre", {}, typeof detail === "string" ? detail : JSON.stringify(detail, null, 2)));
    }
    log.append(item);
    item.scrollIntoView({ block: "nearest" });
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/ws/agents/`);
    connection.textContent = "connecting…";
    socket.addEventListener("open", () => { connection.textContent = "connected"; setRunning(false); });
    socket.addEventListener("close", () => {
      connection.textContent = "disconnected";
      if (running) entry("error", "Connection lost; the task was stopped.");
      setRunning(false);
      setTimeout(connect, 2000);
    });
    socket.addEventListener("message", (event) => handle(JSON.parse(event.data)));
  }

  function handle(message) {
    switch (message.type) {
      case "session": connection.textContent = "connected"; break;
      case "thought": entry("thought", message.content); break;
      case "action": entry("action", `${message.tool}`, message.input); break;
      case "tool_result": entry("tool_result", `${message.tool}`, message.output); break;
      case "need_input":
        pendingRequest = message.request_id;
        entry("need_input", message.prompt);
        $("input-prompt").textContent = message.prompt;
        inputForm.hidden = false;
        $("input-value").focus();
        break;
      case "complete":
        result.hidden = false;
        result.innerHTML = markdown(typeof message.result === "string" ? message.result : JSON.stringify(message.result, null, 2));
        inputForm.hidden = true;
        setRunning(false);
        break;
      case "error":
        entry("error", `${message.code}: ${message.message}`);
        if (message.code !== "busy" && message.code !== "bad_request" && message.code !== "invalid_frame") {
          inputForm.hidden = true;
          setRunning(false);
        }
        break;
      default: break;
    }
  }

  $("start-form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    log.replaceChildren();
    result.hidden = true;
    const frame = { type: "start_task", agent: agentSelect.value, input: $("agent-input").value };
    if ($("agent-model").value) frame.model = $("agent-model").value;
    socket.send(JSON.stringify(frame));
    setRunning(true);
  });

  inputForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("input-value").value;
    socket.send(JSON.stringify({ type: "provide_input", request_id: pendingRequest, value }));
    entry("answer", value);
    $("input-value").value = "";
    inputForm.hidden = true;
  });

  cancelButton.addEventListener("click", () => socket && socket.send(JSON.stringify({ type: "cancel" })));

  agentSelect.addEventListener("change", () => {
    const agent = agents.find((a) => a.name === agentSelect.value);
    $("agent-description").textContent = agent ? agent.description : "";
  });

  api("GET", "/api/v1/agents").then((data) => {
    agents = data.results || data.agents || data;
    agentSelect.replaceChildren(...agents.map((a) => el("option", { value: a.name }, a.title || a.name)));
    agentSelect.dispatchEvent(new Event("change"));
  });
  setRunning(false);
  connect();
})();
