/** Main-area tabs on one container: its live logs, and a shell-like exec session. */
import { Widget } from '@lumino/widgets';

import { DockerModel, errorMessage, ILogChunk } from './model';

/** A scrolling, themed output pane that stays pinned to the bottom while the user is there. */
class OutputView extends Widget {
  protected output: HTMLPreElement;
  protected abort = new AbortController();

  constructor(
    protected model: DockerModel,
    readonly containerId: string
  ) {
    super();
    this.addClass('jp-PydockOutput');
    this.output = document.createElement('pre');
    this.output.className = 'jp-PydockOutput-text';
    this.node.appendChild(this.output);
  }

  dispose(): void {
    this.abort.abort();
    super.dispose();
  }

  protected append(chunk: ILogChunk): void {
    this.write('span', `jp-PydockOutput-${chunk.stream}`, chunk.text);
  }

  protected note(text: string): void {
    this.write('div', 'jp-PydockOutput-note', `— ${text} —`);
  }

  protected write(tag: string, className: string, text: string): void {
    const el = document.createElement(tag);
    el.className = className;
    el.textContent = text;
    const n = this.output;
    const atBottom = n.scrollHeight - n.scrollTop - n.clientHeight < 4;
    n.appendChild(el);
    if (atBottom) {
      n.scrollTop = n.scrollHeight;
    }
  }
}

export class LogView extends OutputView {
  constructor(model: DockerModel, containerId: string) {
    super(model, containerId);
    this.addClass('jp-PydockLogs');
    void this.follow();
  }

  private async follow(): Promise<void> {
    try {
      await this.model.followLogs(this.containerId, c => this.append(c), this.abort.signal);
      this.note('log stream ended (container stopped)');
    } catch (err) {
      if (!this.abort.signal.aborted) {
        this.note(`log stream failed: ${errorMessage(err)}`);
      }
    }
  }
}

/** Runs each entered line with `sh -c` in the container, one `docker exec` per line. */
export class ExecView extends OutputView {
  private input: HTMLInputElement;

  constructor(model: DockerModel, containerId: string) {
    super(model, containerId);
    this.addClass('jp-PydockExec');
    const form = document.createElement('form');
    form.className = 'jp-PydockExec-form';
    const prompt = document.createElement('span');
    prompt.className = 'jp-PydockExec-prompt';
    prompt.textContent = '$';
    this.input = document.createElement('input');
    this.input.className = 'jp-PydockExec-input';
    this.input.setAttribute('aria-label', 'Command');
    this.input.spellcheck = false;
    form.append(prompt, this.input);
    form.addEventListener('submit', e => {
      e.preventDefault();
      void this.run(this.input.value);
    });
    this.node.appendChild(form);
  }

  protected onActivateRequest(): void {
    this.input.focus();
  }

  private async run(line: string): Promise<void> {
    if (!line.trim() || this.input.disabled) {
      return;
    }
    this.input.value = '';
    this.input.disabled = true;
    this.write('div', 'jp-PydockExec-command', `$ ${line}`);
    try {
      const code = await this.model.exec(
        this.containerId,
        ['sh', '-c', line],
        c => this.append(c),
        this.abort.signal
      );
      if (code !== 0) {
        this.note(`exit code ${code}`);
      }
    } catch (err) {
      if (!this.abort.signal.aborted) {
        this.note(`exec failed: ${errorMessage(err)}`);
      }
    } finally {
      this.input.disabled = false;
      this.input.focus();
    }
  }
}
