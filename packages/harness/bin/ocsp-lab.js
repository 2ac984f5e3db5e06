#!/usr/bin/env node
// The `ocsp-lab` command: a thin shim over the built CLI, kept outside dist/ so the bin link
// exists from install time, before the first build.
import { main } from "../dist/cli.js";

main(process.argv.slice(2)).then((code) => process.exit(code));
