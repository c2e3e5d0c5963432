import { PyroError } from "../../core/errors.js";
import type { SandboxHandle } from "../types.js";

/**
 * What a kubernetes handle's `data` holds; only this engine reads it. Parsed, never cast:
 * records are read back after crashes and hand edits.
 */
export interface K8sHandleData {
  namespace: string;
  /** The object that owns the sandbox's pod: an agent-sandbox Sandbox, a bare Pod, or a claim. */
  kind: "Sandbox" | "Pod" | "SandboxClaim";
  /** That object's name. */
  name: string;
  /** The pod commands run in (a claimed warm sandbox's pod is named by the pool). */
  pod: string;
  /** The owner label every object of this sandbox carries. */
  owner: string;
  /** /workspace is a PVC that outlives the pod (stop/start keep it). */
  pvc: boolean;
}

const KINDS = ["Sandbox", "Pod", "SandboxClaim"];
const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

export function k8sDataProblem(raw: unknown): string | undefined {
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) return "data is not an object";
  const d = raw as Record<string, unknown>;
  for (const k of ["namespace", "name", "pod"] as const)
    if (typeof d[k] !== "string" || !NAME.test(d[k] as string)) return `data.${k} is not an object name`;
  if (typeof d.kind !== "string" || !KINDS.includes(d.kind))
    return "data.kind is not Sandbox, Pod or SandboxClaim";
  if (typeof d.owner !== "string" || !d.owner) return "data.owner is not a label value";
  if (typeof d.pvc !== "boolean") return "data.pvc is not a boolean";
  return undefined;
}

export function k8sData(handle: SandboxHandle): K8sHandleData {
  const problem = k8sDataProblem(handle.data);
  if (problem)
    throw new PyroError(
      "invalid_state",
      `the kubernetes handle of ${handle.id} is damaged: ${problem}`,
      "delete the sandbox; its objects are found by their labels",
    );
  return handle.data as K8sHandleData;
}
