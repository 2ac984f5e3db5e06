import { Command } from "commander";
import { configureProgram, isMainModule, processIo, runProgram, serviceOptions, type ServiceIo } from "@ocsp-lab/cli-support";
import { CONFIG_OUTLINE, loadResponderConfig, startFromConfig } from "./config.js";
import { assertAdminProtected } from "./responder.js";

/** Streams, environment and stop signal the CLI uses, injectable so tests read output without a child process. */
export type ResponderCliIo = ServiceIo;

const defaultIo = processIo;

/**
 * Run `ocsp-responder` with `argv` (none: an outline of the config keys on stderr, exit 2): `--config file.yaml` (zod-validated; a bad file prints the
 * field and the fix; a deprecated name is accepted with a warning on stderr), `--check` to
 * validate and exit (an admin API start would refuse as unprotected included), `--port`/`--host`
 * to override `listen`.
 * Serves until SIGINT/SIGTERM. Resolves with the exit code (0, 1 failure, 2 usage).
 */
export async function responderMain(argv: string[], io: ResponderCliIo = defaultIo()): Promise<number> {
  if (argv.length === 0) {
    io.stderr.write(
      `ocsp-responder: give a config file: ocsp-responder --config responder.yaml (--check validates it; --help for all options)\n` +
        `A config file has these keys (all optional):\n\n${CONFIG_OUTLINE}\n`,
    );
    return 2;
  }
  const program = serviceOptions(configureProgram(new Command("ocsp-responder"), "ocsp-responder", io, import.meta.url))
    .description("The ocsp-lab OCSP responder: every status and failure mode, on demand.")
    .addHelpText(
      "after",
      [
        "",
        "Examples:",
        "  ocsp-responder --config responder.yaml",
        "  ocsp-responder --config responder.yaml --check",
        "  curl -X PUT http://127.0.0.1:8080/admin/behaviours/global -H 'content-type: application/json' \\",
        '       -d \'{"actions":[{"kind":"responseStatus","responseStatus":"tryLater"}],"count":3}\'',
      ].join("\n"),
    )
    .action(async (opts: { config: string; check?: boolean; port?: number; host?: string }) => {
      const config = await loadResponderConfig(opts.config);
      for (const d of config.deprecations) io.stderr.write(`ocsp-responder: warning: config ${opts.config}: ${d}\n`);
      if (opts.port !== undefined) config.listen.port = opts.port;
      if (opts.host !== undefined) config.listen.host = opts.host;
      // What start would refuse, --check refuses too.
      assertAdminProtected(config.listen.host, {
        ...(config.admin.port !== undefined ? { port: config.admin.port } : {}),
        ...(config.admin.token !== undefined ? { token: config.admin.token } : {}),
        allowUnauthenticated: config.admin.allow_unauthenticated,
      });
      if (opts.check) {
        io.stdout.write(`ocsp-responder: ${opts.config} is valid (${config.behaviours.length} behaviour(s))\n`);
        return;
      }
      const stopping = io.stopSignal();
      const responder = await startFromConfig(config, { env: io.env });
      io.stdout.write(
        `ocsp-responder: listening on ${responder.url} (issuers: ${responder.issuers().length}; admin ${responder.adminUrl}; metrics ${responder.url}/metrics)\n`,
      );
      const signal = await stopping;
      await responder.stop();
      io.stdout.write(`ocsp-responder: ${signal} received, stopped\n`);
    });
  return runProgram(program, "ocsp-responder", argv, io);
}

if (isMainModule(import.meta.url)) {
  responderMain(process.argv.slice(2)).then((code) => process.exit(code));
}
