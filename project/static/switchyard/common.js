/* Helpers shared by the pages: CSRF-aware JSON fetch and safe Markdown rendering. */
"use strict";

const Switchyard = (() => {
  function cookie(name) {
    const match = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return match ? decodeURIComponent(match[1]) : "";
  }

  class ApiError extends Error {
    constructor(status, body) {
      const error = (body && body.error) || {};
      super(error.message || `Request failed (${status})`);
      this.status = status;
      this.code = error.code || "error";
    }
  }

  async function api(method, url, body) {
    const options = {
      method,
      credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRFToken": cookie("csrftoken") },
    };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(url, options);
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  function escapeHtml(text) {
    return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
  }

  // Model output is untrusted. Everything is escaped first; the few Markdown forms we
  // support are then applied to the escaped text, so no tag or attribute of the model's
  // own can ever reach the DOM. Links are kept only for http(s) URLs.
  function inline(escaped) {
    return escaped
      .replace(/`([^`\n]+)`/g, "<code>$1</code>")
      .replace(/\*\*([^*\n]+)\*\*/g, "<strong>$1</strong>")
      .replace(/(^|[\s(])\*([^*\n]+)\*/g, "$1<em>$2</em>")
      .replace(/\[([^\]\n]+)\]\((https?:\/\/[^\s)"']+)\)/g,
        '<a href="$2" rel="noopener noreferrer nofollow" target="_blank">$1</a>');
  }

  function renderBlock(block) {
    const lines = block.split("\n");
    if (lines.every((line) => /^\s*[-*] /.test(line))) {
      return "<ul>" + lines.map((l) => "<li>" + inline(escapeHtml(l.replace(/^\s*[-*] /, ""))) + "</li>").join("") + "</ul>";
    }
    if (lines.every((line) => /^\s*\d+\. /.test(line))) {
      return "<ol>" + lines.map((l) => "<li>" + inline(escapeHtml(l.replace(/^\s*\d+\. /, ""))) + "</li>").join("") + "</ol>";
    }
    const heading = block.match(/^(#{1,4}) (.*)$/);
    if (heading && lines.length === 1) {
      const level = heading[1].length + 2;
      return `<h${level}>${inline(escapeHtml(heading[2]))}</h${level}>`;
    }
    return "<p>" + inline(escapeHtml(block)).replace(/\n/g, "<br>") + "</p>";
  }

  function markdown(source) {
    const parts = source.split(/```/);
    let html = "";
    parts.forEach((part, index) => {
      if (index % 2 === 1) {
        const newline = part.indexOf("\n");
        const language = newline > 0 ? part.slice(0, newline).trim() : "";
        const code = newline >= 0 ? part.slice(newline + 1) : part;
        const label = /^[\w+-]{1,20}$/.test(language) ? ` data-lang="${language}"` : "";
        html += `<pre${label}><code>${escapeHtml(code.replace(/\n$/, ""))}</code></pre>`;
      } else {
        html += part.split(/\n{2,}/).map((b) => b.trim()).filter(Boolean).map(renderBlock).join("");
      }
    });
    return html;
  }

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    Object.entries(attributes || {}).forEach(([key, value]) => {
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    });
    children.flat().forEach((child) => {
      if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
    });
    return node;
  }

  function formatCost(value) {
    const number = Number(value || 0);
    return number === 0 ? "$0" : "$" + number.toFixed(number < 0.01 ? 6 : 4);
  }

  return { api, ApiError, markdown, escapeHtml, el, formatCost, cookie };
})();
