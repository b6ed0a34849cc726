#!/usr/bin/env node
// Compiles contracts/*.sol with the pinned npm `solc` (standard JSON) and writes one
// deterministic artifact per contract: abi, bytecode, deployedBytecode, compiler version
// and settings. Usage: node scripts/compile_contracts.js [output-dir]
// Default output-dir: src/tokenforge/chains/evm/artifacts (committed package data).
"use strict";

const fs = require("fs");
const path = require("path");
const solc = require("solc");

const ROOT = path.resolve(__dirname, "..");
const CONTRACTS = ["TokenForgeToken", "TokenForgeCurve", "TokenForgeFactory"];
// Uniswap V2 as published on npm (compiled by Uniswap with solc 0.5.16 / 0.6.6): copied,
// not recompiled, so the pair's init code hash is the published one. Deployed on the
// embedded chain, Hardhat and the devnet; real networks name their own in settings.
const UNISWAP = [
  ["@uniswap/v2-core/build/UniswapV2Factory.json", "UniswapV2Factory"],
  ["@uniswap/v2-core/build/UniswapV2Pair.json", "UniswapV2Pair"],
  ["@uniswap/v2-periphery/build/WETH9.json", "WETH9"],
  ["@uniswap/v2-periphery/build/UniswapV2Router02.json", "UniswapV2Router02"],
];
const SETTINGS = {
  evmVersion: "cancun",
  viaIR: true,
  optimizer: { enabled: true, runs: 200 },
  metadata: { bytecodeHash: "none" },
  outputSelection: {
    "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] },
  },
};

function findImport(importPath) {
  const candidates = [
    path.join(ROOT, importPath),
    path.join(ROOT, "node_modules", importPath),
  ];
  for (const file of candidates) {
    if (fs.existsSync(file)) {
      return { contents: fs.readFileSync(file, "utf8") };
    }
  }
  return { error: `not found: ${importPath}` };
}

function main() {
  const outDir = path.resolve(process.argv[2] || path.join(ROOT, "src/tokenforge/chains/evm/artifacts"));
  const sources = {};
  for (const name of CONTRACTS) {
    const unit = `contracts/${name}.sol`;
    sources[unit] = { content: fs.readFileSync(path.join(ROOT, unit), "utf8") };
  }
  const input = { language: "Solidity", sources, settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImport }));

  const errors = (output.errors || []).filter((e) => e.severity === "error");
  for (const e of output.errors || []) {
    process.stderr.write(`${e.formattedMessage || e.message}\n`);
  }
  if (errors.length > 0) {
    process.exit(1);
  }

  fs.mkdirSync(outDir, { recursive: true });
  const { outputSelection, ...recordedSettings } = SETTINGS;
  for (const name of CONTRACTS) {
    const unit = `contracts/${name}.sol`;
    const compiled = output.contracts[unit][name];
    const artifact = {
      contractName: name,
      sourceName: unit,
      compiler: { name: "solc", version: solc.version() },
      settings: recordedSettings,
      abi: compiled.abi,
      bytecode: `0x${compiled.evm.bytecode.object}`,
      deployedBytecode: `0x${compiled.evm.deployedBytecode.object}`,
    };
    const file = path.join(outDir, `${name}.json`);
    fs.writeFileSync(file, `${JSON.stringify(artifact, null, 2)}\n`);
    process.stdout.write(`wrote ${path.relative(process.cwd(), file)}\n`);
  }
  const uniDir = path.join(outDir, "uniswap");
  fs.mkdirSync(uniDir, { recursive: true });
  for (const [source, name] of UNISWAP) {
    const pkg = source.split("/").slice(0, 2).join("/");
    const published = JSON.parse(fs.readFileSync(path.join(ROOT, "node_modules", source), "utf8"));
    const artifact = {
      contractName: name,
      source: `${pkg}@${require(path.join(ROOT, "node_modules", pkg, "package.json")).version}`,
      abi: published.abi,
      bytecode: `0x${(published.bytecode || published.evm.bytecode.object).replace(/^0x/, "")}`,
    };
    const file = path.join(uniDir, `${name}.json`);
    fs.writeFileSync(file, `${JSON.stringify(artifact, null, 2)}\n`);
    process.stdout.write(`wrote ${path.relative(process.cwd(), file)}\n`);
  }
}

main();
