/** Reading raw settings while collecting every problem, each naming its key with a fix to paste. */
import { DEFAULTS, RawConfig } from "./settings";

/** Raised with every configuration problem at once. */
export class ConfigError extends Error {
    constructor(readonly problems: readonly string[]) {
        super(`Invalid buildx-host configuration (${problems.length} problem${problems.length === 1 ? "" : "s"}):\n` +
            problems.map(p => `  - ${p}`).join("\n"));
        this.name = "ConfigError";
    }
}

/** Collects problems while reading keys, so that all of them are reported together. */
export class Reader {
    constructor(private readonly raw: RawConfig, private readonly secretKeys?: readonly string[],
                readonly problems: string[] = []) {}

    /** Whether `key` is stored encrypted; unknown (no list given, as in the lab) counts as yes. */
    storedAsSecret(key: string): boolean {
        return this.secretKeys === undefined || this.secretKeys.includes(key);
    }

    problem(key: string, why: string, example: string): void {
        this.problems.push(`buildx-host:${key} ${why}. Example: pulumi config set ${example}`);
    }

    /** The keys given, set or not. */
    keys(): string[] {
        return Object.keys(this.raw);
    }

    has(key: string): boolean {
        const value = this.raw[key];
        return value !== undefined && value.trim() !== "";
    }

    /** Whether the stack sets `key` to something other than its Pulumi.yaml default (an empty list is no setting). */
    isSet(key: string): boolean {
        const fallback = (DEFAULTS as Readonly<Record<string, unknown>>)[key];
        const declared = fallback === undefined ? undefined : typeof fallback === "string" ? fallback : JSON.stringify(fallback);
        const value = this.string(key);
        return value !== undefined && value !== declared && value !== "[]";
    }

    string(key: string, fallback?: string): string | undefined {
        return this.has(key) ? this.raw[key]!.trim() : fallback;
    }

    oneOf<T extends string>(key: string, allowed: readonly T[], fallback: T, example: string): T {
        const value = this.string(key, fallback)!;
        if (!(allowed as readonly string[]).includes(value)) {
            this.problem(key, `must be one of ${allowed.map(a => `"${a}"`).join(", ")}, not "${value}"`, example);
            return fallback;
        }
        return value as T;
    }

    integer(key: string, fallback: number, min: number, max: number, example: string): number {
        const value = this.string(key);
        if (value === undefined) {
            return fallback;
        }
        if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
            this.problem(key, `must be a whole number from ${min} to ${max}, not "${value}"`, example);
            return fallback;
        }
        return Number(value);
    }

    boolean(key: string, fallback: boolean, example: string): boolean {
        const value = this.string(key);
        if (value === undefined) {
            return fallback;
        }
        if (value !== "true" && value !== "false") {
            this.problem(key, `must be true or false, not "${value}"`, example);
            return fallback;
        }
        return value === "true";
    }

    /** A list stored as a JSON array of strings (`pulumi config set --path 'key[0]' …` writes one). */
    stringList(key: string, fallback: readonly string[], example: string): readonly string[] {
        const value = this.string(key);
        if (value === undefined) {
            return fallback;
        }
        let parsed: unknown;
        try {
            parsed = JSON.parse(value);
        } catch {
            parsed = undefined;
        }
        if (!Array.isArray(parsed) || !parsed.every(item => typeof item === "string")) {
            this.problem(key, "must be a list of strings", example);
            return fallback;
        }
        return parsed.map(item => item.trim());
    }

    matching(key: string, pattern: RegExp, why: string, example: string, fallback?: string): string | undefined {
        const value = this.string(key, fallback);
        if (value !== undefined && !pattern.test(value)) {
            this.problem(key, `${why}, not "${value}"`, example);
            return fallback;
        }
        return value;
    }
}
