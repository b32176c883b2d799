import { describe, expect, it } from 'vitest';

import { ILogLine, LINES_PER_CHUNK, LineSplitter, LogStore, searchPattern, sinceAfter } from '../src/logstore';
import { FrameDecoder } from '../src/model';

const TS = '2026-12-06T04:20:11.123456789Z';

function frame(stream: number, text: string): Uint8Array {
  const payload = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + payload.length);
  out[0] = stream;
  new DataView(out.buffer).setUint32(4, payload.length, false);
  out.set(payload, 8);
  return out;
}

function lines(n: number, text = (i: number) => `line ${i}`): ILogLine[] {
  return Array.from({ length: n }, (_, i) => ({ stream: i % 3 ? 'stdout' : 'stderr', ts: `${TS.slice(0, -1)}${i}Z`, text: text(i) }));
}

describe('LineSplitter', () => {
  it('cuts multiplexed frames into lines per stream, wherever the frames were cut', () => {
    const bytes = new Uint8Array([
      ...frame(1, `${TS} out one\n${TS} out `),
      ...frame(2, `${TS} err one\n`),
      ...frame(1, 'two\n')
    ]);
    const decoder = new FrameDecoder();
    const splitter = new LineSplitter();
    const got: ILogLine[] = [];
    for (let at = 0; at < bytes.length; at += 7) {
      got.push(...splitter.push(decoder.push(bytes.slice(at, at + 7))));
    }
    expect(got).toEqual([
      { stream: 'stdout', ts: TS, text: 'out one' },
      { stream: 'stderr', ts: TS, text: 'err one' },
      { stream: 'stdout', ts: TS, text: 'out two' }
    ]);
    expect(splitter.flush()).toEqual([]);
  });

  it('drops TTY carriage returns and escape codes, keeps an unterminated rest for flush', () => {
    const splitter = new LineSplitter();
    expect(splitter.push([{ stream: 'stdout', text: `${TS} \x1b[31mred\x1b[0m\r\n${TS} \x1b]0;title\x07half` }])).toEqual([
      { stream: 'stdout', ts: TS, text: 'red' }
    ]);
    expect(splitter.flush()).toEqual([{ stream: 'stdout', ts: TS, text: 'half' }]);
  });

  it('leaves lines without a timestamp whole', () => {
    const splitter = new LineSplitter();
    expect(splitter.push([{ stream: 'stdout', text: 'no stamp here\n2026-12-06 not one\n' }])).toEqual([
      { stream: 'stdout', ts: '', text: 'no stamp here' },
      { stream: 'stdout', ts: '', text: '2026-12-06 not one' }
    ]);
    expect(new LineSplitter(false).push([{ stream: 'stdout', text: `${TS} kept\n` }])[0].text).toBe(`${TS} kept`);
  });
});

describe('sinceAfter', () => {
  it('is one nanosecond after the timestamp, in the seconds.nanoseconds the API takes', () => {
    expect(sinceAfter('2026-12-06T04:20:11.123456789Z')).toBe(`${Date.UTC(2026, 11, 6, 4, 20, 11) / 1000}.123456790`);
    expect(sinceAfter('2026-12-06T04:20:11.999999999Z')).toBe(`${Date.UTC(2026, 11, 6, 4, 20, 12) / 1000}.000000000`);
    expect(sinceAfter('2026-12-06T05:20:11.5+01:00')).toBe(`${Date.UTC(2026, 11, 6, 4, 20, 11) / 1000}.500000001`);
    expect(sinceAfter('2026-12-06T04:20:11Z')).toBe(`${Date.UTC(2026, 11, 6, 4, 20, 11) / 1000}.000000001`);
    expect(sinceAfter('yesterday')).toBeNull();
  });
});

describe('LogStore', () => {
  it('gives back every line across sealed chunks and the open one', () => {
    const store = new LogStore();
    const all = lines(LINES_PER_CHUNK * 2 + 5);
    store.append(all.slice(0, 10));
    store.append(all.slice(10));
    expect(store.length).toBe(all.length);
    for (const i of [0, 9, LINES_PER_CHUNK - 1, LINES_PER_CHUNK, 2 * LINES_PER_CHUNK + 4]) {
      expect(store.line(i)).toEqual(all[i]);
    }
    expect(store.lastTimestamp).toBe(all[all.length - 1].ts);
    expect([...store.text(false)].slice(0, 2)).toEqual(['line 0\n', 'line 1\n']);
    expect([...store.text(true)][1]).toBe(`${all[1].ts} line 1\n`);
  });

  it('keeps lines without timestamps and empty lines', () => {
    const store = new LogStore();
    store.append([{ stream: 'stdout', ts: '', text: '' }, { stream: 'stderr', ts: '', text: 'x' }]);
    expect(store.line(0)).toEqual({ stream: 'stdout', ts: '', text: '' });
    expect(store.line(1)).toEqual({ stream: 'stderr', ts: '', text: 'x' });
    expect(store.lastTimestamp).toBe('');
  });

  it('finds each matching line once, case-insensitively, in every chunk', () => {
    const store = new LogStore();
    const n = LINES_PER_CHUNK * 2 + 100;
    store.append(lines(n, i => (i % 1000 === 7 ? `Needle ${i} needle` : `hay ${i}`)));
    const expected = Array.from({ length: n }, (_, i) => i).filter(i => i % 1000 === 7);
    expect(store.search(searchPattern('NEEDLE')!, false)).toEqual(expected);
    expect(store.search(searchPattern('needle')!, false, 20_000)).toEqual(expected.filter(i => i >= 20_000));
    expect(store.search(searchPattern('absent')!, false)).toEqual([]);
    expect(searchPattern('')).toBeNull();
    expect(store.search(searchPattern('.*')!, false)).toEqual([]); // plain text, not a pattern
  });

  it('matches timestamps only when they are shown', () => {
    const store = new LogStore();
    const all = lines(LINES_PER_CHUNK + 3);
    store.append(all);
    const inStamp = searchPattern(':20:11')!;
    expect(store.search(inStamp, false)).toEqual([]);
    expect(store.search(inStamp, true).length).toBe(all.length);
    // the last line of a sealed chunk and of the open chunk
    expect(store.search(searchPattern(`line ${LINES_PER_CHUNK - 1}`)!, false)).toEqual([LINES_PER_CHUNK - 1]);
    expect(store.search(searchPattern(`line ${LINES_PER_CHUNK + 2}`)!, false)).toEqual([LINES_PER_CHUNK + 2]);
  });

  it('holds a million lines and searches them quickly', () => {
    const store = new LogStore();
    const batch: ILogLine[] = [];
    for (let i = 0; i < 1_000_000; i++) {
      batch.push({ stream: 'stdout', ts: TS, text: `line number ${i}` });
      if (batch.length === 10_000) {
        store.append(batch.splice(0));
      }
    }
    expect(store.length).toBe(1_000_000);
    expect(store.line(999_999).text).toBe('line number 999999');
    const started = performance.now();
    expect(store.search(searchPattern('number 99999')!, false)).toEqual([99999, ...Array.from({ length: 10 }, (_, k) => 999990 + k)]);
    expect(performance.now() - started).toBeLessThan(2000);
  });
});
