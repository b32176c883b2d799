/**
 * A container log held compactly in the browser, for the log view.
 *
 * A log of millions of lines must neither exhaust memory nor make the page
 * wait: lines are kept in sealed chunks, each one string of
 * `LINES_PER_CHUNK` newline-joined lines, with each line's start offset, its
 * stream and the length of its timestamp prefix in growable typed arrays. A
 * line is sliced out of its chunk only when it is drawn; a search runs one
 * regular expression over each chunk rather than over each line.
 */
import { ILogChunk, StreamName } from './model';

export const LINES_PER_CHUNK = 16384;

/** One line of a log: its stream, its timestamp (RFC 3339, empty without) and its text. */
export interface ILogLine {
  stream: StreamName;
  ts: string;
  text: string;
}

const TIMESTAMP = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) /;
// CSI sequences (colours, cursor moves) and OSC sequences (titles): a log line is shown as text
// eslint-disable-next-line no-control-regex
const ESCAPES = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]/g;

/**
 * Cuts decoded stream text into lines, per stream (a line may arrive in
 * pieces, interleaved with the other stream's), dropping the `\r` a TTY ends
 * lines with and terminal escape sequences; with `timestamps`, each line's
 * leading RFC 3339 timestamp (as `docker logs -t` prints it) is split off.
 */
export class LineSplitter {
  private partial = new Map<StreamName, string>();

  constructor(private timestamps = true) {}

  push(chunks: ILogChunk[]): ILogLine[] {
    const out: ILogLine[] = [];
    for (const { stream, text } of chunks) {
      const parts = ((this.partial.get(stream) ?? '') + text).split('\n');
      this.partial.set(stream, parts.pop() ?? '');
      for (const part of parts) {
        out.push(this.line(stream, part));
      }
    }
    return out;
  }

  /** The unterminated rest of each stream, as lines (the stream ended). */
  flush(): ILogLine[] {
    const out: ILogLine[] = [];
    for (const [stream, rest] of this.partial) {
      if (rest) {
        out.push(this.line(stream, rest));
      }
    }
    this.partial.clear();
    return out;
  }

  private line(stream: StreamName, raw: string): ILogLine {
    let text = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    let ts = '';
    if (this.timestamps) {
      const m = TIMESTAMP.exec(text);
      if (m) {
        ts = m[1];
        text = text.slice(m[0].length);
      }
    }
    if (text.includes('\x1b')) {
      text = text.replace(ESCAPES, '');
    }
    return { stream, ts, text };
  }
}

/**
 * The `since` value (seconds.nanoseconds, as the logs API takes it) that
 * selects what was logged after `ts`: one nanosecond later, since `since` is
 * inclusive.
 */
export function sinceAfter(ts: string): string | null {
  const m = /^([^.]*?)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(ts);
  if (!m) {
    return null;
  }
  const ms = Date.parse(m[1] + m[3]);
  if (Number.isNaN(ms)) {
    return null;
  }
  let seconds = Math.floor(ms / 1000);
  let nanos = Number((m[2] ?? '').padEnd(9, '0').slice(0, 9)) + 1;
  if (nanos >= 1e9) {
    seconds += 1;
    nanos -= 1e9;
  }
  return `${seconds}.${String(nanos).padStart(9, '0')}`;
}

const STREAM_CODES: StreamName[] = ['stdout', 'stderr', 'stdin'];

