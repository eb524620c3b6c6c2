/* terraops map: a catalogue layer as the page knows it, and what a click reads from it.
 *
 * The layer JSON of `/layers` normalised to the fields the page uses (links,
 * legend, lineage: which model made it, for which city and storm), its short
 * title and model badge, and the point read-out: the layer's value under a
 * click, the live API's answer for the same cell (with its explanation, from
 * explain.js) and the properties of the vector areas hit. map.js draws and
 * switches the layers; this file only turns data into DOM.
 */
(function () {
  "use strict";

  const T = window.terraops;
  const el = T.el;

  function legendStops(raw) {
    const legendValue = raw.legend;
    if (Array.isArray(legendValue)) return legendValue;
    if (legendValue && Array.isArray(legendValue.stops)) return legendValue.stops;
    if (Array.isArray(raw.legend_stops)) return raw.legend_stops;
    return [];
  }

  function legendText(raw) {
    if (typeof raw.legend === "string") return raw.legend;
    if (raw.legend && typeof raw.legend.title === "string") return raw.legend.title;
    return raw.legend_title || raw.description || "";
  }

  function link(raw, names, fallback) {
    const links = raw.links || {};
    for (const name of names) {
      const value = raw[name] !== undefined ? raw[name] : links[name];
      if (typeof value === "string") return value;
      if (Array.isArray(value) && typeof value[0] === "string") return value[0];
      if (value && typeof value.href === "string") return value.href;
    }
    return fallback;
  }

  function normalise(raw) {
    const lineage = raw.lineage || {};
    const model = lineage.model && lineage.model.name ? lineage.model : null;
    const params = lineage.params || {};
    const tilejson = raw.tilejson && typeof raw.tilejson === "object" ? raw.tilejson : {};
    const base = "/layers/" + encodeURIComponent(raw.id);
    return {
      id: raw.id,
      title: raw.title || raw.id,
      kind: raw.kind,
      group: raw.group || "other",
      role: raw.role || "",
      unit: raw.unit || "",
      available: raw.available !== false,
      problem: raw.problem || null,
      bounds: Array.isArray(raw.bounds) && raw.bounds.length === 4 ? raw.bounds : null,
      stops: legendStops(raw),
      description: legendText(raw),
      tiles: link(raw, ["tiles", "tiles_url"], base + "/tiles/{z}/{x}/{y}.png"),
      point: link(raw, ["point", "point_url"], base + "/point"),
      data: link(raw, ["data", "geojson", "data_url"], base + "/data.geojson"),
      minzoom: tilejson.minzoom !== undefined ? tilejson.minzoom : raw.minzoom,
      maxzoom: tilejson.maxzoom !== undefined ? tilejson.maxzoom : raw.maxzoom,
      model: model,
      rainfall: typeof params.rainfall_mm === "number" ? params.rainfall_mm : null,
      scene: lineage.scene || "",
    };
  }

  function shortTitle(layer) {
    return layer.title.split(" — ")[0];
  }

  function subtitle(layer) {
    const parts = [];
    if (layer.scene) parts.push(layer.scene);
    if (layer.rainfall !== null) parts.push(layer.rainfall + " mm storm");
    parts.push(layer.kind === "vector" ? "vector" : "raster");
    return parts.join(" · ");
  }

  function modelBadge(layer) {
    if (!layer.model) return el("span", { className: "badge badge-muted" }, "imagery");
    return el(
      "span",
      { className: "badge", title: "run " + (layer.model.run_id || "?") },
      layer.model.name + " v" + layer.model.version
    );
  }

  function modelText(model) {
    if (!model) return "";
    return model.name + " v" + model.version + (model.alias ? " " + model.alias : "");
  }

  function pointValue(body, unit) {
    const values = Array.isArray(body.values) ? body.values : [];
    if (values.length === 3) return "RGB " + values.map(function (v) { return v === null ? "–" : Math.round(v); }).join(" / ");
    return T.formatValue(body.value, unit);
  }

  function rasterReadout(item) {
    const layer = item.entry.layer;
    const result = item.result;
    const rows = [];
    if (!result.ok) {
      rows.push(el("p", { className: "readout-error" }, shortTitle(layer) + ": " + T.errorText(result)));
      return rows;
    }
    const body = result.body;
    const unit = body.unit || layer.unit;
    const layerModel = (body.lineage && body.lineage.model) || layer.model;
    const parts = [
      el("span", { className: "readout-label" }, layerModel ? "layer (" + modelText(layerModel) + "): " : "layer: "),
      el("strong", { dataset: { testid: "point-value" } }, pointValue(body, unit)),
    ];
    if (item.live) {
      parts.push(el("span", { className: "sep", "aria-hidden": "true" }, " · "));
      if (item.live.ok) {
        const live = item.live.body;
        parts.push(el("span", { className: "readout-label" }, "live API (" + modelText(live.model) + "): "));
        parts.push(el("strong", { className: "live", dataset: { testid: "live-prediction" } },
          T.formatValue(live.prediction, live.unit)));
      } else {
        parts.push(el("span", { className: "readout-error", dataset: { testid: "live-error" } },
          "live API: " + T.errorText(item.live)));
      }
    }
    rows.push(el("p", { className: "readout-layer" }, shortTitle(layer)));
    rows.push(el("p", { className: "readout-line" }, parts));
    if (item.live && item.live.ok && T.explanation) rows.push(T.explanation(item.live.body));
    return rows;
  }

  const VECTOR_KEYS = ["area_m2", "mean_value", "max_value", "threshold"];
  const VECTOR_HIDDEN = ["unit", "layer", "model_run_id", "model_name", "model_version", "rule", "class"];

  function propertyRow(key, value) {
    return el("tr", {}, el("th", { scope: "row" }, key.replace(/_m2$/, "").replace(/_/g, " ")), el("td", {}, value));
  }

  /** The area's size and values up front; its other properties one click away. */
  function vectorReadout(hit) {
    const props = hit.feature.properties || {};
    const unit = props.unit || hit.layer.unit;
    const main = VECTOR_KEYS.filter(function (k) { return props[k] !== undefined; }).map(function (k) {
      const value = k === "area_m2" ? T.formatValue(props[k] / 1e4, "ha") : T.formatValue(props[k], unit);
      return propertyRow(k, value);
    });
    const rest = Object.keys(props).filter(function (k) {
      return VECTOR_KEYS.indexOf(k) < 0 && VECTOR_HIDDEN.indexOf(k) < 0;
    }).map(function (k) { return propertyRow(k, String(props[k])); });
    const rank = props.rank !== undefined ? " #" + props.rank : "";
    return el(
      "div",
      { className: "readout-vector", dataset: { testid: "vector-properties" } },
      el("p", { className: "readout-layer" }, shortTitle(hit.layer) + rank, " ", modelBadge(hit.layer)),
      el("table", { className: "props" }, el("tbody", {}, main)),
      rest.length ? el("details", {}, el("summary", {}, "all properties"),
        el("table", { className: "props" }, el("tbody", {}, rest))) : null
    );
  }

  function readout(latlng, items, hits) {
    const body = [el("p", { className: "readout-where" }, latlng.lat.toFixed(5) + "°, " + latlng.lng.toFixed(5) + "°")];
    items.forEach(function (item) { body.push.apply(body, rasterReadout(item)); });
    hits.forEach(function (hit) { body.push(vectorReadout(hit)); });
    if (items.length === 0 && hits.length === 0) body.push(el("p", { className: "muted" }, "No visible layer covers this point."));
    return el("div", { className: "readout" }, body);
  }

  T.layers = {
    normalise: normalise,
    shortTitle: shortTitle,
    subtitle: subtitle,
    modelBadge: modelBadge,
    readout: readout,
  };
})();
