// @noble/hashes 1.7.2 esm/sha2.js (copied by scripts/vendor_web.js; do not edit)
/**
 * SHA2 hash function. A.k.a. sha256, sha512, sha512_256, etc.
 * @module
 */
// Usually you either use sha256, or sha512. We re-export them as sha2 for naming consistency.
export { sha224, sha256 } from "./hashes.sha256.js";
export { sha384, sha512, sha512_224, sha512_256 } from "./hashes.sha512.js";
