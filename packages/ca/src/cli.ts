import { promises as fs } from "node:fs";
import { Command, InvalidArgumentError as CommanderArgumentError, Option } from "commander";
import * as x509 from "@peculiar/x509";
import * as asn1js from "asn1js";
import * as pkijs from "pkijs";
import { CertificateAuthority, type CaOpenOptions } from "./certificate-authority.js";
import { describeLockHolder } from "./lock.js";
import type { IssueOptions, IssuedCertificate } from "./issuance.js";
import { CRLReason, CRL_REASON_NAMES, crlReasonName, normalizeSerial, parseCrlReason } from "@ocsp-lab/ocsp";
import { toOpensslIndex } from "./export/openssl-index.js";
import { toPemBundle } from "./export/pem-bundle.js";
import { toPkcs12 } from "./export/pkcs12.js";
import { KEY_TYPES, parseKeyType } from "./keys.js";
import { PROFILES, SIGNER_FLAWS, type Profile, type SignerFlaw } from "./profiles.js";
import { configureProgram, isMainModule, resolveStateDir, runProgram, type CliIo } from "@ocsp-lab/cli-support";
import type { CertificateRecord } from "./store.js";
import { serialOfTarget } from "./target.js";

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];
const date =
  (flag: string) =>
  (v: string): Date => {
    const d = new Date(v);
    if (Number.isNaN(d.getTime()))
      throw new CommanderArgumentError(`${flag} must be an ISO 8601 date such as 2026-01-31T12:00:00Z, got "${v}"`);
    return d;
  };
const number =
  (flag: string, integer = false) =>
  (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0 || (integer && !Number.isInteger(n)))
      throw new CommanderArgumentError(`${flag} must be a ${integer ? "whole " : ""}number ≥ 0, got "${v}"`);
    return n;
  };
const choice =
  <T extends string>(flag: string, allowed: readonly T[]) =>
  (v: string): T => {
    if (!(allowed as readonly string[]).includes(v))
      throw new CommanderArgumentError(`${flag} must be one of ${allowed.join(", ")}, got "${v}"`);
    return v as T;
  };

/** What `ocsp-ca export --format` writes. */
const EXPORT_FORMATS = ["pkcs12", "fullchain", "chain", "pem-bundle", "index"] as const;
type ExportFormat = (typeof EXPORT_FORMATS)[number];

interface IssueFlags {
  profile?: Profile;
  issuer?: string;
  dns?: string[];
  ip?: string[];
  email?: string[];
  uri?: string[];
  cn?: string;
  org?: string;
  ou?: string;
  country?: string;
  keyType?: string;
  days?: number;
  notBefore?: Date;
  notAfter?: Date;
  backdate?: number;
  ocspUrl?: string;
  /** A URL, false for --no-ca-issuers-url, undefined for the default. */
  caIssuersUrl?: string | false;
  crlUrl?: string;
  mustStaple?: boolean;
  pathLength?: number;
  flaw?: SignerFlaw;
  serial?: string;
  json?: boolean;
}

