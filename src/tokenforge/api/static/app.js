// The launch page: sign in with a wallet, fill the form, launch, follow the job's steps
// over Server-Sent Events, list the newest tokens. No inline script: the page's
// Content-Security-Policy allows scripts from this origin only.

import { authHeaders, checkSession, currentSession, forgetSession, signIn, signOut } from "./signin.js";
import { devWallet, ethereumWallet, solanaWallet, watchWallets } from "./wallets.js";

const $ = (id) => document.getElementById(id);
const esc = (s) =>
  String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const NAMES = { solana: "Solana", ethereum: "Ethereum", base: "Base", bsc: "BNB Smart Chain" };
const FAMILY_NAMES = { evm: "EVM", solana: "Solana" };

// chain name -> "evm" | "solana", from GET /v1/chains (the defaults until it answers)
let families = { solana: "solana", ethereum: "evm", base: "evm", bsc: "evm" };
let devAllowed = false;

function say(id, text, kind = "") {
  $(id).className = kind;
  $(id).textContent = text;
}

function selectedFamily() {
  return families[$("chain").value];
}

/** Show who is signed in, fill the creator from the session's wallet. */
function renderSession() {
  const session = currentSession();
  $("signed-out").hidden = Boolean(session);
  $("signed-in").hidden = !session;
  $("signin-evm").hidden = !ethereumWallet();
  $("signin-solana").hidden = !solanaWallet();
  $("no-wallet").hidden = Boolean(ethereumWallet() || solanaWallet());
  $("dev-wallet").hidden = !devAllowed;
  $("signin-dev").textContent = `Sign in with the development wallet (${FAMILY_NAMES[selectedFamily()]})`;
  const creator = $("creator");
  if (!session) {
    creator.value = "";
    return;
  }
  $("wallet").textContent = session.wallet;
  $("wallet-kind").textContent = session.dev
    ? "development wallet — local networks only"
    : `${FAMILY_NAMES[session.family]} · ${session.role}`;
  $("wallet-kind").className = session.dev ? "badge dev" : "badge";
  const fits = session.family === selectedFamily();
  creator.value = fits ? session.wallet : "";
  if (!fits) {
    say(
      "message",
      `Signed in with a ${FAMILY_NAMES[session.family]} wallet: a launch on ${NAMES[$("chain").value] || $("chain").value} ` +
        `needs a ${FAMILY_NAMES[selectedFamily()]} wallet (sign out, then sign in with one).`,
      "error"
    );
  } else if ($("message").className === "error" && $("message").textContent.startsWith("Signed in with")) {
    say("message", "");
  }
}

async function startSignIn(wallet) {
  if (!wallet) return;
  say("signin-message", `Waiting for the ${wallet.label}…`);
  try {
    await signIn(wallet, $("chain").value, families);
    say("signin-message", "");
  } catch (err) {
    say("signin-message", err && err.message ? err.message : String(err), "error");
  }
  renderSession();
}

async function loadChains() {
  const resp = await fetch("/v1/chains");
  if (!resp.ok) return;
  const items = (await resp.json()).items || [];
  if (!items.length) return;
  families = Object.fromEntries(items.map((c) => [c.chain, c.family]));
  devAllowed = items.every((c) => c.network === "embedded" || c.network === "local");
  const chosen = $("chain").value;
  $("chain").innerHTML = items
    .map((c) => `<option value="${esc(c.chain)}">${esc(NAMES[c.chain] || c.chain)}</option>`)
    .join("");
  if (families[chosen]) $("chain").value = chosen;
}

async function loadTokens() {
  const resp = await fetch("/v1/tokens?limit=25");
  const page = await resp.json();
  $("tokens").innerHTML = page.items.length
    ? page.items
        .map(
          (t) => `
    <tr><td><b>${esc(t.symbol)}</b> ${esc(t.name)}</td><td>${esc(t.chain)}</td>
    <td><span class="badge ${esc(t.status)}">${esc(t.status)}</span></td>
    <td><code>${esc(t.address ?? "—")}</code></td><td>${esc(t.supply)}</td>
    <td><code class="creator">${esc(t.creator)}</code></td></tr>`
        )
        .join("")
    : `<tr><td colspan="6">No tokens yet.</td></tr>`;
}

function follow(job) {
  const steps = $("steps");
  const source = new EventSource(job.events_url);
  source.addEventListener("status", (e) => {
    const ev = JSON.parse(e.data);
    const li = document.createElement("li");
    li.textContent = `${ev.status} — ${ev.message}`;
    steps.appendChild(li);
    if (ev.final) {
      source.close();
      $("submit").disabled = false;
      const ok = ev.status === "confirmed";
      say("message", ok ? `Live at ${ev.data.token_address}` : `Launch ${ev.status}: ${ev.message}`, ok ? "ok" : "error");
      loadTokens();
    }
  });
}

async function launch(e) {
  e.preventDefault();
  const data = Object.fromEntries(new FormData(e.target));
  if (data.decimals === "") delete data.decimals;
  else data.decimals = Number(data.decimals);
  if (!data.creator) delete data.creator; // the API takes the signed-in wallet
  $("steps").innerHTML = "";
  say("message", "Submitting…");
  $("submit").disabled = true;
  const resp = await fetch("/v1/tokens", {
    method: "POST",
    headers: { "Content-Type": "application/json", "Idempotency-Key": crypto.randomUUID(), ...authHeaders() },
    body: JSON.stringify(data),
  });
  const body = await resp.json();
  if (resp.status !== 202) {
    $("submit").disabled = false;
    const why = (body.errors || []).map((x) => `${x.field}: ${x.message}`).join("; ") || body.detail;
    if (resp.status === 401) {
      forgetSession(); // expired or revoked: sign in again
      renderSession();
      say("message", `Sign in first: ${why}`, "error");
    } else {
      say("message", why, "error");
    }
    return;
  }
  say("message", `Accepted: job ${body.job.id}`);
  loadTokens();
  follow(body.job);
}

function wire() {
  $("launch").addEventListener("submit", launch);
  $("chain").addEventListener("change", renderSession);
  $("signin-evm").addEventListener("click", () => startSignIn(ethereumWallet()));
  $("signin-solana").addEventListener("click", () => startSignIn(solanaWallet()));
  $("signin-dev").addEventListener("click", () => startSignIn(devWallet(selectedFamily())));
  $("signout").addEventListener("click", async () => {
    await signOut();
    say("signin-message", "Signed out.");
    renderSession();
  });
  watchWallets(renderSession);
}

wire();
renderSession();
loadTokens();
loadChains()
  .then(checkSession)
  .finally(renderSession);
