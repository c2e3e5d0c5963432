import { Transform, type TransformCallback } from "node:stream";
import { deserializeMessage, STDIO_DEFAULT_MAX_BUFFER_SIZE } from "@modelcontextprotocol/server";

/**
 * The MCP SDK's stdio transport drops a line that is not JSON without a word, and reports
 * valid JSON that is not JSON-RPC only to its own error callback: a client that sent either
 * (or a request cut short by a newline) waits forever. JSON-RPC 2.0 says both get an answer,
 * so this filter sits between stdin and the transport: good lines pass through untouched,
 * bad ones are answered here and never reach the SDK.
 */

export const PARSE_ERROR = -32700;
export const INVALID_REQUEST = -32600;

export interface JsonRpcErrorResponse {
  jsonrpc: "2.0";
  id: string | number | null;
  error: { code: number; message: string };
}

export type LineVerdict =
  | { kind: "pass" }
  | { kind: "skip" }
  | { kind: "reject"; response: JsonRpcErrorResponse };

function errorResponse(id: string | number | null, code: number, message: string): JsonRpcErrorResponse {
  return { jsonrpc: "2.0", id, error: { code, message } };
}
function reject(id: string | number | null, code: number, message: string): LineVerdict {
  return { kind: "reject", response: errorResponse(id, code, message) };
}

/** Decides what to do with one line (without its newline), by the SDK's own message schema. */
export function classifyLine(line: string): LineVerdict {
  const text = line.replace(/\r$/, "");
  // Blank lines carry no request; answering them would only add noise.
  if (text.trim() === "") return { kind: "skip" };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return reject(null, PARSE_ERROR, `Parse error: not a JSON line (${(e as Error).message})`);
  }
  try {
    deserializeMessage(text);
    return { kind: "pass" };
  } catch {
    const obj =
      value !== null && typeof value === "object" && !Array.isArray(value)
        ? (value as Record<string, unknown>)
        : undefined;
    const id = typeof obj?.id === "string" || typeof obj?.id === "number" ? obj.id : null;
    const why = Array.isArray(value)
      ? "batches are not supported"
      : !obj
        ? "a message must be a JSON object"
        : obj.jsonrpc !== "2.0"
          ? 'jsonrpc must be "2.0"'
          : typeof obj.method !== "string" && !("result" in obj) && !("error" in obj)
            ? "a request needs a method"
            : "malformed JSON-RPC message";
    return reject(id, INVALID_REQUEST, `Invalid Request: ${why}`);
  }
}

/**
 * stdin → (this) → StdioServerTransport. Answers bad lines through `respond` (the transport's
 * own send, so replies never interleave mid-line with other output). A line longer than the
 * SDK's buffer limit is answered as a parse error and skipped to its newline, instead of the
 * SDK closing the whole connection.
 */
export class JsonRpcLineFilter extends Transform {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private discarding = false;

  constructor(
    private readonly respond: (r: JsonRpcErrorResponse) => void,
    private readonly maxLine = STDIO_DEFAULT_MAX_BUFFER_SIZE,
  ) {
    super();
  }

  override _transform(chunk: Buffer | string, _enc: BufferEncoding, done: TransformCallback): void {
    let buf = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    for (let nl = buf.indexOf(10); nl !== -1; nl = buf.indexOf(10)) {
      const head = buf.subarray(0, nl);
      buf = buf.subarray(nl + 1);
      if (this.discarding) {
        this.discarding = false;
        continue;
      }
      this.pending.push(head);
      const line = Buffer.concat(this.pending);
      this.pending = [];
      this.pendingBytes = 0;
      this.handle(line);
    }
    if (buf.length && !this.discarding) {
      this.pending.push(buf);
      this.pendingBytes += buf.length;
      if (this.pendingBytes > this.maxLine) {
        this.pending = [];
        this.pendingBytes = 0;
        this.discarding = true;
        this.respond(errorResponse(null, PARSE_ERROR, `Parse error: line longer than ${this.maxLine} bytes`));
      }
    }
    done();
  }

  private handle(line: Buffer): void {
    const v = classifyLine(line.toString("utf8"));
    if (v.kind === "pass") this.push(Buffer.concat([line, Buffer.from("\n")]));
    else if (v.kind === "reject") this.respond(v.response);
  }
}
