import { describe, expect, it } from 'vitest';

import { formatPorts, humanSize, proxyUrl, timeAgo } from '../src/format';
import {
  decoderFor,
  DockerModel,
  FrameDecoder,
  IContainer,
  ILogChunk,
  PullProgress,
  pullQuery,
  RawDecoder,
  Requester
} from '../src/model';

const enc = new TextEncoder();

function frame(stream: number, text: string | Uint8Array): Uint8Array {
  const payload = typeof text === 'string' ? enc.encode(text) : text;
  const out = new Uint8Array(8 + payload.length);
  out[0] = stream;
  new DataView(out.buffer).setUint32(4, payload.length, false);
  out.set(payload, 8);
  return out;
}

function joined(chunks: ILogChunk[]): string {
  return chunks.map(c => `${c.stream}:${c.text}`).join('|');
}

/** A body the test writes to while the model reads it, like a live HTTP stream. */
class LiveBody {
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  readonly stream = new ReadableStream<Uint8Array>({
    start: c => {
      this.controller = c;
    }
  });

  send(text: string): void {
    this.sendBytes(enc.encode(text));
  }

  sendBytes(bytes: Uint8Array): void {
    this.controller.enqueue(bytes);
  }

  private ended = false;

  close(): void {
    if (!this.ended) {
      this.ended = true;
      this.controller.close();
    }
  }

  fail(): void {
    this.ended = true;
    this.controller.error(new Error('connection reset'));
  }
}

/** Routes requests by path to handlers; records every request made. */
class FakeEngine {
  calls: { path: string; method: string }[] = [];
  containers: Partial<IContainer>[] = [];
  images: unknown[] = [];
  events: LiveBody[] = [];

  readonly request: Requester = async (path, init = {}) => {
    const method = init.method ?? 'GET';
    this.calls.push({ path, method });
    if (path === 'events') {
      const body = new LiveBody();
      this.events.push(body);
      init.signal?.addEventListener('abort', () => body.close());
      return new Response(body.stream, { headers: { 'Content-Type': 'application/json' } });
    }
    if (path === 'containers/json?all=1') {
      return Response.json(this.containers);
    }
    if (path === 'images/json') {
      return Response.json(this.images);
    }
    if (path.startsWith('containers/missing')) {
      return Response.json({ message: 'No such container: missing' }, { status: 404 });
    }
    return new Response(null, { status: 204 });
  };

