/** Text the way `docker ps` and `docker images` show it. */
import { IContainer, IImage, IPort } from './model';

export function containerName(c: IContainer): string {
  return (c.Names[0] ?? c.Id.slice(0, 12)).replace(/^\//, '');
}

export function formatPort(p: IPort): string {
  const priv = `${p.PrivatePort}/${p.Type}`;
  if (!p.PublicPort) {
    return priv;
  }
  const ip = p.IP && p.IP.includes(':') ? `[${p.IP}]` : p.IP || '0.0.0.0';
  return `${ip}:${p.PublicPort}->${priv}`;
}

export function formatPorts(ports: IPort[] | null | undefined): string {
  return (ports ?? []).map(formatPort).join(', ');
}

/**
 * Where a published TCP port opens through the Jupyter server (its `pydock/proxy` route, behind
 * Jupyter's login), or null for a port that is not published or not TCP.
 */
export function proxyUrl(baseUrl: string, container: string, p: IPort): string | null {
  if (!p.PublicPort || p.Type !== 'tcp') {
    return null;
  }
  const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  return `${base}pydock/proxy/${encodeURIComponent(container)}/${p.PrivatePort}/`;
}

/** Decimal units, as docker's `units.HumanSize` prints them. */
export function humanSize(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = bytes;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${Number(v.toPrecision(3))}${units[i]}`;
}

export function timeAgo(unixSeconds: number, now: number = Date.now()): string {
  const s = Math.max(0, Math.floor(now / 1000 - unixSeconds));
  const steps: [number, string][] = [
    [60 * 60 * 24 * 365, 'year'],
    [60 * 60 * 24 * 30, 'month'],
    [60 * 60 * 24 * 7, 'week'],
    [60 * 60 * 24, 'day'],
    [60 * 60, 'hour'],
    [60, 'minute']
  ];
  for (const [size, unit] of steps) {
    const n = Math.floor(s / size);
    if (n >= 1) {
      return n === 1 ? `${unit === 'hour' ? 'an' : 'a'} ${unit} ago` : `${n} ${unit}s ago`;
    }
  }
  return 'less than a minute ago';
}

export function imageTags(img: IImage): string[] {
  const tags = (img.RepoTags ?? []).filter(t => t !== '<none>:<none>');
  return tags.length ? tags : ['<none>'];
}

export function shortId(id: string): string {
  return id.replace(/^sha256:/, '').slice(0, 12);
}
