/* Light or dark: the system's choice unless the person picked one (kept in local storage).
   Loaded in <head>, before the page paints, so a dark page never flashes light. */
"use strict";

(() => {
  const KEY = "switchyard.theme";
  const NEXT = { system: "light", light: "dark", dark: "system" };
  const root = document.documentElement;

  function chosen() {
    try { return localStorage.getItem(KEY) || "system"; } catch (_) { return "system"; }
  }

  function apply(choice) {
    if (choice === "light" || choice === "dark") root.dataset.theme = choice;
    else delete root.dataset.theme;
  }

  apply(chosen());
  document.addEventListener("DOMContentLoaded", () => {
    const button = document.getElementById("theme-toggle");
    if (!button) return;
    const paint = () => {
      const choice = chosen();
      button.dataset.choice = choice;
      const label = `Theme: ${choice === "system" ? "as the system" : choice}. Change it`;
      button.setAttribute("aria-label", label);
      button.title = label;
    };
    button.addEventListener("click", () => {
      const next = NEXT[chosen()] || "system";
      try { localStorage.setItem(KEY, next); } catch (_) { /* this page only */ }
      apply(next);
      paint();
    });
    paint();
  });
})();
