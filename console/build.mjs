// Bundles the console into Mitra's package data (mitra/console/dist): one hashed script and
// one hashed stylesheet, plus index.html naming them, so the server can cache them for a year.
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "mitra", "console", "dist");

// Every module in src/plugins is part of the console: `import "virtual:plugins"` loads them all,
// in name order, so a capability's piece is one new file there and no edit elsewhere.
const pluginsDir = join(here, "src", "plugins");
const plugins = {
  name: "plugins",
  setup(b) {
    b.onResolve({ filter: /^virtual:plugins$/ }, () => ({ path: "plugins", namespace: "plugins" }));
    b.onLoad({ filter: /.*/, namespace: "plugins" }, () => ({
      contents: readdirSync(pluginsDir)
        .filter((name) => name.endsWith(".js"))
        .sort()
        .map((name) => `import ${JSON.stringify(`./${name}`)};`)
        .join("\n"),
      resolveDir: pluginsDir,
      watchDirs: [pluginsDir],
    }));
  },
};

const result = await build({
  entryPoints: [join(here, "src", "main.js")],
  bundle: true,
  minify: true,
  format: "esm",
  target: ["chrome100", "firefox100", "safari15"],
  write: false,
  outdir: out,
  entryNames: "console",
  legalComments: "none",
  loader: { ".css": "css" },
  plugins: [plugins],
});

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const names = {};
for (const file of result.outputFiles) {
  const ext = file.path.endsWith(".css") ? "css" : "js";
  const hash = createHash("sha256").update(file.contents).digest("hex").slice(0, 12);
  names[ext] = `console.${hash}.${ext}`;
  writeFileSync(join(out, names[ext]), file.contents);
}
const page = readFileSync(join(here, "src", "index.html"), "utf8")
  .replace("__SCRIPT__", `/console/assets/${names.js}`)
  .replace("__STYLE__", `/console/assets/${names.css}`);
writeFileSync(join(out, "index.html"), page);
writeFileSync(join(out, "manifest.json"), JSON.stringify(names, null, 2) + "\n");
// On stderr: `make run` keeps stdout for the server, whose first line is its banner.
console.error(`console built: ${names.js}, ${names.css}`);
