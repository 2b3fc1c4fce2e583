// Where in a YAML document a validation problem is, so config and spec errors name file, line and column.
import { isMap, isScalar, type LineCounter, type Node, type parseDocument } from "yaml";

/** Line and column of `path` (or of the unknown key under it); a missing field points at its nearest parent. */
export function locateYamlNode(
  doc: ReturnType<typeof parseDocument>,
  path: readonly (string | number)[],
  unknownKey: string | undefined,
  lines: LineCounter,
): { line: number; col: number } | undefined {
  for (let n = path.length; n >= 0; n--) {
    const node = doc.getIn(path.slice(0, n), true) as Node | undefined;
    if (!node?.range) continue;
    if (n === path.length && unknownKey !== undefined && isMap(node)) {
      const pair = node.items.find((item) => isScalar(item.key) && item.key.value === unknownKey);
      const keyRange = isScalar(pair?.key) ? pair.key.range : undefined;
      if (keyRange) return lines.linePos(keyRange[0]);
    }
    return lines.linePos(node.range[0]);
  }
  return undefined;
}

/** `listen.tcp`, `rules[2].cn`: a field path as a person reads it. */
export function formatYamlPath(path: readonly (string | number)[]): string {
  return path.map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? p : `.${p}`)).join("");
}
