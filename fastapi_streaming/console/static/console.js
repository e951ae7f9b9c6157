// The operations console: a stream of snapshots over the library's SSE, and admin actions.
// The access token comes from the page's ?access_token= (kept for this tab only) and goes in
// the Authorization header of actions and the access_token query of the event stream.
(function () {
  "use strict";
  const prefix = document.body.dataset.prefix;
  const query = new URLSearchParams(location.search);
  if (query.get("access_token")) sessionStorage.setItem("streams-admin-token", query.get("access_token"));
  const token = sessionStorage.getItem("streams-admin-token") || "";
  let latest = null;

  const $ = (id) => document.getElementById(id);
  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text === undefined || text === null ? "" : String(text);
    if (cls) td.className = cls;
    return td;
  }
  function button(label, action, cls) {
    const td = document.createElement("td");
    const b = document.createElement("button");
    b.textContent = label;
    b.dataset.action = label;
    if (cls) b.className = cls;
    b.addEventListener("click", action);
    td.appendChild(b);
    return td;
  }
  function fill(id, rows) {
    const body = $(id).querySelector("tbody");
    body.replaceChildren(...rows);
  }
  function row(key, ...cells) {
    const tr = document.createElement("tr");
    tr.dataset.key = key;
    tr.append(...cells);
    return tr;
  }
  function when(seconds) {
    return seconds ? new Date(seconds * 1000).toLocaleTimeString() : "never";
  }

  async function act(method, path, what) {
    const answer = await fetch(prefix + path, { method, headers: { Authorization: "Bearer " + token } });
    const body = await answer.json().catch(() => ({}));
    $("message").textContent = answer.ok ? what + ": done" : what + ": " + (body.detail || answer.status);
    return answer.ok;
  }

  function render(board) {
    latest = board;
    const transports = Object.entries(board.transports);
    $("connections").textContent = transports.reduce((sum, [, n]) => sum + n, 0);
    $("transports").textContent = transports.map(([t, n]) => t + " " + n).join(" · ") || "none";
    $("drops").textContent = board.slow_client_drops;
    const broker = board.health.broker || {};
    $("broker").textContent = board.health.status;
    const lag = broker.lag !== undefined ? broker.lag : board.health.lag;
    $("broker-detail").textContent = (broker.url || "") + " · reconnects " + (broker.reconnects || 0)
      + (lag !== undefined ? " · lag " + JSON.stringify(lag) : "");
    $("workers").textContent = board.workers.length;
    $("updated").textContent = "updated " + new Date(board.time * 1000).toLocaleTimeString();

    fill("topics", board.topics.map((t) => row(t.topic,
      cell(t.topic), cell(t.subscribers, "num"), cell(t.addresses, "num"),
      cell(t.delivered_per_second, "num"), cell(t.published_per_second, "num"))));

    fill("consumers", board.top_consumers.map((c) => row(c.principal,
      cell(c.principal),
      cell(c.connections, "num"),
      cell(Object.entries(c.transports).map(([t, n]) => t + " " + n).join(", ")),
      cell(c.delivered, "num"), cell(c.published, "num"), cell(c.dropped, "num"),
      // "(server)": the server's own consumers (the WebSub hub's intake), not a principal.
      c.connections && c.principal !== "(server)" ? button("disconnect", () => act("POST",
        "/admin/principals/" + encodeURIComponent(c.principal) + "/disconnect",
        "disconnect " + c.principal), "danger") : cell(""))));

    fill("throttled", board.throttled.map((t) => row(t.principal + "/" + t.plan,
      cell(t.principal), cell(t.plan), cell(t.throttled, "num"))));
    fill("throttles", board.throttles.map((t) => row(t.plan + "/" + t.limit,
      cell(t.plan), cell(t.limit), cell(t.count, "num"))));

    fill("websub", board.websub.subscriptions.map((s) => {
      const base = "/admin/websub/subscriptions/" + s.id;
      const toggle = s.state === "paused"
        ? button("resume", () => act("POST", base + "/resume", "resume " + s.id))
        : button("pause", () => act("POST", base + "/pause", "pause " + s.id));
      return row(String(s.id),
        cell(s.id), cell(s.topic), cell(s.callback), cell(s.principal || "(server)"),
        cell(s.state, "state-" + s.state),
        cell(when(s.last_delivery)), cell(s.queued, "num"), cell(s.retrying, "num"),
        cell(s.failed, "num"), toggle,
        button("delete", () => act("DELETE", base, "delete " + s.id), "danger"));
    }));
  }

  function connect() {
    const source = new EventSource(prefix + "/admin/events?access_token=" + encodeURIComponent(token));
    source.addEventListener("open", () => { $("status").textContent = "live"; $("status").className = "status live"; });
    source.addEventListener("snapshot", (event) => render(JSON.parse(event.data)));
    source.addEventListener("close", (event) => {
      $("status").textContent = "ended: " + JSON.parse(event.data).detail;
      $("status").className = "status down";
      source.close();
    });
    source.addEventListener("error", () => { $("status").textContent = "reconnecting…"; $("status").className = "status down"; });
  }
  window.streamsConsole = { latest: () => latest };
  connect();
})();
