/**
 * A container's log in a main-area tab: followed across restarts
 * (follower.ts), kept compactly (logstore.ts) and drawn virtually
 * (viewport.ts), so a log of a million lines scrolls like a short one. Of
 * what was logged before the tab opened, the last `MAX_HISTORY` lines load.
 *
 * The toolbar searches (every match highlighted, Enter and Shift+Enter step
 * through them), shows or hides timestamps, pauses and resumes following
 * (scrolling up pauses too), and downloads the whole log from the engine.
 */
import { MainAreaWidget } from '@jupyterlab/apputils';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { containerIcon } from './icons';
import { engineSource, FollowState, LogFollower } from './follower';
import { LogStore, searchPattern } from './logstore';
import { decoderFor, errorMessage, Requester } from './model';
import { isProportional, IWindow, MAX_SCROLL_HEIGHT, scrollTopFor, windowAt, windowFor } from './viewport';

const SEARCH_DELAY = 150; // ms of typing before a search runs
/** At most this many lines of what was logged before the tab opened are loaded (memory, transfer time). */
export const MAX_HISTORY = 1_000_000;

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  props: Partial<HTMLElementTagNameMap[K]> = {}
): HTMLElementTagNameMap[K] {
  const node = Object.assign(document.createElement(tag), props);
  node.className = className;
  return node;
}

export class LogView extends Widget {
  private store = new LogStore();
  private abort = new AbortController();
  private follower: LogFollower;
  private scroller = el('div', 'jp-PydockLogs-scroller');
  private spacer = el('div', 'jp-PydockLogs-spacer');
  private rows = el('div', 'jp-PydockLogs-rows');
  private statusNode = el('span', 'jp-PydockLogs-status');
  private note = el('div', 'jp-PydockLogs-note', {
    hidden: true,
    textContent: `Earlier lines may not be shown: the view loads at most the last ${MAX_HISTORY.toLocaleString('en')} lines of the log. Download has the whole log.`
  });
  private searchInput = el('input', 'jp-PydockLogs-search', {
    type: 'search',
    placeholder: 'Search',
    spellcheck: false
  });
  private matchInfo = el('span', 'jp-PydockLogs-matches');
  private timestampsBox = el('input', '', { type: 'checkbox' });
  private followButton = el('button', 'jp-PydockLogs-follow jp-mod-styled');
  private rowHeight = 0;
  /** The top row a wheel turn chose, in the proportional mapping (a scrollbar drag forgets it). */
  private wheelTop: number | null = null;
  private pendingBottom = false;
  private following = true;
  private unseen = 0;
  /** The scroll position last set here, until its scroll event came. */
  private expectedTop: number | null = null;
  private frame = 0;
  private pattern: RegExp | null = null;
  private searchedFor = '';
  private matches: number[] = [];
  private current = -1;
  private searchTimer = 0;

  constructor(
    private request: Requester,
    readonly containerId: string,
    private fileName = containerId
  ) {
    super();
    this.addClass('jp-PydockLogs');
    this.node.append(this.toolbar(), this.note, this.scroller);
    this.scroller.append(this.spacer, this.rows);
    this.scroller.addEventListener('scroll', () => this.onScroll());
    this.scroller.addEventListener('wheel', e => this.onWheel(e), { passive: false });
    this.follower = new LogFollower(
      engineSource(request, containerId, MAX_HISTORY),
      lines => {
        this.store.append(lines);
        this.onAppended(this.store.length - lines.length);
        // as many lines as the first request may bring: earlier ones may not have come
        this.note.hidden = this.store.length < MAX_HISTORY;
      },
      state => this.showState(state)
    );
    this.showState(this.follower.state);
    void this.follower.run(this.abort.signal);
  }

  dispose(): void {
    this.abort.abort();
    cancelAnimationFrame(this.frame);
    clearTimeout(this.searchTimer);
    super.dispose();
  }

