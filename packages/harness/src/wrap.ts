/**
 * `text` broken into lines of at most `width` characters (the lines after the first at most
 * `nextWidth`, default `width`): greedily at spaces, a word longer than a line cut into pieces.
 * Runs of spaces at a break are dropped; an empty text gives one empty line.
 * @param width whole number ≥ 1, in characters (UTF-16 code units).
 * @throws RangeError when a width is not a whole number ≥ 1.
 */
export function wrapText(text: string, width: number, nextWidth: number = width): string[] {
  for (const w of [width, nextWidth])
    if (!Number.isInteger(w) || w < 1) throw new RangeError(`a line width is a whole number ≥ 1, got ${w}`);
  const lines: string[] = [];
  let current = "";
  const limit = (): number => (lines.length === 0 ? width : nextWidth);
  for (const word of text.split(" ").filter((w) => w !== "")) {
    let rest = word;
    if (current !== "" && current.length + 1 + rest.length <= limit()) {
      current += ` ${rest}`;
      continue;
    }
    if (current !== "") {
      lines.push(current);
      current = "";
    }
    while (rest.length > limit()) {
      const cut = limit();
      lines.push(rest.slice(0, cut));
      rest = rest.slice(cut);
    }
    current = rest;
  }
  lines.push(current);
  return lines;
}
