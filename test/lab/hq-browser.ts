// The browser driver (test/lab/hq-browser-driver.ts) inside the lab's hq namespace, spoken to line
// by line: for the lab tests that look at HQ's page as an operator does.
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { Lab } from "../../scripts/lab/lab.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** One answer of the driver. */
export interface Answer {
  id?: number;
  ok?: boolean;
  at?: number;
  text?: string;
  value?: unknown;
  error?: string;
  ready?: boolean;
}

/** The browser driver inside the hq namespace, spoken to line by line. */
export function startBrowser(lab: Lab, shotPath: (name: string) => string) {
  const child = lab.spawn("hq", [process.execPath, join(ROOT, "test/lab/hq-browser-driver.ts")], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const waiting = new Map<number, (a: Answer) => void>();
  let ready: ((a: Answer) => void) | undefined;
  const readyP = new Promise<Answer>((r) => (ready = r));
  createInterface({ input: child.stdout! }).on("line", (line) => {
    const a = JSON.parse(line) as Answer;
    if (a.ready !== undefined) return ready?.(a);
    if (a.id !== undefined) waiting.get(a.id)?.(a);
  });
  child.once("exit", (code) => {
    ready?.({ ready: false, error: `driver exited ${code}` });
    for (const w of waiting.values()) w({ ok: false, error: `driver exited ${code}` });
  });
  let next = 1;
  const call = (cmd: Record<string, unknown>): Promise<Answer> => {
    const id = next++;
    return new Promise((resolve) => {
      waiting.set(id, resolve);
      child.stdin!.write(`${JSON.stringify({ ...cmd, id })}\n`);
    });
  };
  const must = async (cmd: Record<string, unknown>): Promise<Answer> => {
    const a = await call(cmd);
    if (!a.ok) throw new Error(`browser: ${JSON.stringify(cmd)} failed: ${a.error}`);
    return a;
  };
  return {
    child,
    ready: readyP,
    goto: (url: string) => must({ op: "goto", url }),
    /** Resolves with the wall-clock time the selector first matched. */
    wait: async (selector: string, timeoutMs: number) =>
      (await must({ op: "wait", selector, timeoutMs })).at!,
    click: (selector: string) => must({ op: "click", selector }),
    fill: (selector: string, value: string) => must({ op: "fill", selector, value }),
    select: (selector: string, value: string) => must({ op: "select", selector, value }),
    text: async (selector: string) => (await must({ op: "text", selector })).text ?? "",
    eval: async (expr: string) => (await must({ op: "eval", expr })).value,
    shot: (name: string) => must({ op: "shot", path: shotPath(name) }),
  };
}
