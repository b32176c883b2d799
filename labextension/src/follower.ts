/**
 * Following one container's log across stops and starts, as the log view does.
 *
 * `GET /containers/{id}/logs?follow=1` ends when the container stops. The
 * follower then waits for the same container to start again and resumes
 * with `since` just after the last line it got, so nothing shows twice and
 * nothing is lost, until the container is removed or the view closes.
 *
 * To wait without a race, it subscribes to the container's start and
 * destroy events first and only then asks whether the container runs: a
 * start between the two is seen either way.
 */
import { ILogLine, LineSplitter, sinceAfter } from './logstore';
import { decoderFor, EngineError, engineError, errorMessage, ILogChunk, Requester } from './model';

export type FollowState =
  | { kind: 'following' }
  | { kind: 'waiting' } // the container stopped; waiting for it to start again
  | { kind: 'removed' }
  | { kind: 'failed'; message: string };

export type ContainerState = 'running' | 'stopped' | 'removed';

/** What the follower needs of the engine, so that it can be driven by a fake in unit tests. */
export interface ILogSource {
  /** Streams the log (all of it, or from `since`) until it ends; rejects with EngineError when refused. */
  stream(since: string | null, onChunks: (chunks: ILogChunk[]) => void, signal: AbortSignal): Promise<void>;
  /** Whether the container runs now. */
  state(signal: AbortSignal): Promise<ContainerState>;
  /**
   * Subscribes to the container's next start or removal: `subscribed`
   * settles once events are being received, `next` with the first of them.
   */
  watch(signal: AbortSignal): { subscribed: Promise<void>; next: Promise<'start' | 'destroy'> };
}

export interface IFollowerOptions {
  /** Milliseconds before reopening a stream that broke off while the container ran, or resuming at once. */
  retryDelay?: number;
}

export class LogFollower {
  private _state: FollowState = { kind: 'following' };
  private retryDelay: number;

  constructor(
    private source: ILogSource,
    private onLines: (lines: ILogLine[]) => void,
    private onState: (state: FollowState) => void,
    options: IFollowerOptions = {}
  ) {
    this.retryDelay = options.retryDelay ?? 1000;
  }

  get state(): FollowState {
    return this._state;
  }

  /** Follows until the container is removed, the engine refuses, or `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    let since: string | null = null;
    let resumedAt = 0;
    while (!signal.aborted) {
      this.set({ kind: 'following' });
      const splitter = new LineSplitter(true);
      let last = '';
      try {
        await this.source.stream(
          since,
          chunks => {
            const lines = splitter.push(chunks);
            if (lines.length) {
              last = lines[lines.length - 1].ts || last;
              this.onLines(lines);
            }
          },
          signal
        );
      } catch (err) {
        if (signal.aborted) {
          return;
        }
        if (err instanceof EngineError) {
          this.set(err.status === 404 ? { kind: 'removed' } : { kind: 'failed', message: err.message });
          return;
        }
        // the connection broke (not the engine's refusal): go on as if the stream had ended
      }
      const rest = splitter.flush();
      if (rest.length) {
        last = rest[rest.length - 1].ts || last;
        this.onLines(rest);
      }
      since = (last && sinceAfter(last)) || since;
      if (signal.aborted) {
        return;
      }
      const outcome = await this.waitForStart(signal);
      if (outcome !== 'start') {
        if (outcome === 'destroy') {
          this.set({ kind: 'removed' });
        }
        return;
      }
      // a stream that ends at once while the container runs must not become a busy loop
      const now = Date.now();
      if (now - resumedAt < this.retryDelay) {
        await sleep(this.retryDelay, signal);
      }
      resumedAt = Date.now();
    }
  }

  /** 'start' once the container runs (again), 'destroy' once it is gone, null when aborted. */
  private async waitForStart(signal: AbortSignal): Promise<'start' | 'destroy' | null> {
    const watching = new AbortController();
    const stop = (): void => watching.abort();
    signal.addEventListener('abort', stop);
    try {
      const { subscribed, next } = this.source.watch(watching.signal);
      next.catch(() => undefined); // settled below, or abandoned with the watch
      try {
        await subscribed;
      } catch (err) {
        if (signal.aborted) {
          return null;
        }
        this.set({ kind: 'failed', message: `cannot watch the container: ${errorMessage(err)}` });
        return null;
      }
      let state: ContainerState;
      try {
        state = await this.source.state(signal);
      } catch (err) {
        if (!signal.aborted) {
          this.set({ kind: 'failed', message: errorMessage(err) });
        }
        return null;
      }
      if (state === 'running') {
        return 'start';
      }
      if (state === 'removed') {
        return 'destroy';
      }
      this.set({ kind: 'waiting' });
      try {
        return await next;
      } catch {
        return signal.aborted ? null : 'start'; // the event stream broke: look again
      }
    } finally {
      signal.removeEventListener('abort', stop);
      watching.abort();
    }
  }

