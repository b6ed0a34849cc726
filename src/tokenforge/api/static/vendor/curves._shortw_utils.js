// @noble/curves 1.8.2 esm/_shortw_utils.js (copied by scripts/vendor_web.js; do not edit)
/**
 * Utilities for short weierstrass curves, combined with noble-hashes.
 * @module
 */
/*! noble-curves - MIT License (c) 2022 Paul Miller (paulmillr.com) */
import { hmac } from './hashes.hmac.js';
import { concatBytes, randomBytes } from './hashes.utils.js';
import { weierstrass } from "./curves.abstract.weierstrass.js";
/** connects noble-curves to noble-hashes */
export function getHash(hash) {
    return {
        hash,
        hmac: (key, ...msgs) => hmac(hash, key, concatBytes(...msgs)),
        randomBytes,
    };
}
export function createCurve(curveDef, defHash) {
    const create = (hash) => weierstrass({ ...curveDef, ...getHash(hash) });
    return { ...create(defHash), create };
}
