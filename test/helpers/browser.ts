// A real headless Chromium (Debian's, or CHROMIUM_BIN) driven by puppeteer-core: nothing downloads a
// browser. Every page opened through it records console errors, page errors and failed requests,
// so that a test can require none (a Content-Security-Policy violation is a console error).
import puppeteer, { type Browser, type Page } from "puppeteer-core";

export const CHROMIUM = process.env["CHROMIUM_BIN"] ?? "/usr/bin/chromium";

export interface TestBrowser {
  readonly browser: Browser;
  /** What went wrong on any page so far. */
  readonly problems: string[];
  newPage(): Promise<Page>;
  close(): Promise<void>;
}

export async function startBrowser(): Promise<TestBrowser> {
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    // Root in a container has no user namespace for Chromium's sandbox.
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  const problems: string[] = [];
  return {
    browser,
    problems,
    async newPage() {
      const page = await browser.newPage();
      page.on("console", (m) => {
        if (m.type() === "error") problems.push(`console error on ${page.url()}: ${m.text()}`);
      });
      page.on("pageerror", (e) => problems.push(`page error on ${page.url()}: ${(e as Error).message}`));
      page.on("requestfailed", (r) => {
        // An EventSource closed by navigating away is not a failure of the page.
        if (!r.url().endsWith("/api/v1/events"))
          problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`);
      });
      return page;
    },
    close: () => browser.close(),
  };
}
