/**
 * `find` arguments that clear set-uid and set-gid on everything under `dir`. Symlinks have no
 * mode of their own and are skipped, so chmod never follows one; `find` itself follows none
 * (-P). Only for trees nobody else can change meanwhile (fresh, unseen by any sandbox), so
 * nothing can swap a file for a link between find and chmod. Seeds and baselines
 * (project/archive.ts) and unpacked OCI images (environments/oci-store.ts) go through it.
 */
export function clearSetIdArgs(dir: string): string[] {
  return [dir, "!", "-type", "l", "-perm", "/6000", "-exec", "chmod", "ug-s", "--", "{}", "+"];
}
