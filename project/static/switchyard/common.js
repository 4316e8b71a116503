/* Helpers shared by the pages: CSRF-aware JSON fetch, safe Markdown, small DOM helpers. */
"use strict";

const Switchyard = (() => {
  function cookie(name) {
    const match = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return match ? decodeURIComponent(match[1]) : "";
  }

  class ApiError extends Error {
    constructor(status, body, retryAfter) {
      const error = (body && body.error) || {};
      super(error.message || (status ? `The request failed (HTTP ${status}).` : "The server could not be reached."));
      this.status = status;
      this.code = error.code || (status ? "error" : "network_error");
      this.retryAfter = retryAfter ? Number(retryAfter) : null;
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
    let response;
    try {
      response = await fetch(url, options);
    } catch (_) {
      throw new ApiError(0, null, null);
    }
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
    if (!response.ok) throw new ApiError(response.status, data, response.headers.get("Retry-After"));
    return data;
  }

  // What went wrong, in words a person can act on; the server's own message follows. Its messages
  // serve API clients too: the sentence that points them at the Retry-After header means nothing
  // on a page, which says the wait in seconds instead.
  function pageMessage(message) {
    return String(message || "").replace(/\s*Retry after the time in Retry-After\.?/g, "").trim();
  }

  function describeError(error) {
    const code = error.code || "";
    const message = pageMessage(error.message);
    const wait = error.retryAfter ? ` Try again in ${Math.ceil(error.retryAfter)} s.` : "";
    if (code.includes("budget")) return message;  // it says itself when the budget comes back
    if (error.status === 429 || code.startsWith("rate_limit")) return `${message || "Rate limit reached."}${wait}`;
    if (code === "upstream_unavailable" || code === "upstream_error" || error.status === 502 || error.status === 503) {
      return `The model provider is unavailable right now.${wait} ${message}`.trim();
    }
    if (code === "deadline_exceeded" || error.status === 504) return `The model took too long to answer. ${message}`.trim();
    if (code === "network_error") return "The server could not be reached. Check your connection and try again.";
    return message;
  }

  function escapeHtml(text) {
    return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
  }

  // ---- Markdown ---------------------------------------------------------------------
  // Model output is untrusted. Every piece of source text passes through escapeHtml before
  // it is placed between tags this renderer writes itself, so no tag or attribute of the
  // model's own can reach the DOM; links are kept only for http(s) URLs.

  function emphasis(escaped) {
    // Links last: their URL pattern admits no "<", so no tag written here lands in an href.
    return escaped
      .replace(/\*\*([^*\n]+)\*\*/g, "<strong>$1</strong>")
      .replace(/(^|[\s(])\*([^*\n]+)\*/g, "$1<em>$2</em>")
      .replace(/~~([^~\n]+)~~/g, "<del>$1</del>")
      // A URL may hold balanced parentheses, one level deep (Wikipedia's "Foo_(bar)"), as in CommonMark.
      .replace(/\[([^\]\n]+)\]\((https?:\/\/(?:[^\s()"'<>]|\([^\s()"'<>]*\))+)\)/g,
        '<a href="$2" rel="noopener noreferrer nofollow" target="_blank">$1</a>');
  }

  // Inline code is cut out first so that nothing inside backticks is formatted.
  function inline(text) {
    return text.split(/(`[^`\n]+`)/).map((piece, index) => (
      index % 2 === 1 ? `<code>${escapeHtml(piece.slice(1, -1))}</code>` : emphasis(escapeHtml(piece))
    )).join("");
  }

  function codeBlock(language, code) {
    const lang = /^[\w+#.-]{1,24}$/.test(language) ? language : "";
    return '<div class="code-block"><div class="code-head">'
      + `<span class="code-lang">${escapeHtml(lang || "code")}</span>`
      + '<button type="button" class="copy-code">Copy</button></div>'
      + `<pre><code${lang ? ` data-lang="${escapeHtml(lang)}"` : ""}>${escapeHtml(code)}</code></pre></div>`;
  }

  const FENCE = /^\s{0,3}(`{3,}|~{3,})\s*([^`\s]*)\s*$/;
  const LIST_ITEM = /^\s*([-*+]|\d{1,9}[.)])\s+(.*)$/;
  const HEADING = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
  const RULE = /^\s{0,3}([-*_])(\s*\1){2,}\s*$/;
  const TABLE_RULE = /^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$/;

  function startsBlock(line, next) {
    return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || /^\s*>/.test(line)
      || LIST_ITEM.test(line) || (line.includes("|") && next !== undefined && TABLE_RULE.test(next));
  }

  function cells(row) {
    return row.trim().replace(/^\|/, "").replace(/\|$/, "").split("|").map((cell) => cell.trim());
  }

  function table(rows) {
    const head = cells(rows[0]);
    const body = rows.slice(2).map(cells);
    return '<div class="table-wrap"><table><thead><tr>' + head.map((c) => `<th>${inline(c)}</th>`).join("")
      + "</tr></thead><tbody>" + body.map((r) => "<tr>" + r.map((c) => `<td>${inline(c)}</td>`).join("") + "</tr>").join("")
      + "</tbody></table></div>";
  }

  function markdown(source) {
    const lines = String(source || "").replace(/\r\n?/g, "\n").split("\n");
    let html = "";
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      const fence = line.match(FENCE);
      if (fence) {
        // An unclosed fence (a reply still streaming) runs to the end of the text.
        const code = [];
        i += 1;
        while (i < lines.length && !(lines[i].trim().startsWith(fence[1][0].repeat(3)) && lines[i].trim().replace(/[`~]/g, "") === "")) {
          code.push(lines[i]);
          i += 1;
        }
        i += 1;
        html += codeBlock(fence[2], code.join("\n"));
        continue;
      }
      if (!line.trim()) { i += 1; continue; }
      const heading = line.match(HEADING);
      if (heading) {
        const level = Math.min(6, heading[1].length + 2);
        html += `<h${level}>${inline(heading[2])}</h${level}>`;
        i += 1;
        continue;
      }
      if (RULE.test(line)) { html += "<hr>"; i += 1; continue; }
      if (/^\s*>/.test(line)) {
        const quoted = [];
        while (i < lines.length && /^\s*>/.test(lines[i])) { quoted.push(lines[i].replace(/^\s*> ?/, "")); i += 1; }
        html += `<blockquote>${markdown(quoted.join("\n"))}</blockquote>`;
        continue;
      }
      if (line.includes("|") && i + 1 < lines.length && TABLE_RULE.test(lines[i + 1])) {
        const rows = [];
        while (i < lines.length && lines[i].includes("|")) { rows.push(lines[i]); i += 1; }
        html += table(rows);
        continue;
      }
      const item = line.match(LIST_ITEM);
      if (item) {
        const ordered = /\d/.test(item[1]);
        const items = [];
        while (i < lines.length) {
          const match = lines[i].match(LIST_ITEM);
          if (match && /\d/.test(match[1]) === ordered) items.push(match[2]);
          else if (lines[i].trim() && /^\s+/.test(lines[i]) && items.length) items[items.length - 1] += "\n" + lines[i].trim();
          else break;
          i += 1;
        }
        const tag = ordered ? "ol" : "ul";
        const start = ordered && parseInt(item[1], 10) !== 1 ? ` start="${parseInt(item[1], 10)}"` : "";
        html += `<${tag}${start}>` + items.map((text) => `<li>${inline(text).replace(/\n/g, "<br>")}</li>`).join("") + `</${tag}>`;
        continue;
      }
      const paragraph = [];
      while (i < lines.length && lines[i].trim() && !(paragraph.length && startsBlock(lines[i], lines[i + 1]))) {
        paragraph.push(lines[i]);
        i += 1;
      }
      html += `<p>${paragraph.map(inline).join("<br>")}</p>`;
    }
    return html;
  }

  // ---- DOM ----------------------------------------------------------------------------

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    Object.entries(attributes || {}).forEach(([key, value]) => {
      if (value === null || value === undefined || value === false) return;
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    });
    children.flat().forEach((child) => {
      if (child !== null && child !== undefined && child !== false) node.append(child instanceof Node ? child : String(child));
    });
    return node;
  }

  const ICONS = {
    plus: "M12 5v14M5 12h14",
    send: "M5 12h14M13 6l6 6-6 6",
    stop: "M7 7h10v10H7z",
    edit: "M4 20h4L19 9l-4-4L4 16v4zM14 6l4 4",
    trash: "M4 7h16M9 7V4h6v3M6 7l1 13h10l1-13",
    menu: "M4 6h16M4 12h16M4 18h16",
    copy: "M9 9h10v10H9zM5 15V5h10",
    check: "M5 12l5 5 9-10",
    close: "M6 6l12 12M18 6L6 18",
    thumb: "M3 10h4v10H3zM7 11l4-8c1.4 0 2.5 1.1 2.5 2.5V9H19a2 2 0 0 1 2 2.3l-1.2 7A2 2 0 0 1 17.8 20H7",
  };

  function icon(name) {
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("class", "icon");
    const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    path.setAttribute("d", ICONS[name]);
    svg.append(path);
    return svg;
  }

  function formatCost(value) {
    const number = Number(value || 0);
    if (number === 0) return "$0";
    if (number < 0.000001) return "<$0.000001";
    // Small sums keep two significant digits: $0.000034, $0.0012, $0.25.
    return "$" + (number < 1 ? String(Number(number.toPrecision(2))) : number.toFixed(2));
  }

  function formatMs(value) {
    if (value === null || value === undefined) return "";
    return value >= 1000 ? `${(value / 1000).toFixed(1)} s` : `${Math.round(value)} ms`;
  }

  async function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      try { await navigator.clipboard.writeText(text); return true; } catch (_) { /* fall back below */ }
    }
    const area = el("textarea", { class: "sr-only", "aria-hidden": "true" });
    area.value = text;
    document.body.append(area);
    area.select();
    const copied = document.execCommand("copy");
    area.remove();
    return copied;
  }

  // Colours for code blocks whose language highlight.js knows (project/static/vendor/highlight,
  // on the pages that load it). Its output escapes the code, like the renderer above.
  function highlightCode(root) {
    if (!window.hljs || !root) return;
    root.querySelectorAll("pre code[data-lang]:not(.hljs)").forEach((code) => {
      const language = code.dataset.lang.toLowerCase();
      if (!window.hljs.getLanguage(language)) return;
      code.innerHTML = window.hljs.highlight(code.textContent, { language, ignoreIllegals: true }).value;
      code.classList.add("hljs");
    });
  }

  // Code blocks anywhere on a page get a working Copy button.
  document.addEventListener("click", async (event) => {
    const button = event.target.closest && event.target.closest(".copy-code");
    if (!button) return;
    const code = button.closest(".code-block").querySelector("code");
    if (await copyText(code.textContent)) {
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = "Copy"; }, 1500);
    }
  });

  return { api, ApiError, describeError, markdown, escapeHtml, el, icon, formatCost, formatMs, copyText, cookie, highlightCode };
})();
