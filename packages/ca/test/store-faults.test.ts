/**
 * The store under faults, with real `ocsp-ca` processes on a real state folder: a writer that
 * stalls holding the lock (it stops itself with SIGSTOP through the documented debug hook
 * OCSP_LAB_STORE_PAUSE_BEFORE_COMMIT, after reading the store and writing its temp file, right
 * before its checks and rename), a lock removed by hand, ca.json replaced behind the lock,
 * corrupted and inconsistent databases, leftovers of killed writers, and revoking twice.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { promises as fs, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  AlreadyRevokedError,
  type CaError,
  CertificateAuthority,
  InvalidArgumentError,
  PAUSE_BEFORE_COMMIT_ENV,
  StateCorruptError,
} from "@ocsp-lab/ca";
import { CRLReason } from "@ocsp-lab/ocsp";
import { eventually, tempDir } from "../../../test-support/index.js";

const BIN = new URL("../bin/ocsp-ca.js", import.meta.url).pathname;
let dir: string;
let cleanup: () => Promise<void>;
const running: ChildProcess[] = [];
beforeEach(async () => {
  ({ dir, cleanup } = await tempDir());
});
afterEach(async () => {
  for (const c of running.splice(0)) {
    if (c.exitCode === null && c.signalCode === null) {
      c.kill("SIGKILL");
      await once(c, "exit");
    }
  }
  await cleanup();
});

/** A running `ocsp-ca` child: its output so far, a wait for a stderr line, its exit. */
interface Command {
  child: ChildProcess;
  pid: number;
  out: () => string;
  err: () => string;
  /** Resolves with the first stderr line matching `re`; rejects if the command exits without one. */
  errLine: (re: RegExp) => Promise<string>;
  exit: Promise<number | null>;
}

function ocspCa(args: string[], env: NodeJS.ProcessEnv = {}): Command {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, OCSP_LAB_HOME: dir, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.push(child);
  let out = "";
  let err = "";
  const waiters = new Set<() => void>();
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => {
    err += d;
    for (const w of waiters) w();
  });
  const exit = once(child, "close").then(() => child.exitCode);
  return {
    child,
    pid: child.pid!,
    out: () => out,
    err: () => err,
    exit,
    errLine: (re) =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          const line = err.split("\n").find((l) => re.test(l));
          if (line !== undefined) {
            waiters.delete(check);
            resolve(line);
          }
        };
        waiters.add(check);
        check();
        void exit.then(() => {
          check();
          reject(new Error(`ocsp-ca ${args.join(" ")} exited without a line matching ${re}; stderr: ${err}`));
        });
      }),
  };
}

/** Run `ocsp-ca` to completion. */
async function ocspCaDone(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; out: string; err: string }> {
  const c = ocspCa(args, env);
  const code = await c.exit;
  return { code, out: c.out(), err: c.err() };
}

/** The state letter of /proc/<pid>/stat (`T` once stopped). */
function procState(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
}

/** A revoke that stops itself holding the lock, after reading the store and writing its temp file; resolves once it is stopped. */
async function stalledRevoke(serial: string, reason: string): Promise<Command> {
  const first = ocspCa(["revoke", serial, "--reason", reason], { [PAUSE_BEFORE_COMMIT_ENV]: "1" });
  await first.errLine(new RegExp(`${PAUSE_BEFORE_COMMIT_ENV}: pid ${first.pid} holds the store lock`));
  await eventually(
    () => procState(first.pid),
    (s) => s === "T",
    10_000,
    "the first revoke to be stopped",
  );
  return first;
}

/** Replace `file` the way the store does (rename), so a watcher never sees it half-written. */
async function replaceFile(file: string, text: string): Promise<void> {
  await fs.writeFile(`${file}.edit`, text);
  await fs.rename(`${file}.edit`, file);
}
const tempFiles = async (): Promise<string[]> => (await fs.readdir(dir)).filter((n) => n.endsWith(".tmp"));
const errorLines = (err: string): string[] => err.split("\n").filter((l) => l !== "" && !/waiting for the store lock/.test(l));

async function labWithTwoLeaves(): Promise<{ a: string; b: string }> {
  const ca = await CertificateAuthority.init(dir);
  const a = (await ca.issueServer()).serial;
  const b = (await ca.issueServer()).serial;
  ca.close();
  return { a, b };
}

