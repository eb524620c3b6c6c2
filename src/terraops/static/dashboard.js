/* terraops operator dashboard: champion/challenger, on-call state, traffic, history, rollback.
 *
 * Read-only data comes from /v1/models, /v1/models/{service}/versions,
 * /v1/ops/slo (SLOs, error budget, live error, drift) and /v1/stats. Promote, rollback and the alias history go to the admin API with
 * the token the operator typed; the token lives in this tab's sessionStorage
 * only — the server never writes it into the page.
 */
(function () {
  "use strict";

  const T = window.terraops;
  const el = T.el;
  const fill = T.fill;
  const TOKEN_KEY = "terraops.adminToken";

  const cards = Array.from(document.querySelectorAll(".service-card"));
  const tokenInput = document.getElementById("admin-token");
  const reasonInput = document.getElementById("admin-reason");
  const tokenState = document.getElementById("token-state");
  const versionsBy = {}; // service -> last /versions body

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  function field(card, name) {
    return card.querySelector('[data-field="' + name + '"]');
  }

  function showTokenState() {
    tokenState.textContent = token() ? "A token is set for this tab." : "No token set.";
  }

  // ----- models and metrics --------------------------------------------------

  const STEM_LABELS = {
    mae: "MAE", rmse: "RMSE", r2: "R²", bias: "bias", brier: "Brier", brier_skill: "Brier skill",
    roc_auc: "ROC-AUC", pr_auc: "PR-AUC", log_loss: "log loss", f1: "F1",
  };
  const SCHEMES = [["random_cv", "random"], ["spatial_cv", "spatial"], ["scene_cv", "unseen city"]];
  const SECONDARY = ["r2", "roc_auc", "rmse", "pr_auc"];

  function stemOf(metric) {
    return metric.replace(/_(random|spatial|scene)_cv(_core_only)?$/, "");
  }

  function metricLabel(metric) {
    const stem = stemOf(metric);
    const scheme = SCHEMES.find(function (s) { return metric === stem + "_" + s[0]; });
    return (STEM_LABELS[stem] || stem) + (scheme ? " · " + scheme[1] + " CV" : "");
  }

  /** The primary metric (and one more) under each validation scheme, plus the leakage gap. */
  function metricTable(row, primary) {
    const metrics = row.metrics || {};
    const stems = [stemOf(primary)];
    const extra = SECONDARY.find(function (s) { return metrics[s + "_spatial_cv"] !== undefined; });
    if (extra && extra !== stems[0]) stems.push(extra);
    const head = el("tr", {}, el("th", { scope: "col" }, ""), SCHEMES.map(function (s) {
      return el("th", { scope: "col", className: s[0] === "spatial_cv" ? "is-primary" : "" }, s[1]);
    }));
    const rows = stems.map(function (stem) {
      return el("tr", {}, el("th", { scope: "row" }, STEM_LABELS[stem] || stem), SCHEMES.map(function (s) {
        const name = stem + "_" + s[0];
        return el("td", { className: name === primary ? "is-primary" : "" }, T.formatMetric(metrics[name]));
      }));
    });
    const table = el("table", { className: "metrics" }, el("thead", {}, head), el("tbody", {}, rows));
    if (metrics.leakage_gap === undefined) return table;
    return [table, el("p", { className: "muted small leakage", title: "spatial minus random CV: how much a random split flatters the model" },
      "leakage gap " + T.formatMetric(metrics.leakage_gap))];
  }

  function modelBox(box, role, row, body) {
    const heading = el("h3", {}, role === "champion" ? "Champion" : "Challenger");
    if (!row && role === "challenger") {
      fill(box, heading, el("p", { className: "model-version muted", dataset: { testid: "no-challenger" } }, "no challenger"),
        el("p", { className: "muted small" }, "Every trained version has been promoted or set aside; ",
          el("code", {}, "terraops train"), " registers the next challenger."));
      return;
    }
    if (!row) {
      fill(box, heading, el("p", { className: "muted" }, "none"));
      return;
    }
    const primary = body.primary_metric;
    const better = body.primary_metric_higher_is_better ? "higher is better" : "lower is better";
    fill(
      box,
      heading,
      el("p", { className: "model-version" }, el("span", { dataset: { testid: role + "-version" } }, "v" + row.version),
        row.data_quality ? el("span", { className: "pill pill-" + (row.data_quality === "passed" ? "ok" : "bad") }, "data " + row.data_quality) : null),
      el("p", { className: "model-primary" },
        el("span", { className: "big" }, T.formatMetric(row.primary_metric)),
        el("span", { className: "muted" }, " " + metricLabel(primary) + " (" + better + ")")),
      metricTable(row, primary),
      el("p", { className: "muted small" }, "trained " + T.timeAgo(row.created_at) +
        (row.scenes ? " on " + row.scenes.split(",").join(", ") : "") + " · run " + (row.run_id || "").slice(0, 8))
    );
  }

  function versionsTable(body) {
    const rows = body.versions.slice().reverse().map(function (v) {
      return el(
        "tr",
        {},
        el("td", {}, "v" + v.version),
        el("td", {}, v.aliases.join(", ") || "–"),
        el("td", { className: "num" }, T.formatMetric(v.primary_metric)),
        el("td", {}, v.data_quality || "–"),
        el("td", {}, T.timeAgo(v.created_at))
      );
    });
    return el(
      "table",
      { className: "table" },
      el("thead", {}, el("tr", {}, ["version", "aliases", metricLabel(body.primary_metric), "data", "created"].map(function (h) {
        return el("th", { scope: "col" }, h);
      }))),
      el("tbody", {}, rows)
    );
  }

  async function refreshVersions(card) {
    const service = card.dataset.service;
    const result = await T.fetchJSON("/v1/models/" + encodeURIComponent(service) + "/versions");
    const errorBox = field(card, "error");
    if (!result.ok) {
      errorBox.hidden = false;
      errorBox.textContent = "Registry: " + T.errorText(result) +
        ". Serving continues on the model already loaded.";
      return;
    }
    errorBox.hidden = true;
    const body = result.body;
    versionsBy[service] = body;
    const byVersion = {};
    body.versions.forEach(function (v) { byVersion[v.version] = v; });
    const champion = byVersion[body.aliases.champion];
    // The server says whether there is a challenger: one equal to the champion is none.
    const challenger = body.challenger ? byVersion[body.challenger] : undefined;
    modelBox(card.querySelector('[data-role="champion"]'), "champion", champion, body);
    modelBox(card.querySelector('[data-role="challenger"]'), "challenger", challenger, body);
    fill(field(card, "versions"), versionsTable(body));
    const promote = card.querySelector('[data-action="promote"]');
    promote.textContent = challenger ? "Promote challenger v" + challenger.version : "Promote challenger";
    promote.disabled = !challenger;
    promote.title = promote.disabled ? "no challenger to promote" : "";
  }

  async function refreshServing() {
    const result = await T.fetchJSON("/v1/models");
    document.getElementById("registry-state").textContent = result.ok ? result.body.registry : "unreachable";
    if (!result.ok) return;
    cards.forEach(function (card) {
      const info = result.body.services[card.dataset.service];
      const pill = field(card, "serving");
      const loaded = info && info.loaded;
      pill.textContent = loaded ? "serving v" + loaded.version : "no model loaded";
      pill.className = "pill " + (loaded ? "pill-ok" : "pill-bad");
      pill.dataset.version = loaded ? String(loaded.version) : "";
    });
  }

  // ----- on call: SLOs, error budget, live error, drift ------------------------------

  const SLO_LABELS = { availability: "Availability", latency_p95: "Latency p95", live_metric: "Live error", drift: "Drift" };
  const DECISIONS = { rollback: "rolls back", "alert-only": "alerts only" };
  const VERDICTS = { ok: ["ok", "pill-ok"], breach: ["breached", "pill-bad"], no_data: ["no data", ""] };

  function percent(share, digits) {
    return (share * 100).toFixed(digits) + "\u00a0%";
  }

  function relation(o) {
    return o.objective.indexOf(">=") >= 0 ? "≥ " : "≤ ";
  }

  function sloFigure(o, value) {
    if (value === null || value === undefined) return "–";
    if (o.slo === "drift") return value ? "critical" : "none critical";
    if (o.slo === "availability") return percent(value, value && value < 0.01 ? 3 : 2) + " 5xx";
    if (o.slo === "latency_p95") return value.toFixed(value >= 10 ? 1 : 2) + " ms";
    return T.formatMetric(value);
  }

  function verdictPill(status) {
    const v = VERDICTS[status] || [status, ""];
    return el("span", { className: "pill " + v[1] }, v[0]);
  }

  function sloRow(o) {
    const budget = o.budget;
    const left = budget ? budget.left : null;
    const burning = budget && budget.burn_rate >= 1;
    return el(
      "tr",
      { dataset: { slo: o.slo }, title: o.detail },
      el("th", { scope: "row" }, SLO_LABELS[o.slo] || o.slo),
      el("td", { className: "num" }, o.slo === "drift" ? "none critical" : relation(o) + sloFigure(o, o.target)),
      el("td", { className: "num", dataset: { testid: "slo-current" } }, sloFigure(o, o.observed)),
      el("td", { className: "num" }, String(o.n)),
      el("td", { className: "num" + (left !== null && left < 0.25 ? " bad-text" : "") },
        budget ? percent(left, 0) : o.status !== "no_data" ? "target only" : "–"),
      el("td", { className: "num" + (burning ? " bad-text" : "") }, budget ? budget.burn_rate.toFixed(2) + "×" : "–"),
      el("td", {}, verdictPill(o.status))
    );
  }

  function sloTable(status) {
    const head = el("thead", {}, el("tr", {}, ["objective", "target", "now", "events", "budget left", "burn rate", "status"].map(function (h, i) {
      return el("th", { scope: "col", className: i > 0 && i < 6 ? "num" : "" }, h);
    })));
    return el("table", { className: "table slo" }, head, el("tbody", {}, status.objectives.map(sloRow)));
  }

  function sloVerdict(status) {
    if (status.breach) return ["SLO breached", "pill-bad"];
    const judged = status.objectives.filter(function (o) { return o.status !== "no_data"; });
    return judged.length ? ["SLOs met", "pill-ok"] : ["not enough data", ""];
  }

  function liveErrorBox(live, objective) {
    if (!live) return el("p", { className: "muted" }, "No live metric for this service.");
    if (live.value === null) {
      return [el("p", { className: "muted" }, "Not enough ground truth yet."),
        el("p", { className: "muted small" }, objective ? objective.detail : live.n + " samples")];
    }
    return [
      el("p", { className: "oncall-figure" },
        el("span", { className: "big", dataset: { testid: "live-error-value" } }, T.formatMetric(live.value)),
        " ", el("span", { className: "muted" }, (STEM_LABELS[live.metric] || live.metric) + " on feedback"), " ",
        verdictPill(live.status)),
      el("p", { className: "muted small" }, "over " + live.n + " samples · target " + relation(objective) + T.formatMetric(live.target)),
    ];
  }

  function driftBox(drift) {
    if (!drift) {
      return [el("p", { className: "muted" }, "No drift check yet."),
        el("p", { className: "muted small" }, "Drift is checked on the prediction log when the server's drift schedule is on, or by ", el("code", {}, "terraops drift"), ".")];
    }
    const when = drift.checked_at ? "checked " + T.timeAgo(drift.checked_at) : "";
    if (drift.status !== "checked") {
      return [el("p", { className: "muted" }, "No verdict from the last drift check."),
        el("p", { className: "muted small" }, (drift.error || (drift.n_rows || 0) + " logged rows to test") + (when ? " · " + when : ""))];
    }
    const state = drift.critical ? ["critical drift", "pill-bad"] : drift.drifted ? ["drifted", "pill-warn"] : ["no drift", "pill-ok"];
    return [
      el("p", { className: "oncall-figure" },
        el("span", { className: "big" }, drift.drifted_share === null ? "–" : percent(drift.drifted_share, 0)),
        " ", el("span", { className: "muted" }, "of features drifted"), " ",
        el("span", { className: "pill " + state[1] }, state[0])),
      el("p", { className: "small", dataset: { testid: "drift-rule" } }, driftRules(drift).join("; ")),
      el("p", { className: "muted small", dataset: { testid: "drift-facts" } }, (drift.n_rows || 0) + " rows" +
        (drift.window ? " of the last " + drift.window : "") + (when ? " · " + when : "")),
    ];
  }

  // Which of the two dataset rules fired (drift_schedule.py): enough features drifted, or a critical one did.
  function driftRules(drift) {
    const share = drift.drifted_share;
    const threshold = drift.drift_share_threshold;
    const features = drift.critical_features || [];
    const shareText = share === null ? "–" : percent(share, 0);
    const bar = threshold === null || threshold === undefined ? "" : percent(threshold, 0);
    const rules = [];
    const shareFired = share !== null && (bar ? share >= threshold : drift.critical && !features.length);
    if (shareFired) rules.push("dataset drift: " + shareText + " of features drifted" + (bar ? " (≥ " + bar + ")" : ""));
    if (features.length) rules.push("critical feature drifted: " + features.join(", "));
    if (rules.length) return rules;
    if (!drift.drifted) return ["no feature drifted"];
    return ["below the dataset rule: " + shareText + " of features drifted" + (bar ? " (< " + bar + ")" : "") + ", no critical feature"];
  }

  function reportLinks(service, status) {
    const links = [el("a", { href: "/v1/ops/slo" }, "SLO status (JSON)")];
    if (status.drift && status.drift.report_url) {
      links.push(" · ", el("a", { href: status.drift.report_url, target: "_blank", rel: "noopener", dataset: { testid: "drift-report-link" } }, "latest drift report"));
    }
    links.push(" · ", el("a", { href: "/metrics" }, "Prometheus metrics"));
    return ["Reports: ", links];
  }

  async function refreshSlo() {
    const result = await T.fetchJSON("/v1/ops/slo");
    if (!result.ok) {
      cards.forEach(function (card) {
        fill(field(card, "slo"), el("p", { className: "bad-text" }, "SLO status: " + T.errorText(result)));
      });
      return;
    }
    const body = result.body;
    cards.forEach(function (card) {
      const status = body.services[card.dataset.service];
      if (!status) return;
      const verdict = sloVerdict(status);
      const pill = field(card, "slo-verdict");
      pill.textContent = verdict[0];
      pill.className = "pill " + verdict[1];
      field(card, "slo-scope").textContent = "(last " + body.window + (status.version ? ", v" + status.version : "") +
        ", checked " + body.checked_at.slice(11, 19) + " UTC)";
      const live = status.objectives.find(function (o) { return o.slo === "live_metric"; });
      const notes = (status.errors || []).map(function (e) { return el("p", { className: "warn-text small" }, e); });
      if (status.policy) {
        notes.push(el("p", { className: "small " + (status.policy.decision === "rollback" ? "bad-text" : "warn-text"), dataset: { testid: "slo-policy" } },
          "On this breach the SLO check " + (DECISIONS[status.policy.decision] || status.policy.decision) + ": " + status.policy.reason));
      }
      fill(field(card, "slo"), sloTable(status), notes);
      fill(field(card, "live-error"), liveErrorBox(status.live_error, live));
      fill(field(card, "drift"), driftBox(status.drift));
      fill(field(card, "reports"), reportLinks(card.dataset.service, status));
    });
  }

  // ----- traffic -------------------------------------------------------------------

  function statsRow(label, w) {
    const ms = function (v) { return v === null ? "–" : v.toFixed(v >= 10 ? 1 : 2); };
    return el(
      "tr",
      {},
      el("th", { scope: "row" }, label),
      el("td", { className: "num" }, String(w.requests)),
      el("td", { className: "num" }, w.per_s.toFixed(2)),
      el("td", { className: "num" }, ms(w.p50_ms)),
      el("td", { className: "num" }, ms(w.p95_ms)),
      el("td", { className: "num" + (w.errors_4xx ? " warn-text" : "") }, String(w.errors_4xx)),
      el("td", { className: "num" + (w.errors_5xx ? " bad-text" : "") }, String(w.errors_5xx))
    );
  }

  async function refreshStats() {
    const result = await T.fetchJSON("/v1/stats");
    if (!result.ok) return;
    const body = result.body;
    document.getElementById("worker-pid").textContent = "pid " + body.pid;
    document.getElementById("updated-at").textContent = new Date().toLocaleTimeString("en-GB");
    cards.forEach(function (card) {
      const figures = body.services[card.dataset.service];
      if (!figures) return;
      field(card, "stats-scope").textContent = "(worker pid " + body.pid + ", since " + body.started_at.slice(11, 19) + " UTC)";
      const head = el("thead", {}, el("tr", {}, ["", "requests", "req/s", "p50 ms", "p95 ms", "4xx", "5xx"].map(function (h) {
        return el("th", { scope: "col" }, h);
      })));
      const rows = [
        statsRow("point · 1 min", figures.predict.windows["60s"]),
        statsRow("point · 5 min", figures.predict.windows["300s"]),
        statsRow("batch · 5 min", figures.batch.windows["300s"]),
      ];
      const total = figures.predict.total + figures.batch.total;
      fill(field(card, "stats"),
        el("table", { className: "table stats" }, head, el("tbody", {}, rows)),
        el("p", { className: "muted small" }, total + " requests since start"));
    });
  }

  // ----- admin: history, rollback, promote -------------------------------------------

  function adminHeaders() {
    return { Authorization: "Bearer " + token(), "Content-Type": "application/json", Accept: "application/json" };
  }

  function historyTable(entries) {
    if (!entries.length) return el("p", { className: "muted" }, "No alias moves yet.");
    const rows = entries.slice(0, 8).map(function (e) {
      return el(
        "tr",
        { className: e.action === "rollback" ? "is-rollback" : "" },
        el("td", {}, T.timeAgo(e.created_at)),
        el("td", {}, e.action + (e.forced ? " (forced)" : "")),
        el("td", {}, e.alias),
        el("td", {}, (e.from_version ? "v" + e.from_version : "–") + " → v" + e.to_version),
        el("td", { title: e.actor }, e.actor),
        el("td", { className: "reason", title: e.reason || "" }, e.reason || "")
      );
    });
    return el(
      "table",
      { className: "table history" },
      el("thead", {}, el("tr", {}, ["when", "action", "alias", "move", "who", "why"].map(function (h) {
        return el("th", { scope: "col" }, h);
      }))),
      el("tbody", {}, rows)
    );
  }

  async function refreshHistory(card) {
    const box = field(card, "history");
    if (!token()) {
      fill(box, el("p", { className: "muted" }, "Enter the admin token to read the history."));
      return;
    }
    const result = await T.fetchJSON("/v1/admin/" + encodeURIComponent(card.dataset.service) + "/history", {
      headers: adminHeaders(),
    });
    if (!result.ok) {
      fill(box, el("p", { className: "bad-text" }, T.errorText(result)));
      return;
    }
    fill(box, historyTable(result.body.entries || []));
  }

  function describe(entry, serving) {
    const moved = (entry.from_version ? "v" + entry.from_version : "none") + " → v" + entry.to_version;
    const now = serving ? " This worker now serves v" + serving.version + "." : "";
    return entry.action + " " + entry.service + ": " + entry.alias + " " + moved + " (by " + entry.actor + ")." + now;
  }

  async function act(card, action) {
    const service = card.dataset.service;
    const out = field(card, "result");
    if (!token()) {
      out.className = "action-result bad-text";
      out.textContent = "Type the admin token above first.";
      tokenInput.focus();
      return;
    }
    const reason = reasonInput.value.trim() || action + " from the operator dashboard";
    const payload = { reason: reason };
    if (action === "promote") {
      const body = versionsBy[service];
      payload.version = body && body.challenger;
    }
    const buttons = card.querySelectorAll("[data-action]");
    buttons.forEach(function (b) { b.setAttribute("aria-busy", "true"); });
    out.className = "action-result";
    out.textContent = action === "rollback" ? "Rolling back…" : "Promoting…";
    const result = await T.fetchJSON("/v1/admin/" + encodeURIComponent(service) + "/" + action, {
      method: "POST",
      headers: adminHeaders(),
      body: JSON.stringify(payload),
    });
    buttons.forEach(function (b) { b.removeAttribute("aria-busy"); });
    if (result.ok) {
      out.className = "action-result ok-text";
      out.textContent = describe(result.body.entry, result.body.serving);
    } else {
      out.className = "action-result bad-text";
      out.textContent = "Refused: " + T.errorText(result);
    }
    await Promise.all([refreshVersions(card), refreshHistory(card), refreshServing()]);
  }

  // ----- wiring --------------------------------------------------------------------------

  document.getElementById("token-form").addEventListener("submit", function (event) {
    event.preventDefault();
    const typed = tokenInput.value.trim();
    if (typed) sessionStorage.setItem(TOKEN_KEY, typed);
    tokenInput.value = "";
    showTokenState();
    cards.forEach(refreshHistory);
  });
  document.getElementById("token-forget").addEventListener("click", function () {
    sessionStorage.removeItem(TOKEN_KEY);
    showTokenState();
    cards.forEach(refreshHistory);
  });
  cards.forEach(function (card) {
    card.querySelectorAll("[data-action]").forEach(function (button) {
      button.addEventListener("click", function () { act(card, button.dataset.action); });
    });
  });

  function every(seconds, task) {
    task();
    setInterval(task, seconds * 1000);
  }

  showTokenState();
  every(3, refreshStats);
  every(5, refreshServing);
  every(10, function () { cards.forEach(refreshVersions); });
  every(15, refreshSlo);
  every(15, function () { cards.forEach(refreshHistory); });
})();
