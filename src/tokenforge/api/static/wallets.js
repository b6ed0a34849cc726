// Wallets the page signs in with: a browser wallet (EIP-1193 `window.ethereum`; a Solana
// wallet found through the wallet standard or as `window.solana`) and the development
// wallet, whose keys this browser generates and keeps in localStorage — for embedded and
// local networks only (app.js offers it only when GET /v1/chains says so).
//
// Each wallet is {family: "evm"|"solana", label, dev, connect() -> address,
// sign(message) -> signature}: a 0x-hex EIP-191 `personal_sign` signature for EVM, a
// base58 ed25519 signature of the message's UTF-8 bytes for Solana.

import { ed25519 } from "./vendor/curves.ed25519.js";
import { secp256k1 } from "./vendor/curves.secp256k1.js";
import { keccak_256 } from "./vendor/hashes.sha3.js";
import { base58encode } from "./base58.js";

const utf8 = (text) => new TextEncoder().encode(text);
export const toHex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const fromHex = (hex) => Uint8Array.from(hex.match(/../g), (h) => parseInt(h, 16));

/** The EIP-55 (mixed-case checksum) form of a 0x address. */
export function checksumAddress(address) {
  const lower = address.toLowerCase().replace(/^0x/, "");
  const hash = toHex(keccak_256(utf8(lower)));
  let out = "0x";
  for (let i = 0; i < lower.length; i++) out += parseInt(hash[i], 16) >= 8 ? lower[i].toUpperCase() : lower[i];
  return out;
}

function evmAddressOf(privateKey) {
  const uncompressed = secp256k1.getPublicKey(privateKey, false); // 0x04 || x || y
  return checksumAddress("0x" + toHex(keccak_256(uncompressed.subarray(1)).subarray(12)));
}

/** EIP-191 `personal_sign`: r || s || v (v = 27 + recovery id), as 0x-hex. */
function personalSign(privateKey, message) {
  const body = utf8(message);
  const prefix = utf8(`\x19Ethereum Signed Message:\n${body.length}`);
  const digest = keccak_256(new Uint8Array([...prefix, ...body]));
  const signature = secp256k1.sign(digest, privateKey);
  return "0x" + toHex(signature.toCompactRawBytes()) + (27 + signature.recovery).toString(16);
}

// -- the development wallet ------------------------------------------------------------
const DEV_STORAGE = "tokenforge.devWallet.v1";

/** The development wallet's keys, generated on first use and kept in localStorage. */
function devKeys() {
  let keys = null;
  try {
    keys = JSON.parse(localStorage.getItem(DEV_STORAGE) || "null");
  } catch {
    keys = null;
  }
  if (!keys || !/^[0-9a-f]{64}$/.test(keys.evm || "") || !/^[0-9a-f]{64}$/.test(keys.solana || "")) {
    keys = { evm: toHex(secp256k1.utils.randomPrivateKey()), solana: toHex(ed25519.utils.randomPrivateKey()) };
    localStorage.setItem(DEV_STORAGE, JSON.stringify(keys));
  }
  return { evm: fromHex(keys.evm), solana: fromHex(keys.solana) };
}

export function devWallet(family) {
  const label = family === "evm" ? "development wallet (EVM)" : "development wallet (Solana)";
  return {
    family,
    label,
    dev: true,
    async connect() {
      const keys = devKeys();
      return family === "evm" ? evmAddressOf(keys.evm) : base58encode(ed25519.getPublicKey(keys.solana));
    },
    async sign(message) {
      const keys = devKeys();
      return family === "evm" ? personalSign(keys.evm, message) : base58encode(ed25519.sign(utf8(message), keys.solana));
    },
  };
}

// -- browser wallets -------------------------------------------------------------------
/** An EIP-1193 provider (MetaMask and the like), or null when the browser has none. */
export function ethereumWallet() {
  const provider = window.ethereum;
  if (!provider || typeof provider.request !== "function") return null;
  let address = null;
  return {
    family: "evm",
    label: "Ethereum wallet",
    dev: false,
    async connect() {
      const accounts = await provider.request({ method: "eth_requestAccounts" });
      if (!accounts || !accounts.length) throw new Error("the wallet shared no account");
      address = checksumAddress(accounts[0]);
      return address;
    },
    async sign(message) {
      return provider.request({ method: "personal_sign", params: ["0x" + toHex(utf8(message)), address] });
    },
  };
}

// Wallets that announced themselves through the wallet standard (wallet-standard:register-wallet).
const standardWallets = [];
let onWalletsChanged = () => {};

function registerStandard(...wallets) {
  for (const w of wallets) if (!standardWallets.includes(w)) standardWallets.push(w);
  onWalletsChanged();
  return () => {};
}

/** Listen for wallet-standard wallets; `changed()` runs when one registers. */
export function watchWallets(changed) {
  onWalletsChanged = changed;
  const api = Object.freeze({ register: registerStandard });
  window.addEventListener("wallet-standard:register-wallet", (event) => {
    if (typeof event.detail === "function") event.detail(api);
  });
  window.dispatchEvent(new CustomEvent("wallet-standard:app-ready", { detail: api }));
}

/** A Solana wallet: the first wallet-standard one that signs messages, else `window.solana`. */
export function solanaWallet() {
  const standard = standardWallets.find(
    (w) => w.features && w.features["standard:connect"] && w.features["solana:signMessage"]
  );
  if (standard) {
    let account = null;
    return {
      family: "solana",
      label: `${standard.name || "Solana"} wallet`,
      dev: false,
      async connect() {
        const { accounts } = await standard.features["standard:connect"].connect();
        account = (accounts || [])[0] || (standard.accounts || [])[0];
        if (!account) throw new Error("the wallet shared no account");
        return account.address;
      },
      async sign(message) {
        const [signed] = await standard.features["solana:signMessage"].signMessage({ account, message: utf8(message) });
        return base58encode(signed.signature);
      },
    };
  }
  const injected = window.solana;
  if (!injected || typeof injected.signMessage !== "function") return null;
  return {
    family: "solana",
    label: "Solana wallet",
    dev: false,
    async connect() {
      const { publicKey } = await injected.connect();
      return publicKey.toString();
    },
    async sign(message) {
      const { signature } = await injected.signMessage(utf8(message), "utf8");
      return base58encode(signature);
    },
  };
}
