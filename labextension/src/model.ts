/**
 * Client model of the pydock engine behind the Jupyter server.
 *
 * Everything here talks to the Docker Engine API through an injected
 * `Requester`, so the model runs unchanged under a fake fetch in unit tests
 * and under Jupyter's authenticated `ServerConnection` in the browser.
 */
import { ISignal, Signal } from '@lumino/signaling';

/** Performs one request against `<base_url>/pydock/<api version>/<path>`. */
export type Requester = (path: string, init?: RequestInit) => Promise<Response>;

export interface IPort {
  IP?: string;
  PrivatePort: number;
  PublicPort?: number;
  Type: string;
}

export interface IContainer {
  Id: string;
  Names: string[];
  Image: string;
  State: string;
  Status: string;
  Ports: IPort[];
  Created: number;
  Command?: string;
  Labels?: Record<string, string> | null;
}

export interface IImage {
  Id: string;
  RepoTags: string[] | null;
  Size: number;
  Created: number;
}

/** One Docker event as `/events` streams it. */
export interface IEngineEvent {
  Type: string;
  Action: string;
  Actor?: { ID: string; Attributes?: Record<string, string> };
  time?: number;
}

export type StreamName = 'stdin' | 'stdout' | 'stderr';

export interface ILogChunk {
  stream: StreamName;
  text: string;
}

/** An error answered by the engine, carrying Docker's `{"message": ...}`. */
export class EngineError extends Error {
  constructor(
    readonly status: number,
    message: string
  ) {
    super(message);
  }
}

const STREAMS: StreamName[] = ['stdin', 'stdout', 'stderr'];
const MUX_CONTENT_TYPE = 'application/vnd.docker.multiplexed-stream';

/**
 * Splits Docker's multiplexed attach/logs stream into per-stream text.
 *
 * Frames are `[stream, 0, 0, 0, size (uint32 BE)]` + payload and may be cut
 * anywhere by the transport, including inside the header or inside a UTF-8
 * sequence, so both bytes and characters are carried over between pushes.
 */
export class FrameDecoder {
  private pending = new Uint8Array(0);
  private decoders = new Map<StreamName, TextDecoder>();

  push(chunk: Uint8Array): ILogChunk[] {
    const buf = concat(this.pending, chunk);
    const out: ILogChunk[] = [];
    let pos = 0;
    while (buf.length - pos >= 8) {
      const size = new DataView(buf.buffer, buf.byteOffset + pos + 4, 4).getUint32(0, false);
      if (buf.length - pos - 8 < size) {
        break;
      }
      const stream = STREAMS[buf[pos]] ?? 'stdout';
      const text = this.decoder(stream).decode(buf.subarray(pos + 8, pos + 8 + size), { stream: true });
      pos += 8 + size;
      if (text) {
        appendChunk(out, stream, text);
      }
    }
    this.pending = buf.slice(pos);
    return out;
  }

  private decoder(stream: StreamName): TextDecoder {
    let d = this.decoders.get(stream);
    if (!d) {
      d = new TextDecoder();
      this.decoders.set(stream, d);
    }
    return d;
  }
}

/** A TTY container's logs are one raw stream without frame headers. */
export class RawDecoder {
  private decoder = new TextDecoder();

  push(chunk: Uint8Array): ILogChunk[] {
    const text = this.decoder.decode(chunk, { stream: true });
    return text ? [{ stream: 'stdout', text }] : [];
  }
}

/** Picks the decoder the engine announced through the response's content type. */
export function decoderFor(contentType: string | null): FrameDecoder | RawDecoder {
  return (contentType ?? '').startsWith(MUX_CONTENT_TYPE) ? new FrameDecoder() : new RawDecoder();
}

function appendChunk(out: ILogChunk[], stream: StreamName, text: string): void {
  const last = out[out.length - 1];
  if (last && last.stream === stream) {
    last.text += text;
  } else {
    out.push({ stream, text });
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) {
    return b;
  }
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Calls `onLine` for each complete line of a newline-delimited body. */
export async function readLines(
  body: ReadableStream<Uint8Array>,
  onLine: (line: string) => void
): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let rest = '';
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        break;
      }
      rest += decoder.decode(value, { stream: true });
      const lines = rest.split('\n');
      rest = lines.pop() ?? '';
      lines.filter(l => l.trim()).forEach(onLine);
    }
    rest += decoder.decode();
    if (rest.trim()) {
      onLine(rest);
    }
  } finally {
    reader.releaseLock();
  }
}

