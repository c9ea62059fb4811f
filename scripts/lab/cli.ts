// The lab CLI on its own: `node scripts/lab/cli.ts up|down|status|fault|exec|demo …`, the same
// commands as `netprobe lab …` (which loads this module's commands in a checkout).
import { labCommand } from "./lab-command.ts";

await labCommand().parseAsync(process.argv);
