import * as yaml from "js-yaml";

/**
 * YAML a person reads and pastes: multi-line strings as block scalars (`|`), no line folded (a key
 * or a command stays on one line), a value used twice written twice rather than as an anchor.
 */
export function toYaml(value: unknown): string {
    return yaml.dump(value, { lineWidth: -1, noRefs: true });
}