/** Splits `name[:tag]` or `name@digest` into the query `/images/create` takes. */
export function pullQuery(reference: string): { fromImage: string; tag: string } {
  const ref = reference.trim();
  if (ref.includes('@')) {
    return { fromImage: ref, tag: '' };
  }
  const colon = ref.lastIndexOf(':');
  if (colon > ref.lastIndexOf('/')) {
    return { fromImage: ref.slice(0, colon), tag: ref.slice(colon + 1) };
  }
  return { fromImage: ref, tag: 'latest' };
}

interface IPullLine {
  id?: string;
  status?: string;
  progressDetail?: { current?: number; total?: number };
  error?: string;
  errorDetail?: { message?: string };
}

/**
 * Folds dockerd's pull progress lines into one fraction and status text.
 *
 * Each layer reports bytes while downloading and only a status once it is
 * already present or complete; the fraction is bytes done over bytes known.
 */
export class PullProgress {
  status = 'Waiting';
  error: string | null = null;
  done = false;
  private layers = new Map<string, { current: number; total: number }>();

  update(line: IPullLine): void {
    if (line.error || line.errorDetail?.message) {
      this.error = line.errorDetail?.message || line.error || 'pull failed';
      return;
    }
    const status = line.status ?? '';
    if (line.id && status) {
      this.updateLayer(line.id, status, line.progressDetail);
    }
    this.status = line.id && !status.startsWith('Digest') ? `${line.id}: ${status}` : status;
    if (status.startsWith('Status:')) {
      this.done = true;
    }
  }

  /** Fraction in [0, 1]; 1 once the engine reported the final status. */
  get fraction(): number {
    if (this.done) {
      return 1;
    }
    let current = 0;
    let total = 0;
    for (const l of this.layers.values()) {
      current += Math.min(l.current, l.total);
      total += l.total;
    }
    return total > 0 ? current / total : 0;
  }

  private updateLayer(id: string, status: string, detail?: IPullLine['progressDetail']): void {
    const layer = this.layers.get(id) ?? { current: 0, total: 0 };
    if (detail?.total) {
      layer.total = detail.total;
      if (status.startsWith('Downloading')) {
        layer.current = detail.current ?? layer.current;
      }
    }
    if (/^(Download complete|Pull complete|Already exists|Verifying Checksum)/.test(status)) {
      layer.current = layer.total;
    }
    this.layers.set(id, layer);
  }
}

export interface IPull {
  reference: string;
  progress: PullProgress;
}

export interface IModelOptions {
  /** Milliseconds before the first attempt to reopen a dropped event stream; doubled per failure. */
  reconnectDelay?: number;
  /** The longest wait between reconnection attempts, so a long outage does not poll the server. */
  maxReconnectDelay?: number;
}

type ListKind = 'containers' | 'images';

/**
 * Containers and images of the engine, kept current from its event stream.
 *
 * Events only say *that* something changed; the lists are refetched (one
 * request in flight per list, later events coalesced) so the view always
 * shows what the engine itself reports.
 */
export class DockerModel {
  containers: IContainer[] = [];
  images: IImage[] = [];
  /** Pulls in progress or failed, shown until they finish or are dismissed. */
  pulls: IPull[] = [];
  connected = false;

  private _changed = new Signal<this, void>(this);
  private _event = new Signal<this, IEngineEvent>(this);
  private abort = new AbortController();
  private inflight = new Map<ListKind, Promise<void>>();
  private dirty = new Set<ListKind>();
  private reconnectDelay: number;
  private maxReconnectDelay: number;
  /** Ends the wait before the next reconnection attempt (see `retry`). */
  private wake: (() => void) | null = null;
  private _disposed = false;
  /** Per source, so a later successful request of one kind does not hide another's failure. */
  private errors = new Map<ListKind | 'events', string>();