function issueOptions(cmd: Command, withKey: boolean): Command {
  cmd
    .addOption(new Option("--issuer <serial>", "serial of the issuing CA (default the root)"))
    .option("--dns <name>", "DNS SAN (repeatable)", collect)
    .option("--ip <address>", "IP SAN (repeatable)", collect)
    .option("--email <address>", "email SAN, client certificates (repeatable)", collect)
    .option("--uri <uri>", "URI SAN, client certificates (repeatable)", collect)
    .option("--cn <name>", "subject common name (default the first SAN)")
    .option("--org <name>", "subject organization")
    .option("--ou <name>", "subject organizational unit")
    .option("--country <cc>", "subject country (two letters)")
    .addOption(new Option("--days <n>", "validity in days").argParser(number("--days")))
    .addOption(new Option("--not-before <iso8601>", "validity start").argParser(date("--not-before")))
    .addOption(new Option("--not-after <iso8601>", "validity end").argParser(date("--not-after")))
    .addOption(new Option("--backdate <seconds>", "start this long before now (default 3600)").argParser(number("--backdate")))
    .option("--ocsp-url <url>", "AuthorityInfoAccess OCSP URL")
    .option(
      "--ca-issuers-url <url>",
      "AuthorityInfoAccess caIssuers URL (default with --ocsp-url: that responder's /ca/<issuer serial>.der, which an ocsp-lab responder serves)",
    )
    .option("--no-ca-issuers-url", "no caIssuers URL, even with --ocsp-url")
    .option("--crl-url <url>", "CRL distribution point URL")
    .option("--must-staple", "RFC 7633 TLS Feature status_request")
    .addOption(
      new Option("--path-length <n>", "intermediates: pathLenConstraint (default 0)").argParser(number("--path-length", true)),
    )
    .addOption(
      new Option("--flaw <flaw>", `ocsp-signer: a deliberate defect (${SIGNER_FLAWS.join(", ")})`).argParser(
        choice("--flaw", SIGNER_FLAWS),
      ),
    )
    .option("--serial <hex>", "serial number of the new certificate (default 16 random bytes)")
    .option("--json", "print the result as JSON");
  if (withKey)
    cmd.addOption(
      new Option("--key-type <type>", `key type (${KEY_TYPES.join(", ")}; default the issuer's)`).argParser(
        choice("--key-type", KEY_TYPES),
      ),
    );
  return cmd;
}

/**
 * The caIssuers URL (RFC 5280 §4.2.2.1) of the issuer `issuerSerial` on the ocsp-lab responder
 * whose OCSP URL is `ocspUrl`: `/ca/<issuer serial>.der` at its origin (the responder serves one
 * DER certificate there, as `application/pkix-cert`).
 * @throws TypeError when `ocspUrl` is not a URL.
 */
export function labCaIssuersUrl(ocspUrl: string, issuerSerial: string): string {
  return new URL(`/ca/${issuerSerial}.der`, ocspUrl).toString();
}

/** The serial of the CA `f` issues from: the one given (normalized), or the root. */
function issuerOf(ca: CertificateAuthority, f: IssueFlags): string {
  return f.issuer ? normalizeSerial(f.issuer) : ca.rootSerial;
}

/**
 * The issue options of `f`, for a certificate issued by `issuerSerial` (the one it names, or the
 * root): with an OCSP URL and no caIssuers choice, the caIssuers URL of that responder.
 */
function toIssueOptions(f: IssueFlags, issuerSerial: string): IssueOptions {
  const o: IssueOptions = {};
  // An OCSP URL that is no URL gets no default: the profile check names it.
  if (f.ocspUrl && f.caIssuersUrl === undefined && URL.canParse(f.ocspUrl))
    o.caIssuersUrl = labCaIssuersUrl(f.ocspUrl, issuerSerial);
  if (f.issuer) o.issuer = f.issuer;
  if (f.dns) o.dnsNames = f.dns;
  if (f.ip) o.ipAddresses = f.ip;
  if (f.email) o.emails = f.email;
  if (f.uri) o.uris = f.uri;
  if (f.cn || f.org || f.ou || f.country) {
    o.subject = {
      ...(f.cn ? { commonName: f.cn } : {}),
      ...(f.org ? { organization: f.org } : {}),
      ...(f.ou ? { organizationalUnit: f.ou } : {}),
      ...(f.country ? { country: f.country } : {}),
    };
  }
  if (f.keyType) o.keyType = parseKeyType(f.keyType);
  if (f.days !== undefined) o.validityDays = f.days;
  if (f.notBefore) o.notBefore = f.notBefore;
  if (f.notAfter) o.notAfter = f.notAfter;
  if (f.backdate !== undefined) o.backdateSeconds = f.backdate;
  if (f.ocspUrl) o.ocspUrl = f.ocspUrl;
  if (f.caIssuersUrl) o.caIssuersUrl = f.caIssuersUrl;
  if (f.crlUrl) o.crlUrl = f.crlUrl;
  if (f.mustStaple) o.mustStaple = true;
  if (f.pathLength !== undefined) o.pathLength = f.pathLength;
  if (f.flaw) o.flaw = f.flaw;
  if (f.serial !== undefined) o.serial = f.serial;
  return o;
}

