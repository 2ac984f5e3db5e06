import { webcrypto } from "node:crypto";

/**
 * The WebCrypto implementation used everywhere unless a caller injects another one (every
 * function that signs, verifies or hashes takes an optional `crypto`).
 */
export const defaultCrypto: Crypto = webcrypto as unknown as Crypto;
