import type { NetPlumbing } from "./nft.js";

export async function ensureForwarder(
  _id: string,
  _p: NetPlumbing,
  _hosts: string[],
  _resolvers: string[],
  _env?: NodeJS.ProcessEnv,
): Promise<void> {
  throw new Error("not yet");
}
export async function stopForwarder(_id: string): Promise<void> {}
