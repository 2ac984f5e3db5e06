import type { ReportRow } from "@ocsp-lab/harness";

/**
 * One report row for the reporters' tests: `ok` when observed is expected, MISMATCH otherwise,
 * unless `verdict` says; the detail `<client> said <observed>` unless given.
 */
export function reportRow(
  scenario: string,
  client: string,
  expected: string,
  observed: string,
  verdict?: ReportRow["verdict"],
  detail?: string,
): ReportRow {
  return {
    scenario,
    client,
    expected,
    observed,
    verdict: verdict ?? (observed === expected ? "ok" : "MISMATCH"),
    detail: detail ?? `${client} said ${observed}`,
  };
}
