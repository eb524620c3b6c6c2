/* terraops map: what-if scenarios drawn on the map.
 *
 * A planner draws areas (Leaflet.draw, served by this server like Leaflet
 * itself) or uploads a scenario GeoJSON file, picks what to do in each area,
 * and runs it: `POST /v1/{service}/whatif` recomputes the city with the change
 * and answers with a table per area and the Δ layer, which is added to the map
 * and can be compared with today's map by a swipe. The server validates the
 * scenario and says which area and field is wrong; this page only shows it.
 */
(function () {
  "use strict";

  const T = window.terraops;
  const page = T.mapPage;
  const el = T.el;
  const fill = T.fill;
  if (!page || !window.L || !L.Draw) return;

  const SERVICE = page.view === "flood" ? "flood" : "uhi";
  /** The scenario file's interventions, their parameters (0–1 shares unless said) and defaults. */
  const KINDS = {
    tree_planting: { label: "Plant trees", params: { canopy: [0.6, "tree canopy share"] } },
    park: { label: "Turn into a park", params: { canopy: [0.3, "tree canopy share"] } },
    depave: { label: "Depave (sealed ground → grass)", params: { share: [1, "share of sealed ground"] } },
    cool_roof: { label: "Cool roofs", params: { albedo: [0.6, "roof albedo"] } },
    green_roof: { label: "Green roofs", params: { share: [1, "share of roofs"] } },
    develop: {
      label: "Develop (build on green ground)",
      params: { building_share: [0.4, "building share"], sealed_share: [0.4, "asphalt share"] },
    },
  };
  const AREA_STYLE = { color: "#15303a", weight: 2, dashArray: "6 4", fillColor: "#ffffff", fillOpacity: 0.12 };

  const section = document.getElementById("whatif");
  const kindSelect = document.getElementById("whatif-kind");
  const paramsEl = document.getElementById("whatif-params");
  const areasEl = document.getElementById("whatif-areas");
  const drawButton = document.getElementById("whatif-draw");
  const fileInput = document.getElementById("whatif-file");
  const runButton = document.getElementById("whatif-run");
  const clearButton = document.getElementById("whatif-clear");
  const statusEl = document.getElementById("whatif-status");
  const resultEl = document.getElementById("whatif-result");
  const map = page.map;

  const drawn = L.featureGroup().addTo(map);
  /** [{layer, properties}] in drawing order; an uploaded file in another CRS is kept as is. */
  let areas = [];
  let foreignScenario = null;
  let counter = 0;
  let swipe = null;

  // ----- picking an intervention ------------------------------------------------------

  function paramInputs() {
    const kind = KINDS[kindSelect.value];
    fill(paramsEl, Object.keys(kind.params).map(function (name) {
      const spec = kind.params[name];
      const id = "whatif-param-" + name;
      return el("div", { className: "field" },
        el("label", { for: id }, spec[1]),
        el("input", { type: "number", id: id, min: 0, max: 1, step: 0.05, value: spec[0], dataset: { param: name } }));
    }));
  }

  function chosenProperties() {
    const properties = { intervention: kindSelect.value };
    paramsEl.querySelectorAll("input[data-param]").forEach(function (input) {
      properties[input.dataset.param] = Number(input.value);
    });
    return properties;
  }

  function describe(properties) {
    const kind = KINDS[properties.intervention];
    const params = Object.keys(properties).filter(function (k) {
      return ["intervention", "id", "name", "description"].indexOf(k) < 0;
    }).map(function (k) { return k.replace(/_/g, " ") + " " + properties[k]; });
    return (kind ? kind.label : String(properties.intervention)) + (params.length ? " (" + params.join(", ") + ")" : "");
  }

  // ----- the areas ------------------------------------------------------------------------

  function addArea(layer, properties) {
    counter += 1;
    const props = Object.assign({ id: "area-" + counter }, properties);
    if (layer.setStyle) layer.setStyle(AREA_STYLE);
    layer.bindTooltip(props.id + ": " + describe(props), { sticky: true });
    drawn.addLayer(layer);
    areas.push({ layer: layer, properties: props });
    renderAreas();
  }

  function removeArea(area) {
    drawn.removeLayer(area.layer);
    areas = areas.filter(function (a) { return a !== area; });
    renderAreas();
  }

  function renderAreas() {
    const rows = areas.map(function (area) {
      return el("li", { dataset: { area: area.properties.id } },
        el("span", {}, el("strong", {}, area.properties.id), " ", describe(area.properties)),
        el("button", { type: "button", className: "link-button", "aria-label": "Remove " + area.properties.id,
          onclick: function () { removeArea(area); } }, "remove"));
    });
    if (foreignScenario) {
      rows.push(el("li", {}, foreignScenario.name + ": " + foreignScenario.document.features.length +
        " areas in their own coordinate system (shown after the run)"));
    }
    fill(areasEl, rows);
    const any = areas.length > 0 || foreignScenario !== null;
    runButton.disabled = !any;
    clearButton.disabled = !any;
  }

  function scenarioDocument() {
    if (foreignScenario) return foreignScenario.document;
    return {
      type: "FeatureCollection",
      features: areas.map(function (area) {
        return { type: "Feature", properties: area.properties, geometry: area.layer.toGeoJSON().geometry };
      }),
    };
  }

  // ----- drawing (Leaflet.draw) and uploading ------------------------------------------------

  const drawOptions = { allowIntersection: false, showArea: false, shapeOptions: AREA_STYLE };
  const polygonTool = new L.Draw.Polygon(map, drawOptions);
  map.addControl(new L.Control.Draw({
    position: "topleft",
    draw: { polygon: drawOptions, rectangle: { shapeOptions: AREA_STYLE, showArea: false },
      polyline: false, circle: false, marker: false, circlemarker: false },
    edit: { featureGroup: drawn, remove: false },
  }));
  map.on(L.Draw.Event.DRAWSTART, function () { page.drawing = true; });
  map.on(L.Draw.Event.DRAWSTOP, function () {
    // The click that closes the shape comes after drawstop: read the map again after it.
    setTimeout(function () { page.drawing = false; }, 0);
  });
  map.on(L.Draw.Event.EDITSTART, function () { page.drawing = true; });
  map.on(L.Draw.Event.EDITSTOP, function () { page.drawing = false; });
  map.on(L.Draw.Event.CREATED, function (event) { addArea(event.layer, chosenProperties()); });
  drawButton.addEventListener("click", function () {
    polygonTool.enable();
    statusEl.textContent = "Click the map to place corners; click the first corner or double-click to finish.";
  });

  function isWgs84(document) {
    const name = document.crs && document.crs.properties && document.crs.properties.name;
    return !name || /CRS84$|EPSG:*:?4326$/i.test(String(name));
  }

  async function upload() {
    const file = fileInput.files && fileInput.files[0];
    fileInput.value = "";
    if (!file) return;
    let document;
    try {
      document = JSON.parse(await file.text());
    } catch (exc) {
      statusEl.textContent = file.name + " is not JSON: " + exc.message;
      return;
    }
    if (!document || document.type !== "FeatureCollection" || !Array.isArray(document.features)) {
      statusEl.textContent = file.name + " is not a GeoJSON FeatureCollection.";
      return;
    }
    clearAll();
    if (!isWgs84(document)) {
      foreignScenario = { name: file.name, document: document };
    } else {
      document.features.forEach(function (feature) {
        L.geoJSON(feature).eachLayer(function (layer) { addArea(layer, feature.properties || {}); });
      });
      if (areas.length) map.fitBounds(drawn.getBounds(), { padding: [40, 40], maxZoom: 16 });
    }
    renderAreas();
    const count = document.features.length;
    statusEl.textContent = file.name + ": " + count + (count === 1 ? " area" : " areas") + " loaded. Run to see the effect.";
  }
  fileInput.addEventListener("change", upload);

  function clearAll() {
    drawn.clearLayers();
    areas = [];
    foreignScenario = null;
    renderAreas();
  }
  clearButton.addEventListener("click", function () {
    clearAll();
    fill(resultEl);
    statusEl.textContent = "";
  });

  // ----- running and the results -------------------------------------------------------------

  /** "+0.42 K", "−2.2 K", "0.00 K": a change, signed, with two decimals below 10. */
  function signed(value, unit) {
    if (value === null || value === undefined) return "–";
    if (unit === "probability") return (value > 0 ? "+" : value < 0 ? "\u2212" : "") + T.formatValue(Math.abs(value), unit);
    const text = Math.abs(value).toFixed(Math.abs(value) >= 10 ? 1 : 2);
    const sign = Number(text) === 0 ? "" : value > 0 ? "+" : "\u2212";
    return sign + text + (unit ? "\u00a0" + unit : "");
  }

  function intervalText(interval, unit) {
    if (!Array.isArray(interval) || interval.length !== 2) return "–";
    return signed(interval[0], unit) + " to " + signed(interval[1], unit);
  }

  function driversText(drivers, unit) {
    if (!Array.isArray(drivers) || !drivers.length) return "–";
    return drivers.slice(0, 2).map(function (d) {
      return String(d.driver).replace(/_/g, " ") + " " + signed(d.delta, unit);
    }).join(", ");
  }

  const ROWS = [
    ["Intervention", function (r) { return (KINDS[r.intervention] || { label: r.intervention }).label; }],
    ["Area", function (r) { return T.formatValue(r.area_ha, "ha"); }],
    ["Mean Δ inside", function (r, u) { return signed(r.mean_delta, u); }],
    ["90 % interval", function (r, u) { return intervalText(r.mean_delta_interval, u); }],
    ["Range inside", function (r, u) { return signed(r.min_delta, u) + " to " + signed(r.max_delta, u); }],
    ["Ring 0–100 m", function (r, u) { return signed(r.ring_100m_mean_delta, u); }],
    ["Ring 100–250 m", function (r, u) { return signed(r.ring_250m_mean_delta, u); }],
    ["Drivers", function (r, u) { return driversText(r.drivers, u); }],
  ];

  /** One column per intervention, one row per figure: it fits the side panel. */
  function resultTable(body) {
    const unit = body.unit === "°C" ? "K" : body.unit || "";
    const rows = body.interventions || [];
    return el("div", { className: "whatif-table-wrap" }, el("table", { className: "table whatif-table", dataset: { testid: "whatif-table" } },
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, ""), rows.map(function (r) {
        return el("th", { scope: "col", className: "num" }, String(r.id));
      }))),
      el("tbody", {}, ROWS.map(function (spec) {
        return el("tr", {}, el("th", { scope: "row" }, spec[0]), rows.map(function (r) {
          return el("td", { className: "num" }, spec[1](r, unit));
        }));
      }))));
  }

  async function catalogueLayers(layers) {
    const raws = await Promise.all((layers || []).map(async function (item) {
      if (item && typeof item === "object") return item;
      const result = await T.fetchJSON("/layers/" + encodeURIComponent(item));
      return result.ok ? result.body : null;
    }));
    return raws.filter(Boolean);
  }

  async function run() {
    const scene = page.scene();
    const params = {};
    if (SERVICE === "flood" && page.storm() !== null) params.rainfall_mm = page.storm();
    runButton.disabled = true;
    runButton.setAttribute("aria-busy", "true");
    const started = performance.now();
    statusEl.textContent = "Running the scenario on " + scene + "…";
    const result = await T.fetchJSON("/v1/" + SERVICE + "/whatif", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ scene: scene, scenario: scenarioDocument(), params: params }),
    });
    runButton.removeAttribute("aria-busy");
    renderAreas();
    if (!result.ok) {
      statusEl.textContent = "The scenario was not run: " + T.errorText(result);
      return;
    }
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const body = result.body;
    const raws = await catalogueLayers(body.layers);
    const added = raws.map(function (raw) { return page.addLayer(raw); });
    const delta = added.find(function (e) { return e.layer.role === "whatif"; }) || null;
    const after = added.find(function (e) { return e.layer.role === "whatif-after"; }) || null;
    statusEl.textContent = "Done in " + seconds + " s" + (body.model ? " (" + body.model.name + " v" + body.model.version + ")" : "") +
      ". Click the map to read the change and why a place is as it is.";
    fill(resultEl, resultTable(body), compareControls(after || delta, after !== null));
    drawn.bringToFront();
  }
  runButton.addEventListener("click", run);

  // ----- before / after: a swipe across the map ----------------------------------------------

  function compareControls(entry, isAfter) {
    const before = page.shownPrediction();
    if (!entry || !before) return null;
    const box = el("input", { type: "checkbox", id: "whatif-swipe", onchange: function (event) {
      if (event.target.checked) startSwipe(before, entry, isAfter);
      else stopSwipe();
    } });
    return el("p", { className: "whatif-compare" }, box, " ", el("label", { for: "whatif-swipe" },
      "Swipe: today's " + before.layer.title.split(" — ")[0].toLowerCase() + " | " + (isAfter ? "after" : "the change (Δ)")));
  }

  function startSwipe(before, entry, isAfter) {
    stopSwipe();
    page.setVisible(before, true);
    page.setVisible(entry, true);
    const range = el("input", { type: "range", min: 0, max: 1000, value: 500, className: "swipe-range",
      "aria-label": "Move the divider between before and after" });
    const divider = el("div", { className: "swipe-divider" });
    const container = el("div", { className: "swipe", dataset: { testid: "swipe" } }, divider, range,
      el("span", { className: "swipe-label swipe-left" }, "today"),
      el("span", { className: "swipe-label swipe-right" }, isAfter ? "after" : "Δ"));
    L.DomEvent.disableClickPropagation(container);
    map.getContainer().appendChild(container);
    function update() {
      const size = map.getSize();
      const x = (size.x * Number(range.value)) / 1000;
      const nw = map.containerPointToLayerPoint([0, 0]);
      const se = map.containerPointToLayerPoint(size);
      divider.style.left = x + "px";
      // The after layer only right of the divider: today's map shows through on the left.
      entry.leaflet.getContainer().style.clip = "rect(" + [nw.y, se.x, se.y, nw.x + x].join("px, ") + "px)";
    }
    range.addEventListener("input", update);
    map.on("move zoomend resize", update);
    update();
    swipe = { container: container, entry: entry, update: update };
  }

  function stopSwipe() {
    if (!swipe) return;
    map.off("move zoomend resize", swipe.update);
    swipe.container.remove();
    if (swipe.entry.leaflet && swipe.entry.leaflet.getContainer()) swipe.entry.leaflet.getContainer().style.clip = "";
    swipe = null;
  }

  // ----- start -------------------------------------------------------------------------------

  fill(kindSelect, Object.keys(KINDS).map(function (k) { return el("option", { value: k }, KINDS[k].label); }));
  kindSelect.addEventListener("change", paramInputs);
  paramInputs();
  renderAreas();
  page.ready.then(function (count) {
    section.hidden = !count;
  });
})();
