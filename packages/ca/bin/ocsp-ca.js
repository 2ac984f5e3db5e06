#!/usr/bin/env node
// The `ocsp-ca` command: a thin shim over the built CLI, kept outside dist/ so the bin link
// exists from install time, before the first build.
import { caMain } from "../dist/cli.js";

caMain(process.argv.slice(2)).then((code) => process.exit(code));
