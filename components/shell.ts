/** Quotes a value for a POSIX shell: single quotes, with embedded single quotes spliced in. */
export function shellQuote(value: string): string {
    return `'${value.replace(/'/g, `'"'"'`)}'`;
}