  constructor(
    private request: Requester,
    options: IModelOptions = {}
  ) {
    this.reconnectDelay = options.reconnectDelay ?? 2000;
    this.maxReconnectDelay = options.maxReconnectDelay ?? 30000;
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Every engine event as it arrives, for the sections that keep lists of their own. */
  get event(): ISignal<this, IEngineEvent> {
    return this._event;
  }

  /** The requester the model was built with, for section models that talk to the same engine. */
  get requester(): Requester {
    return this.request;
  }

  /** Why the engine cannot be reached (its event stream cannot be opened), or null while it can. */
  get unreachable(): string | null {
    return this.connected ? null : this.errors.get('events') ?? null;
  }

  /** Tries to reach the engine now instead of at the end of the current back-off. */
  retry(): void {
    this.wake?.();
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** What the last request of each failing kind answered, or null when all are well. */
  get lastError(): string | null {
    return this.errors.size ? [...this.errors.values()].join('; ') : null;
  }

  /** Opens the event stream and keeps it open until `dispose()`. */
  start(): Promise<void> {
    return this.watchEvents();
  }

  dispose(): void {
    this._disposed = true;
    this.abort.abort();
    Signal.clearData(this);
  }

  async refresh(): Promise<void> {
    await Promise.all([this.refreshList('containers'), this.refreshList('images')]);
  }

  /** Refetches one list; a call during a fetch queues exactly one more. */
  refreshList(kind: ListKind): Promise<void> {
    const running = this.inflight.get(kind);
    if (running) {
      this.dirty.add(kind);
      return running;
    }
    const p = this.fetchList(kind).finally(() => {
      this.inflight.delete(kind);
      if (this.dirty.delete(kind) && !this._disposed) {
        void this.refreshList(kind);
      }
    });
    this.inflight.set(kind, p);
    return p;
  }

  startContainer(id: string): Promise<void> {
    return this.call(`containers/${enc(id)}/start`, 'POST');
  }

  stopContainer(id: string): Promise<void> {
    return this.call(`containers/${enc(id)}/stop`, 'POST');
  }

  restartContainer(id: string): Promise<void> {
    return this.call(`containers/${enc(id)}/restart`, 'POST');
  }

  removeContainer(id: string): Promise<void> {
    return this.call(`containers/${enc(id)}?force=1`, 'DELETE');
  }

  removeImage(name: string): Promise<void> {
    return this.call(`images/${enc(name)}`, 'DELETE');
  }

  /** Pulls an image, exposing its progress in `pulls` while it runs. */
  async pullImage(reference: string): Promise<PullProgress> {
    const pull: IPull = { reference, progress: new PullProgress() };
    this.pulls = [...this.pulls, pull];
    this.emit();
    try {
      const q = pullQuery(reference);
      const resp = await this.checked(
        `images/create?fromImage=${enc(q.fromImage)}&tag=${enc(q.tag)}`,
        { method: 'POST', signal: this.abort.signal }
      );
      if (resp.body) {
        await readLines(resp.body, line => {
          pull.progress.update(JSON.parse(line) as IPullLine);
          this.emit();
        });
      }
      if (!pull.progress.error) {
        pull.progress.done = true;
      }
    } catch (err) {
      pull.progress.error = errorMessage(err);
    }
    if (!pull.progress.error) {
      this.dismissPull(pull);
    }
    this.emit();
    void this.refreshList('images');
    return pull.progress;
  }

  dismissPull(pull: IPull): void {
    this.pulls = this.pulls.filter(p => p !== pull);
    this.emit();
  }

  private async watchEvents(): Promise<void> {
    let delay = this.reconnectDelay;
    while (!this._disposed) {
      try {
        const resp = await this.checked('events', { method: 'GET', signal: this.abort.signal });
        this.errors.delete('events');
        delay = this.reconnectDelay;
        this.setConnected(true);
        // Whatever happened while disconnected was missed: start from a full listing.
        void this.refresh();
        if (resp.body) {
          await readLines(resp.body, line => this.onEvent(JSON.parse(line) as IEngineEvent));
        }
      } catch (err) {
        if (this._disposed) {
          return;
        }
        this.errors.set('events', errorMessage(err));
        delay = Math.min(delay * 2, this.maxReconnectDelay);
      }
      this.setConnected(false);
      this.emit();
      await new Promise<void>(resolve => {
        this.wake = resolve;
        void sleep(delay, this.abort.signal).then(resolve);
      });
      this.wake = null;
    }
  }

  private onEvent(event: IEngineEvent): void {
    this._event.emit(event);
    if (event.Type === 'container') {
      void this.refreshList('containers');
    } else if (event.Type === 'image') {
      void this.refreshList('images');
      // Containers show their image by name, which a tag or untag changes.
      void this.refreshList('containers');
    }
  }

  private async fetchList(kind: ListKind): Promise<void> {
    const path = kind === 'containers' ? 'containers/json?all=1' : 'images/json';
    try {
      const resp = await this.checked(path, { method: 'GET', signal: this.abort.signal });
      const list = await resp.json();
      if (kind === 'containers') {
        this.containers = list as IContainer[];
      } else {
        this.images = list as IImage[];
      }
      this.errors.delete(kind);
    } catch (err) {
      if (this._disposed) {
        return;
      }
      this.errors.set(kind, errorMessage(err));
      if (!(err instanceof EngineError) && this.connected) {
        // The request got no answer (the browser saw a network change) while events still flow:
        // no event will say the list is stale, so ask again shortly. A lost engine relists on reconnect.
        void sleep(this.reconnectDelay, this.abort.signal).then(() => {
          if (!this._disposed) {
            void this.refreshList(kind);
          }
        });
      }
    }
    this.emit();
  }

  /** A lifecycle action (start, stop, restart, remove); all but remove may be resent, see `IRequestOptions`. */
  private async call(path: string, method: string): Promise<void> {
    const lifecycle = method === 'POST';
    await checkedRequest(this.request, path, { method }, { repeatable: lifecycle, notModifiedIsDone: lifecycle });
  }

  private checked(path: string, init: RequestInit): Promise<Response> {
    return checkedRequest(this.request, path, init);
  }

  private setConnected(connected: boolean): void {
    if (this.connected !== connected) {
      this.connected = connected;
      this.emit();
    }
  }

  private emit(): void {
    if (!this._disposed) {
      this._changed.emit();
    }
  }
}

export interface IRequestOptions {
  /**
   * Whether sending the request twice does no harm (GET and HEAD are; a start, stop or restart is too,
   * since the engine answers 304 when there is nothing left to do), so one that got no answer is resent.
   */
  repeatable?: boolean;
  /** A 304 means the engine found the work already done (the container already started or stopped). */
  notModifiedIsDone?: boolean;
}

const SAFE_METHODS = new Set(['GET', 'HEAD']);
/** Attempts for a repeatable request that got no answer, and the pause between them. */
const SEND_ATTEMPTS = 3;
const RESEND_DELAY_MS = 300;

/**
 * Sends a request, resending a repeatable one that got no answer at all: browsers fail requests
 * in flight when the host's network changes (`ERR_NETWORK_CHANGED`), which every container
 * start causes on the host the engine runs on.
 */
async function sendRetrying(request: Requester, path: string, init: RequestInit, repeatable: boolean): Promise<Response> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await request(path, init);
    } catch (err) {
      if (!repeatable || attempt >= SEND_ATTEMPTS || init.signal?.aborted) {
        throw err;
      }
    }
    await new Promise(resolve => setTimeout(resolve, RESEND_DELAY_MS));
  }
}

/** Sends a request and turns a Docker error body into an `EngineError`. */
export async function checkedRequest(
  request: Requester,
  path: string,
  init: RequestInit,
  options: IRequestOptions = {}
): Promise<Response> {
  const resp = await sendRetrying(request, path, init, options.repeatable ?? SAFE_METHODS.has(init.method ?? 'GET'));
  if (!resp.ok && !(resp.status === 304 && options.notModifiedIsDone)) {
    throw await engineError(resp);
  }
  return resp;
}

/** The `EngineError` of a refused response: Docker's `message`, else the status line. */
export async function engineError(resp: Response): Promise<EngineError> {
  let message = `${resp.status} ${resp.statusText}`;
  try {
    message = ((await resp.json()) as { message?: string }).message ?? message;
  } catch {
    // Not a Docker-shaped body (e.g. Jupyter's own 403 page): keep the status line.
  }
  return new EngineError(resp.status, message);
}

export function enc(s: string): string {
  return encodeURIComponent(s);
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
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
