// HQ's web page over a history store, for test/lab/hq-report.test.ts: runs INSIDE the lab's hq
// namespace (lab.spawn) so the browser driver there reaches it. argv: SQLite file, token file,
// address, port. Prints {ready:true,url} when serving; SIGTERM stops it.
// (Until `hq serve` writes history itself, the test fills the store and this serves it.)
import { silentLogger } from "../../services/contract/src/log.ts";
import { Fleet } from "../../services/hq/src/fleet.ts";
import { loadHqConfig } from "../../services/hq/src/hq-config.ts";
import { sqliteHistoryStore } from "../../services/hq/src/history/sqlite-store.ts";
import { serveFleetWeb } from "../../services/hq/src/web.ts";

const [db, tokenFile, host, port] = process.argv.slice(2);
const cfg = loadHqConfig({ url: "mqtt://127.0.0.1:1", host, port }, { NETPROBE_HQ_TOKEN_FILE: tokenFile });
const store = sqliteHistoryStore(db!, { raw_days: 36_500, rollup_days: 36_500, event_days: 36_500 });
await store.open();
const link = {
  connected: false,
  url: cfg.broker.url,
  subscription: "",
  subscriptions: [],
  client_id: "hq-history-server",
  since: Date.now(),
  last_error: "not subscribed: this server only serves history",
};
const web = await serveFleetWeb(new Fleet(), () => link, cfg, silentLogger(), undefined, store);
process.stdout.write(`${JSON.stringify({ ready: true, url: web.url })}\n`);
process.once("SIGTERM", () => {
  void web
    .close()
    .then(() => store.close())
    .then(() => process.exit(0));
});
