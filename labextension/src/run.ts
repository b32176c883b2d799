/**
 * "Run" from an image: the dialog's fields turned into the `/containers/create`
 * request `docker run -d` sends, then a start.
 *
 * Mistakes in a field are reported here, in the docker CLI's words, before
 * anything reaches the engine; what the engine refuses comes back as its message.
 */
import { checkedRequest, enc, Requester } from './model';

/** What the run dialog asks for, as the user typed it. */
export interface IRunForm {
  image: string;
  name: string;
  /** `-p` values separated by commas or spaces: `8080:80`, `127.0.0.1:8080:80/udp`, `80`. */
  ports: string;
  /** `-e` values, one `KEY=value` per line. */
  env: string;
  /** `-v` values, one `source:target[:options]` per line. */
  volumes: string;
  /** The command, split into words as a POSIX shell would. */
  command: string;
}

export interface ICreateRequest {
  /** The query string of `/containers/create` (the name, when one was given). */
  query: string;
  body: {
    Image: string;
    Cmd?: string[];
    Env: string[];
    ExposedPorts: Record<string, Record<string, never>>;
    HostConfig: { PortBindings: Record<string, { HostIp: string; HostPort: string }[]>; Binds: string[] };
  };
}

/** Splits a command line into words: quotes group, backslash escapes (outside single quotes). */
export function splitCommand(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quote) {
      if (ch === quote) {
        quote = null;
      } else if (ch === '\\' && quote === '"' && i + 1 < line.length && '"\\$`'.includes(line[i + 1])) {
        word += line[++i];
      } else {
        word += ch;
      }
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      inWord = true;
    } else if (ch === '\\' && i + 1 < line.length) {
      word += line[++i];
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) {
        words.push(word);
      }
      word = '';
      inWord = false;
    } else {
      word += ch;
      inWord = true;
    }
  }
  if (quote) {
    throw new Error(`unterminated ${quote} quote in command`);
  }
  if (inWord) {
    words.push(word);
  }
  return words;
}

function portNumber(text: string, what: string): string {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > 65535) {
    throw new Error(`invalid ${what}: ${text}`);
  }
  return String(n);
}

/** One `-p` value as `nat.ParsePortSpec` reads it: `[[ip:]hostPort:]containerPort[/proto]`. */
export function parsePortSpec(spec: string): { key: string; binding: { HostIp: string; HostPort: string } } {
  let rest = spec;
  let proto = 'tcp';
  const slash = rest.lastIndexOf('/');
  if (slash >= 0) {
    proto = rest.slice(slash + 1).toLowerCase();
    rest = rest.slice(0, slash);
    if (!['tcp', 'udp', 'sctp'].includes(proto)) {
      throw new Error(`invalid proto: ${proto}`);
    }
  }
  let ip = '';
  const bracket = rest.match(/^\[([^\]]+)\]:(.*)$/); // [::1]:8080:80
  if (bracket) {
    ip = bracket[1];
    rest = bracket[2];
  }
  const parts = rest.split(':');
  if (parts.length > 3 || (bracket && parts.length !== 2)) {
    throw new Error(`invalid port specification: "${spec}"`);
  }
  const container = parts[parts.length - 1];
  const host = parts.length >= 2 ? parts[parts.length - 2] : '';
  if (parts.length === 3) {
    ip = parts[0];
  }
  return {
    key: `${portNumber(container, 'containerPort')}/${proto}`,
    binding: { HostIp: ip, HostPort: host ? portNumber(host, 'hostPort') : '' }
  };
}

function lines(text: string): string[] {
  return text
    .split('\n')
    .map(l => l.trim())
    .filter(Boolean);
}

/** The create request for a filled-in run dialog; throws with the CLI's message for a malformed field. */
export function buildCreateRequest(form: IRunForm): ICreateRequest {
  const image = form.image.trim();
  if (!image) {
    throw new Error('an image is required');
  }
  const ExposedPorts: ICreateRequest['body']['ExposedPorts'] = {};
  const PortBindings: ICreateRequest['body']['HostConfig']['PortBindings'] = {};
  for (const spec of form.ports.split(/[\s,]+/).filter(Boolean)) {
    const { key, binding } = parsePortSpec(spec);
    ExposedPorts[key] = {};
    PortBindings[key] = [...(PortBindings[key] ?? []), binding];
  }
  const Env = lines(form.env);
  for (const e of Env) {
    if (e.startsWith('=')) {
      throw new Error(`invalid environment variable: ${e}`);
    }
  }
  const Binds = lines(form.volumes);
  for (const b of Binds) {
    if (!b.includes(':')) {
      throw new Error(`invalid volume specification: '${b}' (give source:target)`);
    }
  }
  const Cmd = splitCommand(form.command);
  const name = form.name.trim();
  return {
    query: name ? `?name=${enc(name)}` : '',
    body: { Image: image, ...(Cmd.length ? { Cmd } : {}), Env, ExposedPorts, HostConfig: { PortBindings, Binds } }
  };
}

/** Creates and starts the container, as `docker run -d` does; resolves to its ID. */
export async function runContainer(request: Requester, form: IRunForm): Promise<string> {
  const { query, body } = buildCreateRequest(form);
  const created = await checkedRequest(request, `containers/create${query}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body)
  });
  const id = ((await created.json()) as { Id: string }).Id;
  // The start may be resent (a second one answers 304); the create may not, it would make a second container.
  await checkedRequest(
    request,
    `containers/${enc(id)}/start`,
    { method: 'POST' },
    { repeatable: true, notModifiedIsDone: true }
  );
  return id;
}