function grow<T extends Uint32Array | Uint8Array>(a: T, need: number): T {
  if (need <= a.length) {
    return a;
  }
  const next = new (a.constructor as { new (n: number): T })(Math.max(need, a.length * 2));
  next.set(a);
  return next;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A search for plain text, case-insensitive, as a global regular expression (null for an empty query). */
export function searchPattern(query: string): RegExp | null {
  const q = query.replace(/\n/g, '');
  return q ? new RegExp(escapeRegExp(q), 'gi') : null;
}

export class LogStore {
  private sealed: string[] = [];
  private open: string[] = [];
  // Per line: the text's offset in its sealed chunk (the stored text is `ts + ' ' + text` when
  // there is a timestamp), its stream, and its timestamp's length.
  private starts = new Uint32Array(LINES_PER_CHUNK);
  private streams = new Uint8Array(LINES_PER_CHUNK);
  private tsLens = new Uint8Array(LINES_PER_CHUNK);
  private openOffset = 0;
  private _length = 0;
  private _lastTs = '';

  get length(): number {
    return this._length;
  }

  /** The last timestamp seen (RFC 3339), empty if none. */
  get lastTimestamp(): string {
    return this._lastTs;
  }

  append(lines: ILogLine[]): void {
    for (const line of lines) {
      const i = this._length;
      const stored = line.ts ? `${line.ts} ${line.text}` : line.text;
      this.starts = grow(this.starts, i + 1);
      this.streams = grow(this.streams, i + 1);
      this.tsLens = grow(this.tsLens, i + 1);
      this.starts[i] = this.openOffset;
      this.streams[i] = Math.max(0, STREAM_CODES.indexOf(line.stream));
      this.tsLens[i] = line.ts ? Math.min(line.ts.length + 1, 255) : 0;
      this.open.push(stored);
      this.openOffset += stored.length + 1;
      this._length = i + 1;
      if (line.ts) {
        this._lastTs = line.ts;
      }
      if (this.open.length === LINES_PER_CHUNK) {
        this.sealed.push(this.open.join('\n') + '\n');
        this.open = [];
        this.openOffset = 0;
      }
    }
  }

  line(i: number): ILogLine {
    const stored = this.stored(i);
    const tsLen = this.tsLens[i];
    return {
      stream: STREAM_CODES[this.streams[i]],
      ts: tsLen ? stored.slice(0, tsLen - 1) : '',
      text: tsLen ? stored.slice(tsLen) : stored
    };
  }

  /** Every line as text (with timestamps if asked), each ending in a newline. */
  *text(timestamps: boolean): Generator<string> {
    for (let i = 0; i < this._length; i++) {
      const { ts, text } = this.line(i);
      yield timestamps && ts ? `${ts} ${text}\n` : `${text}\n`;
    }
  }

  /**
   * Indices of the lines from `from` on where `pattern` (global) matches,
   * in order; with `timestamps` false, a match must lie in the line's text.
   */
  search(pattern: RegExp, timestamps: boolean, from = 0): number[] {
    const out: number[] = [];
    let i = from;
    while (i < this._length) {
      const chunk = Math.floor(i / LINES_PER_CHUNK);
      if (chunk < this.sealed.length) {
        i = this.searchChunk(chunk, pattern, timestamps, i, out);
      } else {
        for (; i < this._length; i++) {
          const stored = this.stored(i);
          pattern.lastIndex = timestamps ? 0 : this.tsLens[i];
          if (pattern.exec(stored)) {
            out.push(i);
          }
        }
      }
    }
    return out;
  }

  private searchChunk(chunk: number, pattern: RegExp, timestamps: boolean, from: number, out: number[]): number {
    const text = this.sealed[chunk];
    const first = chunk * LINES_PER_CHUNK;
    const end = first + LINES_PER_CHUNK;
    let i = from;
    pattern.lastIndex = this.starts[i];
    let m: RegExpExecArray | null;
    while ((m = pattern.exec(text)) !== null) {
      if (m[0].length === 0) {
        pattern.lastIndex++;
      }
      while (i + 1 < end && this.starts[i + 1] <= m.index) {
        i++;
      }
      if (timestamps || m.index >= this.starts[i] + this.tsLens[i]) {
        out.push(i);
        if (i + 1 >= end) {
          break;
        }
        i++; // one entry per line: go on from the next line
        pattern.lastIndex = this.starts[i];
      }
    }
    return end;
  }

  private stored(i: number): string {
    const chunk = Math.floor(i / LINES_PER_CHUNK);
    if (chunk < this.sealed.length) {
      const text = this.sealed[chunk];
      const next = i + 1 < (chunk + 1) * LINES_PER_CHUNK ? this.starts[i + 1] : text.length;
      return text.slice(this.starts[i], next - 1);
    }
    return this.open[i - chunk * LINES_PER_CHUNK];
  }
}
