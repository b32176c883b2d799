/**
 * The wire protocol of pydock's container terminal websocket
 * (`<base_url>/pydock/lab/terminal/<container>`, pydock_ext/terminal.py):
 * binary frames carry the terminal's bytes both ways; text frames carry JSON
 * control messages (`{"resize": [rows, cols]}` to the server,
 * `{"exit": code}` or `{"error": message}` from it).
 */

export interface ITerminalRequest {
  /** The container, by ID or name. */
  container: string;
  /** A command line; empty for the container's bash, else sh. */
  cmd?: string;
  rows: number;
  cols: number;
  /** Jupyter's token, for a server the page's cookie does not authenticate. */
  token?: string;
}

/** The websocket URL of a terminal session below Jupyter's websocket base URL. */
export function terminalUrl(wsBase: string, req: ITerminalRequest): string {
  const base = wsBase.endsWith('/') ? wsBase : `${wsBase}/`;
  const query = new URLSearchParams({ rows: String(req.rows), cols: String(req.cols) });
  if (req.cmd?.trim()) {
    query.set('cmd', req.cmd.trim());
  }
  if (req.token) {
    query.set('token', req.token);
  }
  return `${base}pydock/lab/terminal/${encodeURIComponent(req.container)}?${query}`;
}

export type ControlMessage =
  | { kind: 'exit'; code: number | null }
  | { kind: 'error'; message: string };

/** A server control message, or null for anything this client does not know. */
export function parseControl(text: string): ControlMessage | null {
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof msg !== 'object' || msg === null) {
    return null;
  }
  const m = msg as Record<string, unknown>;
  if ('exit' in m) {
    return { kind: 'exit', code: typeof m.exit === 'number' ? m.exit : null };
  }
  if (typeof m.error === 'string') {
    return { kind: 'error', message: m.error };
  }
  return null;
}

/**
 * Sizes to tell the server: only real changes, and nothing below one row or
 * column (a hidden tab measures as zero).
 */
export class SizeTracker {
  private last = '';

  /** The resize message for this size, or null when there is nothing to send. */
  update(rows: number, cols: number): string | null {
    if (!(rows >= 1 && cols >= 1)) {
      return null;
    }
    const key = `${rows}x${cols}`;
    if (key === this.last) {
      return null;
    }
    this.last = key;
    return JSON.stringify({ resize: [rows, cols] });
  }
}

/** What the terminal shows below a session that ended (`msg` null: the connection went without a word). */
export function endBanner(msg: ControlMessage | null): string {
  if (msg === null) {
    return '\r\n[connection closed]\r\n';
  }
  if (msg.kind === 'error') {
    return `\r\n\x1b[31m${msg.message}\x1b[0m\r\n`;
  }
  return `\r\n[process exited${msg.code !== null ? ` with code ${msg.code}` : ''}]\r\n`;
}
