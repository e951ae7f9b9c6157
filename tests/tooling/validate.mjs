// Parse AsyncAPI documents with the official JavaScript parser and report what it finds.
// Usage: node validate.mjs FILE...   Prints one JSON object per file:
// {"file": ..., "errors": [...], "warnings": [...]} (diagnostics of severity 0 and 1).
// Exits 1 when any document has an error.
import { readFile } from "node:fs/promises";
import { Parser } from "@asyncapi/parser";

const parser = new Parser();
let failed = false;
for (const file of process.argv.slice(2)) {
  const text = await readFile(file, "utf8");
  const { document, diagnostics } = await parser.parse(text, { source: file });
  const pick = (severity) =>
    diagnostics
      .filter((d) => d.severity === severity)
      .map((d) => ({ code: d.code, message: d.message, path: d.path.join("/") }));
  const errors = pick(0);
  if (document === undefined && errors.length === 0) {
    errors.push({ code: "no-document", message: "the parser returned no document", path: "" });
  }
  failed ||= errors.length > 0;
  console.log(JSON.stringify({ file, errors, warnings: pick(1) }));
}
process.exit(failed ? 1 : 0);