  count(path: string): number {
    return this.calls.filter(c => c.path === path).length;
  }
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (cond()) {
      return;
    }
    await new Promise(r => setTimeout(r, 5));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('FrameDecoder', () => {
  it('splits stdout and stderr frames', () => {
    const d = new FrameDecoder();
    const out = d.push(new Uint8Array([...frame(1, 'out\n'), ...frame(2, 'err\n'), ...frame(1, 'more\n')]));
    expect(joined(out)).toBe('stdout:out\n|stderr:err\n|stdout:more\n');
  });

  it('merges consecutive frames of one stream', () => {
    const out = new FrameDecoder().push(new Uint8Array([...frame(1, 'a'), ...frame(1, 'b')]));
    expect(out).toEqual([{ stream: 'stdout', text: 'ab' }]);
  });

  it('reassembles frames cut inside the header and the payload', () => {
    const bytes = new Uint8Array([...frame(1, 'hello world\n'), ...frame(2, 'oops\n')]);
    for (let cut = 1; cut < bytes.length; cut++) {
      const d = new FrameDecoder();
      const out = [...d.push(bytes.slice(0, cut)), ...d.push(bytes.slice(cut))];
      expect(joined(out).replace(/\|stdout:/g, '')).toBe(
        joined(new FrameDecoder().push(bytes)).replace(/\|stdout:/g, '')
      );
      expect(out.map(c => c.text).join('')).toBe('hello world\noops\n');
    }
  });

  it('keeps a UTF-8 character split across two frames intact', () => {
    const euro = enc.encode('€'); // 3 bytes
    const d = new FrameDecoder();
    const out = d.push(new Uint8Array([...frame(1, euro.slice(0, 1)), ...frame(1, euro.slice(1))]));
    expect(out.map(c => c.text).join('')).toBe('€');
  });

  it('waits for a frame whose payload has not arrived', () => {
    const d = new FrameDecoder();
    expect(d.push(frame(1, 'abcdef').slice(0, 10))).toEqual([]);
  });

  it('handles empty frames', () => {
    expect(new FrameDecoder().push(new Uint8Array([...frame(1, ''), ...frame(2, 'x')]))).toEqual([
      { stream: 'stderr', text: 'x' }
    ]);
  });
});

describe('decoderFor', () => {
  it('demuxes only the multiplexed content type', () => {
    expect(decoderFor('application/vnd.docker.multiplexed-stream')).toBeInstanceOf(FrameDecoder);
    expect(decoderFor('application/vnd.docker.raw-stream')).toBeInstanceOf(RawDecoder);
    expect(new RawDecoder().push(enc.encode('\u0001tty'))).toEqual([{ stream: 'stdout', text: '\u0001tty' }]);
  });
});

describe('pullQuery', () => {
  it('splits references as the docker CLI does', () => {
    expect(pullQuery('busybox')).toEqual({ fromImage: 'busybox', tag: 'latest' });
    expect(pullQuery('alpine:3.20')).toEqual({ fromImage: 'alpine', tag: '3.20' });
    expect(pullQuery('localhost:5000/app')).toEqual({ fromImage: 'localhost:5000/app', tag: 'latest' });
    expect(pullQuery('localhost:5000/app:v1')).toEqual({ fromImage: 'localhost:5000/app', tag: 'v1' });
    expect(pullQuery('app@sha256:abc')).toEqual({ fromImage: 'app@sha256:abc', tag: '' });
  });
});

describe('PullProgress', () => {
  it('turns layer byte counts into one fraction', () => {
    const p = new PullProgress();
    p.update({ status: 'Pulling from library/app', id: 'latest' });
    p.update({ status: 'Pulling fs layer', id: 'a', progressDetail: {} });
    p.update({ status: 'Downloading', id: 'a', progressDetail: { current: 25, total: 100 } });
    p.update({ status: 'Downloading', id: 'b', progressDetail: { current: 0, total: 100 } });
    expect(p.fraction).toBeCloseTo(0.125);
    p.update({ status: 'Download complete', id: 'a' });
    expect(p.fraction).toBeCloseTo(0.5);
    expect(p.status).toBe('a: Download complete');
    p.update({ status: 'Status: Downloaded newer image for app:latest' });
    expect(p.done).toBe(true);
    expect(p.fraction).toBe(1);
  });

  it('records the error line', () => {
    const p = new PullProgress();
    p.update({ errorDetail: { message: 'manifest unknown' }, error: 'manifest unknown' });
    expect(p.error).toBe('manifest unknown');
  });
});

describe('DockerModel', () => {
  it('lists on connect and refetches a list when an event about it arrives', async () => {
    const engine = new FakeEngine();
    engine.containers = [{ Id: 'c1', Names: ['/one'], State: 'running' }];
    const model = new DockerModel(engine.request, { reconnectDelay: 5 });
    let changes = 0;
    model.changed.connect(() => changes++);
    void model.start();
    await until(() => model.containers.length === 1 && model.connected, 'initial listing');
    expect(engine.count('images/json')).toBe(1);

    engine.containers = [{ Id: 'c1', Names: ['/one'], State: 'exited' }];
    const before = changes;
    engine.events[0].send('{"Type":"container","Action":"die","Actor":{"ID":"c1"}}\n');
    await until(() => model.containers[0].State === 'exited', 'update after event');
    expect(changes).toBeGreaterThan(before);
    expect(engine.count('containers/json?all=1')).toBe(2);
    expect(engine.count('images/json')).toBe(1);

    engine.images = [{ Id: 'sha256:1', RepoTags: ['x:latest'], Size: 1, Created: 0 }];
    engine.events[0].send('{"Type":"image","Action":"tag"}\n');
    await until(() => model.images.length === 1, 'image list after image event');
    model.dispose();
  });

  it('coalesces a burst of events into at most one extra fetch', async () => {
    const engine = new FakeEngine();
    const model = new DockerModel(engine.request, { reconnectDelay: 5 });
    void model.start();
    await until(() => engine.count('containers/json?all=1') === 1 && model.connected, 'connect');
    await model.refreshList('containers');
    const base = engine.count('containers/json?all=1');
    // Split one event across two chunks too, as a network read may.
    engine.events[0].send('{"Type":"container","Action":"start"}\n{"Type":"conta');
    engine.events[0].send('iner","Action":"exec_start"}\n{"Type":"container","Action":"attach"}\n');
    await until(() => engine.count('containers/json?all=1') === base + 2, 'coalesced refetch');
    await new Promise(r => setTimeout(r, 30));
    expect(engine.count('containers/json?all=1')).toBe(base + 2);
    model.dispose();
  });

  it('reconnects after the event stream drops and relists what it missed', async () => {
    const engine = new FakeEngine();
    const model = new DockerModel(engine.request, { reconnectDelay: 5 });
    void model.start();
    await until(() => model.connected, 'connect');
    engine.containers = [{ Id: 'c2', Names: ['/two'], State: 'running' }];
    engine.events[0].fail();
    await until(() => engine.events.length === 2, 'second events request');
    await until(() => model.containers.length === 1 && model.connected, 'relist after reconnect');
    model.dispose();
    expect(engine.events.length).toBe(2);
  });

  it('keeps a failed list visible as an error until that list succeeds', async () => {
    const engine = new FakeEngine();
    let imagesFail = true;
    const model = new DockerModel(async (path, init) =>
      path === 'images/json' && imagesFail
        ? Response.json({ message: 'database is locked' }, { status: 500 })
        : engine.request(path, init)
    );
    await model.refresh();
    expect(model.lastError).toBe('database is locked');
    await model.refreshList('containers');
    expect(model.lastError).toBe('database is locked');
    imagesFail = false;
    await model.refreshList('images');
    expect(model.lastError).toBeNull();
  });

  it('sends actions to the engine and surfaces Docker error messages', async () => {
    const engine = new FakeEngine();
    const model = new DockerModel(engine.request);
    await model.stopContainer('abc');
    await model.removeContainer('abc');
    await model.removeImage('busybox:latest');
    expect(engine.calls).toEqual([
      { path: 'containers/abc/stop', method: 'POST' },
      { path: 'containers/abc?force=1', method: 'DELETE' },
      { path: 'images/busybox%3Alatest', method: 'DELETE' }
    ]);
    await expect(model.startContainer('missing')).rejects.toThrow('No such container: missing');
  });

  it('pulls with progress, then drops the finished pull and relists images', async () => {
    const body = new LiveBody();
    const engine = new FakeEngine();
    const model = new DockerModel(async (path, init) =>
      path.startsWith('images/create') ? new Response(body.stream) : engine.request(path, init)
    );
    const done = model.pullImage('localhost:5000/app:v1');
    expect(model.pulls.map(p => p.reference)).toEqual(['localhost:5000/app:v1']);
    body.send('{"status":"Pulling from app","id":"v1"}\n{"status":"Downloading","id":"l1","progressDetail":{"current":5,"total":10}}\n');
    await until(() => model.pulls[0].progress.fraction === 0.5, 'progress from the stream');
    engine.images = [{ Id: 'sha256:2', RepoTags: ['localhost:5000/app:v1'], Size: 10, Created: 0 }];
    body.send('{"status":"Pull complete","id":"l1"}\n{"status":"Status: Downloaded newer image for localhost:5000/app:v1"}\n');
    body.close();
    const progress = await done;
    expect(progress.error).toBeNull();
    expect(model.pulls).toEqual([]);
    await until(() => model.images.length === 1, 'images relisted');
  });

  it('keeps a failed pull with the engine message until dismissed', async () => {
    const model = new DockerModel(async path =>
      path.startsWith('images/create')
        ? Response.json({ message: 'pull access denied for nope' }, { status: 404 })
        : Response.json([])
    );
    const progress = await model.pullImage('nope');
    expect(progress.error).toBe('pull access denied for nope');
    expect(model.pulls).toHaveLength(1);
    model.dismissPull(model.pulls[0]);
    expect(model.pulls).toEqual([]);
  });
});

describe('format', () => {
  it('prints ports, sizes and ages like the docker CLI', () => {
    expect(formatPorts([{ PrivatePort: 80, Type: 'tcp', PublicPort: 8080, IP: '0.0.0.0' }, { PrivatePort: 53, Type: 'udp' }])).toBe(
      '0.0.0.0:8080->80/tcp, 53/udp'
    );
    expect(humanSize(4_261_000)).toBe('4.26MB');
    expect(humanSize(999)).toBe('999B');
    expect(timeAgo(1000, 1000_000 + 3 * 3600_000)).toBe('3 hours ago');
    expect(timeAgo(1000, 1000_000 + 10_000)).toBe('less than a minute ago');
  });
});

describe('proxyUrl', () => {
  it('links a published TCP port through the Jupyter server', () => {
    const port = { IP: '127.0.0.1', PrivatePort: 80, PublicPort: 32768, Type: 'tcp' };
    expect(proxyUrl('/jp/', 'web', port)).toBe('/jp/pydock/proxy/web/80/');
    expect(proxyUrl('/user/ann', 'a b', port)).toBe('/user/ann/pydock/proxy/a%20b/80/');
  });
  it('has nothing for unpublished or UDP ports', () => {
    expect(proxyUrl('/', 'web', { PrivatePort: 80, Type: 'tcp' })).toBeNull();
    expect(proxyUrl('/', 'web', { IP: '0.0.0.0', PrivatePort: 53, PublicPort: 5353, Type: 'udp' })).toBeNull();
  });
});
