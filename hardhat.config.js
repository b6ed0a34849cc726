// Hardhat 2 configuration for `npx hardhat node` only: a local EVM JSON-RPC node (chain id
// 31337) for tests and development. Contracts are compiled by scripts/compile_contracts.js
// with solc-js, never by Hardhat; `hardhat node` does not compile.
//
// Environment:
//   HARDHAT_MINING_INTERVAL_MS  unset: automine (one block per transaction);
//                               set: no automine, one block every N milliseconds.
//   HARDHAT_ACCOUNTS_JSON       unset: Hardhat's default accounts;
//                               set: JSON list of {"privateKey": "0x..", "balance": "<wei, decimal>"}.
//   HARDHAT_LOGGING_ENABLED     "true": log every JSON-RPC call to stdout (off by default).
//
// Run it offline: HARDHAT_DISABLE_TELEMETRY_PROMPT=true (and CI=true in CI) keep Hardhat
// from prompting for or sending telemetry.

"use strict";

function miningConfig() {
  const raw = process.env.HARDHAT_MINING_INTERVAL_MS;
  if (raw === undefined || raw === "") {
    return { auto: true };
  }
  const intervalMs = Number(raw);
  if (!Number.isInteger(intervalMs) || intervalMs <= 0) {
    throw new Error(`HARDHAT_MINING_INTERVAL_MS must be a positive integer, got ${JSON.stringify(raw)}`);
  }
  return { auto: false, interval: intervalMs };
}

function accountsConfig() {
  const raw = process.env.HARDHAT_ACCOUNTS_JSON;
  if (raw === undefined || raw === "") {
    return undefined; // Hardhat's default accounts
  }
  const accounts = JSON.parse(raw);
  if (!Array.isArray(accounts) || accounts.length === 0) {
    throw new Error("HARDHAT_ACCOUNTS_JSON must be a non-empty JSON list");
  }
  return accounts.map((account, index) => {
    if (typeof account.privateKey !== "string" || !/^0x[0-9a-fA-F]{64}$/.test(account.privateKey)) {
      throw new Error(`HARDHAT_ACCOUNTS_JSON[${index}].privateKey must be 0x followed by 64 hex digits`);
    }
    if (typeof account.balance !== "string" || !/^[0-9]+$/.test(account.balance)) {
      throw new Error(`HARDHAT_ACCOUNTS_JSON[${index}].balance must be a decimal wei string`);
    }
    return { privateKey: account.privateKey, balance: account.balance };
  });
}

const hardhatNetwork = {
  chainId: 31337,
  mining: miningConfig(),
  loggingEnabled: process.env.HARDHAT_LOGGING_ENABLED === "true",
};
const accounts = accountsConfig();
if (accounts !== undefined) {
  hardhatNetwork.accounts = accounts;
}

module.exports = {
  // No `solidity` section: Hardhat never compiles in this project. Its cache and artifact
  // folders are kept out of the work tree.
  paths: {
    cache: "node_modules/.cache/hardhat/cache",
    artifacts: "node_modules/.cache/hardhat/artifacts",
  },
  networks: {
    hardhat: hardhatNetwork,
  },
};
