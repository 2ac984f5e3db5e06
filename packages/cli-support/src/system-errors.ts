import { dirname } from "node:path";

/** A Node.js system error (errno): what `fs` and `net` reject with. */
export interface SystemError extends Error {
  code: string;
  syscall?: string;
  path?: string;
  dest?: string;
  address?: string;
  port?: number;
}

/** Whether `err` is a Node.js system error (an `E…` code such as EACCES, EADDRINUSE). */
export function isSystemError(err: unknown): err is SystemError {
  return (
    err instanceof Error &&
    typeof (err as { code?: unknown }).code === "string" &&
    /^E[A-Z0-9_]+$/.test((err as SystemError).code)
  );
}

const VERBS: Record<string, string> = {
  open: "open",
  read: "read",
  write: "write",
  mkdir: "create the folder",
  rename: "rename a file in",
  scandir: "list the folder",
  stat: "look at",
  lstat: "look at",
  access: "use",
  unlink: "remove",
  rm: "remove",
  rmdir: "remove",
  chmod: "change the mode of",
  copyfile: "copy",
  fsync: "sync",
};

/**
 * What a file-system or listen error means and how to fix it, as one line without a stack:
 * `permission denied: cannot create the folder /x/certs (EACCES): …`, `port 8080 on 127.0.0.1
 * is in use (EADDRINUSE): …`. `context.what` names what the path is for (`state folder`, `key
 * file`), `context.fix` is a further way out (`give another --state-dir`), `context.setting`
 * the setting that chooses the port or address (`listen.port (--port)`). The file's contents
 * are never part of it.
 * Undefined when `err` is not a system error.
 */
export function describeSystemError(
  err: unknown,
  context: { what?: string; fix?: string; setting?: string } = {},
): string | undefined {
  if (!isSystemError(err)) return undefined;
  const path = err.path ?? "";
  const verb = VERBS[err.syscall ?? ""] ?? err.syscall ?? "use";
  const what = context.what ? `${context.what} ` : "";
  const or = context.fix ? `; or ${context.fix}` : "";
  const where = err.address !== undefined ? `${err.port ?? ""} on ${err.address}` : "";
  const setting = context.setting ? ` with ${context.setting}` : "";
  // What to look at: a new entry's folder, or the path itself.
  const inspect = err.syscall === "mkdir" || err.syscall === "rename" || err.syscall === "unlink" ? dirname(path) : path;
  switch (err.code) {
    case "EACCES":
    case "EPERM":
      if (err.syscall === "listen" || err.syscall === "bind")
        return `port ${where} needs privileges (ports below 1024 do) (${err.code}): choose a port of 1024 or above${setting}, or 0 for any free one${or}`;
      return `permission denied: cannot ${verb} ${what}${path} (${err.code}): ls -ld ${inspect} shows its owner and mode; make it this user's (made with sudo? chown it)${or}`;
    case "EROFS":
      return `cannot ${verb} ${what}${path}: it is on a read-only file system (EROFS): give a path on a writable one${or}`;
    case "EEXIST":
      return `cannot ${verb} ${what}${path}: a file of that name is in the way (EEXIST): remove it, or give another path${or}`;
    case "ENOTDIR":
      return `cannot ${verb} ${what}${path}: part of that path is a file, not a folder (ENOTDIR): give a folder${or}`;
    case "EISDIR":
      return `cannot ${verb} ${what}${path}: it is a folder, not a file (EISDIR): give the file's path${or}`;
    case "ENOENT":
      return `cannot ${verb} ${what}${path}: no such file or folder (ENOENT): check the path${or}`;
    case "ENOSPC":
    case "EDQUOT":
      return `cannot ${verb} ${what}${path}: no space left (${err.code}): free some space${or}`;
    case "EMFILE":
    case "ENFILE":
      return `too many open files (${err.code}) while trying to ${verb} ${what}${path}: raise the limit (ulimit -n)${or}`;
    case "EADDRINUSE":
      return `port ${where} is in use by another process (EADDRINUSE): stop that process (ss -ltnp shows it) or choose another port${setting}, 0 for any free one${or}`;
    case "EADDRNOTAVAIL":
      return `address ${err.address ?? ""} is not an address of this machine (EADDRNOTAVAIL): listen on 127.0.0.1, 0.0.0.0 or one of its own addresses${setting}${or}`;
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `host name ${err.address ?? (err as { hostname?: string }).hostname ?? ""} does not resolve (${err.code}): give an IP address or a name this machine resolves${setting}${or}`;
    default:
      return `${err.message.split("\n")[0]}${or}`;
  }
}
