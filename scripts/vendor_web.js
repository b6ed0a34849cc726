#!/usr/bin/env node
// Copies the browser cryptography the launch page uses — secp256k1 and ed25519 from the
// pinned npm `@noble/curves`, keccak-256 from the `@noble/hashes` it depends on — into one
// flat directory of plain ES modules the page loads from its own origin (no bundler, no
// import map, nothing fetched at run time). Each module keeps its code byte for byte; only
// its import specifiers are rewritten to the flat file names, source-map comments dropped
// and a header naming its origin added. The licences are copied beside them.
// Usage: node scripts/vendor_web.js [output-dir]
// Default output-dir: src/tokenforge/api/static/vendor (committed package data).
"use strict";

const fs = require("fs");
const path = require("path");

const ROOT = path.resolve(__dirname, "..");
const OUT = path.resolve(process.argv[2] || path.join(ROOT, "src/tokenforge/api/static/vendor"));
// What the page imports: [package, module under esm/].
const ENTRIES = [
  ["curves", "secp256k1"],
  ["curves", "ed25519"],
  ["hashes", "sha3"],
];

// Where Node's resolution finds @noble/<name> from the directory `from` (the packages'
// exports maps hide package.json from require.resolve).
function packageRoot(name, from) {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, "node_modules", "@noble", name);
    if (fs.existsSync(path.join(candidate, "package.json"))) return candidate;
    if (path.dirname(dir) === dir) throw new Error(`@noble/${name} not found from ${from}: run npm ci`);
  }
}

const curvesRoot = packageRoot("curves", ROOT);
// The hashes @noble/curves itself resolves (its own pinned dependency), not whichever is hoisted.
const hashesRoot = packageRoot("hashes", curvesRoot);
const ROOTS = { curves: curvesRoot, hashes: hashesRoot };
const VERSIONS = Object.fromEntries(
  Object.entries(ROOTS).map(([name, root]) => [name, JSON.parse(fs.readFileSync(path.join(root, "package.json"))).version])
);

function flatName(pkg, modulePath) {
  return `${pkg}.${modulePath.replace(/\.js$/, "").split("/").join(".")}.js`;
}

// A specifier seen in `pkg`'s esm/`from` as [package, module path under esm/].
function resolve(pkg, from, specifier) {
  const bare = specifier.match(/^@noble\/(curves|hashes)\/([\w\-/]+?)(\.js)?$/);
  if (bare) return [bare[1], `${bare[2]}.js`];
  if (specifier.startsWith("./") || specifier.startsWith("../")) {
    return [pkg, path.posix.normalize(path.posix.join(path.posix.dirname(from), specifier))];
  }
  throw new Error(`${pkg}/esm/${from}: cannot vendor import of ${specifier}`);
}

// A static import or re-export ending a line (`import … from "x"`, `} from "x"`,
// `import "x"`), not inside a comment.
const IMPORT = /^(?![ \t]*(?:\/\/|\/?\*))(.*?\bfrom[ \t]*|[ \t]*import[ \t]+)(["'])([^"']+)\2(?=;?[ \t]*$)/gm;

function vendor() {
  const files = new Map();
  const queue = ENTRIES.map(([pkg, mod]) => [pkg, `${mod}.js`]);
  while (queue.length) {
    const [pkg, modulePath] = queue.shift();
    const name = flatName(pkg, modulePath);
    if (files.has(name)) continue;
    const source = fs.readFileSync(path.join(ROOTS[pkg], "esm", modulePath), "utf8");
    const rewritten = source
      .replace(IMPORT, (_, lead, quote, specifier) => {
        const target = resolve(pkg, modulePath, specifier);
        queue.push(target);
        return `${lead}${quote}./${flatName(...target)}${quote}`;
      })
      .replace(/^\/\/# sourceMappingURL=.*$/gm, "")
      .trimEnd();
    const header = `// @noble/${pkg} ${VERSIONS[pkg]} esm/${modulePath} (copied by scripts/vendor_web.js; do not edit)\n`;
    files.set(name, header + rewritten + "\n");
  }
  for (const pkg of Object.keys(ROOTS)) {
    files.set(`LICENSE.noble-${pkg}`, fs.readFileSync(path.join(ROOTS[pkg], "LICENSE"), "utf8"));
  }
  return files;
}

const files = vendor();
fs.mkdirSync(OUT, { recursive: true });
for (const old of fs.readdirSync(OUT)) {
  if (!files.has(old)) fs.rmSync(path.join(OUT, old));
}
for (const [name, text] of [...files].sort()) {
  fs.writeFileSync(path.join(OUT, name), text);
}
console.log(`${files.size} files in ${path.relative(ROOT, OUT) || OUT}`);
