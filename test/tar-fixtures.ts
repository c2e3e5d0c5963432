import { createWriteStream } from "node:fs";
import { writeFile } from "node:fs/promises";
import { pipeline } from "node:stream/promises";
import { createGzip, gzipSync } from "node:zlib";
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

/**
 * A .tar.gz holding one file of `size` zero bytes: small on disk (gzip squeezes zeros
 * ~200x), yet seconds of work to unpack, so a test can interrupt the unpacking.
 */
export async function bigZeroTarGz(path: string, size: number): Promise<string> {
  const pack = tarStream.pack();
  const done = pipeline(pack, createGzip({ level: 1 }), createWriteStream(path));
  // tar-stream's streamx typings differ from Node's; it behaves as a Node writable here.
  const entry = pack.entry({ name: "zeros", size, mode: 0o644 }) as unknown as NodeJS.WritableStream;
  const chunk = Buffer.alloc(1024 * 1024);
  for (let left = size; left > 0; left -= chunk.length) {
    if (!entry.write(left >= chunk.length ? chunk : chunk.subarray(0, left)))
      await new Promise<void>((r) => entry.once("drain", () => r()));
  }
  entry.end();
  pack.finalize();
  await done;
  return path;
}
