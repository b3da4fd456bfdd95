import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { parse } from 'yaml';

/**
 * Checks real responses against openapi.yaml: the operation and status must be documented, a JSON body
 * must validate against its schema, a bodiless response must have no body, and required headers must be there.
 */

type Json = Record<string, unknown>;

// ajv-formats is CommonJS: under NodeNext its default import is the module object, whose `default` is the plugin.
const addFormats = (addFormatsModule as unknown as { default: typeof addFormatsModule.default }).default;

export interface SpecChecker {
  documentedOperations(): Array<{ method: string; path: string; statuses: string[] }>;
  assertMatchesSpec(method: string, pathTemplate: string, res: { statusCode: number; headers: Record<string, unknown>; body: string }): void;
}

/** A checker for one OpenAPI document of the repository (openapi.yaml, openapi-admin.yaml). */
export function specChecker(file: string): SpecChecker {
  const doc = parse(readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8')) as Json;
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  ajv.addSchema(doc, 'openapi');

  const escape = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');

  function resolve(node: unknown, pointer: string): { node: Json; pointer: string } {
    let current = node as Json;
    let at = pointer;
    while (typeof current?.$ref === 'string') {
      at = current.$ref;
      current = at
        .slice(2)
        .split('/')
        .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
        .reduce<unknown>((n, key) => (n as Json)[key], doc) as Json;
    }
    return { node: current, pointer: at };
  }

  function documentedOperations(): Array<{ method: string; path: string; statuses: string[] }> {
    const out = [];
    for (const [path, item] of Object.entries(doc.paths as Json)) {
      for (const [method, op] of Object.entries(item as Json)) {
        if (!['get', 'post', 'put', 'patch', 'delete'].includes(method)) continue;
        out.push({ method, path, statuses: Object.keys((op as Json).responses as Json) });
      }
    }
    return out;
  }

  function assertMatchesSpec(
    method: string,
    pathTemplate: string,
    res: { statusCode: number; headers: Record<string, unknown>; body: string },
  ): void {
    const where = `${method.toUpperCase()} ${pathTemplate} → ${res.statusCode}`;
    const op = ((doc.paths as Json)[pathTemplate] as Json | undefined)?.[method.toLowerCase()] as Json | undefined;
    if (!op) throw new Error(`${where}: operation not documented`);
    const responses = op.responses as Json;
    const status = String(res.statusCode);
    if (!(status in responses)) throw new Error(`${where}: status not documented (documented: ${Object.keys(responses).join(', ')})`);
    const base = `#/paths/${escape(pathTemplate)}/${method.toLowerCase()}/responses/${status}`;
    const { node: response, pointer } = resolve(responses[status], base);

    for (const [name, header] of Object.entries((response.headers ?? {}) as Json)) {
      const h = resolve(header, '').node;
      if (h.required === true && res.headers[name.toLowerCase()] === undefined) {
        throw new Error(`${where}: required header ${name} is missing`);
      }
    }

    const content = response.content as Json | undefined;
    const json = content?.['application/json'] as Json | undefined;
    if (!json) {
      // A page or a static file (the admin console): its media type must be documented.
      if (content) {
        const type = String(res.headers['content-type'] ?? '').split(';')[0]!.trim();
        if (!(type in content)) throw new Error(`${where}: content type ${type} not documented (documented: ${Object.keys(content).join(', ')})`);
        return;
      }
      if (res.body !== '') throw new Error(`${where}: documented without a body, got ${res.body.slice(0, 200)}`);
      return;
    }
    let body: unknown;
    try {
      body = JSON.parse(res.body);
    } catch {
      throw new Error(`${where}: body is not JSON: ${res.body.slice(0, 200)}`);
    }
    const validate = ajv.compile({ $ref: `openapi${pointer}/content/application~1json/schema` });
    if (!validate(body)) {
      throw new Error(`${where}: body does not match the schema: ${ajv.errorsText(validate.errors)}\n${res.body.slice(0, 500)}`);
    }
  }
  return { documentedOperations, assertMatchesSpec };
}

const main = specChecker('openapi.yaml');
export const documentedOperations = main.documentedOperations;
export const assertMatchesSpec = main.assertMatchesSpec;
