// Drives headless Chromium (Debian's, through playwright-core) for test/lab/hq-web.test.ts. It runs
// INSIDE the lab's hq namespace (lab.spawn), so the browser reaches the HQ page at its lab address
// and nothing else: the test process in the root namespace could not reach a CDP port in there.
// Protocol: one JSON command per stdin line, one JSON answer per stdout line, same `id`:
//   {id, op:"goto", url}                 → {id, ok}
//   {id, op:"wait", selector, timeoutMs} → {id, ok, at}     at: Date.now() when it first matched
//   {id, op:"click", selector}           → {id, ok}
//   {id, op:"fill", selector, value}     → {id, ok}       types into a form field (the login form)
//   {id, op:"text", selector}            → {id, ok, text}
//   {id, op:"shot", path}                → {id, ok, path}  full-page PNG
//   {id, op:"select", selector, value}   → {id, ok}       picks an <option> (the range picker)
//   {id, op:"eval", expr}                → {id, ok, value} a page expression's JSON value
// The first line printed is {ready:true} (or {ready:false, error}).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { chromium, type BrowserContext, type Page } from "playwright-core";

interface Cmd {
  id: number;
  op: "goto" | "wait" | "click" | "fill" | "text" | "shot" | "select" | "eval";
  expr?: string;
  url?: string;
  selector?: string;
  timeoutMs?: number;
  path?: string;
  value?: string;
}

const out = (m: unknown): void => void process.stdout.write(`${JSON.stringify(m)}\n`);
const profile = mkdtempSync(join(tmpdir(), "hq-chromium-"));
let browser: BrowserContext | undefined;

async function main(): Promise<void> {
  let page: Page;
  try {
    // A fresh profile directory (--user-data-dir): playwright takes it as launchPersistentContext's.
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: "/usr/bin/chromium",
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
      timeout: 60_000,
      viewport: { width: 1280, height: 900 },
    });
    page = browser.pages()[0] ?? (await browser.newPage());
  } catch (err) {
    out({ ready: false, error: err instanceof Error ? err.message : String(err) });
    process.exit(1);
  }
  out({ ready: true, version: browser.browser()?.version() ?? null });
  for await (const line of createInterface({ input: process.stdin })) {
    let cmd: Cmd;
    try {
      cmd = JSON.parse(line) as Cmd;
    } catch {
      continue;
    }
    try {
      switch (cmd.op) {
        case "goto":
          await page.goto(cmd.url!, { waitUntil: "load", timeout: 15_000 });
          out({ id: cmd.id, ok: true });
          break;
        case "wait":
          await page.waitForSelector(cmd.selector!, { state: "attached", timeout: cmd.timeoutMs ?? 10_000 });
          out({ id: cmd.id, ok: true, at: Date.now() });
          break;
        case "click":
          await page.click(cmd.selector!, { timeout: 5000 });
          out({ id: cmd.id, ok: true });
          break;
        case "fill":
          await page.fill(cmd.selector!, cmd.value ?? "", { timeout: 5000 });
          out({ id: cmd.id, ok: true });
          break;
        case "text":
          out({ id: cmd.id, ok: true, text: await page.textContent(cmd.selector!, { timeout: 5000 }) });
          break;
        case "select":
          await page.selectOption(cmd.selector!, cmd.value ?? "", { timeout: 5000 });
          out({ id: cmd.id, ok: true });
          break;
        case "eval":
          out({ id: cmd.id, ok: true, value: await page.evaluate<unknown>(cmd.expr!) });
          break;
        case "shot":
          await page.screenshot({ path: cmd.path!, fullPage: true });
          out({ id: cmd.id, ok: true, path: cmd.path });
          break;
      }
    } catch (err) {
      out({ id: cmd.id, ok: false, error: err instanceof Error ? err.message.split("\n")[0] : String(err) });
    }
  }
}

async function stop(): Promise<void> {
  await browser?.close().catch(() => undefined);
  rmSync(profile, { recursive: true, force: true });
  process.exit(0);
}
process.on("SIGTERM", () => void stop());
main().then(stop, (err: unknown) => {
  out({ ready: false, error: String(err) });
  void stop();
});
