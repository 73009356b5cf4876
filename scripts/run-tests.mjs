// Runs every test/**/*.test.ts with Node's test runner (Node 20 has no --test globs).
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";

function find(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return find(path);
    return path.endsWith(".test.ts") ? [path] : [];
  });
}

const filter = process.argv.slice(2);
const files = find("test").filter((f) => filter.length === 0 || filter.some((s) => f.includes(s))).sort();
const result = spawnSync(process.execPath, ["--import", "tsx", "--test", "--test-concurrency=1", ...files], { stdio: "inherit" });
process.exit(result.status ?? 1);
