// The demo page: sign up or in, mine, and follow the balance on the live event stream.
//
// Clicks are debounced: the ones made within DEBOUNCE_MS of each other go in one request
// (`{"clicks": n}`, at most MAX_PER_REQUEST). Every request has its own Idempotency-Key and
// every retry of it reuses that key, so a click is never counted twice. 429 and 503 answers
// are shown and retried after their Retry-After. The session is the HttpOnly `auth-token`
// cookie, which also authenticates the EventSource.
//
// The "Download Mobile App" button shows the release of /api/mobile-app/apk, hidden when none
// is configured; like the dashboard's data it is revalidated whenever the window regains focus
// (or the tab becomes visible), and an open dialog follows the new release at once.
"use strict";

(() => {
  const DEBOUNCE_MS = 250;
  const MAX_PER_REQUEST = 10; // MINING_MAX_CLICKS_PER_REQUEST's default
  const LOG_LENGTH = 8;
  const RESTART_STREAM_MS = 5000;

  const $ = (id) => document.getElementById(id);
  const state = {
    clicks: -1, // click count of the balance shown; older balances are ignored
    pending: 0,
    sending: false,
    timer: null,
    source: null,
  };

  function newKey() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const bytes = crypto.getRandomValues(new Uint8Array(16)); // plain-HTTP origins lack randomUUID
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function notice(text, kind = "") {
    const element = $("notice");
    element.textContent = text;
    element.className = kind;
  }

  function showSignedIn(name) {
    $("who").textContent = name;
    $("account").hidden = true;
    $("mine").hidden = false;
    listen();
  }

  function showSignedOut(message = "") {
    if (state.source) state.source.close();
    state.source = null;
    $("mine").hidden = true;
    $("account").hidden = false;
    $("auth-error").textContent = message;
  }

  function showStatus(status) {
    if (status.clicks < state.clicks) return; // an older balance than the one shown
    state.clicks = status.clicks;
    $("balance").textContent = String(status.balance);
    $("clicks").textContent = String(status.clicks);
  }

  function showPending() {
    $("pending").textContent = String(state.pending);
  }

  function logOutcome(record) {
    const item = document.createElement("li");
    if (record.status === "completed") {
      const { reward, balance, duplicate } = record.result;
      item.textContent = duplicate
        ? `${record.clicks} click(s) already counted earlier`
        : `+${reward} for ${record.clicks} click(s), balance ${balance}`;
    } else {
      item.textContent = `${record.clicks} click(s) failed: ${record.error?.code ?? "unknown"}`;
    }
    const log = $("log");
    log.prepend(item);
    while (log.children.length > LOG_LENGTH) log.lastChild.remove();
  }

  function live(text) {
    $("live").textContent = text;
  }

  // The event stream: a "balance" snapshot first, then every click outcome and balance change.
  // The browser reconnects by itself with Last-Event-ID; a refused stream (401, 429, 503)
  // closes for good, so it is restarted here after a pause.
  function listen() {
    if (state.source) state.source.close();
    const source = new EventSource("/api/mining/events");
    state.source = source;
    source.addEventListener("open", () => live("on"));
    source.addEventListener("balance", (event) => showStatus(JSON.parse(event.data)));
    source.addEventListener("click", (event) => logOutcome(JSON.parse(event.data)));
    source.addEventListener("error", async () => {
      if (source.readyState !== EventSource.CLOSED) {
        live("reconnecting");
        return;
      }
      const status = await fetch("/api/mining/status").catch(() => null);
      if (status && status.status === 401) {
        showSignedOut("Your session has ended; sign in again.");
        return;
      }
      live("unavailable (too many open tabs?), retrying");
      await sleep(RESTART_STREAM_MS);
      if (state.source === source) listen();
    });
  }

  function retryAfter(response, attempt) {
    const seconds = Number.parseInt(response.headers.get("Retry-After") ?? "", 10);
    return Number.isFinite(seconds) && seconds >= 0 ? seconds : Math.min(30, 2 ** attempt);
  }

  async function countdown(seconds, text, kind) {
    for (let left = seconds; left > 0; left -= 1) {
      notice(`${text}; retrying in ${left} s`, kind);
      await sleep(1000);
    }
    notice(`${text}; retrying now`, kind);
  }

  // Sends `clicks` under one key until the server has them (or refuses them for good).
  async function send(clicks) {
    const key = newKey();
    for (let attempt = 0; ; attempt += 1) {
      let response;
      try {
        response = await fetch("/api/mining/click", {
          method: "POST",
          headers: { "Content-Type": "application/json", "Idempotency-Key": key },
          body: JSON.stringify({ clicks }),
        });
      } catch {
        await countdown(Math.min(30, 2 ** attempt), "Connection lost", "warning");
        continue;
      }
      if (response.status === 202 || response.status === 200) {
        notice("");
        return;
      }
      if (response.status === 429) {
        await countdown(retryAfter(response, attempt), "Too fast: rate limited (429)", "warning");
        continue;
      }
      if (response.status === 503) {
        await countdown(retryAfter(response, attempt), "Server busy (503)", "warning");
        continue;
      }
      if (response.status === 401) {
        showSignedOut("Your session has ended; sign in again.");
        return;
      }
      const body = await response.json().catch(() => ({}));
      notice(`Click refused (${response.status}): ${body.detail ?? "unknown error"}`, "error");
      return;
    }
  }

  async function flush() {
    clearTimeout(state.timer);
    if (state.sending) return;
    state.sending = true;
    try {
      while (state.pending > 0) {
        const clicks = Math.min(state.pending, MAX_PER_REQUEST);
        await send(clicks);
        state.pending -= clicks;
        showPending();
      }
    } finally {
      state.sending = false;
    }
  }

  function mine() {
    state.pending += 1;
    showPending();
    clearTimeout(state.timer);
    if (state.pending >= MAX_PER_REQUEST) flush();
    else state.timer = setTimeout(flush, DEBOUNCE_MS);
  }

  async function authenticate(kind) {
    $("auth-error").textContent = "";
    const response = await fetch(`/api/auth/${kind}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: $("username").value, password: $("password").value }),
    }).catch(() => null);
    if (!response) {
      $("auth-error").textContent = "The server cannot be reached.";
      return;
    }
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const wait = response.headers.get("Retry-After");
      const later = wait ? ` Retry in ${wait} s.` : "";
      $("auth-error").textContent = `${body.detail ?? `Error ${response.status}`}${later}`;
      return;
    }
    sessionStorage.setItem("username", body.username);
    state.clicks = -1;
    showSignedIn(body.username);
  }

  // The mobile release: the button and its dialog follow /api/mobile-app/apk.
  async function loadMobileRelease() {
    const response = await fetch("/api/mobile-app/apk", { cache: "no-cache" }).catch(() => null);
    if (!response || !response.ok) return; // keep what is shown; the next focus tries again
    const release = await response.json().catch(() => ({}));
    const url = release.available ? safeUrl(release.downloadUrl) : null;
    $("mobile-app").hidden = url === null;
    if (url === null) {
      if ($("mobile-dialog").open) $("mobile-dialog").close();
      return;
    }
    $("mobile-version").textContent = release.version ?? "unknown";
    $("mobile-built").textContent = release.buildDate ? `, built ${release.buildDate}` : "";
    $("mobile-notes").textContent = release.releaseNotes ?? "";
    $("mobile-download").href = url;
  }

  function safeUrl(value) {
    try {
      const url = new URL(value);
      return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
    } catch {
      return null;
    }
  }

  function watchMobileRelease() {
    $("mobile-app").addEventListener("click", () => $("mobile-dialog").showModal());
    $("mobile-close").addEventListener("click", () => $("mobile-dialog").close());
    window.addEventListener("focus", loadMobileRelease);
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") loadMobileRelease();
    });
    loadMobileRelease();
  }

  async function start() {
    watchMobileRelease();
    $("auth-form").addEventListener("submit", (event) => {
      event.preventDefault();
      authenticate(event.submitter?.value === "login" ? "login" : "register");
    });
    $("mine-button").addEventListener("click", mine);
    const response = await fetch("/api/mining/status").catch(() => null);
    if (response && response.ok) {
      const status = await response.json();
      showStatus(status);
      showSignedIn(sessionStorage.getItem("username") ?? `user ${status.userId}`);
    } else {
      showSignedOut();
    }
  }

  start();
})();
