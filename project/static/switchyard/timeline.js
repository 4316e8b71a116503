/* An agent run's steps as a timeline: shared by the agent console (WebSocket frames) and a task's page (its log). */
"use strict";

const Timeline = (() => {
  const { el } = Switchyard;
  const LABELS = {
    thought: "Thinking", action: "Tool call", tool_result: "Result", need_input: "Question",
    answer: "Your answer", error: "Error", info: "Note",
  };

  function pretty(value) {
    if (value === null || value === undefined || value === "") return "";
    if (typeof value === "string") return value;
    const compact = JSON.stringify(value);
    return compact.length <= 80 ? compact : JSON.stringify(value, null, 2);
  }

  // A frame of /ws/agents/ or an item of a task's log, in one shape.
  function fromFrame(frame) {
    return {
      type: frame.type, seq: frame.seq, tool: frame.tool || "",
      text: frame.type === "need_input" ? frame.prompt : (frame.type === "tool_result" ? frame.output : frame.content),
      detail: frame.type === "action" ? frame.input : null, requestId: frame.request_id || null,
    };
  }

  function fromLog(item) {
    const data = item.data || {};
    return {
      type: item.type, seq: item.seq, tool: data.tool || "",
      text: item.type === "action" ? "" : item.content, detail: item.type === "action" ? (data.input ?? data.arguments) : null,
      requestId: data.request_id || null,
    };
  }

  class View {
    // follow: scroll each new step into view (a live run), not when a saved log is shown.
    constructor(root, empty, { follow = false } = {}) {
      this.root = root;
      this.empty = empty;
      this.follow = follow;
      this.seen = new Set();
    }

    clear() {
      this.root.replaceChildren();
      this.seen.clear();
      if (this.empty) this.empty.hidden = false;
    }

    entry(kind, ...content) {
      const node = el("li", { class: `step ${kind}` },
        el("span", { class: "step-dot", "aria-hidden": "true" }),
        el("div", { class: "step-body" }, el("span", { class: "step-kind" }, LABELS[kind] || kind), ...content));
      this.root.append(node);
      if (this.empty) this.empty.hidden = true;
      if (this.follow) node.scrollIntoView({ block: "nearest" });
      return node;
    }

    note(kind, text) {
      return this.entry(kind, el("p", { class: "step-text" }, text));
    }

    add(step) {
      if (step.seq !== undefined && step.seq !== null) {
        if (this.seen.has(step.seq)) return null;
        this.seen.add(step.seq);
      }
      if (step.type === "action" && step.tool === "ask_user") return null;  // the question itself follows
      if (step.type === "tool_result" && step.tool === "ask_user") return this.answered(step.text);
      if (step.type === "thought") return this.note("thought", step.text);
      if (step.type === "action") {
        const detail = pretty(step.detail);
        return this.entry("action", el("code", { class: "tool" }, step.tool), detail ? el("pre", {}, detail) : null);
      }
      if (step.type === "tool_result") {
        return this.entry("tool_result", el("code", { class: "tool" }, step.tool), el("pre", {}, pretty(step.text)));
      }
      if (step.type === "need_input") {
        const node = this.entry("need_input", el("p", { class: "step-text question" }, step.text), el("div", { class: "answer-slot" }));
        node.dataset.requestId = step.requestId || "";
        return node;
      }
      return this.note(step.type, step.text);
    }

    openQuestion() {
      const questions = [...this.root.querySelectorAll(".step.need_input:not(.done)")];
      return questions[questions.length - 1] || null;
    }

    // The answer is shown in the question it answers.
    answered(value) {
      const question = this.openQuestion();
      if (!question) return this.note("answer", value);
      question.classList.add("done");
      question.querySelector(".answer-slot").replaceChildren(
        el("p", { class: "answer" }, el("span", { class: "muted" }, "You answered: "), value));
      return question;
    }

    // A form in place, under the open question; `send(value)` delivers the answer.
    ask(requestId, send) {
      const question = [...this.root.querySelectorAll(".step.need_input:not(.done)")]
        .find((node) => node.dataset.requestId === requestId) || this.openQuestion();
      if (!question) return;
      const slot = question.querySelector(".answer-slot");
      if (slot.querySelector("form")) return;
      const fieldId = `answer-${requestId || Date.now()}`;
      const field = el("input", { id: fieldId, type: "text", autocomplete: "off", required: true });
      const button = el("button", { type: "submit", class: "button primary" }, "Answer");
      const form = el("form", { class: "answer-form" },
        el("label", { for: fieldId }, "Your answer"), el("div", { class: "row" }, field, button));
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        button.disabled = true;
        field.readOnly = true;
        try {
          await send(field.value);
          // The answer may be in the log already (a fast run): then it is shown, not "sent".
          if (!question.classList.contains("done")) slot.replaceChildren(el("p", { class: "answer muted" }, "Answer sent…"));
        } catch (error) {
          button.disabled = false;
          field.readOnly = false;
          slot.append(el("p", { class: "alert alert-error", role: "alert" }, error.message));
        }
      });
      slot.replaceChildren(form);
      field.focus();
    }
  }

  return { View, fromFrame, fromLog, pretty };
})();
