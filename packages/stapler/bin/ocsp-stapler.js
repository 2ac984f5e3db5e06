#!/usr/bin/env node
// The `ocsp-stapler` command: a thin shim over the built CLI, kept outside dist/ so the bin
// link exists from install time, before the first build.
import { staplerMain } from "../dist/cli.js";

staplerMain(process.argv.slice(2)).then((code) => process.exit(code));
