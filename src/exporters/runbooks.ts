// docs/runbooks.md served by orgwatch itself at /runbooks, so that every alert's runbook_url
// ({orgwatch_url}/runbooks#{alert}) resolves wherever orgwatch runs, with no repository or internet
// access. Headings get GitHub's anchors (github-slugger), the ones the rules link to.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import GithubSlugger from "github-slugger";
import { Marked, type Tokens } from "marked";

/** Shipped with the package (package.json "files"), beside dist/. */
const RUNBOOKS_FILE = fileURLToPath(new URL("../../docs/runbooks.md", import.meta.url));

/** No scripts at all; the one inline style is the page's own. */
export const RUNBOOKS_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'";

const STYLE = `body{font:16px/1.5 system-ui,sans-serif;max-width:52rem;margin:0 auto;padding:1rem;color:#1b1f23}
code,pre{font:14px ui-monospace,monospace;background:#f3f4f6}pre{padding:.6rem;overflow:auto}
table{border-collapse:collapse;display:block;overflow:auto}td,th{border:1px solid #d0d7de;padding:.2rem .5rem}
h2{border-top:1px solid #d0d7de;padding-top:1rem}:target{background:#fff8c5}`;

/** The runbooks as one HTML page (ids on every heading). */
export function renderRunbooks(markdown: string): string {
  const slugger = new GithubSlugger();
  const marked = new Marked({
    renderer: {
      heading(
        this: { parser: { parseInline(tokens: Tokens.Heading["tokens"]): string } },
        h: Tokens.Heading,
      ) {
        const id = slugger.slug(h.text);
        return `<h${h.depth} id="${id}"><a href="#${id}">${this.parser.parseInline(h.tokens)}</a></h${h.depth}>\n`;
      },
    },
  });
  const body = marked.parse(markdown, { async: false });
  return `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>orgwatch runbooks</title>
<style>${STYLE}</style></head><body>
${body}</body></html>
`;
}

let rendered: string | undefined;

/** Rendered once, on the first request. */
export function runbooksPage(): string {
  rendered ??= renderRunbooks(readFileSync(RUNBOOKS_FILE, "utf8"));
  return rendered;
}
