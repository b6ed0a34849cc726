// Wallet sign-in against /v1/auth and the session it gives this tab.
//
// POST /v1/auth/nonce -> an EIP-4361 message (Sign-In with Solana: the same layout, "Solana
// account") built from its answer -> the wallet signs it -> POST /v1/auth/siwe | siws ->
// {token, session}. The token lives in this tab's sessionStorage (never localStorage, never
// a cookie) and goes out as `Authorization: Bearer` on launches; sign-out revokes it.

const STORAGE = "tokenforge.session.v1";
const ACCOUNT = { evm: "Ethereum", solana: "Solana" };

/** The signed-in session {token, wallet, family, role, expires_at, dev}, or null. */
export function currentSession() {
  let saved = null;
  try {
    saved = JSON.parse(sessionStorage.getItem(STORAGE) || "null");
  } catch {
    saved = null;
  }
  if (!saved || !saved.token || Date.parse(saved.expires_at) <= Date.now()) {
    sessionStorage.removeItem(STORAGE);
    return null;
  }
  return saved;
}

export function forgetSession() {
  sessionStorage.removeItem(STORAGE);
}

/** `Authorization` for the signed-in session (empty when signed out). */
export function authHeaders() {
  const session = currentSession();
  return session ? { Authorization: `Bearer ${session.token}` } : {};
}

/** The EIP-4361 text (the ABNF layout the server parses) for `address` on `chainId`. */
export function signInMessage(family, nonce, address, chainId) {
  return [
    `${nonce.domain} wants you to sign in with your ${ACCOUNT[family]} account:`,
    address,
    "",
    nonce.statement,
    "",
    `URI: ${nonce.uri}`,
    `Version: ${nonce.version}`,
    `Chain ID: ${chainId}`,
    `Nonce: ${nonce.nonce}`,
    `Issued At: ${nonce.issued_at}`,
    `Expiration Time: ${nonce.expires_at}`,
  ].join("\n");
}

async function problemText(resp) {
  try {
    const body = await resp.json();
    const fields = (body.errors || []).map((e) => `${e.field}: ${e.message}`).join("; ");
    return body.detail || fields || body.title || `HTTP ${resp.status}`;
  } catch {
    return `HTTP ${resp.status}`;
  }
}

/** The `Chain ID` to sign for: `preferred`'s when it is of the wallet's family, else the
 * first configured chain of that family. */
function chainIdFor(nonce, family, preferred, families) {
  const names = Object.keys(nonce.chain_ids);
  const name = families[preferred] === family ? preferred : names.find((n) => families[n] === family);
  if (!name) throw new Error(`this server has no ${ACCOUNT[family]} chain to sign in on`);
  return nonce.chain_ids[name];
}

/** Sign in with `wallet` (wallets.js); `families` maps chain name -> family, `preferred`
 * is the chain the page has selected. Resolves to the session; throws an Error saying why not. */
export async function signIn(wallet, preferred, families) {
  const address = await wallet.connect();
  const nonceResp = await fetch("/v1/auth/nonce", { method: "POST" });
  if (!nonceResp.ok) throw new Error(`no sign-in nonce: ${await problemText(nonceResp)}`);
  const nonce = await nonceResp.json();
  const message = signInMessage(wallet.family, nonce, address, chainIdFor(nonce, wallet.family, preferred, families));
  const signature = await wallet.sign(message);
  const resp = await fetch(wallet.family === "evm" ? "/v1/auth/siwe" : "/v1/auth/siws", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ message, signature }),
  });
  if (!resp.ok) throw new Error(`sign-in refused: ${await problemText(resp)}`);
  const answer = await resp.json();
  const session = { token: answer.token, ...answer.session, dev: wallet.dev, label: wallet.label };
  sessionStorage.setItem(STORAGE, JSON.stringify(session));
  return session;
}

/** Whether the server still takes this tab's session (it may have expired or been revoked). */
export async function checkSession() {
  const headers = authHeaders();
  if (!headers.Authorization) return null;
  const resp = await fetch("/v1/auth/session", { headers });
  if (resp.status === 401) {
    forgetSession();
    return null;
  }
  return currentSession();
}

/** Revoke the session on the server (DELETE /v1/auth/session) and forget it here. */
export async function signOut() {
  const headers = authHeaders();
  forgetSession();
  if (headers.Authorization) await fetch("/v1/auth/session", { method: "DELETE", headers });
}
