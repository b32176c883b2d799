/**
 * A container terminal tab: xterm.js (as JupyterLab's own terminal uses it,
 * with the fit addon sizing it to the tab) on pydock's terminal websocket,
 * which runs a TTY exec in the container (pydock_ext/terminal.py).
 *
 * Keystrokes go out as they are typed (Ctrl-C included), output is written
 * as it comes (colours, full-screen programs), and each size change of the
 * tab is sent on as the exec's new size. Closing the tab closes the socket,
 * and the server hangs the exec up.
 */
import { MainAreaWidget, ToolbarButton } from '@jupyterlab/apputils';
import { ServerConnection } from '@jupyterlab/services';
import { refreshIcon } from '@jupyterlab/ui-components';
import { Platform } from '@lumino/domutils';
import { Message } from '@lumino/messaging';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';
import type { FitAddon } from '@xterm/addon-fit';
import type { ITheme, Terminal as Xterm } from '@xterm/xterm';

import { containerIcon } from './icons';
import { ControlMessage, endBanner, parseControl, SizeTracker, terminalUrl } from './termproto';

export type TerminalStatus = 'connecting' | 'running' | 'ended';

export interface ITerminalOptions {
  container: string;
  /** The command line to run; empty for the container's bash, else sh. */
  cmd?: string;
  settings?: ServerConnection.ISettings;
}

/** xterm.js and its fit addon, loaded once, on the first terminal (they are a chunk of their own). */
let xtermModules: Promise<[typeof Xterm, typeof FitAddon]> | null = null;

function loadXterm(): Promise<[typeof Xterm, typeof FitAddon]> {
  xtermModules ??= Promise.all([import('@xterm/xterm'), import('@xterm/addon-fit')]).then(
    ([xterm, fit]) => [xterm.Terminal, fit.FitAddon]
  );
  return xtermModules;
}

/** Jupyter's current theme colours, as JupyterLab's terminal inherits them. */
function inheritedTheme(): ITheme {
  const style = getComputedStyle(document.body);
  const v = (name: string): string => style.getPropertyValue(name).trim();
  return {
    foreground: v('--jp-ui-font-color0'),
    background: v('--jp-layout-color0'),
    cursor: v('--jp-ui-font-color1'),
    cursorAccent: v('--jp-ui-inverse-font-color0'),
    selectionBackground: v('--jp-layout-color3'),
    selectionInactiveBackground: v('--jp-layout-color2')
  };
}

export class TerminalView extends Widget {
  private term: Xterm | null = null;
  private fitAddon: FitAddon | null = null;
  private socket: WebSocket | null = null;
  private sizes = new SizeTracker();
  private opened = false;
  private _status: TerminalStatus = 'connecting';
  private _statusChanged = new Signal<this, TerminalStatus>(this);
  private themeObserver = new MutationObserver(() => {
    if (this.term) {
      this.term.options.theme = inheritedTheme();
    }
  });
  private readonly settings: ServerConnection.ISettings;

  constructor(private options: ITerminalOptions) {
    super();
    this.addClass('jp-PydockTerminal');
    this.settings = options.settings ?? ServerConnection.makeSettings();
    void loadXterm().then(([Terminal, Fit]) => {
      if (this.isDisposed) {
        return;
      }
      this.term = new Terminal({
        theme: inheritedTheme(),
        fontFamily: getComputedStyle(document.body).getPropertyValue('--jp-code-font-family').trim() || 'monospace',
        fontSize: 13,
        scrollback: 5000,
        cursorBlink: true
      });
      this.fitAddon = new Fit();
      this.term.loadAddon(this.fitAddon);
      this.term.onData(data => this.send(new TextEncoder().encode(data)));
      // Mouse reports of some modes come as bytes, one per character.
      this.term.onBinary(data => this.send(Uint8Array.from(data, c => c.charCodeAt(0) & 0xff)));
      const term = this.term;
      // As in JupyterLab's terminal (but on macOS, where Cmd does these): Ctrl+C with a selection copies
      // it rather than interrupting, and Ctrl+V pastes through the browser rather than sending ^V.
      term.attachCustomKeyEventHandler(event => {
        if (Platform.IS_MAC || !event.ctrlKey || event.shiftKey || event.altKey) {
          return true;
        }
        return !((event.key === 'c' && term.hasSelection()) || event.key === 'v');
      });
      this.term.onTitleChange(title => {
        if (this.parent instanceof MainAreaWidget && title) {
          this.parent.title.caption = title;
        }
      });
      this.update();
    });
    this.themeObserver.observe(document.body, { attributes: true, attributeFilter: ['data-jp-theme-name'] });
  }

  get status(): TerminalStatus {
    return this._status;
  }

