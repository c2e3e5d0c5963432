// The public types name Node's own (Buffer, NodeJS.ProcessEnv, node:stream): this reference
// (kept in dist/index.d.ts) and @types/node as a dependency let a consumer project with
// default settings type-check them; TypeScript 6+ no longer loads every @types package.
/// <reference types="node" preserve="true" />
export { DEFAULT_ENVIRONMENT } from "./contract/defaults.js";
export * as schemas from "./contract/schemas.js";
export { type ErrorCode, type Hint, type HintPart, PyroError } from "./core/errors.js";
export { VERSION } from "./core/version.js";
export { CATALOG } from "./environments/catalog.js";
export { type CreateServerOptions, createServer } from "./mcp/lazy.js";
export { OPERATIONS } from "./operations/table.js";
export { OPERATOR_ONLY_FIELDS, type ToolOptions, toolInputJsonSchema } from "./operations/tool-schema.js";
export { Runtime } from "./runtime/runtime.js";
export type { Progress } from "./sandbox/context.js";
export {
  type CallOptions,
  type Command,
  type CommandOptions,
  type DoctorReport,
  type EnvironmentBuildResult,
  type EnvironmentInfo,
  type EnvironmentPullResult,
  type NetworkOptions,
  type OutputPage,
  Pyro,
  type ReapResult,
  type RunResult,
  type SandboxOptions,
  type SecretEnvOptions,
  type SecretSource,
  VmHandle,
  type VmListEntry,
  type VmNetworkInfo,
  type VmStatus,
  type WorkspaceDiff,
  type WorkspaceExecResult,
  type WorkspaceExportResult,
  type WorkspaceFileContent,
  type WorkspaceFileEditResult,
  type WorkspaceFileList,
  type WorkspaceFileWriteResult,
  WorkspaceHandle,
  type WorkspaceLifecycle,
  type WorkspaceLogs,
  type WorkspacePatchResult,
  type WorkspaceStatus,
  type WorkspaceSummary,
  type WorkspaceSyncResult,
  type WorkspaceWorkSummary,
} from "./sdk/pyro.js";
export type { ServiceInfo, ServiceLogs, ShellInfo, ShellOutput } from "./sdk/sessions.js";
