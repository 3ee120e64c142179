// Load test of the click path: k6 run tests/load/mining-clicks.js (make load).
//
// Environment (all optional):
//   BASE_URL          the api (default http://127.0.0.1:8080, make run's address)
//   AUTH_TOKEN        one bearer token for every click; or
//   AUTH_TOKENS_FILE  a file of tokens, one per line (e.g. from `make -s token USER=<id>`;
//                     k6 reads a relative path from this folder: `make load` makes it
//                     absolute first; against `make run`'s stack `make load` mints USERS
//                     tokens itself);
//                     without either, setup() signs up USERS users on /api/auth/register and
//                     stops early at the first 429 (sign-ups are limited per client IP)
//   RPS               clicks started per second (constant arrival rate, default 200)
//   USERS             users to sign up (default 20)
//   DURATION          how long (default 30s)
//   RETRY_RATIO       share of clicks sent again with the same key (default 0.1): 200 +
//                     Idempotent-Replayed expected
//   POLL_RATIO        share of accepted clicks whose status is polled (default 0.2)
//   READ_RATIO        share of iterations that read /api/mining/status with its ETag (0.1)
//   P95_MS            latency goal of the p95 thresholds in ms (default 300); "off" drops them,
//                     as `make test`'s short run does: its verdict must not depend on how fast
//                     or busy the machine is (latency is measured by `make load` and `make bench`)
//
// 429 and 503 are the api's expected answers under load (limits, backpressure, load shedding):
// they count as answers, not as failures. Thresholds (the load's requests, not setup's):
// http_req_failed < 1 %, checks > 99 %, and unless P95_MS=off http_req_duration p95 < P95_MS,
// also per endpoint.

import http from "k6/http";
import { check, sleep } from "k6";
import { Counter } from "k6/metrics";

const BASE_URL = (__ENV.BASE_URL || "http://127.0.0.1:8080").replace(/\/$/, "");
const RPS = Number(__ENV.RPS || 200);
const USERS = Number(__ENV.USERS || 20);
const DURATION = __ENV.DURATION || "30s";
const RETRY_RATIO = Number(__ENV.RETRY_RATIO || 0.1);
const POLL_RATIO = Number(__ENV.POLL_RATIO || 0.2);
const READ_RATIO = Number(__ENV.READ_RATIO || 0.1);
const P95_MS = (__ENV.P95_MS || "300").trim();
const TOKENS_FILE = __ENV.AUTH_TOKENS_FILE ? open(__ENV.AUTH_TOKENS_FILE) : "";

const accepted = new Counter("clicks_accepted");
const replayed = new Counter("clicks_replayed");
const limited = new Counter("clicks_rate_limited");
const full = new Counter("clicks_queue_full");
// Every answer by endpoint and status (the summary lists those named in ANSWERS).
const answers = new Counter("answers");
const ANSWERS = {
  click: [200, 202, 422, 429, 503],
  "click status": [200, 202, 404, 409, 503],
  balance: [200, 304, 503],
};

http.setResponseCallback(http.expectedStatuses({ min: 200, max: 399 }, 429, 503));

export const options = {
  scenarios: {
    clicks: {
      executor: "constant-arrival-rate",
      rate: RPS,
      timeUnit: "1s",
      duration: DURATION,
      preAllocatedVUs: Math.max(10, Math.ceil(RPS / 10)),
      maxVUs: Math.max(50, RPS * 2),
    },
  },
  // Only the load's requests count (not setup's sign-ups); per-endpoint lines for diagnosis.
  thresholds: {
    "http_req_failed{scenario:clicks}": ["rate<0.01"],
    checks: ["rate>0.99"],
    ...latencyThresholds(P95_MS),
    // Never failing: they make the summary list answers and latency by endpoint and status.
    ...Object.fromEntries(
      Object.entries(ANSWERS).flatMap(([endpoint, statuses]) => {
        const name = endpoint === "balance" ? "status" : endpoint;
        return [
          [`http_reqs{name:${name}}`, ["count>=0"]],
          ...statuses.flatMap((status) => [
            [`answers{endpoint:${endpoint},status:${status}}`, ["count>=0"]],
            [`http_req_duration{name:${name},status:${status}}`, ["max>=0"]],
          ]),
        ];
      }),
    ),
  },
  setupTimeout: "120s",
  summaryTrendStats: ["avg", "med", "p(90)", "p(95)", "p(99)", "max"],
};