  get statusChanged(): ISignal<this, TerminalStatus> {
    return this._statusChanged;
  }

  /** Ends the current session (the server hangs it up) and starts a fresh one in the same tab,
   * running `cmd` if given (empty: the container's bash, else sh). */
  restart(cmd?: string): void {
    if (cmd !== undefined) {
      this.options = { ...this.options, cmd };
    }
    this.disconnect();
    this.term?.reset();
    this.sizes = new SizeTracker();
    this.connect();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.themeObserver.disconnect();
    this.disconnect();
    this.term?.dispose();
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    this.update();
  }

  protected onResize(msg: Widget.ResizeMessage): void {
    this.update();
  }

  protected onActivateRequest(msg: Message): void {
    this.term?.focus();
  }

  protected onUpdateRequest(msg: Message): void {
    if (!this.term || !this.isVisible || !this.isAttached) {
      return;
    }
    if (!this.opened) {
      this.term.open(this.node);
      this.opened = true;
    }
    this.fitAddon?.fit();
    if (!this.socket) {
      this.connect();
    } else {
      this.sendSize();
    }
    if (this.node.contains(document.activeElement) || document.activeElement === document.body) {
      this.term.focus();
    }
  }

  private connect(): void {
    const term = this.term;
    if (!term) {
      return;
    }
    const url = terminalUrl(this.settings.wsUrl, {
      container: this.options.container,
      cmd: this.options.cmd,
      rows: term.rows,
      cols: term.cols,
      token: this.settings.appendToken ? this.settings.token : ''
    });
    const socket = new this.settings.WebSocket(url);
    socket.binaryType = 'arraybuffer';
    this.socket = socket;
    this.sizes.update(term.rows, term.cols); // the server was given this size with the request
    let ended: ControlMessage | null = null;
    socket.onopen = () => this.setStatus('running');
    socket.onmessage = (event: MessageEvent) => {
      if (event.data instanceof ArrayBuffer) {
        term.write(new Uint8Array(event.data));
      } else {
        ended = parseControl(String(event.data)) ?? ended;
      }
    };
    socket.onclose = () => {
      if (this.socket !== socket) {
        return; // an earlier session, replaced by restart()
      }
      this.socket = null;
      if (!this.isDisposed) {
        term.write(endBanner(ended));
        this.setStatus('ended');
      }
    };
    this.setStatus('connecting');
  }

  private disconnect(): void {
    const socket = this.socket;
    this.socket = null;
    socket?.close();
  }

  private send(data: Uint8Array | string): void {
    if (this.socket?.readyState === WebSocket.OPEN) {
      this.socket.send(data);
    }
  }

  private sendSize(): void {
    if (this.term) {
      const msg = this.sizes.update(this.term.rows, this.term.cols);
      if (msg) {
        this.send(msg);
      }
    }
  }

  private setStatus(status: TerminalStatus): void {
    if (this._status !== status) {
      this._status = status;
      this._statusChanged.emit(status);
    }
  }
}

/**
 * A main-area tab holding a terminal; its toolbar shows the session's state and
 * starts a new session, of the command typed there (bash or sh when empty).
 */
export function createTerminalTab(options: ITerminalOptions, label: string): MainAreaWidget<TerminalView> {
  const content = new TerminalView(options);
  const widget = new MainAreaWidget({ content });
  widget.title.label = label;
  widget.title.icon = containerIcon;
  widget.title.closable = true;
  const status = new Widget();
  status.addClass('jp-PydockTerminal-status');
  const command = new Widget({ node: document.createElement('input') });
  const input = command.node as HTMLInputElement;
  input.className = 'jp-PydockTerminal-command';
  input.placeholder = 'bash, else sh';
  input.value = options.cmd ?? '';
  input.spellcheck = false;
  input.setAttribute('aria-label', 'Command');
  input.title = 'The command a new session runs';
  const start = (): void => content.restart(input.value.trim());
  input.addEventListener('keydown', event => {
    if (event.key === 'Enter') {
      event.preventDefault();
      start();
      content.activate();
    }
  });
  const restart = new ToolbarButton({
    icon: refreshIcon,
    label: 'New session',
    tooltip: 'End this session and start a new one, of the command on the left',
    onClick: start
  });
  const show = (s: TerminalStatus): void => {
    status.node.textContent = { connecting: 'Connecting…', running: 'Running', ended: 'Session ended' }[s];
    status.node.dataset.status = s;
  };
  show(content.status);
  content.statusChanged.connect((_, s) => show(s));
  widget.toolbar.addItem('status', status);
  widget.toolbar.addItem('command', command);
  widget.toolbar.addItem('restart', restart);
  return widget;
}
