import * as z from "zod";
import type { SecretValue } from "./redactor.js";

/** A secret as the workspace record keeps it: name, size and source; never the value. */
export const SecretRecordSchema = z.object({
  name: z.string(),
  bytes: z.number().int().nonnegative(),
  source: z.object({ kind: z.enum(["value", "file_path", "from_env"]), ref: z.string().nullable() }),
});

/**
 * Values this process read back from a sandbox (or was given at create), by workspace id:
 * one read-back per process (a CLI call; for the MCP server or an SDK instance, its lifetime),
 * never written anywhere. Cleared for a workspace when its secrets are written again.
 */
export const secretValuesCache = new Map<string, SecretValue[]>();
