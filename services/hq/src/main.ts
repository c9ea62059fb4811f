// Headquarters' own entry (services/hq/bin/netprobe-hq): `netprobe-hq serve|watch|hash-password …`,
// the same commands as `netprobe hq …`.
import { hqCommand } from "./hq-command.ts";

await hqCommand().name("netprobe-hq").parseAsync(process.argv);
