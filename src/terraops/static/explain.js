/* terraops map: why a cell got its prediction, as a small waterfall and one sentence.
 *
 * The live API's answer to `POST /v1/{service}/predict?explain=true` carries
 * the cell's `baseline` (the typical cell) and its additive contributions, so
 * baseline + every contribution = the prediction. The waterfall walks that sum
 * bar by bar: each driver moves the running total up (red) or down (blue) from
 * the typical cell to this one. The drivers are the groups a planner reads
 * (vegetation, built form, water...); when the answer has only per-feature
 * contributions, the largest few are shown and the rest summed, which keeps the
 * sum exact.
 */
(function () {
  "use strict";

  const T = window.terraops;
  const el = T.el;
  const MAX_FEATURE_STEPS = 5;

  function pick(object, names) {
    for (const name of names) if (object && object[name] !== undefined && object[name] !== null) return object[name];
    return undefined;
  }

  const ACRONYMS = { ndvi: "NDVI", ndbi: "NDBI", hand: "HAND" };

  function titleCase(key) {
    if (ACRONYMS[key]) return ACRONYMS[key];
    const text = String(key).replace(/_/g, " ");
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  /** [{label, value}] from drivers (list or mapping) or, failing that, from features. */
  function steps(body, explanation) {
    const drivers = pick(explanation, ["drivers", "driver_contributions"]);
    if (Array.isArray(drivers)) {
      return drivers.map(function (d) {
        return {
          label: d.label || titleCase(pick(d, ["driver", "key", "name"]) || "?"),
          value: Number(pick(d, ["contribution", "delta", "value"])),
        };
      });
    }
    if (drivers && typeof drivers === "object") {
      return Object.keys(drivers).map(function (k) { return { label: titleCase(k), value: Number(drivers[k]) }; });
    }
    const contributions = pick(explanation, ["contributions"]) || {};
    const all = Object.keys(contributions).map(function (k) {
      return { label: titleCase(k), value: Number(contributions[k]) };
    });
    all.sort(function (a, b) { return Math.abs(b.value) - Math.abs(a.value); });
    const shown = all.slice(0, MAX_FEATURE_STEPS);
    const rest = all.slice(MAX_FEATURE_STEPS).reduce(function (sum, s) { return sum + s.value; }, 0);
    if (all.length > MAX_FEATURE_STEPS) shown.push({ label: "Other inputs", value: rest });
    return shown;
  }

  function signed(value, unit) {
    const text = T.formatValue(Math.abs(value), unit);
    return (value < 0 ? "\u2212" : "+") + text;
  }

  /** One row: a label, a bar from `from` to `to` on the shared scale, the value. */
  function row(label, from, to, scale, text, kind) {
    const bar = el("span", { className: "wf-bar wf-" + kind });
    const lo = Math.min(from, to);
    bar.style.left = (((lo - scale.lo) / scale.span) * 100).toFixed(2) + "%";
    bar.style.width = Math.max((Math.abs(to - from) / scale.span) * 100, 0.8).toFixed(2) + "%";
    return el(
      "div",
      { className: "wf-row", role: "listitem" },
      el("span", { className: "wf-label" }, label),
      el("span", { className: "wf-track", "aria-hidden": "true" }, bar),
      el("span", { className: "wf-value" }, text)
    );
  }

  /**
   * The explanation block of a live answer, or null when it has none.
   * Exposed as terraops.explanation for the point read-out of map.js.
   */
  function explanation(body) {
    const explained = body && (body.explanation && typeof body.explanation === "object" ? body.explanation : body);
    const baseline = Number(pick(explained, ["baseline"]));
    if (!explained || !isFinite(baseline)) return null;
    const parts = steps(body, explained).filter(function (s) { return isFinite(s.value); });
    if (!parts.length) return null;
    // A contribution is a difference: of °C, a kelvin.
    const unit = pick(explained, ["contribution_unit"]) || (body.unit === "°C" ? "K" : body.unit || "");
    const points = [baseline];
    parts.forEach(function (s) { points.push(points[points.length - 1] + s.value); });
    const lo = Math.min.apply(null, points);
    const hi = Math.max.apply(null, points);
    const scale = { lo: lo, span: hi - lo || 1 };
    const rows = [row("Typical cell", baseline, baseline, scale, T.formatValue(baseline, body.unit || unit), "base")];
    parts.forEach(function (s, i) {
      rows.push(row(s.label, points[i], points[i + 1], scale, signed(s.value, unit), s.value >= 0 ? "up" : "down"));
    });
    const total = points[points.length - 1];
    rows.push(row("This cell", total, total, scale, T.formatValue(total, body.unit || unit), "base"));
    const sentence = pick(explained, ["sentence", "explanation_sentence", "summary"]) ||
      pick(body, ["sentence", "explanation_sentence"]);
    return el(
      "figure",
      { className: "waterfall", dataset: { testid: "waterfall" } },
      el("figcaption", {}, el("span", { className: "wf-title" }, "Why this value"),
        sentence ? el("span", { className: "wf-sentence", dataset: { testid: "explain-sentence" } }, sentence) : null),
      el("div", { role: "list", "aria-label": "Contributions from the typical cell to this one" }, rows)
    );
  }

  T.explanation = explanation;
})();