function latencyThresholds(goal) {
  if (goal === "off") return {};
  const ms = Number(goal);
  if (!(ms > 0)) throw new Error(`P95_MS must be a positive number of ms or "off", got ${goal}`);
  const p95 = [`p(95)<${ms}`];
  return {
    "http_req_duration{scenario:clicks}": p95,
    "http_req_duration{name:click}": p95,
    "http_req_duration{name:click status}": p95,
    "http_req_duration{name:status}": p95,
  };
}

function signUp() {
  const run = Date.now().toString(36);
  const tokens = [];
  for (let n = 0; n < USERS; n++) {
    const answer = http.post(
      `${BASE_URL}/api/auth/register`,
      JSON.stringify({ username: `load${run}_${n}`, password: `load-test-${run}-${n}` }),
      { headers: { "Content-Type": "application/json" }, tags: { name: "register" } },
    );
    if (answer.status === 429) {
      console.warn(`sign-up limited after ${tokens.length} users (REGISTER_MAX_ATTEMPTS)`);
      break;
    }
    if (answer.status !== 201) {
      throw new Error(`sign-up answered ${answer.status}: ${answer.body}`);
    }
    tokens.push(answer.json("token"));
  }
  if (tokens.length === 0) {
    throw new Error("no user could sign up; pass AUTH_TOKEN or AUTH_TOKENS_FILE");
  }
  return tokens;
}

export function setup() {
  if (__ENV.AUTH_TOKEN) return { tokens: [__ENV.AUTH_TOKEN] };
  const fromFile = TOKENS_FILE.split("\n").map((line) => line.trim()).filter(Boolean);
  if (fromFile.length > 0) return { tokens: fromFile };
  return { tokens: signUp() };
}

function click(token, key) {
  return http.post(`${BASE_URL}/api/mining/click`, JSON.stringify({ clicks: 1 }), {
    headers: {
      Authorization: `Bearer ${token}`,
      "Content-Type": "application/json",
      "Idempotency-Key": key,
    },
    tags: { name: "click" },
  });
}

function tally(endpoint, answer) {
  answers.add(1, { endpoint, status: String(answer.status) });
}

function count(answer) {
  tally("click", answer);
  if (answer.status === 202) accepted.add(1);
  else if (answer.status === 200) replayed.add(1);
  else if (answer.status === 429) limited.add(1);
  else if (answer.status === 503) full.add(1);
}

const etags = {};

export default function (data) {
  // Any user at any time (VU and iteration numbers would make neighbouring VUs click for the
  // same few users at once, and meet the per-user limit).
  const token = data.tokens[Math.floor(Math.random() * data.tokens.length)];
  const key = `k6-${__VU}-${__ITER}-${Date.now().toString(36)}`;
  const first = click(token, key);
  count(first);
  check(first, {
    "click: 202, 429 or 503": (r) => [202, 429, 503].includes(r.status),
    "click 202: Location": (r) => r.status !== 202 || Boolean(r.headers["Location"]),
    "click 429/503: Retry-After": (r) =>
      (r.status !== 429 && r.status !== 503) || Boolean(r.headers["Retry-After"]),
  });
  const taken = first.status === 202;
  if (taken && Math.random() < RETRY_RATIO) {
    const again = click(token, key);
    count(again);
    check(again, {
      "retry: 200 + Idempotent-Replayed (or 429/503)": (r) =>
        (r.status === 200 && r.headers["Idempotent-Replayed"] === "true") ||
        r.status === 429 ||
        r.status === 503,
    });
  }
  if (taken && Math.random() < POLL_RATIO) {
    sleep(0.5);
    const status = http.get(
      `${BASE_URL}/api/mining/click/status?key=${encodeURIComponent(key)}`,
      { headers: { Authorization: `Bearer ${token}` }, tags: { name: "click status" } },
    );
    tally("click status", status);
    check(status, {
      "status: 200 completed or 202 queued (or 503)": (r) => [200, 202, 503].includes(r.status),
    });
  }
  if (Math.random() < READ_RATIO) {
    const headers = { Authorization: `Bearer ${token}` };
    if (etags[token]) headers["If-None-Match"] = etags[token];
    const read = http.get(`${BASE_URL}/api/mining/status`, { headers, tags: { name: "status" } });
    if (read.headers["Etag"]) etags[token] = read.headers["Etag"];
    tally("balance", read);
    check(read, { "balance: 200 or 304 (or 503)": (r) => [200, 304, 503].includes(r.status) });
  }
}