  /** Whether timestamps are shown. */
  get timestamps(): boolean {
    return this.timestampsBox.checked;
  }

  protected onAfterShow(msg: Message): void {
    this.schedule();
  }

  protected onResize(msg: Widget.ResizeMessage): void {
    this.schedule();
  }

  protected onActivateRequest(msg: Message): void {
    this.searchInput.focus();
  }

  private toolbar(): HTMLElement {
    const bar = el('div', 'jp-PydockLogs-toolbar');
    this.searchInput.setAttribute('aria-label', 'Search logs');
    this.searchInput.addEventListener('input', () => {
      clearTimeout(this.searchTimer);
      this.searchTimer = window.setTimeout(() => this.runSearch(), SEARCH_DELAY);
    });
    this.searchInput.addEventListener('keydown', e => {
      if (e.key === 'Enter') {
        e.preventDefault();
        clearTimeout(this.searchTimer);
        if (this.searchInput.value !== this.searchedFor) {
          this.runSearch(); // typed, and Enter came before the search did
        } else {
          this.step(e.shiftKey ? -1 : 1);
        }
      }
    });
    const prev = el('button', 'jp-PydockLogs-prev jp-mod-styled', { textContent: '↑', title: 'Previous match' });
    const next = el('button', 'jp-PydockLogs-next jp-mod-styled', { textContent: '↓', title: 'Next match' });
    prev.addEventListener('click', () => this.step(-1));
    next.addEventListener('click', () => this.step(1));
    const stamps = el('label', 'jp-PydockLogs-timestamps');
    stamps.append(this.timestampsBox, document.createTextNode(' Timestamps'));
    this.timestampsBox.addEventListener('change', () => {
      this.runSearch(); // a match may lie in a timestamp, or stop doing so
      this.schedule();
    });
    this.followButton.addEventListener('click', () => this.setFollowing(!this.following));
    const download = el('button', 'jp-PydockLogs-download jp-mod-styled', {
      textContent: 'Download',
      title: 'Download the whole log as a file'
    });
    download.addEventListener('click', () => void this.download(download));
    this.setFollowing(true);
    bar.append(this.searchInput, prev, next, this.matchInfo, stamps, this.followButton, download, this.statusNode);
    return bar;
  }

  private showState(state: FollowState): void {
    const text = {
      following: 'Following',
      waiting: 'Container stopped: waiting for it to start again',
      removed: 'Container removed',
      failed: `Log stream failed: ${state.kind === 'failed' ? state.message : ''}`
    }[state.kind];
    this.statusNode.textContent = text;
    this.statusNode.dataset.state = state.kind;
  }

  private setFollowing(on: boolean): void {
    this.following = on;
    this.followButton.textContent = on ? 'Pause' : 'Follow';
    this.followButton.title = on ? 'Stop scrolling along with new lines' : 'Scroll along with new lines';
    this.node.classList.toggle('jp-mod-paused', !on);
    if (on) {
      this.unseen = 0;
      this.schedule(true);
    }
    this.showUnseen();
  }

  private showUnseen(): void {
    this.followButton.dataset.unseen = this.unseen ? `${this.unseen}` : '';
    if (!this.following && this.unseen) {
      this.followButton.textContent = `Follow (${this.unseen} new)`;
    }
  }

  private onAppended(from: number): void {
    if (this.pattern) {
      const found = this.store.search(this.pattern, this.timestamps, from);
      for (const i of found) {
        this.matches.push(i); // not push(...found): a big batch would overflow the argument stack
      }
      if (found.length) {
        this.showMatches();
      }
    }
    if (!this.following) {
      this.unseen += this.store.length - from;
      this.showUnseen();
    }
    this.schedule(this.following);
  }