describe("a revoke that stalls holding the store lock", () => {
  it("keeps its lock past the stale timeout: the second revoke waits, says so, and is refused; the first lands when resumed", async () => {
    const { a, b } = await labWithTwoLeaves();
    const watcher = await CertificateAuthority.open(dir, { watch: true });
    try {
      const first = await stalledRevoke(a, "keyCompromise");
      const lock = JSON.parse(await fs.readFile(join(dir, "ca.json.lock"), "utf8")) as { pid: number; since: string };
      expect(lock.pid).toBe(first.pid);

      // 6 s: longer than the 5 s after which an unrefreshed lock of unknown liveness is stale.
      const second = ocspCa(["--lock-timeout", "6", "revoke", b, "--reason", "superseded"]);
      const waiting = await second.errLine(/waiting for the store lock/);
      expect(waiting).toBe(
        `ocsp-ca: waiting for the store lock held by pid ${first.pid} since ${lock.since} (${join(dir, "ca.json.lock")})`,
      );
      expect(await second.exit).toBe(1);
      const refused = errorLines(second.err());
      expect(refused).toHaveLength(1);
      expect(refused[0]).toMatch(
        new RegExp(
          `^ocsp-ca: could not lock .*ca\\.json\\.lock within 6 s: it is held by pid ${first.pid} since .*, which is still running .*kill -CONT ${first.pid}`,
        ),
      );
      expect(second.out()).toBe("");
      expect((await CertificateAuthority.open(dir)).status(b).status).toBe("good");

      first.child.kill("SIGCONT");
      expect(await first.exit, first.err()).toBe(0);
      expect(first.out()).toMatch(new RegExp(`^revoked serial ${a} .* reason keyCompromise`));
      const after = await CertificateAuthority.open(dir);
      expect(after.status(a)).toMatchObject({ status: "revoked", revocationReason: CRLReason.keyCompromise });
      expect(after.status(b).status).toBe("good");
      await eventually(
        () => watcher.status(a).status,
        (s) => s === "revoked",
        10_000,
        "the watcher to see the first revocation",
      );

      // Retried once the first is done, the second lands too: both revocations present.
      const retried = await ocspCaDone(["revoke", b, "--reason", "superseded"]);
      expect(retried.code, retried.err).toBe(0);
      const final = await CertificateAuthority.open(dir);
      expect(final.status(a)).toMatchObject({ status: "revoked", revocationReason: CRLReason.keyCompromise });
      expect(final.status(b)).toMatchObject({ status: "revoked", revocationReason: CRLReason.superseded });
      expect(await tempFiles()).toEqual([]);
    } finally {
      watcher.close();
    }
  });

  it("whose lock is removed by hand meanwhile writes nothing when resumed (LockLostError); the other revoke stands", async () => {
    const { a, b } = await labWithTwoLeaves();
    const first = await stalledRevoke(a, "keyCompromise");
    await fs.rm(join(dir, "ca.json.lock"));
    const second = await ocspCaDone(["revoke", b, "--reason", "superseded"]);
    expect(second.code, second.err).toBe(0);

    first.child.kill("SIGCONT");
    expect(await first.exit).toBe(1);
    const lines = errorLines(first.err()).filter((l) => !l.startsWith(PAUSE_BEFORE_COMMIT_ENV));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^ocsp-ca: the store lock .*ca\.json\.lock this process took at .* is no longer its own \(the lock file was removed\): nothing was written/,
    );
    const after = await CertificateAuthority.open(dir);
    expect(after.status(a).status).toBe("good");
    expect(after.status(b)).toMatchObject({ status: "revoked", revocationReason: CRLReason.superseded });
    expect(await tempFiles()).toEqual([]);
  });

  it("finding ca.json replaced behind the lock (a hand edit) writes nothing (StoreConflictError); the edit stands", async () => {
    const { a, b } = await labWithTwoLeaves();
    const first = await stalledRevoke(a, "keyCompromise");
    const file = join(dir, "ca.json");
    const db = JSON.parse(await fs.readFile(file, "utf8")) as {
      generation: number;
      certificates: Record<string, { revocation?: unknown }>;
    };
    const read = db.generation;
    db.generation += 1;
    db.certificates[b]!.revocation = { time: "2026-01-02T03:04:05.000Z", reason: CRLReason.affiliationChanged };
    await replaceFile(file, JSON.stringify(db));

    first.child.kill("SIGCONT");
    expect(await first.exit).toBe(1);
    const lines = errorLines(first.err()).filter((l) => !l.startsWith(PAUSE_BEFORE_COMMIT_ENV));
    expect(lines).toEqual([
      `ocsp-ca: ${file} changed while this process held the store lock (generation ${read} when read, ${read + 1} now; written without the lock?): nothing was written; retry`,
    ]);
    const after = await CertificateAuthority.open(dir);
    expect(after.status(a).status).toBe("good");
    expect(after.status(b)).toMatchObject({ status: "revoked", revocationReason: CRLReason.affiliationChanged });
  });
});

