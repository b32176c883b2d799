import { describe, expect, it } from 'vitest';

import { ContainerState, engineSource, FollowState, ILogSource, LogFollower } from '../src/follower';
import { ILogLine } from '../src/logstore';
import { EngineError, ILogChunk } from '../src/model';

const ts = (s: number): string => `2026-12-06T04:20:${String(s).padStart(2, '0')}.000000000Z`;
const since = (s: number): string => `${Date.UTC(2026, 11, 6, 4, 20, s) / 1000}.000000001`;

/** A scripted engine: each stream call takes the next script entry; events are fired by the test. */
class FakeSource implements ILogSource {
  streams: (string | null)[] = [];
  states: ContainerState[] = [];
  watching: ((e: 'start' | 'destroy') => void)[] = [];
  private scripts: ((emit: (c: ILogChunk[]) => void) => Promise<void>)[] = [];

  script(run: (emit: (c: ILogChunk[]) => void) => Promise<void>): this {
    this.scripts.push(run);
    return this;
  }

  async stream(since: string | null, onChunks: (c: ILogChunk[]) => void): Promise<void> {
    this.streams.push(since);
    const run = this.scripts.shift();
    if (!run) {
      throw new Error('no more scripted streams');
    }
    await run(onChunks);
  }

  async state(): Promise<ContainerState> {
    return this.states.shift() ?? 'stopped';
  }

  watch(signal: AbortSignal): { subscribed: Promise<void>; next: Promise<'start' | 'destroy'> } {
    const next = new Promise<'start' | 'destroy'>((resolve, reject) => {
      this.watching.push(resolve);
      signal.addEventListener('abort', () => reject(new Error('aborted')));
    });
    return { subscribed: Promise.resolve(), next };
  }

  fire(e: 'start' | 'destroy'): void {
    this.watching.splice(0).forEach(w => w(e));
  }
}

const out = (s: number, text: string): ILogChunk[] => [{ stream: 'stdout', text: `${ts(s)} ${text}\n` }];
const tick = (): Promise<void> => new Promise(r => setTimeout(r, 5));

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !cond(); i++) {
    await tick();
  }
  expect(cond()).toBe(true);
}

function follow(source: ILogSource): { lines: ILogLine[]; states: FollowState['kind'][]; done: Promise<void>; abort: AbortController } {
  const lines: ILogLine[] = [];
  const states: FollowState['kind'][] = [];
  const abort = new AbortController();
  const follower = new LogFollower(source, l => lines.push(...l), s => states.push(s.kind), { retryDelay: 0 });
  return { lines, states, abort, done: follower.run(abort.signal) };
}

describe('LogFollower', () => {
  it('waits while the container is stopped and resumes after the last line when it starts', async () => {
    const source = new FakeSource()
      .script(async emit => emit(out(1, 'first run')))
      .script(async emit => emit(out(5, 'second run')));
    const f = follow(source);
    await until(() => f.states.includes('waiting'));
    expect(f.lines.map(l => l.text)).toEqual(['first run']);
    source.states.push('removed'); // what it finds after the second run
    source.fire('start');
    await f.done;
    expect(source.streams).toEqual([null, since(1)]);
    expect(f.states).toEqual(['waiting', 'following', 'removed']);
    expect(f.lines.map(l => l.text)).toEqual(['first run', 'second run']);
  });

  it('resumes at once when the container started again before it looked', async () => {
    const source = new FakeSource()
      .script(async emit => emit(out(1, 'a')))
      .script(async emit => emit(out(2, 'b')));
    source.states.push('running', 'removed');
    const f = follow(source);
    await f.done;
    expect(source.streams).toEqual([null, since(1)]);
    expect(f.lines.map(l => l.text)).toEqual(['a', 'b']);
    expect(f.states).toEqual(['removed']);
  });

  it('ends when the container is removed while it waits', async () => {
    const source = new FakeSource().script(async emit => emit(out(1, 'a')));
    const f = follow(source);
    await until(() => f.states.includes('waiting'));
    source.fire('destroy');
    await f.done;
    expect(f.states).toEqual(['waiting', 'removed']);
  });

  it('keeps a line cut by the stream end, and resumes after it', async () => {
    const source = new FakeSource()
      .script(async emit => emit([{ stream: 'stderr', text: `${ts(3)} no newline` }]))
      .script(async () => undefined);
    source.states.push('running', 'removed');
    const f = follow(source);
    await f.done;
    expect(f.lines).toEqual([{ stream: 'stderr', ts: ts(3), text: 'no newline' }]);
    expect(source.streams[1]).toBe(since(3));
  });

  it('reports what the engine refuses', async () => {
    const refused = new FakeSource().script(async () => {
      throw new EngineError(501, 'configured logging driver does not support reading');
    });
    const f = follow(refused);
    await f.done;
    expect(f.states).toEqual(['failed']);
    const gone = new FakeSource().script(async () => {
      throw new EngineError(404, 'No such container: c');
    });
    const g = follow(gone);
    await g.done;
    expect(g.states).toEqual(['removed']);
  });

  it('stops when aborted while waiting', async () => {
    const source = new FakeSource().script(async emit => emit(out(1, 'a')));
    const f = follow(source);
    await until(() => f.states.includes('waiting'));
    f.abort.abort();
    await f.done;
    expect(source.streams).toEqual([null]);
  });
});

describe('engineSource', () => {
  it('asks the logs, inspect and events endpoints as the Docker API has them', async () => {
    const paths: string[] = [];
    let events!: ReadableStreamDefaultController<Uint8Array>;
    const source = engineSource(async path => {
      paths.push(path);
      if (path.startsWith('containers/c%201/logs')) {
        return new Response(`${ts(1)} hello\n`, { headers: { 'Content-Type': 'application/vnd.docker.raw-stream' } });
      }
      if (path === 'containers/c%201/json') {
        return Response.json({ State: { Running: false } });
      }
      if (path.startsWith('events')) {
        return new Response(new ReadableStream({ start: c => (events = c) }));
      }
      return Response.json({ message: 'page not found' }, { status: 404 });
    }, 'c 1', 5);
    const got: ILogChunk[] = [];
    const signal = new AbortController().signal;
    await source.stream(null, c => got.push(...c), signal);
    await source.stream('12.5', c => got.push(...c), signal);
    expect(got).toEqual([1, 2].map(() => ({ stream: 'stdout', text: `${ts(1)} hello\n` })));
    expect(paths.splice(0, 2)).toEqual([
      'containers/c%201/logs?follow=1&stdout=1&stderr=1&timestamps=1&tail=5',
      'containers/c%201/logs?follow=1&stdout=1&stderr=1&timestamps=1&since=12.5'
    ]);
    expect(await source.state(signal)).toBe('stopped');
    const { subscribed, next } = source.watch(signal);
    await subscribed;
    const filters = JSON.parse(decodeURIComponent(paths[1].split('filters=')[1]));
    expect(filters).toEqual({ type: ['container'], container: ['c 1'], event: ['start', 'destroy'] });
    events.enqueue(new TextEncoder().encode('{"Type":"container","Action":"die"}\n{"Type":"container","Ac'));
    events.enqueue(new TextEncoder().encode('tion":"start"}\n'));
    expect(await next).toBe('start');
  });
});
