import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { chmod, mkdir, stat } from "node:fs/promises";
import { join } from "node:path";
import * as z from "zod";
import { PyroError } from "../core/errors.js";
import { ensurePrivateDir } from "../sandbox/private-dir.js";
import { ignore } from "../util/best-effort.js";
import { readJson, withLock, writeJsonAtomic } from "../util/json-store.js";

/**
 * Bearer tokens for `pyro mcp serve --http`. Each token is a tenant: what it creates is
 * stamped with the token's id, and it sees only that. Only a SHA-256 of the secret is stored
 * (`<state>/remote/tokens.json`, in the private state dir), so the file leaks no usable
 * credential; the secret is shown once, by `pyro token create`.
 *
 * The secret is 32 random bytes: a fast hash is the right tool for a high-entropy secret
 * (a slow KDF exists for guessable passwords), and it keeps the per-request check cheap.
 */
export const TOKEN_ID_RE = /^tok_[0-9a-f]{16}$/;
const SECRET_RE = /^pyro_(tok_[0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

export const TokenLimitsSchema = z.object({
  max_sandboxes: z.number().int().positive().nullable(),
  max_mem_mib: z.number().int().positive().nullable(),
});
export type TokenLimits = z.infer<typeof TokenLimitsSchema>;

const TokenRecordSchema = z.looseObject({
  token_id: z.string().regex(TOKEN_ID_RE),
  name: z.string(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  created_at: z.string(),
  revoked_at: z.string().nullable(),
  limits: TokenLimitsSchema,
});
export type TokenRecord = z.infer<typeof TokenRecordSchema>;
const TokenFileSchema = z.object({ tokens: z.array(TokenRecordSchema) });

/** What callers see of a token: never the hash. */
export interface TokenInfo {
  token_id: string;
  name: string;
  created_at: string;
  revoked: boolean;
  revoked_at: string | null;
  limits: TokenLimits;
}

/** The tenant an authenticated request acts for. */
export interface Tenant {
  id: string;
  name: string;
  limits: TokenLimits;
}

function sha256(s: string): string {
  return createHash("sha256").update(s).digest("hex");
}

function info(t: TokenRecord): TokenInfo {
  return {
    token_id: t.token_id,
    name: t.name,
    created_at: t.created_at,
    revoked: t.revoked_at !== null,
    revoked_at: t.revoked_at,
    limits: t.limits,
  };
}

export class TokenStore {
  readonly dir: string;
  readonly file: string;
  private cache: { mtimeMs: number; size: number; tokens: TokenRecord[] } | undefined;

  constructor(stateDir: string) {
    this.dir = join(stateDir, "remote");
    this.file = join(this.dir, "tokens.json");
  }

  private async readAll(): Promise<TokenRecord[]> {
    const raw = await readJson<unknown>(this.file);
    if (raw === undefined) return [];
    const parsed = TokenFileSchema.safeParse(raw);
    if (!parsed.success)
      throw new PyroError(
        "invalid_state",
        `the token file ${this.file} is damaged: ${parsed.error.issues[0]?.message ?? "invalid"}`,
        "fix or remove it (removing it revokes every token), then create tokens again with `pyro token create`",
      );
    return parsed.data.tokens;
  }

  /** The file lives in a 0700 directory anyway; 0600 says what it is to anyone looking. */
  private async save(tokens: TokenRecord[]): Promise<void> {
    await writeJsonAtomic(this.file, { tokens });
    await chmod(this.file, 0o600);
  }

  private async prepare(): Promise<void> {
    await ensurePrivateDir(join(this.dir, ".."));
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
  }

  async create(
    opts: { name?: string; limits?: Partial<TokenLimits> } = {},
  ): Promise<TokenInfo & { token: string }> {
    await this.prepare();
    const id = `tok_${randomBytes(8).toString("hex")}`;
    const secret = `pyro_${id}_${randomBytes(32).toString("base64url")}`;
    const name = opts.name ?? id;
    if (!/^[A-Za-z0-9._@-]{1,64}$/.test(name))
      throw new PyroError(
        "invalid_argument",
        `token name ${JSON.stringify(name.slice(0, 80))} is not allowed`,
        "use 1-64 letters, digits, '.', '_', '@' or '-'",
      );
    const rec: TokenRecord = {
      token_id: id,
      name,
      sha256: sha256(secret),
      created_at: new Date().toISOString(),
      revoked_at: null,
      limits: {
        max_sandboxes: opts.limits?.max_sandboxes ?? null,
        max_mem_mib: opts.limits?.max_mem_mib ?? null,
      },
    };
    await withLock(this.file, async () => {
      const all = await this.readAll();
      if (all.some((t) => t.name === name && t.revoked_at === null))
        throw new PyroError(
          "invalid_argument",
          `a token named ${name} exists`,
          "pick another --name, or revoke the old one first with `pyro token revoke NAME`",
        );
      all.push(rec);
      await this.save(all);
    });
    return { ...info(rec), token: secret };
  }

  async list(): Promise<TokenInfo[]> {
    return (await this.readAll()).map(info);
  }

  /** Revokes by id or name; revoking a revoked token is not an error (it stays revoked). */
  async revoke(idOrName: string): Promise<TokenInfo> {
    await this.prepare();
    return withLock(this.file, async () => {
      const all = await this.readAll();
      const live = all.filter(
        (t) => t.token_id === idOrName || (t.name === idOrName && t.revoked_at === null),
      );
      const t = live[0] ?? all.find((x) => x.name === idOrName || x.token_id === idOrName);
      if (!t)
        throw new PyroError(
          "not_found",
          `no token ${JSON.stringify(idOrName.slice(0, 80))}`,
          "list tokens with `pyro token list`",
        );
      t.revoked_at ??= new Date().toISOString();
      await this.save(all);
      return info(t);
    });
  }

  /**
   * The tenant a presented secret belongs to, or undefined (missing, unknown, revoked or
   * malformed: the caller answers all of them with the same 401). The file is re-read when
   * it changes, so `pyro token revoke` in another process takes effect on the next request.
   */
  async verify(secret: string | undefined): Promise<Tenant | undefined> {
    if (!secret) return undefined;
    const m = SECRET_RE.exec(secret);
    if (!m) return undefined;
    const tokens = await this.current();
    const t = tokens.find((x) => x.token_id === m[1]);
    if (!t || t.revoked_at !== null) return undefined;
    const a = Buffer.from(sha256(secret), "hex");
    const b = Buffer.from(t.sha256, "hex");
    if (a.length !== b.length || !timingSafeEqual(a, b)) return undefined;
    return { id: t.token_id, name: t.name, limits: t.limits };
  }

  private async current(): Promise<TokenRecord[]> {
    const st = await stat(this.file).catch(ignore("no tokens file: no tokens"));
    if (!st) return [];
    if (this.cache && this.cache.mtimeMs === st.mtimeMs && this.cache.size === st.size)
      return this.cache.tokens;
    const tokens = await this.readAll();
    this.cache = { mtimeMs: st.mtimeMs, size: st.size, tokens };
    return tokens;
  }
}
