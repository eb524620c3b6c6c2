/* terraops pages: small shared helpers (no framework, no build step).
 *
 * Every page builds its DOM with el() instead of innerHTML strings, so text that
 * comes from the server (layer titles, error messages, GeoJSON properties) is
 * always inserted as text, never parsed as HTML.
 */
(function () {
  "use strict";

  /** Create an element: el("td", {className: "num"}, "3.2", otherNode). */
  function el(tag, attrs) {
    const node = document.createElement(tag);
    const props = attrs || {};
    Object.keys(props).forEach(function (key) {
      const value = props[key];
      if (value === undefined || value === null || value === false) return;
      if (key === "className") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on") && typeof value === "function") {
        node.addEventListener(key.slice(2), value);
      } else if (value === true) node.setAttribute(key, "");
      else node.setAttribute(key, String(value));
    });
    for (let i = 2; i < arguments.length; i += 1) append(node, arguments[i]);
    return node;
  }

  function append(node, child) {
    if (child === undefined || child === null || child === false) return;
    if (Array.isArray(child)) child.forEach(function (c) { append(node, c); });
    else node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }

  /** Replace a node's children. */
  function fill(node) {
    node.replaceChildren();
    for (let i = 1; i < arguments.length; i += 1) append(node, arguments[i]);
    return node;
  }

  /**
   * fetch + JSON, never throwing: {ok, status, body}. The pages show errors to
   * the reader instead of logging them, so a refused request is a message, not
   * a console error.
   */
  async function fetchJSON(url, options) {
    let response;
    try {
      response = await fetch(url, Object.assign({ headers: { Accept: "application/json" } }, options));
    } catch (exc) {
      return { ok: false, status: 0, body: { message: "the server did not answer (" + exc.message + ")" } };
    }
    let body = null;
    try {
      body = await response.json();
    } catch (exc) {
      body = { message: response.statusText || "no JSON body" };
    }
    return { ok: response.ok, status: response.status, body: body, headers: response.headers };
  }

  /** "409 nothing_to_roll_back: uhi has no earlier champion — hint" from an API error body. */
  function errorText(result) {
    const body = result.body || {};
    const parts = [];
    parts.push(result.status ? String(result.status) : "network error");
    let message = body.message || body.detail || "request failed";
    if (typeof message !== "string") message = JSON.stringify(message);
    parts.push(body.error ? body.error.replace(/_/g, " ") + ": " + message : message);
    let text = parts.join(" ");
    if (Array.isArray(body.reasons) && body.reasons.length) text += " (" + body.reasons.join("; ") + ")";
    if (body.hint) text += " — " + body.hint;
    return text;
  }

  const DIMENSIONLESS = { "": true, "1": true, "probability": true, "fraction": true };

  /** A number for people: sensible decimals, the unit after it. */
  function formatValue(value, unit) {
    if (value === null || value === undefined) return "no data";
    if (Array.isArray(value)) return value.map(function (v) { return formatValue(v, ""); }).join(" / ");
    if (typeof value !== "number" || !isFinite(value)) return String(value);
    if (unit === "probability") return (value * 100).toFixed(value > 0 && value < 0.1 ? 1 : 0) + "\u00a0%";
    const abs = Math.abs(value);
    const digits = abs >= 1000 ? 0 : abs >= 100 ? 1 : abs >= 1 ? 1 : 3;
    const text = value.toLocaleString("en", { maximumFractionDigits: digits, minimumFractionDigits: digits });
    const u = unit || "";
    return DIMENSIONLESS[u] ? text : text + "\u00a0" + u;
  }

  function formatMetric(value) {
    if (value === null || value === undefined) return "–";
    const abs = Math.abs(value);
    return value.toFixed(abs >= 100 ? 1 : abs >= 1 ? 3 : 4);
  }

  function timeAgo(iso) {
    const then = Date.parse(iso);
    if (isNaN(then)) return iso || "";
    const seconds = Math.max(0, (Date.now() - then) / 1000);
    if (seconds < 60) return Math.round(seconds) + " s ago";
    if (seconds < 3600) return Math.round(seconds / 60) + " min ago";
    if (seconds < 86400) return Math.round(seconds / 3600) + " h ago";
    return new Date(then).toISOString().slice(0, 16).replace("T", " ");
  }

  window.terraops = {
    el: el,
    fill: fill,
    fetchJSON: fetchJSON,
    errorText: errorText,
    formatValue: formatValue,
    formatMetric: formatMetric,
    timeAgo: timeAgo,
  };
})();
