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
const CONTRACTS = ["TokenForgeToken", "TokenForgeFactory"];
const SETTINGS = {
  evmVersion: "cancun",
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
}

main();
