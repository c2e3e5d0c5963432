import * as z from "zod";
import { DEFAULT_ENVIRONMENT, LIMITS, OUTPUT_BUDGET } from "./defaults.js";

/**
 * Fields and result parts that several domains' wire schemas share (a command, the sandbox
 * size, the bounded output view). Field names here are the public contract.
 */

export const environment = z
  .string()
  .min(1)
  .max(200)
  .describe(
    `Environment: "debian:12" (Git), "debian:12-base" (minimal), "debian:12-build" (gcc, make, python3), an OCI image reference with its registry ("docker.io/library/python:3.12-slim"), pulled on first use, or a user environment the operator built. Default ${DEFAULT_ENVIRONMENT}.`,
  );
export const command = z
  .union([z.string().min(1).max(100_000), z.array(z.string().max(100_000)).min(1).max(10_000)])
  .describe(
    "The command. A string runs through /bin/sh -c (pipes, &&, globbing work); an array is an argv run directly.",
  );
export const vcpu_count = z
  .number()
  .int()
  .min(1)
  .max(LIMITS.vcpuMax)
  .describe(`Virtual CPUs (1-${LIMITS.vcpuMax}). Default 1.`);
export const mem_mib = z
  .number()
  .int()
  .min(LIMITS.memMibMin)
  .max(LIMITS.memMibMax)
  .describe(`Memory limit in MiB (${LIMITS.memMibMin}-${LIMITS.memMibMax}). Default 1024.`);
export const timeout_seconds = z
  .number()
  .int()
  .min(1)
  .max(LIMITS.timeoutMax)
  .describe("Kill the command (and everything it started) after this many seconds. Default 30.");
export const ttl_seconds = z
  .number()
  .int()
  .min(1)
  .max(LIMITS.ttlMax)
  .describe("Seconds until the sandbox expires and is reaped. Default 600.");
export const network = z
  .boolean()
  .describe("Network access for the guest (network_policy=egress). Default false: loopback only.");
export const allow_host_compat = z
  .boolean()
  .describe(
    "If no isolated engine works, run on the host WITHOUT isolation (results say execution_mode=host_compat). Default false.",
  );
export const max_output_bytes = z
  .number()
  .int()
  .min(OUTPUT_BUDGET.min)
  .max(OUTPUT_BUDGET.max)
  .describe(
    `Output budget in bytes, stdout and stderr together (${OUTPUT_BUDGET.min}-${OUTPUT_BUDGET.max}). Default ${OUTPUT_BUDGET.default}.`,
  );
export const ExecutionModeSchema = z.enum(["firecracker", "qemu", "gvisor", "kubernetes", "host_compat"]);

export const EmptyInput = z.object({});

export const encoding = z.enum(["utf-8", "base64"]);
/** The bounded view of both streams (src/output/view.ts), in contract order. */
export const outputViewFields = {
  stdout: z
    .string()
    .describe(
      "Standard output, within max_output_bytes: past it, head and tail joined by a `[pyro: N bytes omitted…]` line.",
    ),
  stderr: z.string().describe("Standard error, like stdout."),
  stdout_truncated: z.boolean().describe("stdout here is not the whole stream (see stdout_omitted_bytes)."),
  stderr_truncated: z.boolean(),
  stdout_encoding: encoding.describe(
    "utf-8, or base64 when the bytes are not valid UTF-8 (head and tail encoded apart, around the marker).",
  ),
  stderr_encoding: encoding,
  stdout_bytes: z.number().int().describe("Bytes the command wrote to stdout in all."),
  stderr_bytes: z.number().int(),
  stdout_omitted_bytes: z.number().int().describe("Bytes of stdout left out of this result (0 if none)."),
  stderr_omitted_bytes: z.number().int(),
};

export const execFields = {
  environment: z.string(),
  command: z.string().describe("The command as run (argv joined with shell quoting)."),
  exit_code: z.number().int().describe("The command's exit code; 124 on timeout."),
  ...outputViewFields,
  output_id: z.string().describe("Handle of the full output kept on the host: page it with output_read."),
  timed_out: z.boolean(),
  too_many_processes: z
    .boolean()
    .describe(
      "The sandbox was at its process limit (PYRO_PIDS_LIMIT) while the command ran, so forks may have failed; what the command left running was killed.",
    ),
  duration_ms: z.number().int(),
  boot_ms: z.number().int(),
  exec_ms: z.number().int(),
  execution_mode: ExecutionModeSchema,
  notes: z
    .array(z.string())
    .describe(
      "Where the engine honoured the request differently from what was asked (e.g. gVisor's CPU count); on exit 127 for a missing command, which catalog environments have it.",
    ),
};
