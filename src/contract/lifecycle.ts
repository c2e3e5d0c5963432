import * as z from "zod";
import { WorkspaceStatusResult } from "./workspace.js";

/** The result of workspace stop/start/pause/resume (workspaces/lifecycle.ts): the status plus what the call did. */

export const WorkspaceLifecycleResult = WorkspaceStatusResult.extend({
  action: z.enum(["stop", "start", "pause", "resume"]),
  detail: z.string().describe("What the call did, in one sentence."),
  ended_shells: z
    .array(z.string())
    .describe("Shells of the previous sandbox that were ended (a stop or a fresh start ends them)."),
  ended_services: z.array(z.string()).describe("Services of the previous sandbox that were ended."),
  resumed_with_memory: z
    .boolean()
    .nullable()
    .describe(
      "resume: whether the processes came back (false: a fresh sandbox on the same files); else null.",
    ),
});
