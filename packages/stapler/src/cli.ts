import { Command } from "commander";
import { configureProgram, isMainModule, processIo, runProgram, serviceOptions, type ServiceIo } from "@ocsp-lab/cli-support";
import { CONFIG_OUTLINE, builderFromConfig, loadStaplerConfig, parseBackend, startFromConfig } from "./config.js";

/**
 * Streams, environment, stop signal and reload signal the CLI uses, injectable so tests read
 * output and trigger a reload without a child process.
 */
export interface StaplerCliIo extends ServiceIo {
  /** Call `reload` on every reload request (SIGHUP for the real process); returns an unsubscribe function. */
  onReloadSignal: (reload: () => void) => () => void;
}

/** The real process: its streams, SIGINT/SIGTERM to stop, SIGHUP to reload. */
export function staplerProcessIo(): StaplerCliIo {
  return {
    ...processIo(),
    onReloadSignal: (reload) => {
      process.on("SIGHUP", reload);
      return () => process.off("SIGHUP", reload);
    },
  };
}

/**
 * Run `ocsp-stapler` with `argv` (none: an outline of the config keys on stderr, exit 2): `--config file.yaml` (zod-validated; a bad file prints the
 * field and the fix), `--check` to validate it and its certificates' policy and exit,
 * `--port`/`--host` to override `listen`. Serves until SIGINT/SIGTERM; SIGHUP reloads the
 * certificates. Resolves with the exit code (0, 1 failure, 2 usage).
 */
export async function staplerMain(argv: string[], io: StaplerCliIo = staplerProcessIo()): Promise<number> {
  if (argv.length === 0) {
    io.stderr.write(
      `ocsp-stapler: give a config file: ocsp-stapler --config stapler.yaml (--check validates it; --help for all options)\n` +
        `A config file has these keys (certificates is required):\n\n${CONFIG_OUTLINE}\n`,
    );
    return 2;
  }
  const program = serviceOptions(configureProgram(new Command("ocsp-stapler"), "ocsp-stapler", io, import.meta.url))
    .description(
      "The ocsp-lab stapling server: TLS server or TLS proxy that fetches, verifies, caches and staples OCSP responses.",
    )
    .addHelpText(
      "after",
      [
        "",
        "Examples:",
        "  ocsp-stapler --config stapler.yaml",
        "  ocsp-stapler --config stapler.yaml --check",
        "  curl -s http://127.0.0.1:<admin port>/admin/ocsp            # per-certificate staple status",
        "  curl -s -X POST http://127.0.0.1:<admin port>/admin/ocsp/query   # query the responder now",
        "  kill -HUP <pid>                                              # reload certificates and keys",
      ].join("\n"),
    )
    .action(async (opts: { config: string; check?: boolean; port?: number; host?: string }) => {
      const config = await loadStaplerConfig(opts.config);
      if (opts.port !== undefined) config.listen.port = opts.port;
      if (opts.host !== undefined) config.listen.host = opts.host;
      parseBackend(config.backend);
      if (opts.check) {
        // The certificates too: readable, an issuer and an OCSP URL each, the key matches.
        const served = await builderFromConfig(config, { env: io.env }).check();
        io.stdout.write(
          `ocsp-stapler: ${opts.config} is valid (${served.length} certificate(s): ${served.map((c) => `${c.serial} for ${c.names.join(" ") || c.subject} ${sourceText(c)}`).join("; ")}; mode ${config.policy.mode}, on_failure ${config.policy.on_failure})\n`,
        );
        if (served.some((c) => c.stapleSource !== "verified"))
          io.stdout.write("ocsp-stapler: warning: stapling unverified responses: for testing clients only\n");
        return;
      }
      const stopping = io.stopSignal();
      const server = await startFromConfig(config, { env: io.env });
      const off = io.onReloadSignal(() => {
        server.reload().then(
          () => io.stdout.write(`ocsp-stapler: reloaded ${server.status().length} certificate(s)\n`),
          (err: Error) => io.stderr.write(`ocsp-stapler: ${err.message}\n`),
        );
      });
      const staples = server
        .status()
        .map((s) => `${s.serial} ${s.staple}`)
        .join(", ");
      const serving = config.backend === "status" ? server.url : `${server.url.replace("https", "tls")} -> ${config.backend}`;
      io.stdout.write(
        `ocsp-stapler: listening on ${serving} (staples: ${staples})` +
          (server.adminUrl ? `; status ${server.adminUrl}/admin/ocsp, metrics ${server.adminUrl}/metrics` : "") +
          `; SIGHUP reloads, Ctrl-C stops\n`,
      );
      const signal = await stopping;
      off();
      await server.stop();
      io.stdout.write(`ocsp-stapler: ${signal} received, stopped\n`);
    });
  return runProgram(program, "ocsp-stapler", argv, io);
}

/** Where a checked certificate's staple comes from, for the --check line. */
function sourceText(c: { responderUrl: string; stapleSource: string; stapleFile?: string }): string {
  switch (c.stapleSource) {
    case "verified":
      return `via ${c.responderUrl}`;
    case "as-received":
      return `via ${c.responderUrl}, staple source as-received (unverified)`;
    case "file":
      return `staple source file ${c.stapleFile}`;
    default:
      return `staple source ${c.stapleSource}`;
  }
}

if (isMainModule(import.meta.url)) {
  staplerMain(process.argv.slice(2)).then((code) => process.exit(code));
}
