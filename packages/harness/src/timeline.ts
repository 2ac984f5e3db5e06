import type { ActionInput } from "@ocsp-lab/responder";
import type { Lab, LabParts } from "./lab.js";
import { InvalidStepError } from "./errors.js";
import type { TimelineStep } from "./scenario-file.js";

/**
 * Apply one timeline step to the lab: the responder's behaviours API (setStatus, setFault,
 * setDelay, setBehaviour) for the lab's certificate or every request, or a revocation or
 * release in the CA (`revoke_issuer`: of the certificate's issuing intermediate). A checkpoint
 * (a step with only an `expect`) changes nothing. Needs only the CA, the responder and the certificate, so it also runs
 * before the stapler starts (LabOptions.beforeStapler). See timelineStepSchema for what each
 * action means.
 * @throws the CA's InvalidArgumentError for `release` when the certificate is not on hold;
 * InvalidStepError for `revoke_issuer` when the root issued the certificate.
 */
export async function applyStep(lab: LabParts, step: TimelineStep): Promise<void> {
  const { responder } = lab;
  const serial = lab.leaf.serial;
  const counted = (action: ActionInput): { steps: Array<{ actions: ActionInput[]; count?: number }> } => ({
    steps: [{ actions: [action], ...(step.count !== undefined ? { count: step.count } : {}) }],
  });
  if (step.revoke !== undefined) {
    await lab.ca.revoke(serial, { reason: step.revoke });
  } else if (step.revoke_issuer !== undefined) {
    const issuer = lab.ca.issuerOf(serial);
    if (issuer === undefined || issuer === lab.ca.rootSerial)
      throw new InvalidStepError(
        "revoke_issuer",
        "the certificate is issued by the root: give certificate: { issuer: intermediate }",
      );
    await lab.ca.revoke(issuer, { reason: step.revoke_issuer });
  } else if (step.release) {
    await lab.ca.release(serial);
  } else if (step.delay !== undefined) {
    responder.setDelay(step.delay);
  } else if (step.http !== undefined) {
    responder.setBehaviour({ kind: "global" }, counted({ kind: "http", status: step.http }));
  } else if (step.responseStatus !== undefined) {
    responder.setBehaviour(
      { kind: "global" },
      counted({ kind: "responseStatus", responseStatus: step.responseStatus as "tryLater" }),
    );
  } else if (step.flaw !== undefined) {
    responder.setBehaviour({ kind: "serial", serial }, counted({ kind: "content", flaw: step.flaw }));
  } else if (step.status !== undefined) {
    responder.setBehaviour(
      { kind: "serial", serial },
      counted({ kind: "status", status: step.status, ...(step.reason !== undefined ? { revocationReason: step.reason } : {}) }),
    );
  } else if (step.responder === "normal") {
    responder.setFault(undefined);
    responder.clearStatus(serial);
    responder.setDelay(0);
  } else if (step.responder === "good" || step.responder === "revoked" || step.responder === "unknown") {
    if (step.count !== undefined)
      responder.setBehaviour({ kind: "serial", serial }, counted({ kind: "status", status: step.responder }));
    else responder.setStatus(serial, { status: step.responder });
  } else if (step.responder !== undefined) {
    responder.setFault({
      kind: step.responder === "down" ? "close" : step.responder,
      ...(step.count !== undefined ? { count: step.count } : {}),
    });
  }
}

/**
 * Play `steps` on the lab: each at `at` milliseconds after the call, on the lab's clock (a step
 * at 0 is applied at once, before this yields to timers). Steps marked `before_start` are
 * skipped: they were applied before the stapler started (see applyBeforeStart). `afterStep`,
 * when given, is awaited right after each step is applied (with the step and its index in
 * `steps`), before the next one is waited for: a step that comes due meanwhile is applied as
 * soon as it returns. Resolves once the last step is applied (and its afterStep done).
 */
export async function playTimeline(
  lab: Lab,
  steps: readonly TimelineStep[],
  afterStep?: (step: TimelineStep, index: number) => Promise<void>,
): Promise<void> {
  const start = lab.clock.now().getTime();
  for (const [index, step] of steps.entries()) {
    if (step.before_start) continue;
    const wait = start + step.at - lab.clock.now().getTime();
    if (wait > 0) await new Promise<void>((resolve) => lab.clock.setTimeout(resolve, wait));
    await applyStep(lab, step);
    await afterStep?.(step, index);
  }
}

/**
 * Apply the steps marked `before_start`, in order, to a lab whose stapler has not started
 * (LabOptions.beforeStapler): so the stapler's first query already sees them.
 */
export async function applyBeforeStart(lab: LabParts, steps: readonly TimelineStep[]): Promise<void> {
  for (const step of steps) if (step.before_start) await applyStep(lab, step);
}
