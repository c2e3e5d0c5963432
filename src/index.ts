export { CATALOG, DEFAULT_ENVIRONMENT } from "./environments/catalog.js";
export { type ErrorCode, PyroError } from "./errors.js";
export { type CreateServerOptions, createServer } from "./mcp/lazy.js";
export * as schemas from "./operations/schemas.js";
export { OPERATIONS } from "./operations/table.js";
export type { Progress } from "./runtime/context.js";
export { Runtime } from "./runtime/runtime.js";
export {
  type CallOptions,
  type Command,
  type DoctorReport,
  type EnvironmentBuildResult,
  type EnvironmentInfo,
  type EnvironmentPullResult,
  Pyro,
  type ReapResult,
  type RunResult,
  type SandboxOptions,
  VmHandle,
  type VmNetworkInfo,
  type VmStatus,
  type WorkspaceExecResult,
  WorkspaceHandle,
  type WorkspaceLogs,
  type WorkspaceStatus,
  type WorkspaceSyncResult,
} from "./sdk/pyro.js";
export { VERSION } from "./version.js";
