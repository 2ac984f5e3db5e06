import { type PollingPolicyInput, StaplingServer } from "@ocsp-lab/stapler";
import type { ServerAvailability, ServerDriver, ServerSetup, StartedServerUnderTest } from "./server.js";
import { waitServing } from "./reload-wait.js";

/**
 * The stapler's policy as a server under test, in seconds: queries every 2 s, gives up on an
 * answer after 1 s, retries a failed query every 1 s and drops the staple after 3 failures
 * (`on_failure: invalidate`); the listener does not wait for a first staple, as nginx and
 * Apache do not.
 */
export const STAPLER_SERVER_POLICY: PollingPolicyInput = {
  query_frequency: 2,
  response_timeout: 1,
  recovery_frequency: 1,
  recovery_max_tries: 3,
  startup: "ready-after-timeout",
};

/**
 * The lab's own stapler (@ocsp-lab/stapler StaplingServer, in this process) as a server under
 * test, with STAPLER_SERVER_POLICY: it verifies each response before stapling it (RFC 6960
 * §3.2) and reloads its certificate files on reload().
 */
export class StaplerServer implements ServerDriver {
  readonly name = "stapler";
  readonly documented =
    "queries at start and every query_frequency (2 s here), staples only verified responses, retries a failed query every recovery_frequency (1 s) and drops the staple after recovery_max_tries (3) failures (README, Stapler)";
  private readonly policy: PollingPolicyInput;

  /** `policy` (seconds) replaces STAPLER_SERVER_POLICY. */
  constructor(policy: PollingPolicyInput = STAPLER_SERVER_POLICY) {
    this.policy = policy;
  }

  async available(): Promise<ServerAvailability> {
    return { ok: true };
  }

  async start(setup: ServerSetup): Promise<StartedServerUnderTest> {
    const stapler = await (
      await StaplingServer.fromFiles({
        certFile: setup.files.certFile,
        keyFile: setup.files.keyFile,
        chainFile: setup.files.chainFile,
      })
    )
      .withHost("127.0.0.1")
      .withPort(0)
      .withPolicy(this.policy)
      .withAdmin(false)
      .withWatch(0)
      .start();
    const target = { host: "127.0.0.1", port: stapler.port, servername: setup.servername, caFile: setup.files.caFile };
    const log = async () => JSON.stringify(stapler.status());
    let stopped = false;
    return {
      target,
      log,
      async reload() {
        await stapler.reload();
        await waitServing("stapler", target, setup.files.certFile, log);
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        await stapler.stop();
      },
    };
  }
}
