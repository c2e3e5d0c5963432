/**
 * A minimal writer for the cpio "newc" format the Linux kernel unpacks as an initramfs.
 * Pure and deterministic (fixed inode numbers and mtime 0), so the same inputs give the
 * same bytes and the archive can be cached by digest.
 */
export type CpioEntry =
  | { kind: "dir"; name: string; mode?: number }
  | { kind: "file"; name: string; data: Buffer; mode?: number }
  | { kind: "symlink"; name: string; target: string }
  | { kind: "chardev"; name: string; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

function hex8(n: number): string {
  return (n >>> 0).toString(16).padStart(8, "0");
}

function pad4(len: number): Buffer {
  return Buffer.alloc((4 - (len % 4)) % 4);
}

function record(
  ino: number,
  name: string,
  mode: number,
  data: Buffer,
  opts: { nlink?: number; rdevMajor?: number; rdevMinor?: number } = {},
): Buffer[] {
  const nameBuf = Buffer.from(`${name}\0`, "utf8");
  const fields = [
    ino,
    mode,
    0, // uid
    0, // gid
    opts.nlink ?? 1,
    0, // mtime
    data.length,
    0, // devmajor
    0, // devminor
    opts.rdevMajor ?? 0,
    opts.rdevMinor ?? 0,
    nameBuf.length,
    0, // check
  ];
  const header = Buffer.from(`070701${fields.map(hex8).join("")}`, "ascii");
  return [header, nameBuf, pad4(header.length + nameBuf.length), data, pad4(data.length)];
}

export function buildCpio(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  for (const e of entries) {
    const name = e.name.replace(/^\/+/, "");
    if (!name || name.split("/").includes(".."))
      throw new Error(`bad cpio entry name ${JSON.stringify(e.name)}`);
    switch (e.kind) {
      case "dir":
        parts.push(...record(ino++, name, S_IFDIR | (e.mode ?? 0o755), Buffer.alloc(0), { nlink: 2 }));
        break;
      case "file":
        parts.push(...record(ino++, name, S_IFREG | (e.mode ?? 0o644), e.data));
        break;
      case "symlink":
        parts.push(...record(ino++, name, S_IFLNK | 0o777, Buffer.from(e.target, "utf8")));
        break;
      case "chardev":
        parts.push(
          ...record(ino++, name, S_IFCHR | (e.mode ?? 0o600), Buffer.alloc(0), {
            rdevMajor: e.major,
            rdevMinor: e.minor,
          }),
        );
        break;
    }
  }
  parts.push(...record(0, "TRAILER!!!", 0, Buffer.alloc(0), { nlink: 1 }));
  return Buffer.concat(parts);
}
