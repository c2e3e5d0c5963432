import * as z from "zod";
import { MAX_SECRET_BYTES, MAX_SECRETS, SECRETS_DIR } from "./defaults.js";

/**
 * Secrets on the wire: `workspace_create` takes `secrets: [{ name, value | file_path | from_env }]`,
 * and exec, shell open and service start take `secret_env: ["NAME" | "VAR=NAME"]`
 * (secrets/spec.ts resolves and checks them; docs/security.md, "Secrets").
 */

/** Deliberately loose (no refinements): zod's messages quote the offending input, which could be a value. */
export const SecretSpecSchema = z.object({
  name: z
    .string()
    .max(200)
    .describe("The secret's name (letters, digits, _; not starting with a digit): /run/pyro-secrets/NAME."),
  value: z.string().max(MAX_SECRET_BYTES).optional().describe("The value itself."),
  file_path: z.string().max(4096).optional().describe("A host file whose content is the value."),
  from_env: z
    .string()
    .max(200)
    .optional()
    .describe("An environment variable of the pyro process whose value is the secret."),
});
export type SecretSpec = z.infer<typeof SecretSpecSchema>;

export const secretsField = z
  .array(SecretSpecSchema)
  .max(MAX_SECRETS)
  .describe(
    `Secrets, materialised in the guest as ${SECRETS_DIR}/NAME (mode 0400) and redacted as [REDACTED:NAME] from every output, log and result. Each is { name } plus one source: value, file_path or from_env. Only names are stored by pyro; pass one to a command with secret_env.`,
  );

/** The model-facing form (MCP): names only, or names and values when the operator allows values. */
export function modelSecretsField(allowValues: boolean) {
  // Loose when values are not allowed: a value sent anyway reaches resolveSecrets, which
  // refuses it by name (a strict schema would quote it back in its error).
  const item = allowValues
    ? z.object({ name: SecretSpecSchema.shape.name, value: SecretSpecSchema.shape.value })
    : z.looseObject({ name: SecretSpecSchema.shape.name });
  return z
    .array(item)
    .max(MAX_SECRETS)
    .describe(
      allowValues
        ? `Secrets by name: one the operator configured for this server, or { name, value }. Materialised in the guest as ${SECRETS_DIR}/NAME and redacted as [REDACTED:NAME] from all output; pass one to a command with secret_env.`
        : `Secrets by name, from those the operator configured for this server (values are never sent by a model). Materialised in the guest as ${SECRETS_DIR}/NAME and redacted as [REDACTED:NAME] from all output; pass one to a command with secret_env.`,
    );
}

export const secretEnvField = z
  .array(z.string().max(200))
  .max(MAX_SECRETS)
  .describe(
    "Workspace secrets to set as environment variables of this process only: NAME (variable NAME) or VAR=NAME.",
  );