  /** In the proportional mapping a pixel is several rows: a wheel turn moves by rows instead, as with few. */
  private onWheel(event: WheelEvent): void {
    const rowHeight = this.measureRow();
    const total = this.store.length;
    if (!isProportional(rowHeight, total) || event.deltaY === 0 || event.ctrlKey) {
      return;
    }
    event.preventDefault();
    this.scroller.scrollLeft += event.deltaX;
    const view = this.scroller.clientHeight;
    const perRow = event.deltaMode === 1 ? 1 : event.deltaMode === 2 ? rowHeight / view : rowHeight;
    const top = windowAt(Math.round(this.currentWindow().first + event.deltaY / perRow), 0, view, rowHeight, total).first;
    this.wheelTop = top;
    this.scrollTo(scrollTopFor(top + Math.floor(view / rowHeight / 3), view, rowHeight, total));
    this.userMoved();
    this.schedule();
  }

  private onScroll(): void {
    const ours = this.expectedTop !== null && Math.abs(this.scroller.scrollTop - this.expectedTop) < 1;
    this.expectedTop = null;
    if (!ours) {
      this.wheelTop = null; // the scrollbar, keys or a touch moved the view
      this.userMoved();
    }
    this.schedule();
  }

  /** The user moved the view: away from the end pauses following, back to it resumes. */
  private userMoved(): void {
    if (this.following && !this.atEnd()) {
      this.setFollowing(false);
    } else if (!this.following && this.atEnd() && this.unseen === 0) {
      this.setFollowing(true);
    }
  }

  private atEnd(): boolean {
    const w = this.currentWindow();
    const s = this.scroller;
    return this.wheelTop !== null ? w.first + w.count >= this.store.length : s.scrollHeight - s.scrollTop - s.clientHeight < 2;
  }

  /** Sets the scroll position, remembering it so that its scroll event is not taken for the user's. */
  private scrollTo(top: number): void {
    const max = Math.max(0, this.scroller.scrollHeight - this.scroller.clientHeight);
    const target = Math.max(0, Math.min(top, max));
    if (Math.abs(this.scroller.scrollTop - target) >= 1) {
      this.expectedTop = target;
      this.scroller.scrollTop = target;
    }
  }

  private currentWindow(): IWindow {
    const rowHeight = this.measureRow();
    const total = this.store.length;
    const view = this.scroller.clientHeight;
    const top = this.scroller.scrollTop;
    return this.wheelTop !== null && isProportional(rowHeight, total)
      ? windowAt(this.wheelTop, top, view, rowHeight, total)
      : windowFor(top, view, rowHeight, total);
  }

  /** Redraws at the next frame (once, however many lines came in meanwhile). */
  private schedule(toBottom = false): void {
    this.pendingBottom ||= toBottom;
    if (!this.frame) {
      this.frame = requestAnimationFrame(() => {
        this.frame = 0;
        this.render();
      });
    }
  }

  private render(): void {
    if (!this.isVisible) {
      return;
    }
    this.spacer.style.height = `${Math.min(this.store.length * this.measureRow(), MAX_SCROLL_HEIGHT)}px`;
    if (this.pendingBottom) {
      this.pendingBottom = false;
      this.wheelTop = null;
      this.scrollTo(this.scroller.scrollHeight - this.scroller.clientHeight);
    }
    const w = this.currentWindow();
    this.rows.style.transform = `translateY(${w.offset}px)`;
    // the drawn rows must not make the scroller taller than the spacer says
    this.rows.style.height = `${Math.max(0, w.spacer - w.offset)}px`;
    const nodes = this.rows.children;
    while (nodes.length < w.count) {
      this.rows.append(el('div', 'jp-PydockLogs-line'));
    }
    while (nodes.length > w.count) {
      this.rows.lastElementChild?.remove();
    }
    const matched = this.current >= 0 ? this.matches[this.current] : -1;
    for (let k = 0; k < w.count; k++) {
      this.drawRow(nodes[k] as HTMLElement, w.first + k, w.first + k === matched);
    }
  }

