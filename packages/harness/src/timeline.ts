import type { ActionInput } from "@ocsp-lab/responder";
import type { Lab } from "./lab.js";
import type { TimelineStep } from "./scenario-file.js";

/**
 * Apply one timeline step to the lab: the responder's behaviours API (setStatus, setFault,
 * setDelay, setBehaviour) for the lab's certificate or every request, or a revocation in the CA.
 * See timelineStepSchema for what each action means.
 */
export async function applyStep(lab: Lab, step: TimelineStep): Promise<void> {
  const { responder } = lab;
  const serial = lab.leaf.serial;
  const counted = (action: ActionInput): { steps: Array<{ actions: ActionInput[]; count?: number }> } => ({
    steps: [{ actions: [action], ...(step.count !== undefined ? { count: step.count } : {}) }],
  });
  if (step.revoke !== undefined) {
    await lab.ca.revoke(serial, { reason: step.revoke });
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
 * at 0 is applied at once, before this yields to timers). Resolves once the last step is applied.
 */
export async function playTimeline(lab: Lab, steps: readonly TimelineStep[]): Promise<void> {
  const start = lab.clock.now().getTime();
  for (const step of steps) {
    const wait = start + step.at - lab.clock.now().getTime();
    if (wait > 0) await new Promise<void>((resolve) => lab.clock.setTimeout(resolve, wait));
    await applyStep(lab, step);
  }
}
