// The cmc dashboard: reads the gateway's snapshot stream and draws the latest snapshot.
//
// The token arrives in the address's fragment (#token=...), which browsers never send to a
// server; it is moved to this tab's sessionStorage and removed from the address bar at
// once. It goes to the gateway only as an Authorization header, which is why the stream is
// read with fetch() rather than EventSource (EventSource cannot send headers).
//
// Each server-sent event is a whole snapshot. Only the newest is drawn, once per animation
// frame: a page that cannot keep up skips snapshots, it never queues them.
"use strict";

(function () {
  const STREAM = "/v1/dashboard/stream";
  const KILL = "/v1/kill";
  const TOKEN_KEY = "cmc.dashboard.token";
  const WHO_KEY = "cmc.dashboard.who";
  const HISTORY_S = 120; // seconds of spread history kept for the chart
  const HISTORY_POINTS = 3000;

  const $ = (id) => document.getElementById(id);

  // -- the token -----------------------------------------------------------------------

  function takeFragment() {
    const hash = window.location.hash.replace(/^#/, "");
    if (!hash) return;
    const params = new URLSearchParams(hash);
    const token = params.get("token");
    const who = params.get("who");
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    if (who) sessionStorage.setItem(WHO_KEY, who.slice(0, 48));
    // Out of the address bar (and the history) before anything else happens.
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  function who() {
    const name = sessionStorage.getItem(WHO_KEY);
    return name ? name + " (dashboard)" : "dashboard";
  }

  function showLogin(error) {
    $("login").hidden = false;
    $("login-error").textContent = error || "";
    setStatus("token needed", "bad");
  }

  // -- small helpers -------------------------------------------------------------------

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function row(cells, cls, header) {
    const tr = el("tr", null, cls);
    for (const cell of cells) {
      if (cell instanceof Node) {
        const td = el(header ? "th" : "td");
        td.appendChild(cell);
        tr.appendChild(td);
      } else {
        tr.appendChild(el(header ? "th" : "td", cell === null || cell === undefined ? "-" : cell));
      }
    }
    return tr;
  }

  function fill(table, head, rows) {
    const body = document.createDocumentFragment();
    if (head) body.appendChild(row(head, null, true));
    for (const r of rows) body.appendChild(r);
    table.replaceChildren(body);
  }

  function fixed(value, places) {
    if (value === null || value === undefined) return "-";
    const n = Number(value);
    return Number.isFinite(n) ? n.toFixed(places) : String(value);
  }

  function ms(ns, places) {
    if (ns === null || ns === undefined) return "-";
    return (ns / 1e6).toFixed(places === undefined ? 1 : places) + " ms";
  }

  function us(ns) {
    if (ns === null || ns === undefined) return "-";
    return Math.round(ns / 1e3) + " µs";
  }

  function time(ns) {
    if (!ns) return "-";
    const d = new Date(ns / 1e6);
    return d.toISOString().slice(11, 23);
  }

  function setStatus(text, cls) {
    const node = $("status");
    node.textContent = text;
    node.className = "badge " + (cls || "");
  }

  function decimals(tick) {
    const text = String(tick || "1");
    const dot = text.indexOf(".");
    return dot < 0 ? 0 : text.length - dot - 1;
  }

  // -- the stream ----------------------------------------------------------------------

  let latest = null; // the newest snapshot's text, not yet drawn
  let drawing = false;
  let received = 0;
  const arrivals = [];
  let controller = null;

  function receive(text) {
    latest = text;
    received += 1;
    const now = performance.now();
    arrivals.push(now);
    while (arrivals.length && arrivals[0] < now - 1000) arrivals.shift();
    if (!drawing) {
      drawing = true;
      requestAnimationFrame(draw);
    }
  }

  async function stream() {
    controller = new AbortController();
    const response = await fetch(STREAM, {
      headers: { Authorization: "Bearer " + token(), Accept: "text/event-stream" },
      cache: "no-store",
      signal: controller.signal,
    });
    if (response.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin("the gateway refused this token");
      return false;
    }
    if (!response.ok || !response.body) throw new Error("HTTP " + response.status);
    setStatus("live", "good");
    $("login").hidden = true;
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const data = block
          .split("\n")
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).replace(/^ /, ""))
          .join("\n");
        if (data) receive(data);
      }
    }
    return true;
  }

  async function run() {
    for (;;) {
      if (!token()) {
        showLogin();
        return;
      }
      try {
        if ((await stream()) === false) return;
        setStatus("gateway closed the stream; reconnecting", "warn");
      } catch (error) {
        setStatus("no gateway answers; retrying", "bad");
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }

  // -- drawing -------------------------------------------------------------------------

  let chosenPair = null;
  const kept = new Map(); // pair -> {t, buy, sell, firedT, firedY, lastNs}

  function draw() {
    drawing = false;
    const text = latest;
    latest = null;
    if (text === null) return;
    let snap;
    try {
      snap = JSON.parse(text);
    } catch (error) {
      return;
    }
    const message = $("message");
    if (snap.error) {
      message.hidden = false;
      message.textContent = "the gateway could not make a snapshot: " + snap.error;
      return;
    }
    message.hidden = true;
    document.body.dataset.seq = String(snap.seq);
    document.body.dataset.received = String(received);
    $("rate").textContent = arrivals.length + " updates/s";
    $("clock").textContent = time(snap.at_ns) + " UTC";
    pairChooser(snap.pairs);
    for (const pair of snap.pairs) remember(pair);
    const pair = snap.pairs.find((p) => p.pair === chosenPair) || snap.pairs[0];
    if (pair) {
      drawBooks(pair);
      drawSpread(pair);
      drawChart(pair);
    }
    drawTrades(snap.pairs);
    drawVenues(snap.venues);
    drawRisk(snap.risk);
    drawStage(snap.stage);
    drawReceipts(snap.receipts);
  }

  // The delivery stage: in shadow every order, fill and position on the page is paper.
  function drawStage(stage) {
    const badge = $("stage");
    const name = stage || "?";
    badge.textContent = "stage: " + name.toUpperCase();
    badge.className = "badge " + (name === "live" ? "good" : name === "shadow" ? "bad" : "warn");
    badge.title = name === "shadow" ? "paper orders against a mirror of the real books" :
      name === "canary" ? "real orders within the canary caps" : "real orders";
  }

  function pairChooser(pairs) {
    const select = $("pair-select");
    if (chosenPair === null && pairs.length) chosenPair = pairs[0].pair;
    select.hidden = pairs.length < 2;
    if (select.options.length !== pairs.length) {
      select.replaceChildren(...pairs.map((p) => el("option", p.pair)));
      select.value = chosenPair;
    }
  }

  function drawBooks(pair) {
    for (const leg of ["inner", "outer"]) {
      const inst = pair[leg];
      const book = pair.books[leg];
      const places = decimals(inst.tick);
      $(leg + "-title").textContent =
        leg + ": " + inst.venue + " " + inst.symbol + " (" + inst.currency + "/" +
        inst.contract_unit + " x " + inst.contract_size + ")";
      const table = $("book-" + leg);
      if (!book) {
        fill(table, null, [row(["no book yet"])]);
        $(leg + "-meta").textContent = "";
        $(leg + "-exec").textContent = "";
        continue;
      }
      const rows = [];
      const depth = Math.max(book.bids.length, book.asks.length, 1);
      for (let i = 0; i < depth; i++) {
        const b = book.bids[i];
        const a = book.asks[i];
        rows.push(
          row([
            b ? b.cum : "",
            b ? b.qty : "",
            b ? fixed(b.price, places) : "",
            a ? fixed(a.price, places) : "",
            a ? a.qty : "",
            a ? a.cum : "",
          ])
        );
      }
      fill(table, ["cum", "bid qty", "bid", "ask", "ask qty", "cum"], rows);
      const flags = [];
      if (book.stale) flags.push("STALE: " + book.stale);
      if (book.crossed) flags.push("CROSSED");
      $(leg + "-meta").textContent =
        "age " + ms(book.age_ns) + (flags.length ? " — " + flags.join(", ") : "");
      $(leg + "-meta").className = flags.length ? "error" : "muted";
      $(leg + "-exec").textContent =
        "executable in the top " + depth + ": " + book.bids_units + " pair unit(s) on the bid, " +
        book.asks_units + " on the ask (" + pair.lots[leg] + " lots a unit)";
    }
  }

  function drawSpread(pair) {
    const last = pair.last || {};
    const unit = pair.edge_unit;
    const places = unit === "fraction" ? 5 : 3;
    $("edge-buy").textContent = fixed(last.buy_inner, places);
    $("edge-sell").textContent = fixed(last.sell_inner, places);
    $("entry").textContent = fixed(pair.entry, places) + " " + unit;
    $("exit").textContent = fixed(-Number(pair.exit), places) + " " + unit;
    $("position").textContent =
      pair.position + " unit(s), max " + pair.max_position + " (lots: inner " + pair.net_inner +
      ", outer " + pair.net_outer + ")";
    $("imbalance").textContent = fixed(pair.imbalance, 3);
    $("blocked").textContent = last.blocked || (last.fired ? "fired: " + last.fired : "no");
    $("trade-size").textContent =
      "prices for one trade (" + pair.units_per_trade + " unit(s): " +
      pair.lots.inner * pair.units_per_trade + " inner lots, " +
      pair.lots.outer * pair.units_per_trade + " outer lots), volume-weighted, net of fees, in " +
      pair.outer.currency + "/" + pair.outer.contract_unit + " at FX " + pair.fx_rate;
    fill($("prices"), ["", "bid", "ask"], [
      row(["inner (converted)", fixed(last.inner_bid, 3), fixed(last.inner_ask, 3)]),
      row(["outer", fixed(last.outer_bid, 3), fixed(last.outer_ask, 3)]),
    ]);
    $("chart-unit").textContent = "(" + unit + ")";
  }

  function remember(pair) {
    let h = kept.get(pair.pair);
    if (!h) {
      h = { t: [], buy: [], sell: [], firedT: [], firedY: [], lastNs: 0 };
      kept.set(pair.pair, h);
    }
    const s = pair.series;
    for (let i = 0; i < s.ts_ns.length; i++) {
      const ns = s.ts_ns[i];
      if (ns <= h.lastNs) continue;
      h.lastNs = ns;
      const t = new Date(ns / 1e6);
      const buy = s.buy_inner[i] === null ? null : Number(s.buy_inner[i]);
      const sell = s.sell_inner[i] === null ? null : Number(s.sell_inner[i]);
      h.t.push(t);
      h.buy.push(buy);
      h.sell.push(sell);
      if (s.fired[i]) {
        h.firedT.push(t);
        h.firedY.push(s.fired[i].startsWith("buy") ? buy : sell);
      }
    }
    const oldest = Date.now() - HISTORY_S * 1000;
    let drop = Math.max(0, h.t.length - HISTORY_POINTS);
    while (drop < h.t.length && h.t[drop].getTime() < oldest) drop++;
    if (drop) {
      h.t.splice(0, drop);
      h.buy.splice(0, drop);
      h.sell.splice(0, drop);
    }
    while (h.firedT.length && h.firedT[0].getTime() < oldest) {
      h.firedT.shift();
      h.firedY.shift();
    }
  }

  function drawChart(pair) {
    const h = kept.get(pair.pair);
    const node = $("chart");
    node.dataset.points = String(h ? h.t.length : 0);
    if (!h || !h.t.length || typeof Plotly === "undefined") return;
    const span = [h.t[0], h.t[h.t.length - 1]];
    const entry = Number(pair.entry);
    const close = -Number(pair.exit);
    const traces = [
      { x: h.t, y: h.buy, name: "buy inner / sell outer", mode: "lines", line: { width: 1.5 } },
      { x: h.t, y: h.sell, name: "sell inner / buy outer", mode: "lines", line: { width: 1.5 } },
      {
        x: span, y: [entry, entry], name: "entry", mode: "lines",
        line: { dash: "dash", color: "#d62728" },
      },
      {
        x: span, y: [close, close], name: "close", mode: "lines",
        line: { dash: "dot", color: "#2ca02c" },
      },
      {
        x: h.firedT, y: h.firedY, name: "fired", mode: "markers",
        marker: { size: 9, symbol: "star", color: "#ffbf00" },
      },
    ];
    const layout = {
      margin: { l: 50, r: 10, t: 10, b: 30 },
      height: 280,
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "rgba(0,0,0,0)",
      font: { color: "#c9d1d9", size: 11 },
      xaxis: { type: "date", gridcolor: "#30363d" },
      yaxis: { gridcolor: "#30363d", zerolinecolor: "#6e7681" },
      legend: { orientation: "h", y: 1.12 },
      uirevision: pair.pair,
    };
    Plotly.react(node, traces, layout, { displayModeBar: false, responsive: true });
  }

  function drawTrades(pairs) {
    const rows = [];
    for (const pair of pairs) {
      for (const t of pair.trades) {
        const legs = ["inner", "outer"].map((name) => {
          const leg = t.legs[name];
          return (
            leg.venue + " " + leg.side + " " + leg.filled + "/" + leg.target + " " + leg.state
          );
        });
        rows.push(
          row(
            [
              t.id,
              t.direction.replaceAll("_", " ") + (t.closing ? " (close)" : ""),
              t.outcome || t.status,
              fixed(t.spread, 3),
              legs[0],
              legs[1],
              t.fills.length,
              t.top_ups,
              t.unwinds,
              time(t.sent_ns),
            ],
            "trade " + (t.status === "working" ? "working" : "")
          )
        );
        for (const o of t.orders) {
          rows.push(
            row(
              [
                "  " + o.clordid,
                o.purpose + " " + o.leg,
                o.status,
                o.price,
                o.venue + " " + o.side + " " + o.qty + " " + o.tif,
                "filled " + o.filled + (o.avg_px ? " @ " + fixed(o.avg_px, 3) : ""),
                "",
                "",
                "",
                "",
              ],
              "order"
            )
          );
        }
      }
    }
    if (!rows.length) rows.push(row(["no trade yet"]));
    fill(
      $("trades"),
      ["trade", "direction", "state", "spread", "inner leg", "outer leg", "fills", "top-ups",
        "unwinds", "sent"],
      rows
    );
  }

  function drawVenues(venues) {
    const rows = [];
    for (const v of venues) {
      const r = v.rejects;
      v.lines.forEach((l, i) => {
        const first = i === 0;
        rows.push(
          row(
            [
              first ? v.venue : "",
              first ? v.state + (v.reconciling ? " (reconciling)" : "") : "",
              l.role + (l.active ? " (active)" : ""),
              (l.logged_on ? "logged on" : "DOWN") + (l.enabled ? "" : ", held out"),
              l.next_sender_seq,
              l.next_target_seq,
              first ? us(v.ack_latency_ns) : "",
              first ? ms(v.md_delay_ns, 2) : "",
              first ? ms(v.clock_offset_ns, 2) : "",
              first ? r.orders + " / " + r.cancels + " / " + r.session + " / " + r.not_sent : "",
              first ? v.open_orders : "",
            ],
            l.logged_on ? (l.active ? "active-line" : "") : "bad"
          )
        );
      });
      if (!v.lines.length) {
        rows.push(row([v.venue, v.state, v.active || "none", v.up ? "up" : "DOWN"]));
      }
    }
    fill(
      $("venues"),
      ["venue", "trading", "line", "session", "next seq out", "next seq in", "last ack",
        "md delay", "clock offset", "rejects ord/cxl/sess/unsent", "open orders"],
      rows
    );
  }

  function drawRisk(risk) {
    const badge = $("risk-state");
    const global = risk.states.global || "?";
    badge.textContent = "risk: " + (risk.halted ? "HALTED" : global.toUpperCase());
    badge.className = "badge " + (risk.halted ? "bad" : global === "active" ? "good" : "warn");
    document.body.dataset.halted = String(risk.halted);
    fill(
      $("risk"),
      ["scope", "state"],
      Object.entries(risk.states).map(([scope, state]) =>
        row([scope, state.toUpperCase()], state === "active" ? "" : "bad")
      )
    );
    $("pnl").textContent = "today's P&L: " + fixed(risk.pnl, 2) + " " + risk.currency;
    fill(
      $("risk-changes"),
      risk.changes.length ? ["last change", "state", "who", "why", "at"] : null,
      risk.changes.map((c) => row([c.scope, c.state, c.who, c.why, time(c.at_ns)]))
    );
  }

  function drawReceipts(receipts) {
    $("receipt-counts").textContent =
      "(" + receipts.total + " recorded, " + receipts.market_data +
      " of them market data, counted but not listed)";
    fill(
      $("receipts"),
      ["time", "kind", "venue", "ClOrdID", "pair", "verdict", "reason", "latency"],
      receipts.latest.map((r) =>
        row([
          time(r.ts_ns),
          r.kind,
          r.venue,
          r.clordid,
          r.pair_id,
          r.verdict,
          r.reason,
          r.latency_ns === null ? "-" : us(r.latency_ns),
        ])
      )
    );
  }

  // -- the kill switch -----------------------------------------------------------------

  async function kill(event) {
    event.preventDefault();
    const why = $("kill-reason").value.trim();
    const result = $("kill-result");
    if (!why) {
      result.textContent = "say why first (it is kept in the receipts)";
      result.className = "error";
      $("kill-reason").focus();
      return;
    }
    if (!confirm("Halt trading on EVERY venue and cancel every working order?")) return;
    try {
      const response = await fetch(KILL, {
        method: "POST",
        headers: { Authorization: "Bearer " + token(), "Content-Type": "application/json" },
        body: JSON.stringify({ who: who(), why: why }),
        cache: "no-store",
      });
      const answer = await response.json();
      if (!response.ok) throw new Error(answer.error || "HTTP " + response.status);
      result.textContent =
        "halted " + answer.scope + " (" + (answer.state_change || "already halted") +
        "); cancel sent for " + answer.cancels.length + " working order(s)";
      result.className = "error";
    } catch (error) {
      result.textContent = "the kill switch failed: " + error.message;
      result.className = "error";
    }
  }

  // -- start ---------------------------------------------------------------------------

  takeFragment();
  $("kill-form").addEventListener("submit", kill);
  $("pair-select").addEventListener("change", (e) => {
    chosenPair = e.target.value;
  });
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("token-input").value.trim();
    $("token-input").value = "";
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    $("login").hidden = true;
    run();
  });
  run();
})();
