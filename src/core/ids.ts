import { PyroError } from "./errors.js";

/** Ids are generated here and checked on every use, so a bad id never reaches a path join. */
export type IdKind = "vm" | "ws";

const ID_RE = { vm: /^vm_[0-9a-f]{16}$/, ws: /^ws_[0-9a-f]{16}$/ } as const;
const LABEL = { vm: "VM id", ws: "workspace id" } as const;

export function newId(kind: IdKind): string {
  return `${kind}_${process.getBuiltinModule("node:crypto").randomBytes(8).toString("hex")}`;
}

export function isValidId(kind: IdKind, id: unknown): id is string {
  return typeof id === "string" && ID_RE[kind].test(id);
}

export function checkId(kind: IdKind, id: unknown): string {
  if (isValidId(kind, id)) return id;
  const shown =
    typeof id === "string" ? JSON.stringify(id.length > 60 ? `${id.slice(0, 60)}…` : id) : String(id);
  throw new PyroError("invalid_argument", `malformed ${LABEL[kind]} ${shown}`, [
    `${LABEL[kind]}s look like ${kind}_0123456789abcdef; list them with `,
    { op: kind === "ws" ? "workspace_list" : "vm_list" },
  ]);
}
