import { describe, expect, it } from 'vitest';

import { endBanner, parseControl, SizeTracker, terminalUrl } from '../src/termproto';

describe('terminal websocket protocol', () => {
  it('names the container and the size below the websocket base URL', () => {
    expect(terminalUrl('ws://h:8888/jp/', { container: 'web/1', rows: 24, cols: 80 })).toBe(
      'ws://h:8888/jp/pydock/lab/terminal/web%2F1?rows=24&cols=80'
    );
    const url = new URL(terminalUrl('ws://h/jp', { container: 'c', cmd: ' bash -l ', rows: 2, cols: 3, token: 't&k' }));
    expect(url.pathname).toBe('/jp/pydock/lab/terminal/c');
    expect(Object.fromEntries(url.searchParams)).toEqual({ rows: '2', cols: '3', cmd: 'bash -l', token: 't&k' });
  });

  it('reads exit and error messages and ignores the rest', () => {
    expect(parseControl('{"exit": 3}')).toEqual({ kind: 'exit', code: 3 });
    expect(parseControl('{"exit": null}')).toEqual({ kind: 'exit', code: null });
    expect(parseControl('{"error": "No such container: x"}')).toEqual({ kind: 'error', message: 'No such container: x' });
    expect(parseControl('not json')).toBeNull();
    expect(parseControl('[1]')).toBeNull();
    expect(parseControl('{"other": 1}')).toBeNull();
  });

  it('sends a size only when it changed, and never an empty one', () => {
    const sizes = new SizeTracker();
    expect(sizes.update(24, 80)).toBe('{"resize":[24,80]}');
    expect(sizes.update(24, 80)).toBeNull();
    expect(sizes.update(0, 0)).toBeNull(); // a hidden tab
    expect(sizes.update(NaN, 80)).toBeNull();
    expect(sizes.update(30, 100)).toBe('{"resize":[30,100]}');
  });

  it('says how a session ended', () => {
    expect(endBanner({ kind: 'exit', code: 0 })).toContain('[process exited with code 0]');
    expect(endBanner({ kind: 'exit', code: null })).toContain('[process exited]');
    expect(endBanner(null)).toContain('[connection closed]');
    expect(endBanner({ kind: 'error', message: 'denied' })).toContain('denied');
  });
});
