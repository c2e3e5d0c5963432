/**
 * The package's `schemas` export (src/index.ts): the zod schemas of the operations that
 * operations/schemas.ts held before the contract was split per domain, under the same names.
 * The file, snapshot, shell, service and pool schemas are not in it (they never were); import
 * those from their contract file.
 */

export { EmptyInput, ExecutionModeSchema } from "./common.js";
export { DEFAULTS, LIMITS } from "./defaults.js";
export * from "./doctor.js";
export * from "./environments.js";
export * from "./output.js";
export * from "./vm.js";
export * from "./workspace.js";
