import { writeFile } from "node:fs/promises";
import { gzipSync } from "node:zlib";
import tarStream, { type Header } from "tar-stream";

/** One archive entry: a file (the default type, with `body`), a directory, a link, ... */
export type TarEntry = Partial<Header> & { name: string; body?: string };

/** Writes a tar (gzipped when asked) of these entries to `path` and returns `path`. */
export async function makeTar(path: string, entries: TarEntry[], gzip = false): Promise<string> {
  const pack = tarStream.pack();
  for (const { body, ...h } of entries) {
    const header = { mode: h.type === "directory" ? 0o755 : 0o644, ...h, type: h.type ?? "file" };
    if (header.type === "file") pack.entry(header, body ?? "");
    else pack.entry(header);
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack as unknown as AsyncIterable<Buffer>) chunks.push(c);
  const tar = Buffer.concat(chunks);
  await writeFile(path, gzip ? gzipSync(tar) : tar);
  return path;
}