describe("a change that landed", () => {
  it("reports success even when its CRL files cannot be republished, with one warning line saying so", async () => {
    const { a } = await labWithTwoLeaves();
    // The full CRL's place taken by a folder: renaming the new CRL over it fails (EISDIR).
    await fs.rm(join(dir, "ca.crl"));
    await fs.mkdir(join(dir, "ca.crl", "in-the-way"), { recursive: true });
    const r = await ocspCaDone(["revoke", a, "--reason", "keyCompromise"]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(new RegExp(`^revoked serial ${a} .* reason keyCompromise at [^;]*\n$`));
    expect(r.err.trimEnd().split("\n")).toHaveLength(1);
    expect(r.err).toMatch(
      /^ocsp-ca: warning: the change is recorded \(ca\.json generation \d+\), but its CRL files were not republished: .*EISDIR.*; publish them with `ocsp-ca crl --refresh`\n$/,
    );
    expect((await CertificateAuthority.open(dir)).status(a)).toMatchObject({ status: "revoked" });
    expect(await tempFiles()).toEqual([]);
  });
});

describe("locks and leftovers of other processes", () => {
  it("a killed writer's lock is taken over at once and its temp file removed at the next open; a stalled one's temp file is kept", async () => {
    const { a, b } = await labWithTwoLeaves();
    const first = await stalledRevoke(a, "keyCompromise");
    const [temp] = await tempFiles();
    expect(temp).toMatch(new RegExp(`^\\.[0-9a-f]{8}\\.${first.pid}\\.[0-9a-f]{12}\\.tmp$`));
    // A legacy temp file (ocsp-lab before 0.2) from two minutes ago, and one of another machine.
    const legacy = join(dir, ".0123456789ab.tmp");
    await fs.writeFile(legacy, "{}");
    const old = new Date(Date.now() - 120_000);
    await fs.utimes(legacy, old, old);
    const foreign = join(dir, ".ffffffff.1.0123456789ab.tmp");
    await fs.writeFile(foreign, "{}");

    // Opening while the holder is alive (stopped) keeps its temp file.
    expect((await ocspCaDone(["list"])).code).toBe(0);
    expect(await tempFiles()).toContain(temp);
    expect(await tempFiles()).not.toContain(".0123456789ab.tmp");

    first.child.kill("SIGKILL");
    await first.exit;
    const revoked = await ocspCaDone(["--lock-timeout", "2", "revoke", b]);
    expect(revoked.code, revoked.err).toBe(0);
    expect(revoked.err).toBe("");
    expect(await tempFiles()).toEqual([".ffffffff.1.0123456789ab.tmp"]);
    await expect(fs.access(join(dir, "ca.json.lock"))).rejects.toThrow();
    const after = await CertificateAuthority.open(dir);
    expect(after.status(a).status).toBe("good");
    expect(after.status(b).status).toBe("revoked");
  });

  it("a lock of another host is waited for while refreshed (and the wait announced), taken over once stale", async () => {
    const { a } = await labWithTwoLeaves();
    const lockFile = join(dir, "ca.json.lock");
    const since = "2026-01-02T03:04:05.000Z";
    await fs.writeFile(lockFile, JSON.stringify({ token: "t", pid: 4242, host: "elsewhere.invalid", since }));
    const waited = await ocspCaDone(["--lock-timeout", "1.5", "revoke", a]);
    expect(waited.code).toBe(1);
    expect(waited.err.split("\n").filter(Boolean)).toEqual([
      `ocsp-ca: waiting for the store lock held by pid 4242 on host elsewhere.invalid since ${since} (${lockFile})`,
      `ocsp-ca: could not lock ${lockFile} within 1.5 s: it is held by pid 4242 on host elsewhere.invalid since ${since}, which refreshes it (it is taken over once not refreshed for 5 s): retry once it is done`,
    ]);
    const stale = new Date(Date.now() - 10_000);
    await fs.utimes(lockFile, stale, stale);
    const done = await ocspCaDone(["--lock-timeout", "1.5", "revoke", a]);
    expect(done.code, done.err).toBe(0);
    expect(done.err).toBe("");
  });

  it("a stale lock folder of an older ocsp-lab (proper-lockfile) is taken over", async () => {
    const { a } = await labWithTwoLeaves();
    const lockDir = join(dir, "ca.json.lock");
    await fs.mkdir(lockDir);
    const stale = new Date(Date.now() - 10_000);
    await fs.utimes(lockDir, stale, stale);
    const done = await ocspCaDone(["revoke", a]);
    expect(done.code, done.err).toBe(0);
  });
});

describe("revoking what is already revoked", () => {
  it("keeps the first reason and time unless --force; a hold can be made final; a final revocation never becomes a hold", async () => {
    const { a, b } = await labWithTwoLeaves();
    const file = join(dir, "ca.json");
    const first = await ocspCaDone(["revoke", a, "--reason", "keyCompromise", "--time", "2026-01-02T03:04:05Z"]);
    expect(first.code, first.err).toBe(0);
    const before = await fs.readFile(file, "utf8");

    const again = await ocspCaDone(["revoke", a, "--reason", "superseded"]);
    expect(again.code).toBe(1);
    expect(again.err).toBe(
      `ocsp-ca: serial ${a} is already revoked (keyCompromise at 2026-01-02T03:04:05.000Z); the first revocation stands: pass --force (library: force: true) to replace its reason and time\n`,
    );
    expect(await fs.readFile(file, "utf8")).toBe(before);
    const hold = await ocspCaDone(["hold", a]);
    expect(hold.code).toBe(1);
    expect(hold.err).toMatch(/it is revoked for keyCompromise, which is final/);
    expect(await fs.readFile(file, "utf8")).toBe(before);

    const forced = await ocspCaDone(["revoke", a, "--reason", "superseded", "--time", "2026-02-03T04:05:06Z", "--force"]);
    expect(forced.code, forced.err).toBe(0);
    expect((await CertificateAuthority.open(dir)).status(a)).toEqual({
      status: "revoked",
      revocationReason: CRLReason.superseded,
      revocationTime: new Date("2026-02-03T04:05:06Z"),
    });

    expect((await ocspCaDone(["hold", b])).code).toBe(0);
    const heldBefore = await fs.readFile(file, "utf8");
    const holdAgain = await ocspCaDone(["hold", b]);
    expect(holdAgain.code).toBe(1);
    expect(holdAgain.err).toMatch(
      new RegExp(`^ocsp-ca: serial ${b} is already on hold \\(certificateHold at .*\\); the first hold stands`),
    );
    expect(await fs.readFile(file, "utf8")).toBe(heldBefore);
    expect((await ocspCaDone(["hold", b, "--force"])).code).toBe(0);
    const final = await ocspCaDone(["revoke", b, "--reason", "keyCompromise"]);
    expect(final.code, final.err).toBe(0);
    expect((await CertificateAuthority.open(dir)).status(b)).toMatchObject({ revocationReason: CRLReason.keyCompromise });

    const help = await ocspCaDone(["revoke", "--help"]);
    expect(help.out.replace(/\s+/g, " ")).toContain(
      "A certificate already revoked keeps its first reason and time: revoking it again is refused (exit 1, the store untouched) unless --force.",
    );
  });

  it("the library says the same: AlreadyRevokedError unless force: true", async () => {
    const ca = await CertificateAuthority.init(dir);
    const leaf = await ca.issueServer();
    await ca.revoke(leaf.serial, { reason: CRLReason.cessationOfOperation });
    await expect(ca.revoke(leaf.serial, { reason: CRLReason.keyCompromise })).rejects.toBeInstanceOf(AlreadyRevokedError);
    await expect(ca.revoke(leaf.serial, { reason: CRLReason.keyCompromise })).rejects.toMatchObject({
      code: "OCSP_LAB_CA_ALREADY_REVOKED",
    });
    await expect(ca.hold(leaf.serial, { force: true })).rejects.toBeInstanceOf(InvalidArgumentError);
    await ca.revoke(leaf.serial, { reason: CRLReason.keyCompromise, force: true });
    expect((await CertificateAuthority.open(dir)).status(leaf.serial)).toMatchObject({
      revocationReason: CRLReason.keyCompromise,
    });
  });
});

describe("a ca.json that is corrupted or inconsistent", () => {
  type Db = Record<string, unknown> & { certificates: Record<string, Record<string, unknown>>; root: string };
  it.each<[string, (db: Db) => unknown, RegExp]>([
    ["not JSON", () => "{ not json", /is unusable: it is not JSON \(/],
    [
      "the root record missing",
      (db) => {
        delete db.certificates[db.root];
        return db;
      },
      /"root" names serial [0-9a-f]+, which has no record in "certificates"$/,
    ],
    [
      "certificates an array",
      (db) => ({ ...db, certificates: [] }),
      /"certificates" is an array, not an object of records keyed by serial$/,
    ],
    ["certificates missing", (db) => ({ ...db, certificates: undefined }), /"certificates" is missing, not an object/],
    ["a non-numeric generation", (db) => ({ ...db, generation: "7" }), /"generation" is "7", not a whole number ≥ 0$/],
    ["an unknown version", (db) => ({ ...db, version: 2 }), /unknown version 2 \(this ocsp-lab reads version 1\)$/],
    [
      "a revocation reason that is no CRLReason",
      (db) => {
        const leaf = Object.values(db.certificates).find((r) => r.kind === "server")!;
        leaf.revocation = { time: "2026-01-01T00:00:00Z", reason: "oops" };
        return db;
      },
      /certificates\["[0-9a-f]+"\]\.revocation\.reason is "oops", not an RFC 5280 CRLReason code$/,
    ],
    ["null", () => null, /it is null, not an object$/],
  ])("with %s: one line naming the file and what is wrong", async (_what, mutate, message) => {
    const ca = await CertificateAuthority.init(dir);
    await ca.issueServer();
    const file = join(dir, "ca.json");
    const next = mutate(JSON.parse(await fs.readFile(file, "utf8")) as Db);
    await fs.writeFile(file, typeof next === "string" ? next : JSON.stringify(next));
    const r = await ocspCaDone(["list"]);
    expect(r.code).toBe(1);
    expect(r.err.trimEnd().split("\n")).toHaveLength(1);
    expect(r.err).toContain(`ocsp-ca: CA database ${file} is unusable: `);
    expect(r.err.trimEnd()).toMatch(message);
    expect(r.err).not.toMatch(/Cannot read properties|unexpected error/);
    await expect(CertificateAuthority.open(dir)).rejects.toBeInstanceOf(StateCorruptError);
  });

  it("naming a root key file that is gone: one line saying which", async () => {
    const ca = await CertificateAuthority.init(dir);
    await fs.rm(join(dir, "ca.key"));
    const r = await ocspCaDone(["list"]);
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      `ocsp-ca: CA database ${join(dir, "ca.json")} is unusable: the root ${ca.rootSerial}'s certificate or key cannot be loaded (ENOENT)\n`,
    );
  });

  it("a watching handle that cannot reload it keeps its last good state and reports the error once per failure", async () => {
    const ca = await CertificateAuthority.init(dir);
    const leaf = await ca.issueServer();
    await ca.revoke(leaf.serial, { reason: CRLReason.keyCompromise });
    const errors: CaError[] = [];
    const watcher = await CertificateAuthority.open(dir, { watch: true, onWatchError: (e) => errors.push(e) });
    try {
      const file = join(dir, "ca.json");
      const good = await fs.readFile(file, "utf8");
      await replaceFile(file, good.slice(0, good.length / 2));
      await eventually(
        () => errors.length,
        (n) => n === 1,
        10_000,
        "the reload error",
      );
      expect(errors[0]).toBeInstanceOf(StateCorruptError);
      expect(errors[0]!.message).toMatch(new RegExp(`^CA database ${file} is unusable: it is not JSON`));
      expect(watcher.status(leaf.serial)).toMatchObject({ status: "revoked", revocationReason: CRLReason.keyCompromise });

      const db = JSON.parse(good) as Db;
      delete db.certificates[db.root];
      await replaceFile(file, JSON.stringify(db));
      await eventually(
        () => errors.length,
        (n) => n === 2,
        10_000,
        "the second reload error",
      );
      expect(errors[1]!.message).toMatch(/"root" names serial [0-9a-f]+, which has no record in "certificates"$/);
      expect(watcher.status(leaf.serial).status).toBe("revoked");

      // Repaired (by a later write): followed again.
      await replaceFile(file, good);
      const writer = await CertificateAuthority.open(dir);
      const other = await writer.issueServer();
      await eventually(
        () => watcher.status(other.serial).status,
        (s) => s === "good",
        10_000,
        "the watcher to follow again",
      );
      expect(errors).toHaveLength(2);
    } finally {
      watcher.close();
    }
  });
});