function describeIssued(c: IssuedCertificate): string {
  return [
    `issued ${c.profile} certificate serial ${c.serial} (${c.certificate.subject}), valid until ${c.certificate.notAfter.toISOString()}`,
    `  certificate  ${c.certFile}`,
    ...(c.keyFile ? [`  key          ${c.keyFile}`] : []),
    `  chain        ${c.chainFile}`,
    `  fullchain    ${c.fullchainFile}`,
  ].join("\n");
}

function issuedJson(c: IssuedCertificate): object {
  return {
    serial: c.serial,
    profile: c.profile,
    subject: c.certificate.subject,
    notBefore: c.certificate.notBefore.toISOString(),
    notAfter: c.certificate.notAfter.toISOString(),
    certFile: c.certFile,
    ...(c.keyFile ? { keyFile: c.keyFile } : {}),
    chainFile: c.chainFile,
    fullchainFile: c.fullchainFile,
  };
}

function statusWord(r: CertificateRecord): string {
  if (!r.revocation) return "good";
  return `revoked (${crlReasonName(r.revocation.reason)} at ${r.revocation.time})`;
}

/**
 * Run the `ocsp-ca` command with `argv` (without node and script). Resolves with the exit code:
 * 0 success (the change is on disk), 1 failure (nothing was written), 2 usage error. Errors are
 * printed as one line without a stack trace and leave the store untouched (every change is one
 * locked, atomic write that happens last, and lands only if the lock is still its own and the
 * store unchanged since it was read). A command waiting for the store lock says so on stderr
 * after a second; one whose change landed but whose CRL files could not be republished exits 0
 * with a warning line on stderr.
 */
