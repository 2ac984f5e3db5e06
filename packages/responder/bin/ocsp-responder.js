#!/usr/bin/env node
// The `ocsp-responder` command: a thin shim over the built CLI, kept outside dist/ so the bin
// link exists from install time, before the first build.
import { responderMain } from "../dist/cli.js";

responderMain(process.argv.slice(2)).then((code) => process.exit(code));
