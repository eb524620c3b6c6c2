/* terraops map page: catalogue layers on an offline Leaflet map.
 *
 * Everything comes from this server: the layer list (/layers), XYZ tiles and
 * point values per layer, GeoJSON for vector layers, and the live prediction
 * API. There is no internet base map: the scene's own RGB imagery is the base.
 */
(function () {
  "use strict";

  const T = window.terraops;
  const el = T.el;
  const fill = T.fill;

  const VIEW = document.getElementById("main").dataset.view || "heat";
  // The scene the server is set to open on (TERRAOPS_MAP_SCENE), "" when none.
  const OPENS_ON = document.getElementById("main").dataset.scene || "";
  const statusEl = document.getElementById("map-status");
  const listEl = document.getElementById("layer-list");
  const pointEl = document.getElementById("point-info");
  const scenePicker = document.getElementById("scene-picker");
  const sceneSelect = document.getElementById("scene-select");
  const stormPicker = document.getElementById("storm-picker");
  const stormSelect = document.getElementById("storm-select");

  const VECTOR_STYLES = {
    hotspots: { color: "#67000d", weight: 1, fillColor: "#ef3b2c", fillOpacity: 0.28 },
    flooded: { color: "#08306b", weight: 1.2, fillColor: "#2171b5", fillOpacity: 0.3 },
  };
  const DEFAULT_VECTOR_STYLE = { color: "#2d2d2d", weight: 1.5, fillColor: "#888", fillOpacity: 0.12 };
  const GROUP_TITLES = {
    heat: "Heat", flood: "Flood", imagery: "Imagery", whatif: "What-if", footprints: "Footprints",
  };

  const map = L.map("map", { zoomControl: true, zoomSnap: 0.25, zoomDelta: 0.5 });
  map.createPane("imagery").style.zIndex = "210";
  map.createPane("rasters").style.zIndex = "260";
  map.attributionControl.addAttribution("Layers: terraops catalogue");
  map.setView([20, 0], 2);

  const legend = L.control({ position: "bottomright" });
  legend.onAdd = function () {
    const div = L.DomUtil.create("div", "map-legend");
    L.DomEvent.disableClickPropagation(div);
    return div;
  };
  legend.addTo(map);

  /** entries: catalogue layers with their Leaflet layer, visibility and opacity. */
  const entries = [];
  let vectorHit = null; // {event, items}: vector features under the last click

  // ----- catalogue ----------------------------------------------------------

  const normalise = T.layers.normalise;
  const shortTitle = T.layers.shortTitle;
  const subtitle = T.layers.subtitle;
  const modelBadge = T.layers.modelBadge;
  const readout = T.layers.readout;

  function latLngBounds(layer) {
    if (!layer.bounds) return null;
    const b = layer.bounds; // west, south, east, north
    return L.latLngBounds([b[1], b[0]], [b[3], b[2]]);
  }

  // ----- default visibility per view ------------------------------------------

  /** The scenes (cities) the catalogue holds, in catalogue order. */
  function sceneNames() {
    const names = [];
    entries.forEach(function (e) {
      if (e.layer.scene && names.indexOf(e.layer.scene) < 0) names.push(e.layer.scene);
    });
    return names;
  }

  /** One city at a time: cities can lie on different continents. */
  function inScene(layer) {
    const chosen = sceneSelect.value;
    return chosen === "" || !layer.scene || layer.scene === chosen;
  }

  function storms() {
    const values = new Set();
    entries.forEach(function (e) {
      if (e.layer.group === "flood" && e.layer.rainfall !== null && inScene(e.layer)) {
        values.add(e.layer.rainfall);
      }
    });
    return Array.from(values).sort(function (a, b) { return a - b; });
  }

  function selectedStorm() {
    return stormSelect.value === "" ? null : Number(stormSelect.value);
  }

  /** What a reader of this view sees first: imagery, the prediction and its areas. */
  function onByDefault(layer) {
    if (!layer.available || !inScene(layer)) return false;
    if (layer.group === "imagery" || layer.role === "imagery") return true;
    if (layer.group !== VIEW) return false;
    if (VIEW === "flood" && layer.rainfall !== null && layer.rainfall !== selectedStorm()) return false;
    return layer.role === "prediction" || layer.kind === "vector";
  }

  // ----- Leaflet layers -------------------------------------------------------

  function makeRaster(entry) {
    const layer = entry.layer;
    const options = {
      pane: layer.group === "imagery" || layer.role === "imagery" ? "imagery" : "rasters",
      opacity: entry.opacity,
      maxZoom: 22,
      bounds: latLngBounds(layer) || undefined,
      className: "tiles-" + layer.id,
    };
    if (typeof layer.maxzoom === "number") options.maxNativeZoom = layer.maxzoom;
    const tiles = L.tileLayer(layer.tiles, options);
    // Marked so a reader (and the browser tests) can tell a failed tile from a pending one.
    tiles.on("tileerror", function (event) { event.tile.classList.add("tile-error"); });
    return tiles;
  }

  function makeVector(entry) {
    const layer = entry.layer;
    const style = VECTOR_STYLES[layer.role] || DEFAULT_VECTOR_STYLE;
    const group = L.geoJSON(null, {
      style: function () { return style; },
      onEachFeature: function (feature, shape) {
        shape.on("click", function (event) {
          // The map's own click handler runs next with the same DOM event and
          // puts these properties into the point read-out.
          if (!vectorHit || vectorHit.event !== event.originalEvent) {
            vectorHit = { event: event.originalEvent, items: [] };
          }
          vectorHit.items.push({ layer: layer, feature: feature });
        });
      },
    });
    entry.loading = T.fetchJSON(layer.data).then(function (result) {
      if (!result.ok) {
        entry.problem = T.errorText(result);
        renderList();
        return;
      }
      group.addData(result.body);
      entry.featureCount = (result.body.features || []).length;
      renderList();
    });
    return group;
  }

  function leafletLayer(entry) {
    if (!entry.leaflet) entry.leaflet = entry.layer.kind === "vector" ? makeVector(entry) : makeRaster(entry);
    return entry.leaflet;
  }

  function setVisible(entry, visible) {
    entry.visible = visible && entry.layer.available;
    if (entry.visible) leafletLayer(entry).addTo(map);
    else if (entry.leaflet) map.removeLayer(entry.leaflet);
  }

  // ----- side panel -------------------------------------------------------------

  function layerRow(entry) {
    const layer = entry.layer;
    const id = "layer-" + layer.id;
    const checkbox = el("input", {
      type: "checkbox",
      id: id,
      checked: entry.visible,
      disabled: !layer.available,
      dataset: { layer: layer.id },
      onchange: function (event) {
        setVisible(entry, event.target.checked);
        renderLegend();
        renderList();
      },
    });
    const row = el(
      "div",
      { className: "layer-row" + (entry.visible ? " is-on" : ""), dataset: { layerId: layer.id } },
      el(
        "div",
        { className: "layer-head" },
        checkbox,
        el(
          "label",
          { for: id },
          el("span", { className: "layer-title" }, shortTitle(layer)),
          el("span", { className: "layer-sub" }, subtitle(layer))
        ),
        modelBadge(layer)
      )
    );
    if (layer.kind !== "vector" && entry.visible) {
      const slider = el("input", {
        type: "range",
        min: 0,
        max: 100,
        value: Math.round(entry.opacity * 100),
        "aria-label": "Opacity of " + shortTitle(layer),
        oninput: function (event) {
          entry.opacity = Number(event.target.value) / 100;
          if (entry.leaflet) entry.leaflet.setOpacity(entry.opacity);
        },
      });
      row.appendChild(el("div", { className: "opacity" }, el("span", { "aria-hidden": "true" }, "Opacity"), slider));
    }
    if (layer.kind === "vector" && entry.visible && entry.featureCount !== undefined) {
      row.appendChild(el("p", { className: "layer-note" }, entry.featureCount + " areas"));
    }
    const problem = entry.problem || (layer.available ? null : layer.problem || "file missing");
    if (problem) row.appendChild(el("p", { className: "layer-problem" }, problem));
    return row;
  }

  const ROLE_ORDER = { imagery: 0, prediction: 1, derived: 2 };

  /** Storm by storm, the raster before its areas, so a group reads top-down. */
  function listOrder(a, b) {
    const ra = a.layer.rainfall === null ? -1 : a.layer.rainfall;
    const rb = b.layer.rainfall === null ? -1 : b.layer.rainfall;
    const oa = a.layer.kind === "vector" ? 9 : ROLE_ORDER[a.layer.role] === undefined ? 5 : ROLE_ORDER[a.layer.role];
    const ob = b.layer.kind === "vector" ? 9 : ROLE_ORDER[b.layer.role] === undefined ? 5 : ROLE_ORDER[b.layer.role];
    return ra - rb || oa - ob || a.layer.title.localeCompare(b.layer.title);
  }

  function renderList() {
    const groups = {};
    entries.filter(function (e) { return inScene(e.layer); }).sort(listOrder).forEach(function (e) {
      (groups[e.layer.group] = groups[e.layer.group] || []).push(e);
    });
    const order = [VIEW, "imagery"].concat(Object.keys(groups).filter(function (g) {
      return g !== VIEW && g !== "imagery";
    }));
    const sections = [];
    const others = [];
    order.forEach(function (group) {
      if (!groups[group]) return;
      const block = el(
        "div",
        { className: "layer-group" },
        el("h3", {}, GROUP_TITLES[group] || group),
        groups[group].map(layerRow)
      );
      if (group === VIEW || group === "imagery") sections.push(block);
      else others.push(block);
    });
    if (others.length) {
      const wasOpen = listEl.querySelector("details.other-layers");
      sections.push(
        el(
          "details",
          { className: "other-layers", open: wasOpen ? wasOpen.open : false },
          el("summary", {}, "Other layers"),
          others
        )
      );
    }
    fill(listEl, sections);
  }

  // ----- legend -------------------------------------------------------------------

  function gradientBar(stops) {
    const first = Number(stops[0][0]);
    const span = Number(stops[stops.length - 1][0]) - first || 1;
    const colours = stops.map(function (stop) {
      return stop[1] + " " + (((Number(stop[0]) - first) / span) * 100).toFixed(1) + "%";
    });
    const bar = el("div", { className: "legend-bar", role: "img" });
    bar.style.backgroundImage = "linear-gradient(to right, " + colours.join(", ") + ")";
    return bar;
  }

  function legendBlock(entry) {
    const layer = entry.layer;
    const head = el("div", { className: "legend-title" }, shortTitle(layer), " ", modelBadge(layer));
    if (layer.kind === "vector") {
      const style = VECTOR_STYLES[layer.role] || DEFAULT_VECTOR_STYLE;
      const swatch = el("span", { className: "legend-swatch", "aria-hidden": "true" });
      swatch.style.borderColor = style.color;
      swatch.style.backgroundColor = style.fillColor;
      return el("div", { className: "legend-item" }, head, el("div", { className: "legend-rule" }, swatch, layer.description));
    }
    if (!layer.stops.length) return null;
    const stops = layer.stops;
    const bar = gradientBar(stops);
    const lo = T.formatValue(Number(stops[0][0]), layer.unit);
    const hi = T.formatValue(Number(stops[stops.length - 1][0]), layer.unit);
    bar.setAttribute("aria-label", "colour scale from " + lo + " to " + hi);
    return el(
      "div",
      { className: "legend-item" },
      head,
      bar,
      el("div", { className: "legend-ends" }, el("span", {}, lo), el("span", {}, hi)),
      layer.description ? el("div", { className: "legend-desc" }, layer.description) : null,
      layer.unobserved ? el("div", { className: "legend-desc", dataset: { testid: "not-compared" } },
        "Not compared with an observation: this scene has none of it (e.g. no thermal band).") : null
    );
  }

  function renderLegend() {
    const container = legend.getContainer();
    const blocks = entries
      .filter(function (e) { return e.visible; })
      .map(legendBlock)
      .filter(Boolean);
    container.hidden = blocks.length === 0;
    fill(container, blocks);
  }

  // ----- point read-out -------------------------------------------------------------

  function contains(layer, latlng) {
    const bounds = latLngBounds(layer);
    return bounds !== null && bounds.contains(latlng);
  }

  async function readPoint(entry, latlng) {
    const url = entry.layer.point + (entry.layer.point.indexOf("?") >= 0 ? "&" : "?") +
      "lon=" + latlng.lng.toFixed(6) + "&lat=" + latlng.lat.toFixed(6);
    const result = await T.fetchJSON(url);
    const out = { entry: entry, result: result, live: null };
    const service = entry.layer.model && entry.layer.model.name;
    const features = result.ok && result.body ? result.body.features : null;
    if (entry.layer.role === "prediction" && service && features && result.body.value !== null) {
      const predict = "/v1/" + encodeURIComponent(service) + "/predict";
      const request = {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(features),
      };
      // With the cell's explanation; a server without explanations still answers plainly.
      out.live = await T.fetchJSON(predict + "?explain=true", request);
      if (!out.live.ok && out.live.status === 422) out.live = await T.fetchJSON(predict, request);
    }
    return out;
  }

  async function onMapClick(event) {
    if (page.drawing) return; // a click that places a vertex reads nothing
    const latlng = event.latlng;
    const hits = vectorHit && vectorHit.event === event.originalEvent ? vectorHit.items : [];
    vectorHit = null;
    const rasters = entries.filter(function (e) {
      return e.visible && e.layer.kind !== "vector" && contains(e.layer, latlng);
    });
    const popup = L.popup({ maxWidth: 420, className: "readout-popup" })
      .setLatLng(latlng)
      .setContent(el("p", { className: "muted" }, "Reading layers…"))
      .openOn(map);
    const items = await Promise.all(rasters.map(function (e) { return readPoint(e, latlng); }));
    popup.setContent(readout(latlng, items, hits));
    fill(pointEl, readout(latlng, items, hits));
  }

  // ----- what the what-if panel (whatif.js) builds on -----------------------------------

  /** Add (or replace) a catalogue layer made while the page is open, shown at once. */
  function addLayer(raw) {
    const layer = normalise(raw);
    const old = entries.findIndex(function (e) { return e.layer.id === layer.id; });
    if (old >= 0) {
      setVisible(entries[old], false);
      entries.splice(old, 1);
    }
    const entry = { layer: layer, visible: false, opacity: 0.85, leaflet: null };
    entries.push(entry);
    setVisible(entry, true);
    renderList();
    renderLegend();
    return entry;
  }

  /** The prediction layer of this view and city now on the map (the "before" of a what-if). */
  function shownPrediction() {
    return entries.find(function (e) {
      return e.visible && e.layer.group === VIEW && e.layer.role === "prediction" && inScene(e.layer);
    }) || null;
  }

  const page = {
    map: map,
    view: VIEW,
    drawing: false,
    scene: function () { return sceneSelect.value || sceneNames()[0] || ""; },
    storm: selectedStorm,
    addLayer: addLayer,
    shownPrediction: shownPrediction,
    setVisible: function (entry, visible) { setVisible(entry, visible); renderList(); renderLegend(); },
  };
  T.mapPage = page;

  // ----- start --------------------------------------------------------------------------

  function fitToLayers() {
    let bounds = null;
    const chosen = entries.filter(function (e) { return e.visible; });
    (chosen.length ? chosen : entries).forEach(function (e) {
      const b = latLngBounds(e.layer);
      if (b) bounds = bounds ? bounds.extend(b) : L.latLngBounds(b.getSouthWest(), b.getNorthEast());
    });
    if (bounds) map.fitBounds(bounds, { padding: [16, 16] });
  }

  /** The scene of ?scene=, else the server's opening scene when it has a layer of this
   * view, else the first with a layer of this view, else the first. */
  function defaultScene(names) {
    const asked = new URLSearchParams(window.location.search).get("scene");
    if (asked && names.indexOf(asked) >= 0) return asked;
    const opensOnHere = entries.some(function (e) { return e.layer.group === VIEW && e.layer.scene === OPENS_ON; });
    if (OPENS_ON && opensOnHere) return OPENS_ON;
    const inView = entries.find(function (e) { return e.layer.group === VIEW && e.layer.scene; });
    return inView ? inView.layer.scene : names[0];
  }

  function setupScenes() {
    const names = sceneNames();
    if (names.length < 2) return;
    fill(sceneSelect, names.map(function (n) { return el("option", { value: n }, n); }));
    sceneSelect.value = defaultScene(names);
    scenePicker.hidden = false;
    sceneSelect.addEventListener("change", function () {
      const url = new URL(window.location.href);
      url.searchParams.set("scene", sceneSelect.value);
      window.history.replaceState(null, "", url);
      entries.forEach(function (e) { setVisible(e, onByDefault(e.layer)); });
      renderList();
      renderLegend();
      fitToLayers();
    });
  }

  function setupStorms() {
    const values = storms();
    if (VIEW !== "flood" || values.length === 0) return;
    fill(stormSelect, values.map(function (v) { return el("option", { value: String(v) }, v + " mm"); }));
    stormSelect.value = String(values.indexOf(50) >= 0 ? 50 : values[0]);
    stormPicker.hidden = false;
    stormSelect.addEventListener("change", function () {
      entries.forEach(function (e) {
        if (e.layer.group === "flood" && e.layer.rainfall !== null) setVisible(e, onByDefault(e.layer));
      });
      renderList();
      renderLegend();
    });
  }

  function showEmpty(message) {
    statusEl.textContent = message;
    const overlay = el("div", { className: "map-empty", role: "note" }, el("p", {}, message));
    document.getElementById("map").appendChild(overlay);
    renderLegend();
  }

  /** Resolves once the catalogue is on the map (with the number of layers). */
  async function start() {
    map.on("click", onMapClick);
    const result = await T.fetchJSON("/layers");
    if (!result.ok) {
      showEmpty("The layer catalogue could not be read: " + T.errorText(result));
      return;
    }
    const raw = Array.isArray(result.body) ? result.body : result.body.layers || [];
    raw.map(function (item) {
      const layer = normalise(item);
      // A prediction with no evaluation: the scene holds no observation to compare it with.
      layer.unobserved = layer.role === "prediction" && !(item.stats && item.stats.evaluation);
      return layer;
    }).forEach(function (layer) {
      entries.push({ layer: layer, visible: false, opacity: layer.group === "imagery" ? 1 : 0.75, leaflet: null });
    });
    if (entries.length === 0) {
      showEmpty("No map layers yet. Create them with `terraops predict-raster uhi --scene DIR` " +
        "(and flood with --param rainfall_mm=50); they appear here without a restart.");
      return;
    }
    setupScenes();
    setupStorms();
    entries.forEach(function (e) { setVisible(e, onByDefault(e.layer)); });
    const inView = entries.filter(function (e) { return e.layer.group === VIEW; }).length;
    statusEl.textContent = entries.length + " layers in the catalogue" +
      (inView ? "" : " — none for this view yet") + ". Click the map to read values.";
    renderList();
    renderLegend();
    fitToLayers();
    return entries.length;
  }

  page.ready = start();
})();