  private drawRow(node: HTMLElement, index: number, current: boolean): void {
    const line = this.store.line(index);
    node.className = `jp-PydockLogs-line jp-mod-${line.stream}${current ? ' jp-mod-current' : ''}`;
    node.dataset.index = `${index}`;
    node.replaceChildren();
    if (this.timestamps && line.ts) {
      node.append(el('span', 'jp-PydockLogs-ts', { textContent: line.ts }), ' ');
    }
    node.append(...this.highlighted(line.text));
  }

  private highlighted(text: string): (string | HTMLElement)[] {
    if (!this.pattern) {
      return [text];
    }
    const out: (string | HTMLElement)[] = [];
    let at = 0;
    this.pattern.lastIndex = 0;
    let m: RegExpExecArray | null;
    while ((m = this.pattern.exec(text)) !== null && m[0].length) {
      out.push(text.slice(at, m.index), el('mark', 'jp-PydockLogs-hit', { textContent: m[0] }));
      at = m.index + m[0].length;
    }
    out.push(text.slice(at));
    return out;
  }

  private measureRow(): number {
    if (!this.rowHeight) {
      const probe = el('div', 'jp-PydockLogs-line', { textContent: 'X' });
      this.rows.append(probe);
      this.rowHeight = probe.getBoundingClientRect().height || 18;
      probe.remove();
    }
    return this.rowHeight;
  }

  private runSearch(): void {
    this.searchedFor = this.searchInput.value;
    this.pattern = searchPattern(this.searchedFor);
    this.matches = this.pattern ? this.store.search(this.pattern, this.timestamps) : [];
    this.current = -1;
    if (this.matches.length) {
      const top = this.currentWindow().first;
      const after = this.matches.findIndex(i => i >= top);
      this.select(after >= 0 ? after : 0);
    }
    this.showMatches();
    this.schedule();
  }

  private step(delta: number): void {
    if (this.matches.length) {
      const n = this.matches.length;
      this.select(this.current < 0 ? 0 : (this.current + delta + n) % n);
    }
  }

  /** Makes match `k` the current one and scrolls it into view (which pauses following). */
  private select(k: number): void {
    this.current = k;
    this.setFollowing(false);
    this.wheelTop = null;
    this.scrollTo(scrollTopFor(this.matches[k], this.scroller.clientHeight, this.measureRow(), this.store.length));
    this.showMatches();
    this.schedule();
  }

  private showMatches(): void {
    const n = this.matches.length;
    this.matchInfo.textContent = this.pattern ? (n ? `${this.current + 1} of ${n}` : 'No matches') : '';
  }

  /** Saves the whole log, as the engine has it (not only what this view holds), as a file. */
  private async download(button: HTMLButtonElement): Promise<void> {
    button.disabled = true;
    try {
      const query = `stdout=1&stderr=1&timestamps=${this.timestamps ? 1 : 0}`;
      const resp = await this.request(`containers/${encodeURIComponent(this.containerId)}/logs?${query}`, {
        method: 'GET',
        signal: this.abort.signal
      });
      if (!resp.ok || !resp.body) {
        throw new Error(`${resp.status} ${resp.statusText}`);
      }
      const decoder = decoderFor(resp.headers.get('Content-Type'));
      const parts: string[] = [];
      const reader = resp.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) {
          break;
        }
        for (const chunk of decoder.push(value)) {
          parts.push(chunk.text);
        }
      }
      const url = URL.createObjectURL(new Blob(parts, { type: 'text/plain' }));
      const a = el('a', '', { href: url, download: `${this.fileName}.log` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (err) {
      if (!this.abort.signal.aborted) {
        this.statusNode.textContent = `Download failed: ${errorMessage(err)}`;
      }
    } finally {
      button.disabled = false;
    }
  }
}

/** A main-area tab holding a container's log view. */
export function createLogTab(request: Requester, id: string, name: string): MainAreaWidget<LogView> {
  const widget = new MainAreaWidget({ content: new LogView(request, id, name) });
  widget.title.label = `Logs: ${name}`;
  widget.title.icon = containerIcon;
  widget.title.closable = true;
  return widget;
}