export async function caMain(
  argv: string[],
  io: CliIo = { stdout: process.stdout, stderr: process.stderr, env: process.env },
): Promise<number> {
  const out = (s: string): void => void io.stdout.write(s.endsWith("\n") ? s : `${s}\n`);
  const program = configureProgram(new Command("ocsp-ca"), "ocsp-ca", io, import.meta.url)
    .description("The ocsp-lab private CA: issue, revoke, hold, CRLs and exports in one state folder.")
    .option("--state-dir <dir>", "state folder (default $OCSP_LAB_HOME or ./.ocsp-lab)")
    .addOption(
      new Option(
        "--lock-timeout <seconds>",
        "how long a change waits for the store lock another command holds (default 10); the lock of a command that still runs is never taken from it",
      ).argParser(number("--lock-timeout")),
    )
    .addHelpText(
      "after",
      [
        "",
        "Examples:",
        "  ocsp-ca init                                         create the CA in ./.ocsp-lab",
        "  ocsp-ca issue --dns localhost --ip 127.0.0.1 --ocsp-url http://127.0.0.1:8080",
        "  ocsp-ca issue --profile client --email me@lab.test",
        "  ocsp-ca issue --profile intermediate --path-length 0",
        "  ocsp-ca sign-csr req.csr --dns app.lab.test",
        "  ocsp-ca revoke certs/<serial>/cert.pem --reason keyCompromise",
        "  ocsp-ca revoke <serial> --reason keyCompromise --force   (replace the reason of a revoked one)",
        "  ocsp-ca hold <serial>   ocsp-ca release <serial>",
        "  ocsp-ca list --revoked --json",
        "  ocsp-ca crl --refresh",
        "  ocsp-ca export <serial> --format pkcs12 --password changeit --out leaf.p12",
        "  ocsp-ca export <serial> --format pem-bundle --out site.pem   (certificate, key, chain: HAProxy's crt)",
        "  ocsp-ca export --format index --out index.txt   (then: openssl ocsp -index index.txt ...)",
      ].join("\n"),
    );
  const stateDir = (): string => resolveStateDir(program.opts<{ stateDir?: string }>().stateDir, io.env);
  /** Whether a change of this run landed with a warning (its CRL files not republished). */
  let warned = false;
  const caOptions = (): CaOpenOptions => {
    const { lockTimeout } = program.opts<{ lockTimeout?: number }>();
    return {
      ...(lockTimeout !== undefined ? { lockTimeoutSeconds: lockTimeout } : {}),
      onLockWait: (h) => void io.stderr.write(`ocsp-ca: ${describeLockHolder(h)}\n`),
      onWarning: (w) => {
        warned = true;
        io.stderr.write(`ocsp-ca: warning: ${w.message}\n`);
      },
    };
  };
  const open = (): Promise<CertificateAuthority> => CertificateAuthority.open(stateDir(), caOptions());

  program
    .command("init")
    .description("create the CA (root and OCSP signer) in the state folder")
    .addOption(
      new Option(
        "--key-type <type>",
        `key type of the root: ${KEY_TYPES.filter((t) => t !== "ed25519").join(", ")} (default ecdsa-p256)`,
      ).argParser(choice("--key-type", KEY_TYPES)),
    )
    .option("--cn <name>", "root common name")
    .option("--json", "print the result as JSON")
    .action(async (f: { keyType?: string; cn?: string; json?: boolean }) => {
      const ca = await CertificateAuthority.init(stateDir(), {
        ...caOptions(),
        ...(f.keyType ? { keyType: parseKeyType(f.keyType) } : {}),
        ...(f.cn ? { commonName: f.cn } : {}),
      });
      if (f.json)
        out(
          JSON.stringify({
            stateDir: ca.stateDir,
            caFile: ca.rootFile,
            rootSerial: ca.rootSerial,
            ocspSignerFile: ca.ocspSignerFile,
            crlFile: ca.crlFiles().full,
          }),
        );
      else
        out(
          [
            `created CA "${ca.root.certificate.subject}" (serial ${ca.rootSerial}) in ${ca.stateDir}`,
            `  trust anchor  ${ca.rootFile}`,
            `  OCSP signer   ${ca.ocspSignerFile}`,
            `  CRL           ${ca.crlFiles().full}  (an ocsp-lab responder serves it at /crl/${ca.rootSerial}.crl)`,
            "next: ocsp-ca issue --dns localhost --ip 127.0.0.1",
          ].join("\n"),
        );
    });

  issueOptions(program.command("issue").description(`issue a certificate (profiles: ${PROFILES.join(", ")})`), true)
    .addOption(
      new Option("--profile <profile>", "what the certificate is for (default server)").argParser(choice("--profile", PROFILES)),
    )
    .action(async (f: IssueFlags) => {
      const ca = await open();
      const issued = await ca.issue(f.profile ?? "server", toIssueOptions(f, issuerOf(ca, f)));
      out(f.json ? JSON.stringify(issuedJson(issued)) : describeIssued(issued));
    });

  issueOptions(
    program
      .command("sign-csr")
      .description("sign a PKCS#10 CSR (its signature must verify); subject and SANs from the CSR unless given")
      .argument("<csrFile>"),
    false,
  )
    .addOption(
      new Option("--profile <profile>", "what the certificate is for (default server)").argParser(choice("--profile", PROFILES)),
    )
    .action(async (file: string, f: IssueFlags) => {
      const text = await fs.readFile(file, "utf8").catch(() => {
        throw new CommanderArgumentError(`cannot read CSR file "${file}"`);
      });
      const ca = await open();
      const issued = await ca.signCsr(text, f.profile ?? "server", toIssueOptions(f, issuerOf(ca, f)));
      out(f.json ? JSON.stringify(issuedJson(issued)) : describeIssued(issued));
    });

  program
    .command("revoke")
    .description("revoke a certificate; the CRLs are republished and a running responder sees it within 1 s")
    .argument("<serial|certFile>")
    .option("--reason <reason>", `RFC 5280 CRLReason (${CRL_REASON_NAMES.join(", ")})`, "unspecified")
    .addOption(new Option("--time <iso8601>", "revocation time (default now)").argParser(date("--time")))
    .addOption(new Option("--invalidity-date <iso8601>", "RFC 5280 invalidity date").argParser(date("--invalidity-date")))
    .option("--force", "replace the reason, time and invalidity date of a certificate already revoked or on hold")
    .option("--json", "print the record as JSON")
    .addHelpText(
      "after",
      [
        "",
        "A certificate already revoked keeps its first reason and time: revoking it again is refused",
        "(exit 1, the store untouched) unless --force. A certificate on hold (certificateHold) can be",
        "revoked for a final reason without --force: that makes the hold permanent (RFC 5280 5.3.1).",
        "A final revocation never becomes a hold, even with --force.",
      ].join("\n"),
    )
    .action(
      async (target: string, f: { reason: string; time?: Date; invalidityDate?: Date; force?: boolean; json?: boolean }) => {
        const reason = parseCrlReason(f.reason);
        const serial = await serialOfTarget(target);
        const ca = await open();
        const rec = await ca.revoke(serial, {
          reason,
          ...(f.time ? { time: f.time } : {}),
          ...(f.invalidityDate ? { invalidityDate: f.invalidityDate } : {}),
          ...(f.force ? { force: true } : {}),
        });
        out(
          f.json
            ? JSON.stringify(rec)
            : `revoked serial ${rec.serial} (${rec.subject}) reason ${crlReasonName(rec.revocation!.reason)} at ${rec.revocation!.time}${warned ? "" : "; CRLs republished"}`,
        );
      },
    );

  program
    .command("hold")
    .description(
      "put a certificate on hold (certificateHold); undo with release, or make it permanent with revoke --reason <final reason>; refused when already on hold (unless --force) or revoked for a final reason",
    )
    .argument("<serial|certFile>")
    .option("--force", "hold again a certificate already on hold (a new hold time)")
    .option("--json", "print the record as JSON")
    .action(async (target: string, f: { force?: boolean; json?: boolean }) => {
      const serial = await serialOfTarget(target);
      const rec = await (await open()).hold(serial, f.force ? { force: true } : {});
      out(
        f.json
          ? JSON.stringify(rec)
          : `serial ${rec.serial} is on hold (certificateHold); release it with: ocsp-ca release ${rec.serial}`,
      );
    });

  program
    .command("release")
    .description("release a certificate from hold (delta CRLs list it as removeFromCRL)")
    .argument("<serial|certFile>")
    .option("--json", "print the record as JSON")
    .action(async (target: string, f: { json?: boolean }) => {
      const serial = await serialOfTarget(target);
      const rec = await (await open()).release(serial);
      out(f.json ? JSON.stringify(rec) : `serial ${rec.serial} released from hold; it is good again`);
    });

  program
    .command("list")
    .description("list the certificates of the CA")
    .option("--revoked", "only revoked and held ones")
    .option("--json", "print JSON")
    .action(async (f: { revoked?: boolean; json?: boolean }) => {
      const ca = await open();
      const rows = f.revoked ? ca.listRevoked() : ca.list();
      if (f.json) {
        out(JSON.stringify(rows));
        return;
      }
      for (const r of rows) out(`${r.serial}  ${r.kind.padEnd(12)}  ${statusWord(r).padEnd(10)}  ${r.subject}`);
      out(`${rows.length} certificate(s)`);
    });

  program
    .command("show")
    .description("show one certificate: record, status, files")
    .argument("<serial|certFile>")
    .option("--json", "print JSON")
    .action(async (target: string, f: { json?: boolean }) => {
      const serial = await serialOfTarget(target);
      const ca = await open();
      const rec = ca.get(serial);
      if (!rec)
        throw new CommanderArgumentError(`no certificate with serial ${serial} in ${ca.stateDir}; list them with: ocsp-ca list`);
      if (f.json) {
        out(JSON.stringify({ ...rec, status: ca.status(serial).status }));
        return;
      }
      const cert = new x509.X509Certificate(await fs.readFile(ca.store.path(rec.certFile), "utf8"));
      out(
        [
          `serial      ${rec.serial}`,
          `kind        ${rec.kind}${rec.flaw ? ` (flaw: ${rec.flaw})` : ""}`,
          `subject     ${rec.subject}`,
          `issuer      ${cert.issuer}`,
          `validity    ${rec.notBefore} → ${rec.notAfter}`,
          `key type    ${rec.keyType}`,
          `status      ${statusWord(rec)}`,
          `certificate ${ca.store.path(rec.certFile)}`,
          ...(rec.keyFile ? [`key         ${ca.store.path(rec.keyFile)}`] : []),
        ].join("\n"),
      );
    });

  program
    .command("crl")
    .description("print where the CRLs are; --refresh publishes a new full (base) CRL and an empty delta")
    .option("--issuer <serial>", "the CA (default the root)")
    .option("--refresh", "publish fresh CRLs for every CA now")
    .option("--json", "print JSON")
    .action(async (f: { issuer?: string; refresh?: boolean; json?: boolean }) => {
      const ca = await open();
      if (f.refresh) await ca.refreshCrls();
      const issuer = f.issuer ? await serialOfTarget(f.issuer) : ca.rootSerial;
      const issuerRec = ca.get(issuer);
      if (!issuerRec || (issuerRec.kind !== "root" && issuerRec.kind !== "intermediate"))
        throw new CommanderArgumentError(`--issuer ${issuer} is not a CA of ${ca.stateDir}; list them with: ocsp-ca list`);
      const files = ca.crlFiles(issuer);
      // pkijs over asn1js with a node limit sized for big CRLs (x509.X509Crl stops near 10,000 ASN.1 nodes).
      const der = new Uint8Array(await fs.readFile(files.fullDer));
      const asn1 = asn1js.fromBER(der, { maxNodes: 10_000_000 });
      const crl = new pkijs.CertificateRevocationList({ schema: asn1.result });
      const info = {
        issuer,
        thisUpdate: crl.thisUpdate.value.toISOString(),
        nextUpdate: crl.nextUpdate?.value.toISOString(),
        entries: crl.revokedCertificates?.length ?? 0,
        files,
      };
      if (f.json) out(JSON.stringify(info));
      else
        out(
          `CRL of ${ca.get(issuer)?.subject ?? issuer}: ${info.entries} entr${info.entries === 1 ? "y" : "ies"}, thisUpdate ${info.thisUpdate}, nextUpdate ${info.nextUpdate}\n  full   ${files.full} (DER ${files.fullDer})\n  delta  ${files.delta} (DER ${files.deltaDer})\ncheck: openssl crl -in ${files.full} -CAfile ${ca.rootFile} -noout`,
        );
    });

  program
    .command("export")
    .description("export a certificate (pkcs12, pem chain, pem bundle with its key) or the whole CA as an openssl index.txt")
    .argument("[serial|certFile]", "the certificate (not needed for --format index)")
    .addOption(
      new Option("--format <format>", "pkcs12, fullchain, chain, pem-bundle (certificate, key, chain in one PEM) or index")
        .argParser(choice("--format", EXPORT_FORMATS))
        .makeOptionMandatory(),
    )
    .option("--password <password>", "PKCS#12 password")
    .option("--issuer <serial>", "index: the CA whose certificates to list (default the root)")
    .option("--out <file>", "where to write (default stdout; PKCS#12 needs a file)")
    .action(async (target: string | undefined, f: { format: ExportFormat; password?: string; issuer?: string; out?: string }) => {
      const ca = await open();
      let data: string | Uint8Array;
      if (f.format === "index") {
        // One issuer per index.txt, as `openssl ocsp -index … -CA` serves one CA: what it issued,
        // intermediates included. Reasons OpenSSL has no name for are written as unspecified.
        const issuer = f.issuer ? await serialOfTarget(f.issuer) : ca.rootSerial;
        const issuerRec = ca.get(issuer);
        if (!issuerRec || (issuerRec.kind !== "root" && issuerRec.kind !== "intermediate"))
          throw new CommanderArgumentError(`--issuer ${issuer} is not a CA of ${ca.stateDir}; list them with: ocsp-ca list`);
        const nameable = new Set<CRLReason>([0, 1, 2, 3, 4, 5, 6, 8]);
        const entries = await Promise.all(
          ca
            .list()
            .filter((r) => r.kind !== "root" && r.flaw !== "other-ca" && ca.issuerOf(r.serial) === issuer)
            .map(async (r) => {
              const reason = r.revocation && (nameable.has(r.revocation.reason) ? r.revocation.reason : CRLReason.unspecified);
              if (r.revocation && reason !== r.revocation.reason)
                io.stderr.write(
                  `note: serial ${r.serial} is revoked for ${crlReasonName(r.revocation.reason)}, which index.txt cannot name; written as unspecified\n`,
                );
              return {
                serial: r.serial,
                notAfter: new Date(r.notAfter),
                subject: new x509.X509Certificate(await fs.readFile(ca.store.path(r.certFile), "utf8")).subject,
                ...(r.revocation ? { revocation: { time: new Date(r.revocation.time), reason: reason! } } : {}),
              };
            }),
        );
        data = toOpensslIndex(entries);
      } else {
        if (!target) throw new CommanderArgumentError(`--format ${f.format} needs a serial or certificate file`);
        const serial = await serialOfTarget(target);
        const rec = ca.get(serial);
        if (!rec)
          throw new CommanderArgumentError(
            `no certificate with serial ${serial} in ${ca.stateDir}; list them with: ocsp-ca list`,
          );
        const read = (rel: string | undefined): Promise<string> =>
          rel ? fs.readFile(ca.store.path(rel), "utf8") : Promise.resolve("");
        if (f.format === "pkcs12") {
          if (!f.password)
            throw new CommanderArgumentError("--format pkcs12 needs --password (Java keystores refuse an empty one)");
          if (!f.out) throw new CommanderArgumentError("--format pkcs12 needs --out <file> (it is binary)");
          if (!rec.keyFile)
            throw new CommanderArgumentError(
              `serial ${serial} was signed from a CSR; its key is not here, so there is no PKCS#12 to make`,
            );
          const chain = await read(rec.chainFile);
          data = toPkcs12({
            keyPem: await read(rec.keyFile),
            certPem: await read(rec.certFile),
            chainPems: chain.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [],
            password: f.password,
            friendlyName: rec.subject,
          });
        } else if (f.format === "pem-bundle") {
          if (!rec.keyFile)
            throw new CommanderArgumentError(
              `serial ${serial} was signed from a CSR; its key is not in the CA, so there is no bundle with its key to make (export --format fullchain instead)`,
            );
          data = toPemBundle({
            certPem: await read(rec.certFile),
            keyPem: await read(rec.keyFile),
            chainPem: await read(rec.chainFile),
          });
        } else {
          data = await read(f.format === "fullchain" ? rec.fullchainFile : rec.chainFile);
        }
      }
      const holdsKey = f.format === "pkcs12" || f.format === "pem-bundle";
      if (f.out) {
        await fs.writeFile(f.out, data, { mode: holdsKey ? 0o600 : 0o644 });
        // An existing file keeps its mode on write; a PKCS#12 or a bundle holds a key, so make it private.
        if (holdsKey) await fs.chmod(f.out, 0o600);
        io.stderr.write(`wrote ${f.format} to ${f.out}\n`);
      } else io.stdout.write(typeof data === "string" ? data : Buffer.from(data));
    });

  if (argv.length === 0) {
    program.outputHelp();
    return 2;
  }
  return runProgram(program, "ocsp-ca", argv, io);
}

if (isMainModule(import.meta.url)) {
  caMain(process.argv.slice(2)).then((code) => process.exit(code));
}
