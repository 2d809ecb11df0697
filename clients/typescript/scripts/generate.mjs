// Generates src/schema.ts (or the file named by the first argument) from the
// repository's openapi.yaml with openapi-typescript. Binary bodies
// (`format: binary`: avatar uploads and downloads) become Blob instead of
// the CLI's string, so a typed call can send and receive real bytes.
import { writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import openapiTS, { astToString, COMMENT_HEADER } from "openapi-typescript";

const spec = new URL("../../../openapi.yaml", import.meta.url);
const out = process.argv[2] ?? fileURLToPath(new URL("../src/schema.ts", import.meta.url));

const BLOB = ts.factory.createTypeReferenceNode(ts.factory.createIdentifier("Blob"));
const NULL = ts.factory.createLiteralTypeNode(ts.factory.createNull());

const ast = await openapiTS(spec, {
  transform(schema) {
    if (schema.format === "binary") {
      return schema.nullable ? ts.factory.createUnionTypeNode([BLOB, NULL]) : BLOB;
    }
    return undefined;
  },
});
await writeFile(out, COMMENT_HEADER + astToString(ast));
