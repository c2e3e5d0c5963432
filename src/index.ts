export { PyroError, type ErrorCode } from "./errors.js";
export { CATALOG, DEFAULT_ENVIRONMENT } from "./environments/catalog.js";
export { OPERATIONS } from "./operations/table.js";
export * as schemas from "./operations/schemas.js";
export { Runtime } from "./runtime/runtime.js";
export type { Progress } from "./runtime/context.js";
export {
  Pyro,
  VmHandle,
  WorkspaceHandle,
  type CallOptions,
  type Command,
  type DoctorReport,
  type EnvironmentInfo,
  type ReapResult,
  type RunResult,
  type SandboxOptions,
  type VmNetworkInfo,
  type VmStatus,
  type WorkspaceExecResult,
  type WorkspaceLogs,
  type WorkspaceStatus,
  type WorkspaceSyncResult,
} from "./sdk/pyro.js";
export { createServer } from "./mcp/server.js";
export { VERSION } from "./version.js";
