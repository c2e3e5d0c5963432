import * as z from "zod";
import { encoding } from "./common.js";
import { READ_LIMIT } from "./defaults.js";

/** Wire schemas of output_read: paging through a command's full output (output/store.ts). */

export const OutputReadInput = z.object({
  output_id: z
    .string()
    .min(1)
    .max(200)
    .describe(
      "output_id of a command's result (vm_… for one-shot runs, ws_…:SEQUENCE for workspace commands).",
    ),
  stream: z.enum(["stdout", "stderr"]).default("stdout").describe("Which stream. Default stdout."),
  offset: z
    .number()
    .int()
    .min(0)
    .default(0)
    .describe("Byte offset to start at (next_offset of the previous page). Default 0."),
  limit: z
    .number()
    .int()
    .min(1)
    .max(READ_LIMIT.max)
    .default(READ_LIMIT.default)
    .describe(`Bytes to read (1-${READ_LIMIT.max}). Default ${READ_LIMIT.default}.`),
});
export const OutputReadResult = z.object({
  output_id: z.string(),
  stream: z.enum(["stdout", "stderr"]),
  offset: z.number().int(),
  next_offset: z.number().int().describe("Offset of the next page."),
  total_bytes: z.number().int().describe("Bytes of the stream stored on the host."),
  eof: z.boolean().describe("This page reaches the end of the stream."),
  data: z.string(),
  encoding: encoding.describe("utf-8, or base64 when the page is not valid UTF-8."),
});
export type OutputReadInputT = z.infer<typeof OutputReadInput>;
