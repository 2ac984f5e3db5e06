import express, { type Express } from "express";
import type * as x509 from "@peculiar/x509";
import type { IncomingMessage, ServerResponse } from "node:http";
import { bearerAuth } from "@ocsp-lab/cli-support";
import type { ResponderMetrics } from "./metrics.js";

/**
 * Where CRLs come from: the DER of the full (or delta) CRL of the CA with this serial, or
 * undefined when there is none.
 */
export interface CrlSource {
  crl(issuerSerial: string, delta: boolean): Promise<Uint8Array | undefined>;
}

/** What the non-OCSP routes need. */
export interface ResponderAppDeps {
  metrics: ResponderMetrics;
  /** Serves `GET /crl/<issuer serial>.crl` and `/crl/<issuer serial>-delta.crl` when given. */
  crls?: CrlSource;
  /** Serves `GET /ca/<issuer serial>.der` and `.pem` (AIA caIssuers) for these issuers when given. */
  issuerCertificates?: () => ReadonlyArray<{ id: string; certificate: x509.X509Certificate }>;
  /** The admin router, mounted at `/admin` when the admin API shares the OCSP port. */
  admin?: express.Router;
  /** The admin token: when given, `/metrics` needs `Authorization: Bearer <token>` too (401 otherwise). */
  metricsToken?: string;
}

const CRL_PATH = /^\/crl\/([0-9a-f]+)(-delta)?\.crl$/;
const CA_PATH = /^\/ca\/([0-9a-f]+)\.(der|pem)$/;
/** Paths express serves on the OCSP port; every other GET is an OCSP request. */
const OTHER_PREFIXES = ["/admin", "/crl/", "/ca/"] as const;

/**
 * The express app for everything that is not the OCSP hot path: CRL distribution points
 * (RFC 5280 §4.2.1.13, DER as `application/pkix-crl`, RFC 2585), the issuers' certificates for
 * AIA caIssuers (RFC 5280 §4.2.2.1: `/ca/<issuer serial>.der`, one DER certificate as
 * `application/pkix-cert`, RFC 2585 §4.1; `.pem` the same as PEM, for people), Prometheus
 * `/metrics` (behind the admin token when there is one), the admin API, and 405 for methods
 * OCSP does not use.
 */
export function createResponderApp(deps: ResponderAppDeps): Express {
  const app = express();
  app.disable("x-powered-by");
  app.disable("etag");
  app.get("/metrics", bearerAuth(deps.metricsToken), (_req, res, next) => {
    deps.metrics.registry
      .metrics()
      .then((text) => res.set("Content-Type", deps.metrics.registry.contentType).send(text))
      .catch(next);
  });
  if (deps.admin) app.use("/admin", deps.admin);
  app.get(CRL_PATH, (req, res, next) => {
    const [, serial, delta] = CRL_PATH.exec(req.path)!;
    if (!deps.crls) {
      next();
      return;
    }
    deps.crls
      .crl(serial!, delta !== undefined)
      .then((der) => {
        if (!der) {
          res.status(404).type("text/plain").send(`no CRL for issuer ${serial}\n`);
          return;
        }
        res.status(200).set({ "Content-Type": "application/pkix-crl", "Cache-Control": "no-cache" }).end(Buffer.from(der));
      })
      .catch(next);
  });
  app.get(CA_PATH, (req, res, next) => {
    const [, serial, format] = CA_PATH.exec(req.path)!;
    if (!deps.issuerCertificates) {
      next();
      return;
    }
    const issuer = deps.issuerCertificates().find((i) => i.id === serial);
    if (!issuer) {
      res.status(404).type("text/plain").send(`no issuer ${serial} here\n`);
      return;
    }
    if (format === "der")
      res.status(200).set({ "Content-Type": "application/pkix-cert" }).end(Buffer.from(issuer.certificate.rawData));
    else
      res
        .status(200)
        .type("application/x-pem-file")
        .send(`${issuer.certificate.toString("pem")}\n`);
  });
  app.use((req, res, next) => {
    // /admin (served on its own port), /crl/ and /ca/ (no source) exist elsewhere or not at all.
    if (OTHER_PREFIXES.some((p) => req.path.startsWith(p))) {
      res.status(404).type("text/plain").send(`nothing at ${req.path} on this port\n`);
      return;
    }
    next();
  });
  app.use((req, res) => {
    res.set("Allow", "GET, POST").status(405).type("text/plain").send(`OCSP is served over GET and POST, not ${req.method}\n`);
  });
  return app;
}

/**
 * The request router of the responder's port: OCSP GET/POST go straight to the hot-path
 * handler; `/admin`, `/metrics`, `/crl/` and `/ca/` go to express. An OCSP GET path is base64 of a DER
 * SEQUENCE (it starts with "M"), so it never collides with those prefixes.
 */
export function routeRequests(
  ocsp: (req: IncomingMessage, res: ServerResponse) => void,
  app: Express,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const url = req.url ?? "/";
    const other = url === "/metrics" || OTHER_PREFIXES.some((p) => url.startsWith(p));
    if (!other && (req.method === "POST" || req.method === "GET")) ocsp(req, res);
    else app(req, res);
  };
}