  private set(state: FollowState): void {
    if (JSON.stringify(state) !== JSON.stringify(this._state)) {
      this._state = state;
      this.onState(state);
    }
  }
}

/**
 * The engine behind `request` as a log source for container `id`; a stream
 * from the start brings at most the last `tail` lines of what was logged
 * before it (a resumed one, all since).
 */
export function engineSource(request: Requester, id: string, tail: number | 'all' = 'all'): ILogSource {
  const enc = encodeURIComponent;
  const checked = async (path: string, init: RequestInit): Promise<Response> => {
    const resp = await request(path, init);
    if (!resp.ok) {
      throw await engineError(resp);
    }
    return resp;
  };
  return {
    async stream(since, onChunks, signal) {
      const query = `follow=1&stdout=1&stderr=1&timestamps=1&${since ? `since=${since}` : `tail=${tail}`}`;
      const resp = await checked(`containers/${enc(id)}/logs?${query}`, { method: 'GET', signal });
      if (!resp.body) {
        return;
      }
      const decoder = decoderFor(resp.headers.get('Content-Type'));
      const reader = resp.body.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) {
            return;
          }
          onChunks(decoder.push(value));
        }
      } finally {
        reader.releaseLock();
      }
    },
    async state(signal) {
      const resp = await request(`containers/${enc(id)}/json`, { method: 'GET', signal });
      if (resp.status === 404) {
        return 'removed';
      }
      if (!resp.ok) {
        throw new EngineError(resp.status, resp.statusText);
      }
      const info = (await resp.json()) as { State?: { Running?: boolean } };
      return info.State?.Running ? 'running' : 'stopped';
    },
    watch(signal) {
      const filters = JSON.stringify({ type: ['container'], container: [id], event: ['start', 'destroy'] });
      let subscribed!: () => void;
      const ready = new Promise<void>(resolve => (subscribed = resolve));
      const next = (async (): Promise<'start' | 'destroy'> => {
        const resp = await checked(`events?filters=${enc(filters)}`, { method: 'GET', signal });
        subscribed();
        const reader = resp.body?.getReader();
        const decoder = new TextDecoder();
        let rest = '';
        try {
          while (reader) {
            const { done, value } = await reader.read();
            if (done) {
              break;
            }
            const lines = (rest + decoder.decode(value, { stream: true })).split('\n');
            rest = lines.pop() ?? '';
            for (const line of lines.filter(l => l.trim())) {
              const action = (JSON.parse(line) as { Action?: string }).Action;
              if (action === 'start' || action === 'destroy') {
                return action;
              }
            }
          }
        } finally {
          void reader?.cancel().catch(() => undefined);
        }
        throw new Error('the event stream ended');
      })();
      return { subscribed: Promise.race([ready, next.then(() => undefined)]), next };
    }
  };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise(resolve => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
