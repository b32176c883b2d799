import { describe, expect, it } from 'vitest';

import {
  displayState,
  filterContainers,
  groupByProject,
  STATE_COLORS
} from '../src/containers';
import { DockerModel, IContainer, Requester } from '../src/model';
import { NETWORKS, SectionModel, VOLUMES } from '../src/resources';
import { buildCreateRequest, IRunForm, parsePortSpec, runContainer, splitCommand } from '../src/run';
import { cpuPercent, memoryUsage, StatsPoller } from '../src/stats';
import { changesState, ContainerClock, humanDuration, IContainerState, statusText } from '../src/status';

function container(name: string, state: string, extra: Partial<IContainer> = {}): IContainer {
  return {
    Id: `${name}-0123456789abcdef`,
    Names: [`/${name}`],
    Image: 'busybox',
    State: state,
    Status: '',
    Ports: [],
    Created: 0,
    Command: 'sleep 1000',
    Labels: {},
    ...extra
  };
}

const project = (p: string): Partial<IContainer> => ({ Labels: { 'com.docker.compose.project': p } });

/** Answers by path from a table; records each request as "METHOD path" (and its body). */
function fakeEngine(routes: Record<string, () => Response>): { request: Requester; calls: string[]; bodies: unknown[] } {
  const calls: string[] = [];
  const bodies: unknown[] = [];
  const request: Requester = async (path, init = {}) => {
    const key = `${init.method ?? 'GET'} ${path}`;
    calls.push(key);
    if (typeof init.body === 'string') {
      bodies.push(JSON.parse(init.body));
    }
    const route = routes[key];
    return route ? route() : Response.json({ message: `page not found: ${key}` }, { status: 404 });
  };
  return { request, calls, bodies };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (cond()) {
      return;
    }
    await new Promise(r => setTimeout(r, 5));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('container list', () => {
  const list = [
    container('web', 'running', { Image: 'nginx:1.27', ...project('shop') }),
    container('db', 'exited', { Image: 'postgres', ...project('shop') }),
    container('paused-one', 'paused'),
    container('fresh', 'created', { Command: 'python -m http.server' }),
    container('cache', 'restarting', project('analytics'))
  ];
  const names = (cs: IContainer[]): string[] => cs.map(c => c.Names[0].slice(1));

  it('filters by state the way docker ps does with and without -a', () => {
    expect(names(filterContainers(list, '', 'all'))).toEqual(['web', 'db', 'paused-one', 'fresh', 'cache']);
    expect(names(filterContainers(list, '', 'running'))).toEqual(['web', 'paused-one', 'cache']);
    expect(names(filterContainers(list, '', 'stopped'))).toEqual(['db', 'fresh']);
  });

  it('searches name, image, ID, command and project, every word, case-insensitively', () => {
    expect(names(filterContainers(list, 'NGINX', 'all'))).toEqual(['web']);
    expect(names(filterContainers(list, 'http.server', 'all'))).toEqual(['fresh']);
    expect(names(filterContainers(list, 'shop', 'all'))).toEqual(['web', 'db']);
    expect(names(filterContainers(list, 'shop post', 'all'))).toEqual(['db']);
    expect(names(filterContainers(list, 'cache-0123', 'all'))).toEqual(['cache']);
    expect(names(filterContainers(list, 'shop', 'stopped'))).toEqual(['db']);
    expect(filterContainers(list, 'nothing-like-this', 'all')).toEqual([]);
  });

  it('groups compose projects by name, sorted, and leaves the rest last in engine order', () => {
    const groups = groupByProject(list);
    expect(groups.map(g => [g.project, names(g.containers)])).toEqual([
      ['analytics', ['cache']],
      ['shop', ['db', 'web']],
      [null, ['paused-one', 'fresh']]
    ]);
    expect(groupByProject([container('a', 'running')]).map(g => g.project)).toEqual([null]);
  });

  it('colours each state distinctly, with unhealthy split from running by the health in Status', () => {
    const states = ['running', 'paused', 'exited', 'created', 'restarting'].map(s => displayState(container('x', s)));
    expect(states).toEqual(['running', 'paused', 'exited', 'created', 'restarting']);
    const sick = container('x', 'running', { Status: 'Up 3 minutes (unhealthy)' });
    expect(displayState(sick)).toBe('unhealthy');
    expect(displayState(container('x', 'running', { Status: 'Up 3 minutes (healthy)' }))).toBe('running');
    const colours = [...states, 'unhealthy' as const].map(s => STATE_COLORS[s]);
    expect(new Set(colours).size).toBe(6);
  });
});

describe('status text', () => {
  const t0 = Date.parse('2026-12-06T10:00:00Z');
  const base: IContainerState = {
    Status: 'running',
    Running: true,
    Paused: false,
    Restarting: false,
    ExitCode: 0,
    StartedAt: '2026-12-06T10:00:00.123456789Z',
    FinishedAt: '0001-01-01T00:00:00Z'
  };

  it('counts durations as go-units HumanDuration does', () => {
    const cases: [number, string][] = [
      [0.5, 'Less than a second'],
      [1, '1 second'],
      [59, '59 seconds'],
      [60, 'About a minute'],
      [119, 'About a minute'],
      [120, '2 minutes'],
      [3599, '59 minutes'],
      [3600, 'About an hour'],
      [5399, 'About an hour'],
      [5400, '2 hours'],
      [47 * 3600, '47 hours'],
      [48 * 3600, '2 days'],
      [15 * 86400, '2 weeks'],
      [61 * 86400, '2 months'],
      [800 * 86400, '2 years']
    ];
    for (const [s, text] of cases) {
      expect(humanDuration(s * 1000), `${s}s`).toBe(text);
    }
  });

  it('ages a running container and says paused, health and restarting as dockerd does', () => {
    expect(statusText(base, t0 + 3 * 60_000)).toBe('Up 2 minutes');
    expect(statusText(base, t0 + 3 * 60_000 + 1000)).toBe('Up 3 minutes');
    expect(statusText({ ...base, Paused: true }, t0 + 5000)).toBe('Up 4 seconds (Paused)');
    expect(statusText({ ...base, Health: { Status: 'unhealthy' } }, t0 + 5000)).toBe('Up 4 seconds (unhealthy)');
    expect(statusText({ ...base, Health: { Status: 'starting' } }, t0 + 5000)).toBe('Up 4 seconds (health: starting)');
    const restarting = { ...base, Restarting: true, ExitCode: 2, FinishedAt: '2026-12-06T10:00:10Z' };
    expect(statusText(restarting, t0 + 40_000)).toBe('Restarting (2) 30 seconds ago');
  });

  it('says created, exited with the code, and dead', () => {
    expect(statusText({ ...base, Status: 'created', Running: false, StartedAt: '0001-01-01T00:00:00Z' }, t0)).toBe(
      'Created'
    );
    const exited = { ...base, Status: 'exited', Running: false, ExitCode: 137, FinishedAt: '2026-12-06T10:00:00Z' };
    expect(statusText(exited, t0 + 2 * 3600_000)).toBe('Exited (137) 2 hours ago');
    expect(statusText({ ...base, Status: 'dead', Running: false }, t0)).toBe('Dead');
  });

  it('refetches a state only after events that can change it', () => {
    for (const action of ['start', 'die', 'stop', 'kill', 'pause', 'unpause', 'restart', 'health_status: unhealthy', 'oom']) {
      expect(changesState(action), action).toBe(true);
    }
    const stateless = ['exec_create: /bin/sh -c false', 'exec_start: /bin/sh -c false', 'exec_die', 'attach', 'resize'];
    for (const action of [...stateless, 'top', 'archive-path']) {
      expect(changesState(action), action).toBe(false);
    }
  });

  it('fetches each container state once, ages it without requests, and refetches after forget', async () => {
    const engine = fakeEngine({
      'GET containers/web-0123456789abcdef/json': () => Response.json({ State: base })
    });
    const clock = new ContainerClock(engine.request);
    const web = container('web', 'running', { Status: 'Up 1 second' });
    expect(clock.status(web, t0)).toBe('Up 1 second'); // the listing's text until the state arrives
    clock.sync([web]);
    clock.sync([web]); // a second listing while the first fetch runs asks nothing more
    await until(() => clock.status(web, t0 + 90_000) === 'Up About a minute', 'state');
    expect(clock.status(web, t0 + 10 * 60_000 + 1000)).toBe('Up 10 minutes');
    expect(engine.calls).toEqual(['GET containers/web-0123456789abcdef/json']);
    clock.forget(web.Id);
    clock.sync([web]);
    await until(() => engine.calls.length === 2, 'refetch after an event');
  });
});

describe('stats', () => {
  // Two frames of `docker stats` 1s apart on a 4-CPU host: 0.5 s of CPU time out of 4 s of host time.
  const prev = { cpu_usage: { total_usage: 1_000_000_000 }, system_cpu_usage: 100_000_000_000, online_cpus: 4 };
  const cur = { cpu_usage: { total_usage: 1_500_000_000 }, system_cpu_usage: 104_000_000_000, online_cpus: 4 };

  it('computes CPU % as the docker CLI does', () => {
    expect(cpuPercent(prev, cur)).toBeCloseTo(50);
    // No online_cpus (old kernels): the per-CPU list counts the CPUs.
    const noOnline = { ...cur, online_cpus: undefined, cpu_usage: { ...cur.cpu_usage, percpu_usage: [1, 2] } };
    expect(cpuPercent(prev, noOnline)).toBeCloseTo(25);
    expect(cpuPercent(cur, cur)).toBe(0);
  });

  it('leaves page cache out of memory, on cgroup v1 and v2', () => {
    expect(memoryUsage({ usage: 10_000, stats: { total_inactive_file: 4_000 } })).toBe(6_000);
    expect(memoryUsage({ usage: 10_000, stats: { inactive_file: 3_000 } })).toBe(7_000);
    expect(memoryUsage({ usage: 10_000, stats: {} })).toBe(10_000);
  });

  it('polls one-shot stats of the watched containers only, CPU from its own previous sample', async () => {
    const frames = [cur, { ...cur, cpu_usage: { total_usage: 3_500_000_000 }, system_cpu_usage: 108_000_000_000 }];
    let n = 0;
    const engine = fakeEngine({
      'GET containers/a/stats?stream=false&one-shot=true': () =>
        Response.json({ cpu_stats: frames[Math.min(n++, 1)], memory_stats: { usage: 2048, limit: 4096 } })
    });
    const poller = new StatsPoller(engine.request, 10);
    poller.watch(['a']);
    await until(() => poller.usage('a')?.cpu !== null && poller.usage('a') !== undefined, 'two samples');
    expect(poller.usage('a')).toEqual({ cpu: 200, memory: 2048, limit: 4096 });
    poller.watch([]);
    expect(poller.usage('a')).toBeUndefined();
    const asked = engine.calls.length;
    await new Promise(r => setTimeout(r, 50));
    expect(engine.calls.length).toBe(asked);
    expect(new Set(engine.calls)).toEqual(new Set(['GET containers/a/stats?stream=false&one-shot=true']));
    poller.dispose();
  });

  it('polls nothing while suspended (the sidebar closed) and picks up again on resume', async () => {
    const engine = fakeEngine({
      'GET containers/a/stats?stream=false&one-shot=true': () => Response.json({ cpu_stats: cur, memory_stats: {} })
    });
    const poller = new StatsPoller(engine.request, 10);
    poller.suspend();
    poller.watch(['a']);
    await new Promise(r => setTimeout(r, 50));
    expect(engine.calls).toEqual([]);
    poller.resume();
    await until(() => engine.calls.length >= 2, 'polls after resume');
    poller.suspend();
    await new Promise(r => setTimeout(r, 20)); // a poll under way when suspended ends without scheduling another
    const asked = engine.calls.length;
    await new Promise(r => setTimeout(r, 50));
    expect(engine.calls.length).toBe(asked);
    poller.dispose();
  });
});

describe('run dialog', () => {
  const form = (f: Partial<IRunForm>): IRunForm => ({
    image: 'busybox',
    name: '',
    ports: '',
    env: '',
    volumes: '',
    command: '',
    ...f
  });

  it('builds the create request docker run -d sends', () => {
    const req = buildCreateRequest(
      form({
        name: 'my web',
        ports: '8080:80, 127.0.0.1:9000:9000/udp 443 [::1]:8443:443',
        env: 'A=1\n\n  B=two words  \n',
        volumes: 'data:/data\n/srv:/srv:ro',
        command: `sh -c 'echo "hi there"; sleep 5' \\$HOME`
      })
    );
    expect(req.query).toBe('?name=my%20web');
    expect(req.body).toEqual({
      Image: 'busybox',
      Cmd: ['sh', '-c', 'echo "hi there"; sleep 5', '$HOME'],
      Env: ['A=1', 'B=two words'],
      ExposedPorts: { '80/tcp': {}, '9000/udp': {}, '443/tcp': {} },
      HostConfig: {
        PortBindings: {
          '80/tcp': [{ HostIp: '', HostPort: '8080' }],
          '9000/udp': [{ HostIp: '127.0.0.1', HostPort: '9000' }],
          '443/tcp': [
            { HostIp: '', HostPort: '' },
            { HostIp: '::1', HostPort: '8443' }
          ]
        },
        Binds: ['data:/data', '/srv:/srv:ro']
      }
    });
    // No command: the image's own; no name: the engine's.
    const plain = buildCreateRequest(form({}));
    expect(plain.query).toBe('');
    expect(plain.body.Cmd).toBeUndefined();
  });

  it('refuses malformed fields with the CLI message, before any request', () => {
    expect(() => parsePortSpec('80:abc')).toThrow('invalid containerPort: abc');
    expect(() => parsePortSpec('99999:80')).toThrow('invalid hostPort: 99999');
    expect(() => parsePortSpec('80/xtp')).toThrow('invalid proto: xtp');
    expect(() => buildCreateRequest(form({ image: ' ' }))).toThrow('an image is required');
    expect(() => buildCreateRequest(form({ volumes: 'justaname' }))).toThrow('invalid volume specification');
    expect(() => buildCreateRequest(form({ env: '=x' }))).toThrow('invalid environment variable: =x');
    expect(() => splitCommand('echo "open')).toThrow('unterminated " quote');
    expect(splitCommand(`a '' "b c"d e\\ f`)).toEqual(['a', '', 'b cd', 'e f']);
  });

  it('creates then starts, and passes the engine message on', async () => {
    const ok = fakeEngine({
      'POST containers/create?name=x': () => Response.json({ Id: 'abc', Warnings: [] }, { status: 201 }),
      'POST containers/abc/start': () => new Response(null, { status: 204 })
    });
    expect(await runContainer(ok.request, form({ name: 'x', env: 'K=v' }))).toBe('abc');
    expect(ok.calls).toEqual(['POST containers/create?name=x', 'POST containers/abc/start']);
    expect((ok.bodies[0] as { Env: string[] }).Env).toEqual(['K=v']);

    const conflict = 'Conflict. The container name "/x" is already in use by container "abc".';
    const refused = fakeEngine({
      'POST containers/create?name=x': () => Response.json({ message: conflict }, { status: 409 })
    });
    await expect(runContainer(refused.request, form({ name: 'x' }))).rejects.toThrow(conflict);
    expect(refused.calls).toEqual(['POST containers/create?name=x']);
  });
});

describe('engine reachability', () => {
  it('says why the engine is unreachable and reconnects at once on retry', async () => {
    let up = false;
    let eventsAsked = 0;
    const request: Requester = async path => {
      if (path === 'events') {
        eventsAsked++;
        if (!up) {
          return Response.json({ message: 'cannot reach pydockd' }, { status: 503 });
        }
        return new Response(new ReadableStream(), { headers: { 'Content-Type': 'application/json' } });
      }
      return up ? Response.json([]) : Response.json({ message: 'cannot reach pydockd' }, { status: 503 });
    };
    // A back-off far longer than the test: only retry() can bring it back in time.
    const model = new DockerModel(request, { reconnectDelay: 60_000 });
    void model.start();
    await until(() => model.unreachable !== null, 'unreachable');
    expect(model.unreachable).toBe('cannot reach pydockd');
    expect(model.connected).toBe(false);
    up = true;
    model.retry();
    await until(() => model.connected, 'reconnect on retry');
    expect(model.unreachable).toBeNull();
    expect(eventsAsked).toBe(2);
    model.dispose();
  });
});

describe('volume and network sections', () => {
  it('lists, relists on its own events, creates and removes by name or ID', async () => {
    let volumes = [{ Name: 'b', Driver: 'local', Mountpoint: '/b' }];
    const events: ReadableStreamDefaultController<Uint8Array>[] = [];
    const engine = fakeEngine({
      'GET events': () =>
        new Response(new ReadableStream<Uint8Array>({ start: c => void events.push(c) }), {
          headers: { 'Content-Type': 'application/json' }
        }),
      'GET containers/json?all=1': () => Response.json([]),
      'GET images/json': () => Response.json([]),
      'GET volumes': () => Response.json({ Volumes: volumes, Warnings: null }),
      'POST volumes/create': () => Response.json({ Name: 'a' }, { status: 201 }),
      'DELETE volumes/a': () => new Response(null, { status: 204 }),
      'GET networks': () => Response.json([{ Id: 'n1', Name: 'bridge', Driver: 'bridge', Scope: 'local' }]),
      'DELETE networks/n1': () => new Response(null, { status: 204 })
    });
    const model = new DockerModel(engine.request);
    const vols = new SectionModel(model, VOLUMES);
    const nets = new SectionModel(model, NETWORKS);
    void model.start();
    await until(() => vols.items.length === 1 && nets.items.length === 1, 'lists on connect');

    volumes = [{ Name: 'b', Driver: 'local', Mountpoint: '/b' }, { Name: 'a', Driver: 'local', Mountpoint: '/a' }];
    events[0].enqueue(new TextEncoder().encode('{"Type":"network","Action":"create"}\n'));
    await until(() => engine.calls.filter(c => c === 'GET networks').length === 2, 'network event relists');
    expect(vols.items.length).toBe(1); // a network event leaves the volume list alone
    events[0].enqueue(new TextEncoder().encode('{"Type":"volume","Action":"create"}\n'));
    await until(() => vols.items.length === 2, 'volume event relists');
    expect(vols.items.map(v => v.Name)).toEqual(['a', 'b']);

    await vols.create('a');
    expect(engine.bodies).toContainEqual({ Name: 'a' });
    await vols.remove(vols.items[0]);
    await nets.remove(nets.items[0]);
    expect(engine.calls).toContain('DELETE volumes/a');
    expect(engine.calls).toContain('DELETE networks/n1');
    model.dispose();
  });
});

describe('requests that get no answer', () => {
  /** Fails the first `failures` requests as a browser does when the network changes under them. */
  function flaky(failures: number, answer: () => Response): { request: Requester; sent: string[] } {
    const sent: string[] = [];
    const request: Requester = async (path, init = {}) => {
      sent.push(`${init.method ?? 'GET'} ${path}`);
      if (sent.length <= failures) {
        throw new TypeError('Failed to fetch');
      }
      return answer();
    };
    return { request, sent };
  }

  it('resends a GET, and a start that a second time finds already done', async () => {
    const list = flaky(2, () => Response.json({ Volumes: [] }));
    expect(await VOLUMES.list(list.request)).toEqual([]);
    expect(list.sent).toEqual(['GET volumes', 'GET volumes', 'GET volumes']);

    const start = flaky(1, () => new Response(null, { status: 304 }));
    const model = new DockerModel(start.request);
    await model.startContainer('c1');
    expect(start.sent).toEqual(['POST containers/c1/start', 'POST containers/c1/start']);
  });

  it('never resends a create or a remove, and gives up on a GET after three tries', async () => {
    const create = flaky(1, () => Response.json({ Id: 'x' }, { status: 201 }));
    const form = { image: 'busybox', name: 'x', ports: '', env: '', volumes: '', command: '' };
    await expect(runContainer(create.request, form)).rejects.toThrow('Failed to fetch');
    expect(create.sent).toEqual(['POST containers/create?name=x']);

    const remove = flaky(1, () => new Response(null, { status: 204 }));
    await expect(new DockerModel(remove.request).removeContainer('c1')).rejects.toThrow('Failed to fetch');
    expect(remove.sent.length).toBe(1);

    const down = flaky(10, () => Response.json([]));
    await expect(NETWORKS.list(down.request)).rejects.toThrow('Failed to fetch');
    expect(down.sent.length).toBe(3);
  });
});
