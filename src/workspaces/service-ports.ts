import { type PublishedPort, parsePublish } from "../network/policy.js";
import type { SessionPort } from "./port.js";

/**
 * `service start --publish`: the ports join the workspace's published ports (the same nft
 * rules as `workspace create --publish`), and `service stop` takes them out again.
 */
export async function publishForService(
  workspaces: Pick<SessionPort, "status" | "update">,
  workspaceId: string,
  publish: string[],
): Promise<PublishedPort[]> {
  const wanted = publish.map(parsePublish);
  const current = (await workspaces.status(workspaceId)).network_info?.published_ports ?? [];
  const keep = current.filter((c) => !wanted.some((w) => w.guest_port === c.guest_port));
  const st = await workspaces.update({
    workspace_id: workspaceId,
    publish: [...keep.map((p) => `${p.host_port}:${p.guest_port}`), ...publish],
  });
  const now = st.network_info?.published_ports ?? [];
  return now
    .filter((p) => wanted.some((w) => w.guest_port === p.guest_port))
    .map((p) => ({ host_port: p.host_port, guest_port: p.guest_port }));
}

export async function unpublishForService(
  workspaces: Pick<SessionPort, "status" | "update">,
  workspaceId: string,
  ports: PublishedPort[],
): Promise<void> {
  const current = (await workspaces.status(workspaceId)).network_info?.published_ports ?? [];
  const rest = current.filter(
    (c) => !ports.some((p) => p.host_port === c.host_port && p.guest_port === c.guest_port),
  );
  if (rest.length === current.length) return;
  await workspaces.update({
    workspace_id: workspaceId,
    publish: rest.map((p) => `${p.host_port}:${p.guest_port}`),
  });
}
