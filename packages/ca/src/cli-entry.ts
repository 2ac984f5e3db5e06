/** `@ocsp-lab/ca/cli`: the `ocsp-ca` command as a function, `caMain(argv, io)` (what the bin runs). */
export { caMain } from "./cli.js";
