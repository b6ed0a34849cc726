// @noble/hashes 1.7.2 esm/crypto.js (copied by scripts/vendor_web.js; do not edit)
export const crypto = typeof globalThis === 'object' && 'crypto' in globalThis ? globalThis.crypto : undefined;
