// The report as PDF: the HTML page printed by headless Chromium (Debian's `chromium`, driven by
// playwright-core, as the HQ browser test drives it). JavaScript is off: the page has none, and a
// hostile string that slipped past the escaping could run nothing. Network is off too: the page is
// self-contained, so any request it made would be a bug.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BrowserType } from "playwright-core";

/** Where Chromium is looked for: $NETPROBE_CHROMIUM, then Debian's and Google's paths. */
export function chromiumPath(env: NodeJS.ProcessEnv = process.env): string | null {
  const candidates = [
    env.NETPROBE_CHROMIUM,
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/usr/bin/google-chrome",
  ];
  return candidates.find((p): p is string => p !== undefined && p !== "" && existsSync(p)) ?? null;
}

/** Why a PDF could not be made, for the operator. */
export class PdfError extends Error {}

/** `html` printed to an A4 PDF. */
export async function renderPdf(html: string, env: NodeJS.ProcessEnv = process.env): Promise<Buffer> {
  const executablePath = chromiumPath(env);
  if (!executablePath)
    throw new PdfError(
      "PDF reports need Chromium: apt-get install chromium (or set NETPROBE_CHROMIUM to its path)",
    );
  let chromium: BrowserType;
  try {
    ({ chromium } = await import("playwright-core"));
  } catch {
    throw new PdfError("PDF reports need the playwright-core package (npm install playwright-core)");
  }
  // A fresh profile each time: two reports at once must not share (and lock) one.
  const profile = mkdtempSync(join(tmpdir(), "netprobe-report-"));
  try {
    const context = await chromium.launchPersistentContext(profile, {
      executablePath,
      headless: true,
      javaScriptEnabled: false,
      offline: true,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
      timeout: 60_000,
    });
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      await page.setContent(html, { waitUntil: "load", timeout: 30_000 });
      return await page.pdf({ format: "A4", printBackground: true, preferCSSPageSize: true });
    } finally {
      await context.close();
    }
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }
}
